"""Running mean/std statistics (parallel Welford) and input sanitising, as pure pytrees."""
from __future__ import annotations

import flax.struct
import jax.numpy as jnp

# Largest magnitude an observation or reward may have once sanitised: squares stay finite in float32.
SANITIZE_BOUND = 1e6
_VAR_EPS = 1e-8


def sanitize(x: jnp.ndarray, bound: float = SANITIZE_BOUND) -> jnp.ndarray:
    """Maps NaN to 0 and clips to [-bound, bound] (inf -> +-bound); any shape, float output."""
    x = jnp.asarray(x, jnp.float32)
    return jnp.clip(jnp.nan_to_num(x, nan=0.0, posinf=bound, neginf=-bound), -bound, bound)


@flax.struct.dataclass
class RunningMeanStd:
    """Mean and variance over every sample seen so far, per feature.

    ``mean``, ``var``: feature shape (``[obs_dim]`` for observations, ``[]`` for returns); ``count``: [].
    """

    mean: jnp.ndarray
    var: jnp.ndarray
    count: jnp.ndarray

    @classmethod
    def create(cls, shape: tuple[int, ...] = ()) -> "RunningMeanStd":
        """Fresh statistics (mean 0, var 1, tiny count) for features of ``shape``."""
        return cls(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.asarray(1e-4, jnp.float32))

    def update(self, x: jnp.ndarray) -> "RunningMeanStd":
        """Merges a batch ``x: [..., *feature_shape]`` (all leading axes are samples), Chan et al."""
        x = x.reshape((-1,) + self.mean.shape)
        n = jnp.asarray(x.shape[0], jnp.float32)
        batch_mean = x.mean(axis=0)
        batch_var = x.var(axis=0)
        total = self.count + n
        delta = batch_mean - self.mean
        mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + jnp.square(delta) * self.count * n / total
        return RunningMeanStd(mean, m2 / total, total)

    @property
    def std(self) -> jnp.ndarray:
        """Standard deviation, floored away from zero; feature shape."""
        return jnp.sqrt(self.var + _VAR_EPS)

    def normalize(self, x: jnp.ndarray, clip: float | None = None) -> jnp.ndarray:
        """``(x - mean) / std``, optionally clipped to [-clip, clip]; ``x: [..., *feature_shape]``."""
        z = (x - self.mean) / self.std
        return z if clip is None else jnp.clip(z, -clip, clip)

    def denormalize(self, z: jnp.ndarray) -> jnp.ndarray:
        """Inverse of ``normalize`` (without clipping); ``z: [..., *feature_shape]``."""
        return z * self.std + self.mean
