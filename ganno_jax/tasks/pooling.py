"""Non-overlapping max pooling with the gradient routed to each window's first maximum, fast on XLA:CPU.

``max_pool`` equals ``flax.linen.max_pool(x, window, strides=window, padding)`` forward and gradient, ties
included: like XLA's select-and-scatter (and PyTorch's ``max_pool2d``), the whole gradient of a window goes
to its first maximum in row-major window order. What differs is how XLA:CPU runs it (docs/decisions.md,
"CPU speed"): ``lax.reduce_window``'s gradient (select-and-scatter) is a slow loop there, and a reduction's
gradient (``x.reshape(...).max(...)``) compares the whole input with the maximum and counts the ties, two
more passes over it. Here the windows' elements are stacked on a leading axis and ``max_first`` takes the
maximum and the index of its first occurrence in one reduction forward, and writes the gradient from that
index in one elementwise pass backward (``conv.conv2d_pool`` builds the stacked form straight from the
convolution's matmul, so its input-sized output is never re-laid out).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

#: Largest window ``max_first`` indexes (its index is int8).
MAX_WINDOW = 127


def max_first(stacked: jax.Array) -> jax.Array:
    """Maximum over axis 0 of ``stacked`` [P, ...] (P <= ``MAX_WINDOW``) -> [...]; its gradient goes to the first
    element along axis 0 that equals the maximum (select-and-scatter's rule), all of it."""
    if stacked.shape[0] > MAX_WINDOW:
        raise ValueError(f"max_first takes at most {MAX_WINDOW} elements per window, got {stacked.shape[0]}")
    return _max_first(stacked.shape[0], stacked)


def _first_of_maxima(a, b):
    """Variadic-reduce step on (value, index) pairs: the larger value, the lower index among equals, NaN first."""
    (a_value, a_index), (b_value, b_index) = a, b
    take_a = (a_value > b_value) | (a_value != a_value) | ((a_value == b_value) & (a_index < b_index))
    return jnp.where(take_a, a_value, b_value), jnp.where(take_a, a_index, b_index)


def _max_and_first(stacked: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(maximum, index of its first occurrence as int8) over axis 0 of ``stacked``, in one pass (a variadic
    reduction: XLA keeps the index rather than recomputing it inside the backward pass, where it would
    re-read ``stacked`` in the gradient's layout)."""
    indices = jax.lax.broadcasted_iota(jnp.int8, stacked.shape, 0)
    return jax.lax.reduce((stacked, indices), (jnp.array(-jnp.inf, stacked.dtype), jnp.int8(0)),
                          _first_of_maxima, (0,))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _max_first(size: int, stacked: jax.Array) -> jax.Array:
    return _max_and_first(stacked)[0]


def _max_first_fwd(size, stacked):
    return _max_and_first(stacked)


def _max_first_bwd(size, first, grad):
    chosen = first[None] == jnp.arange(size, dtype=jnp.int8).reshape(size, *([1] * first.ndim))
    return (jnp.where(chosen, grad[None], jnp.zeros((), grad.dtype)),)


_max_first.defvjp(_max_first_fwd, _max_first_bwd)


def window_views(x: jax.Array, window: tuple[int, int], padding: str) -> jax.Array:
    """The pooling windows of x [B, H, W, C] stacked on a leading axis: [wh * ww, B, H', W', C], row-major
    window order ('SAME': ends padded with -inf, H' = ceil(H / wh); 'VALID': the remainder dropped)."""
    _, h, w, _ = x.shape
    wh, ww = window
    if padding == "SAME":
        x = jnp.pad(x, ((0, 0), (0, -h % wh), (0, -w % ww), (0, 0)), constant_values=-jnp.inf)
    else:
        x = x[:, : h - h % wh, : w - w % ww]
    return jnp.stack([x[:, i::wh, j::ww] for i in range(wh) for j in range(ww)])


def max_pool(x: jax.Array, window: tuple[int, int] = (2, 2), padding: str = "SAME") -> jax.Array:
    """Max pooling of x [B, H, W, C] over non-overlapping ``window`` (stride = window).

    Returns [B, ceil(H / wh), ceil(W / ww), C] for 'SAME' (ends padded with -inf) or
    [B, H // wh, W // ww, C] for 'VALID'; the gradient of each window goes to its first maximum.
    """
    return max_first(window_views(x, window, padding))
