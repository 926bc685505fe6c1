"""A 2-D convolution that is fast on XLA:CPU and GPU: im2col (shifted slices + one matmul).

XLA:CPU lowers the backward pass of ``lax.conv_general_dilated`` to slow loops (10-20x slower than
this formulation on small images); one ``dot`` over gathered patches is fast on every backend.
``conv2d`` is the only convolution the models use; ``tests/test_models.py`` checks it against
``lax.conv_general_dilated`` for several shapes, strides and kernel sizes.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """Output size and (low, high) padding of TensorFlow/Flax 'SAME' padding along one axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return out, total // 2, total - total // 2


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1) -> jax.Array:
    """'SAME'-padded convolution of NHWC images.

    Args:
      x: [B, H, W, C] images.
      kernel: [kh, kw, C, O] weights (Flax ``nn.Conv`` layout).
      stride: spatial stride on both axes.
    Returns:
      [B, ceil(H/stride), ceil(W/stride), O], equal to ``lax.conv_general_dilated`` with 'SAME'.
    """
    kh, kw, cin, cout = kernel.shape
    out_h, top, bottom = _same_padding(x.shape[1], kh, stride)
    out_w, left, right = _same_padding(x.shape[2], kw, stride)
    padded = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    patches = [
        padded[:, i : i + (out_h - 1) * stride + 1 : stride, j : j + (out_w - 1) * stride + 1 : stride, :]
        for i in range(kh)
        for j in range(kw)
    ]
    columns = patches[0] if len(patches) == 1 else jnp.concatenate(patches, axis=-1)
    return columns @ kernel.reshape(kh * kw * cin, cout)


class Conv(nn.Module):
    """Flax convolution layer (kernel + bias, 'SAME' padding) computed with ``conv2d``."""

    features: int
    kernel_size: int = 3
    stride: int = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> [B, H', W', features]."""
        shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return conv2d(x, kernel, self.stride) + bias
