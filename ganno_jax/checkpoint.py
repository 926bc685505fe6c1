"""Orbax checkpoints of training state (any pytree of arrays, PRNG keys included).

``save(folder, step, tree)`` writes ``folder/<step>`` atomically through an orbax
``CheckpointManager`` (keeps the last ``max_to_keep``); ``restore(folder, like)`` restores the latest
step into the structure of ``like`` (a pytree or its ``jax.eval_shape``), placed as ``like``'s arrays are
(abstract leaves: on this process's first device), whatever device layout or number of processes
saved it. With several processes (``jax.distributed``) every process calls ``save`` and ``restore``
(orbax coordinates them: each writes its shards, process 0 the metadata; the folder must be shared).
Only committed steps count: orbax writes a step into a temporary folder and renames it when complete,
so a save that was killed half-way is never listed nor loaded. A checkpoint that does not match
``like`` or cannot be read raises ``CheckpointError`` naming the folder and the problem.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or does not match the expected structure."""


def _is_key(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_saveable(tree):
    """PRNG key arrays -> their uint32 key data (orbax stores plain arrays)."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _restore_target(like):
    """Abstract saveable tree of ``like`` with explicit shardings, so a checkpoint saved on another
    device layout (e.g. env copies split over CPU cores, or several processes) restores onto this
    process's devices (abstract leaves: its first local device)."""
    default = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])

    def target(x, abstract):
        sharding = getattr(x, "sharding", None) or default
        return jax.ShapeDtypeStruct(abstract.shape, abstract.dtype, sharding=sharding)

    return jax.tree.map(target, like, jax.eval_shape(_to_saveable, like))


def _manager(folder: str, max_to_keep: int = 2, cleanup: bool = False) -> ocp.CheckpointManager:
    """Orbax manager of ``folder``; ``cleanup`` first deletes temporary folders of interrupted saves."""
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=cleanup)
    return ocp.CheckpointManager(os.path.abspath(folder), options=options)


def save(folder: str, step: int, tree: Any, max_to_keep: int = 2) -> None:
    """Saves ``tree`` as checkpoint ``step`` in ``folder`` (blocking until written), removing what
    earlier interrupted saves left."""
    with _manager(folder, max_to_keep, cleanup=True) as manager:
        manager.save(step, args=ocp.args.StandardSave(_to_saveable(tree)))
        manager.wait_until_finished()


def latest_step(folder: str) -> Optional[int]:
    """The newest complete checkpoint step in ``folder`` (None when there is none)."""
    if not os.path.isdir(folder):
        return None
    with _manager(folder) as manager:
        return manager.latest_step()


def restore(folder: str, like: Any, step: Optional[int] = None):
    """(step, tree) restored from ``folder`` (latest step by default) into the structure of ``like``."""
    step = latest_step(folder) if step is None else step
    if step is None:
        raise CheckpointError(f"no checkpoint found in {folder!r}")
    try:
        with _manager(folder) as manager:
            restored = manager.restore(step, args=ocp.args.StandardRestore(_restore_target(like)))
    except Exception as err:  # orbax raises several types for corrupt or mismatched data
        raise CheckpointError(f"checkpoint {step} in {folder!r} does not match the expected training state "
                              f"or is corrupt: {type(err).__name__}: {err}") from err
    leaves_like, treedef = jax.tree.flatten(like)
    leaves = [jax.random.wrap_key_data(x) if _is_key(leaf) else jnp.asarray(x)
              for x, leaf in zip(jax.tree.leaves(restored), leaves_like)]
    return step, jax.tree.unflatten(treedef, leaves)
