"""The matmul every built-in layer multiplies its kernel with, and the dense layer built on it.

``kernel_matmul(x, kernel)`` is ``x @ kernel`` with the kernel's gradient taken as ``x^T @ grad`` over all
leading axes at once. JAX's own transpose takes it as ``grad^T @ x``; when ``x`` is shared by the
vmapped copies of a layer (the env's reward branches train on the same minibatch) XLA:CPU then lays the
whole ``[examples, copies x features]`` gradient out feature-major before the matmul, a strided copy of
the largest tensor of the step that cost more than the matmul itself (the CNN-2 step on 28x28 images: 5x;
docs/decisions.md, "CPU speed"). With ``x`` first the gradient is read in the layout it was written in.
Values are the same matmuls: equal up to float round-off.
"""
from __future__ import annotations

import jax
from flax import linen as nn


@jax.custom_vjp
def kernel_matmul(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x [..., K] @ kernel [K, O] -> [..., O] (the kernel's gradient as x^T @ grad, see the module docstring)."""
    return x @ kernel


def _kernel_matmul_fwd(x, kernel):
    return x @ kernel, (x, kernel)


def _kernel_matmul_bwd(residuals, grad):
    x, kernel = residuals
    flat_x, flat_grad = x.reshape(-1, x.shape[-1]), grad.reshape(-1, grad.shape[-1])
    over_examples = (((0,), (0,)), ((), ()))
    if x.shape[-1] <= grad.shape[-1]:  # x the narrower: x^T @ grad (XLA transposes x, if anything)
        kernel_grad = jax.lax.dot_general(flat_x, flat_grad, over_examples)
    else:  # grad the narrower: (grad^T @ x)^T, as JAX takes it
        kernel_grad = jax.lax.dot_general(flat_grad, flat_x, over_examples).T
    return grad @ kernel.T, kernel_grad


kernel_matmul.defvjp(_kernel_matmul_fwd, _kernel_matmul_bwd)


class Dense(nn.Module):
    """``flax.linen.Dense`` (same parameters, names and initialisation: LeCun-normal kernel, zero bias)
    computed with ``kernel_matmul``."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [..., K] -> [..., features]."""
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return kernel_matmul(x, kernel) + bias
