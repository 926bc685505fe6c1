"""A 2-D convolution whose implementation is picked per backend: im2col on CPU, ``lax.conv`` elsewhere.

- ``im2col`` (shifted slices + one matmul, ``dense.kernel_matmul``): XLA:CPU lowers the backward pass of
  ``lax.conv_general_dilated`` to slow loops (10-20x slower than this formulation on small images; on the
  paper-scale 28x28x1 CNN-2 Adam step, batch 128, the two are about equal: docs/decisions.md); one
  ``dot`` over gathered patches is fast there.
- ``lax`` (``lax.conv_general_dilated``): what cuDNN runs on GPU (and XLA's TPU convolution emitter);
  chosen on GPU/TPU by the cuDNN convention, not measured on GPU in this project.

``conv2d`` is the only convolution the models use, ``conv2d_pool`` the same convolution max-pooled (the
CNNs' conv + pooling); ``impl="auto"`` (the default) takes ``im2col`` on the CPU backend and ``lax`` on any
other. On the im2col path ``conv2d_pool`` gathers the patches per pooling-window position, so the pooling
and its gradient work in the matmul's own layout (docs/decisions.md, "CPU speed"); on the lax path it is
``lax.conv_general_dilated`` then ``pooling.max_pool``. ``tests/test_models.py`` checks both
implementations of both against ``lax.conv_general_dilated`` (then Flax's ``max_pool``), forward and
gradient, for several shapes, strides, paddings and kernel sizes.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn

from ganno_jax.checks import check_choice
from ganno_jax.tasks.dense import kernel_matmul
from ganno_jax.tasks.pooling import max_first, max_pool


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """Output size and (low, high) padding of TensorFlow/Flax 'SAME' padding along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def _valid_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """Output size and (0, 0) padding of 'VALID' padding along one axis."""
    if size < kernel:
        raise ValueError(f"a 'VALID' convolution needs inputs of at least the kernel's size: got {size} pixels "
                         f"for a kernel of {kernel}")
    return (size - kernel) // stride + 1, 0, 0


PADDINGS = {"SAME": _same_padding, "VALID": _valid_padding}


IMPLS = ("auto", "im2col", "lax")


def resolve_impl(impl: str = "auto", backend: Optional[str] = None) -> str:
    """``im2col`` or ``lax`` for ``impl`` in ``IMPLS``: ``auto`` is ``im2col`` on the CPU backend
    (``backend``, default ``jax.default_backend()``) and ``lax`` on GPU/TPU."""
    check_choice("impl", impl, IMPLS)
    if impl != "auto":
        return impl
    return "im2col" if (backend or jax.default_backend()) == "cpu" else "lax"


def _im2col(x: jax.Array, kernel: jax.Array, stride: int, padding: str) -> jax.Array:
    kh, kw, cin, cout = kernel.shape
    out_h, top, bottom = PADDINGS[padding](x.shape[1], kh, stride)
    out_w, left, right = PADDINGS[padding](x.shape[2], kw, stride)
    padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    patches = [
        padded[:, i : i + (out_h - 1) * stride + 1 : stride, j : j + (out_w - 1) * stride + 1 : stride, :]
        for i in range(kh)
        for j in range(kw)
    ]
    columns = patches[0] if len(patches) == 1 else jnp.concatenate(patches, axis=-1)
    return kernel_matmul(columns, kernel.reshape(kh * kw * cin, cout))


def _lax(x: jax.Array, kernel: jax.Array, stride: int, padding: str) -> jax.Array:
    for axis in (1, 2):
        PADDINGS[padding](x.shape[axis], kernel.shape[axis - 1], stride)  # same size checks as im2col
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _im2col_pooled(x: jax.Array, kernel: jax.Array, window: tuple[int, int], padding: str,
                   pool_padding: str) -> jax.Array:
    """Stride-1 convolution then max pooling, with the patches gathered per window position (*phase*): the
    matmul writes the convolution as [phases, B, H', W', O], already stacked for ``max_first``, so the pooling
    is one elementwise pass and its gradient feeds the kernel's gradient matmul in the same layout (no
    interleaving of an input-sized tensor). Output positions past the convolution's edge ('SAME' pooling of
    an odd size) are -inf, as 'SAME' pooling pads."""
    kh, kw, cin, cout = kernel.shape
    (out_h, top, bottom), (out_w, left, right) = (PADDINGS[padding](x.shape[a], k, 1) for a, k in ((1, kh), (2, kw)))
    wh, ww = window
    ph, pw = (PADDINGS[pool_padding](n, k, k)[0] for n, k in ((out_h, wh), (out_w, ww)))  # pooled sizes
    beyond_h, beyond_w = max(ph * wh - out_h, 0), max(pw * ww - out_w, 0)  # 'SAME' pooling past the edge
    padded = jnp.pad(x, ((0, 0), (top, bottom + beyond_h), (left, right + beyond_w), (0, 0)))
    rows, cols = (ph - 1) * wh + 1, (pw - 1) * ww + 1
    phases = [jnp.concatenate([padded[:, pi + di : pi + di + rows : wh, pj + dj : pj + dj + cols : ww]
                               for di in range(kh) for dj in range(kw)], axis=-1)
              for pi in range(wh) for pj in range(ww)]
    conv = kernel_matmul(jnp.stack(phases), kernel.reshape(kh * kw * cin, cout))  # [wh * ww, B, ph, pw, cout]
    inside = np.array([[(i * wh + pi < out_h) & (np.arange(pw) * ww + pj < out_w) for i in range(ph)]
                       for pi in range(wh) for pj in range(ww)])  # [phases, ph, pw]
    if not inside.all():
        conv = jnp.where(inside[:, None, :, :, None], conv, -jnp.inf)
    return max_first(conv)


def conv2d_pool(x: jax.Array, kernel: jax.Array, window: tuple[int, int], padding: str = "SAME",
                pool_padding: str = "SAME", impl: str = "auto") -> jax.Array:
    """``pooling.max_pool(conv2d(x, kernel, 1, padding, impl), window, pool_padding)``, computed in one piece
    on the im2col path (``_im2col_pooled``: the pooling's passes and its gradient stay in the matmul's
    layout; equal up to float round-off, the gradient of each window to its first maximum as there).

    Args:
      x: [B, H, W, C] images; kernel: [kh, kw, C, O]; padding: the convolution's (stride 1).
      window: (wh, ww) pooling window (stride = window); pool_padding: 'SAME' or 'VALID' (see ``max_pool``).
    Returns:
      [B, H', W', O]: the pooled convolution.
    """
    check_choice("padding", padding, PADDINGS)
    check_choice("pool_padding", pool_padding, PADDINGS)
    if resolve_impl(impl) == "im2col":
        return _im2col_pooled(x, kernel, window, padding, pool_padding)
    return max_pool(_lax(x, kernel, 1, padding), window, pool_padding)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: str = "SAME", impl: str = "auto") -> jax.Array:
    """Convolution of NHWC images with 'SAME' or 'VALID' padding.

    Args:
      x: [B, H, W, C] images.
      kernel: [kh, kw, C, O] weights (Flax ``nn.Conv`` layout).
      stride: spatial stride on both axes.
      padding: ``SAME`` (output [B, ceil(H/stride), ceil(W/stride), O]) or ``VALID`` (no padding,
        output [B, (H-kh)//stride+1, (W-kw)//stride+1, O]).
      impl: one of ``IMPLS``: ``auto`` (im2col on CPU, ``lax.conv_general_dilated`` on GPU/TPU: the
        cuDNN convention, not measured on GPU), ``im2col`` or ``lax``.
    Returns:
      the convolution, equal to ``lax.conv_general_dilated`` with the same padding.
    """
    check_choice("padding", padding, PADDINGS)
    return (_im2col if resolve_impl(impl) == "im2col" else _lax)(x, kernel, stride, padding)


class Conv(nn.Module):
    """Flax convolution layer (kernel + bias, 'SAME' or 'VALID' padding) computed with ``conv2d``
    (``impl``: its implementation, default per backend), optionally max-pooled over non-overlapping
    ``pool`` windows (``pool_padding``, see ``pooling.max_pool``).

    The pooling runs before the bias is added: ``max_pool(conv) + bias`` equals ``max_pool(conv + bias)``
    exactly (adding a number is monotone, in floats too), and a monotone activation applied after the
    layer commutes with the pooling the same way (``relu(Conv(pool=w)(x))`` is ``max_pool(relu(conv +
    bias))``); the bias, its gradient and the activation then work on the pooled, 4x smaller tensor."""

    features: int
    kernel_size: int = 3
    stride: int = 1
    padding: str = "SAME"
    impl: str = "auto"  # see conv2d
    pool: Optional[tuple[int, int]] = None
    pool_padding: str = "SAME"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> [B, H', W', features] (pooled: [B, H' / pool, W' / pool, features])."""
        shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        if self.pool is None:
            return conv2d(x, kernel, self.stride, self.padding, self.impl) + bias
        if self.stride != 1:
            raise ValueError(f"Conv(pool={self.pool}) needs stride=1, got stride={self.stride}")
        return conv2d_pool(x, kernel, self.pool, self.padding, self.pool_padding, self.impl) + bias
