"""Minimal gymnax-style spaces (no gymnax dependency)."""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Discrete(NamedTuple):
    """``n`` discrete actions per agent, ``0 .. n-1``."""

    n: int
    dtype: type = jnp.int32

    def sample(self, key: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
        """Uniform random actions of the given shape."""
        return jax.random.randint(key, shape, 0, self.n, self.dtype)

    def contains(self, x) -> jax.Array:
        """Whether every entry of ``x`` is a valid action."""
        return jnp.all((x >= 0) & (x < self.n))


class MultiDiscrete(NamedTuple):
    """A factorised discrete action per agent: factor ``i`` takes ``0 .. nvec[i]-1``; one action is ``[len(nvec)]``."""

    nvec: tuple[int, ...]
    dtype: type = jnp.int32

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one agent's action, ``(len(nvec),)``."""
        return (len(self.nvec),)

    def sample(self, key: jax.Array, shape: tuple[int, ...] = ()) -> jax.Array:
        """Uniform random actions of shape ``shape + (len(nvec),)``."""
        return jax.random.randint(key, (*shape, len(self.nvec)), 0, jnp.asarray(self.nvec), self.dtype)

    def contains(self, x) -> jax.Array:
        """Whether every entry of ``x [..., len(nvec)]`` is a valid choice of its factor."""
        return jnp.all((x >= 0) & (x < jnp.asarray(self.nvec)))


class Box(NamedTuple):
    """Real values in [low, high] with the given shape."""

    low: float
    high: float
    shape: tuple[int, ...]
    dtype: type = jnp.float32

    def sample(self, key: jax.Array) -> jax.Array:
        """Uniform random value of ``shape`` (finite bounds only)."""
        return jax.random.uniform(key, self.shape, self.dtype, self.low, self.high)

    def contains(self, x) -> jax.Array:
        """Whether ``x`` lies inside the box."""
        return jnp.all((x >= self.low) & (x <= self.high))
