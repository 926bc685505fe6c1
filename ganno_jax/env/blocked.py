"""``blocked_vmap``: a function whose ``jax.vmap`` runs the batch as a sequence of small vmapped *blocks*.

(A block is a few env copies run at once so their working set stays in cache; evaluation's memory-sized
groups of runs are its *chunks*, ``evaluation/chunked.py``.)

Why: a vmapped inner training run executes op by op over all env copies at once, so every activation
of the inner network is ``[envs, branches, batch, ...]``. On XLA:CPU those tensors leave the caches as
envs grow (CNN-2 on digits: 0.5 MB per env copy and step), and per-env cost *rose* with the number of
env copies (13.7 -> 6.6 env steps/s from 2 to 128 copies). Mapping (``lax.map``) over blocks of a
few env copies keeps the working set in cache; per-env cost is then flat in the number of copies.
On GPU/TPU the whole batch stays one vmap (wide kernels are what they are fast at).

Blocks are strided (block ``j`` holds copies ``j, j + E/k, j + 2E/k, ...``) so an env axis split in
contiguous blocks over ``k`` devices keeps one copy per device in every block: each device still works
on its own copies, and nothing moves between devices. Results equal the plain vmap's up to float
round-off.
"""
from __future__ import annotations

from typing import Callable, Optional

import jax

from ganno_jax.checks import check_int


def default_block(axis_size: int, backend: Optional[str] = None) -> int:
    """Env copies per block for a vmap of ``axis_size``: all of them off CPU; on CPU one per local
    device (so a split env axis keeps every device busy), or 1 when that does not divide ``axis_size``."""
    backend = jax.default_backend() if backend is None else backend
    if backend != "cpu":
        return axis_size
    devices = jax.local_device_count()
    return devices if axis_size % devices == 0 else 1


def blocked_vmap(fn: Callable, block: Optional[int] = None) -> Callable:
    """``fn`` itself when called unbatched; under ``jax.vmap`` a ``lax.map`` over blocks of ``block``
    batch elements (default: ``default_block``), each block one vmap of ``fn``. Every output is batched.
    ``fn`` takes positional pytree arguments and is not differentiated through (``custom_vmap``); it must
    not close over traced arrays (e.g. a jit argument): vmapped around a scan they fail to lower ("No
    constant handler for type: DynamicJaxprTracer"), so pass them as (unbatched) arguments."""
    if block is not None:
        check_int("block", block, note=" (or None: default_block)")
    wrapped = jax.custom_batching.custom_vmap(fn)

    @wrapped.def_vmap
    def _rule(axis_size, in_batched, *args):
        k = default_block(axis_size) if block is None else block
        in_axes = jax.tree.map(lambda b: 0 if b else None, list(in_batched))
        batched_fn = jax.vmap(fn, in_axes=tuple(in_axes))
        if k >= axis_size or axis_size % k:
            out = batched_fn(*args)
            return out, jax.tree.map(lambda _: True, out)
        groups = axis_size // k

        def to_blocks(x):  # [E, ...] -> [E/k, k, ...], block j = copies j, j + E/k, ...
            return x.reshape(k, groups, *x.shape[1:]).swapaxes(0, 1)

        def from_blocks(x):
            return x.swapaxes(0, 1).reshape(axis_size, *x.shape[2:])

        flat, tree = jax.tree.flatten(list(args))
        flags = jax.tree.leaves(list(in_batched))

        def one_block(block_leaves):
            it = iter(block_leaves)
            return batched_fn(*jax.tree.unflatten(tree, [next(it) if b else x for x, b in zip(flat, flags)]))

        out = jax.lax.map(one_block, [to_blocks(x) for x, b in zip(flat, flags) if b])
        return jax.tree.map(from_blocks, out), jax.tree.map(lambda _: True, out)

    return wrapped
