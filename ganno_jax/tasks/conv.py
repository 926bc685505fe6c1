"""A 2-D convolution whose implementation is picked per backend: im2col on CPU, ``lax.conv`` elsewhere.

- ``im2col`` (shifted slices + one matmul): XLA:CPU lowers the backward pass of
  ``lax.conv_general_dilated`` to slow loops (10-20x slower than this formulation on small images; on the
  paper-scale 28x28x1 CNN-2 Adam step, batch 128, the two are about equal: docs/decisions.md); one
  ``dot`` over gathered patches is fast there.
- ``lax`` (``lax.conv_general_dilated``): what cuDNN runs on GPU (and XLA's TPU convolution emitter);
  chosen on GPU/TPU by the cuDNN convention, not measured on GPU in this project.

``conv2d`` is the only convolution the models use; ``impl="auto"`` (the default) takes ``im2col`` on
the CPU backend and ``lax`` on any other; ``tests/test_models.py`` checks both implementations against
``lax.conv_general_dilated``, forward and gradient, for several shapes, strides and kernel sizes.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
from flax import linen as nn

from ganno_jax.checks import check_choice


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
    return columns @ kernel.reshape(kh * kw * cin, cout)


def _lax(x: jax.Array, kernel: jax.Array, stride: int, padding: str) -> jax.Array:
    for axis in (1, 2):
        PADDINGS[padding](x.shape[axis], kernel.shape[axis - 1], stride)  # same size checks as im2col
    return jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


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
    (``impl``: its implementation, default per backend)."""

    features: int
    kernel_size: int = 3
    stride: int = 1
    padding: str = "SAME"
    impl: str = "auto"  # see conv2d

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> [B, H', W', features]."""
        shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return conv2d(x, kernel, self.stride, self.padding, self.impl) + bias
