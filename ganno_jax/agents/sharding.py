"""Splitting the env axis over devices: a 1-D ``"envs"`` mesh and sharding constraints on the rollout.

With a mesh, ``make_train`` constrains everything the rollout carries per env copy (env states,
observations, done flags, recurrent states: leading axis) to be split over the mesh's devices, and
lets XLA's partitioner (GSPMD) split the computation that follows: each device steps its own env
copies and runs the policy on their observations, with no communication inside a rollout step
(``jax.random`` is partitionable); the PPO update gathers its minibatches across devices. Results
equal the unsharded run's up to float reassociation. On CPU, XLA runs one program per device on
about one core: ``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` (set before JAX first
runs anything) gives one device per core.
"""
from __future__ import annotations

import os
from typing import Optional

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from ganno_jax.checks import check_int, require

ENV_AXIS = "envs"


def env_mesh(num_devices: Optional[int] = None) -> Mesh:
    """1-D mesh named ``"envs"`` over the first ``num_devices`` devices (default: all)."""
    available = jax.device_count()
    n = available if num_devices is None else num_devices
    check_int("num_devices", n, 1, available, note=f" (devices available: {available})")
    return jax.make_mesh((n,), (ENV_AXIS,), axis_types=(AxisType.Auto,), devices=jax.devices()[:n])


def check_divisible(num_envs: int, mesh: Optional[Mesh]) -> None:
    """``ValueError`` unless ``num_envs`` splits evenly over the mesh's devices."""
    if mesh is not None:
        require("num_envs", num_envs, num_envs % mesh.size == 0,
                f"a multiple of the {mesh.size} devices of the env mesh")


def split_envs(tree, mesh: Optional[Mesh] = None):
    """``tree`` (leaves with a leading env or actor axis) constrained to be split over ``mesh``'s
    devices along that axis; unchanged without a mesh."""
    if mesh is None or mesh.size == 1:
        return tree
    return jax.lax.with_sharding_constraint(tree, NamedSharding(mesh, PartitionSpec(ENV_AXIS)))


def mesh_for(num_envs: int, num_devices: Optional[int] = None) -> Optional[Mesh]:
    """Env mesh for ``num_envs`` copies over ``num_devices`` devices (None: the most devices, up to all,
    that divide ``num_envs``); None when that is one device. With several processes (``jax.distributed``)
    the mesh takes every device of every process, so each process steps its share of the env copies.
    Errors name the bad value."""
    if jax.process_count() > 1:
        total = jax.device_count()
        if num_devices not in (None, total) or num_envs % total:
            raise ValueError(f"num_envs={num_envs} (devices={num_devices}) does not fit a run of "
                             f"{jax.process_count()} processes: the env copies split over all {total} devices of "
                             f"all processes, so num_envs must be a multiple of {total} (devices: all)")
        num_devices = total
    if num_devices is None:
        num_devices = max(n for n in range(1, jax.device_count() + 1) if num_envs % n == 0)
    mesh = env_mesh(num_devices)
    check_divisible(num_envs, mesh)
    return mesh if mesh.size > 1 else None


def use_cpu_cores() -> None:
    """Asks XLA for one CPU device per core (``--xla_force_host_platform_device_count``) unless
    ``XLA_FLAGS`` already sets a count. Call before JAX first runs anything (command-line entry points
    do); library code never calls it. Other platforms (GPU) are unaffected."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={os.cpu_count() or 1}".strip()
