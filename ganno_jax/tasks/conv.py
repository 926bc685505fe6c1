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


def _valid_padding(size: int, kernel: int, stride: int) -> tuple[int, int, int]:
    """Output size and (0, 0) padding of 'VALID' padding along one axis."""
    if size < kernel:
        raise ValueError(f"a 'VALID' convolution needs inputs of at least the kernel's size: got {size} pixels "
                         f"for a kernel of {kernel}")
    return (size - kernel) // stride + 1, 0, 0


PADDINGS = {"SAME": _same_padding, "VALID": _valid_padding}


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1, padding: str = "SAME") -> jax.Array:
    """Convolution of NHWC images with 'SAME' or 'VALID' padding.

    Args:
      x: [B, H, W, C] images.
      kernel: [kh, kw, C, O] weights (Flax ``nn.Conv`` layout).
      stride: spatial stride on both axes.
      padding: ``SAME`` (output [B, ceil(H/stride), ceil(W/stride), O]) or ``VALID`` (no padding,
        output [B, (H-kh)//stride+1, (W-kw)//stride+1, O]).
    Returns:
      the convolution, equal to ``lax.conv_general_dilated`` with the same padding.
    """
    if padding not in PADDINGS:
        raise ValueError(f"padding={padding!r} is not valid; allowed: {', '.join(PADDINGS)}")
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


class Conv(nn.Module):
    """Flax convolution layer (kernel + bias, 'SAME' or 'VALID' padding) computed with ``conv2d``."""

    features: int
    kernel_size: int = 3
    stride: int = 1
    padding: str = "SAME"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> [B, H', W', features]."""
        shape = (self.kernel_size, self.kernel_size, x.shape[-1], self.features)
        kernel = self.param("kernel", nn.initializers.lecun_normal(), shape)
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return conv2d(x, kernel, self.stride, self.padding) + bias
