"""Several processes (hosts) through ``jax.distributed``: start-up, who writes, host copies of global arrays.

A run over several processes is the same program in each: every process calls ``initialize`` before
JAX runs anything, then builds the same env mesh over all processes' devices (``agents.sharding.env_mesh``
uses the global ``jax.devices()``) and computes the same things from the same keys; XLA's collectives
(gloo on CPU) join the pieces. Only the writer (process 0, ``is_writer``) writes files; the run folder
must lie on a file system all processes share (orbax checkpoints are written by all of them).

Start-up (``initialize``): ``--coordinator HOST:PORT --num-processes N --process-id I`` for a plain
launch (all three or none); without them, a managed cluster that runs several tasks (SLURM ``srun``,
Open MPI ``mpirun``, multi-host Cloud TPU) is detected from its environment variables (``managed_cluster``)
and ``jax.distributed.initialize()`` reads the rest itself (``JAX_COORDINATOR_ADDRESS`` /
``JAX_COORDINATOR_PORT`` override the address it picks); otherwise nothing happens (one process).
SLURM counts only inside a job step that ``srun`` launched with several tasks (``SLURM_STEP_ID`` set, and
``SLURM_STEP_NUM_TASKS``, else ``SLURM_NTASKS``, > 1): an ``sbatch`` script that runs plain ``python``
also has ``SLURM_NTASKS`` set to the job's task count, but no peer will ever join it.
"""
from __future__ import annotations

import argparse
import os
from typing import Optional, Sequence

import jax
import numpy as np
from jax.experimental import multihost_utils

from ganno_jax.checks import check_int, require

#: SLURM: set in a job step (``srun``), absent in an ``sbatch`` / ``salloc`` shell.
SLURM_STEP_VAR = "SLURM_STEP_ID"
#: SLURM: the step's number of tasks (processes), else the job's.
SLURM_TASK_VARS = ("SLURM_STEP_NUM_TASKS", "SLURM_NTASKS")
#: Open MPI (``mpirun``): the number of processes launched.
OMPI_SIZE_VAR = "OMPI_COMM_WORLD_SIZE"
#: Environment variables of multi-host Cloud TPU slices: comma-separated worker hosts.
TPU_HOST_VARS = ("TPU_PROCESS_ADDRESSES", "TPU_WORKER_HOSTNAMES")


def add_args(parser: argparse.ArgumentParser) -> None:
    """Adds the ``--coordinator`` / ``--num-processes`` / ``--process-id`` group to ``parser``."""
    group = parser.add_argument_group("several processes (jax.distributed; default: a managed cluster "
                                      "(SLURM, Open MPI, TPU pod) is detected, else one process)")
    group.add_argument("--coordinator", metavar="HOST:PORT",
                       help="address of process 0's coordinator service (plain launch; with the next two)")
    group.add_argument("--num-processes", type=int, metavar="N", help="processes in the run (plain launch)")
    group.add_argument("--process-id", type=int, metavar="I", help="this process's index, 0..N-1 (plain launch)")


def _count(environ, var: str) -> int:
    """The whole number ``environ[var]``; 0 when absent or not a number."""
    value = environ.get(var, "").strip()
    return int(value) if value.isdigit() else 0


def managed_cluster(environ=None) -> Optional[str]:
    """Name of the managed cluster that launched several processes of this program (``"SLURM"``,
    ``"Open MPI"``, ``"TPU"``), read from ``environ`` (a mapping, default ``os.environ``); None when there
    is none. SLURM: inside an ``srun`` step (``SLURM_STEP_ID`` set) of several tasks
    (``SLURM_STEP_NUM_TASKS``, else ``SLURM_NTASKS``); Open MPI (checked first): ``OMPI_COMM_WORLD_SIZE`` > 1;
    TPU: several worker hosts listed."""
    environ = os.environ if environ is None else environ
    if _count(environ, OMPI_SIZE_VAR) > 1:  # first: mpirun under SLURM runs its ranks inside a step too
        return "Open MPI"
    if SLURM_STEP_VAR in environ:
        tasks = next((_count(environ, var) for var in SLURM_TASK_VARS if var in environ), 0)
        if tasks > 1:
            return "SLURM"
    if any(len([h for h in environ.get(var, "").split(",") if h]) > 1 for var in TPU_HOST_VARS):
        return "TPU"
    return None


def check_launch(coordinator: Optional[str], num_processes: Optional[int], process_id: Optional[int]) -> bool:
    """True when the three plain-launch values are given and valid, False when none is; ``ValueError``
    naming the flag otherwise."""
    given = {"--coordinator": coordinator, "--num-processes": num_processes, "--process-id": process_id}
    if all(v is None for v in given.values()):
        return False
    missing = [flag for flag, v in given.items() if v is None]
    if missing:
        raise ValueError(f"{', '.join(missing)} missing: a plain launch of several processes needs "
                         f"--coordinator HOST:PORT, --num-processes N and --process-id I together")
    host, _, port = coordinator.rpartition(":")
    require("--coordinator", coordinator, bool(host) and port.isdigit() and 0 < int(port) < 65536,
            "HOST:PORT with a port in [1, 65535]")
    check_int("--num-processes", num_processes)
    check_int("--process-id", process_id, 0, num_processes - 1, note=f" (--num-processes={num_processes})")
    return True


def initialize(coordinator: Optional[str] = None, num_processes: Optional[int] = None,
               process_id: Optional[int] = None) -> None:
    """Joins this process to a multi-process run (call before JAX runs anything): with the three values,
    ``jax.distributed.initialize(coordinator, num_processes, process_id)``; with none, the same without
    arguments when ``managed_cluster()`` finds one, else nothing (one process). Some but not all values,
    or bad ones: ``ValueError`` naming the flag. Multi-process runs on CPU use gloo collectives."""
    plain = check_launch(coordinator, num_processes, process_id)
    if jax.distributed.is_initialized() or not (plain or managed_cluster()):
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU client only; ignored by GPU/TPU
    if plain:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    else:
        jax.distributed.initialize()


def initialize_from_argv(argv: Sequence[str]) -> None:
    """``initialize`` with the ``add_args`` flags found in ``argv`` (other arguments are ignored)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_args(parser)
    args, _ = parser.parse_known_args(list(argv))
    initialize(args.coordinator, args.num_processes, args.process_id)


def is_writer() -> bool:
    """True in the process that writes files (process 0; the only one without ``jax.distributed``)."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits until every process reaches the barrier ``name`` (nothing with one process)."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def to_host(tree):
    """``tree`` as NumPy arrays with every element, also for arrays split over other processes' devices
    (gathered from all processes; every process must call it)."""
    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return multihost_utils.process_allgather(x, tiled=True)
        return np.asarray(jax.device_get(x))

    return jax.tree.map(get, tree)


def put(tree, sharding):
    """``jax.device_put(tree, sharding)``, also where ``sharding`` spans several processes' devices (every
    process passes the same values): there, arrays held by this process alone (e.g. restored onto its
    first device) travel as NumPy arrays, PRNG key arrays as their key data, as ``device_put`` requires."""
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def leaf(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            data = jax.device_put(np.asarray(jax.random.key_data(x)), sharding)
            return jax.random.wrap_key_data(data, impl=jax.random.key_impl(x))
        return jax.device_put(np.asarray(x) if isinstance(x, jax.Array) and x.is_fully_addressable else x, sharding)

    return jax.tree.map(leaf, tree)


def agree_min(value: Optional[int]) -> Optional[int]:
    """The least of every process's ``value`` (None if some process has None); ``value`` itself with one
    process. Keeps choices made from local measurements (free memory) the same in every process."""
    if jax.process_count() == 1:
        return value
    values = multihost_utils.process_allgather(np.int64(-1 if value is None else value))
    return None if (values < 0).any() else int(values.min())
