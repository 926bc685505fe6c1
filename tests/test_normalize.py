"""RunningMeanStd and sanitize (agents/normalize.py) against NumPy over the concatenated samples."""
import jax.numpy as jnp
import numpy as np

from ganno_jax.agents.normalize import RunningMeanStd, sanitize


def test_running_mean_std_matches_numpy_over_batches_of_different_sizes():
    rng = np.random.default_rng(0)
    # [samples..., features]: leading axes are samples; shifted and scaled so the statistics are not trivial
    batches = [rng.normal(3.0, 2.0, size=shape).astype(np.float32) * [1.0, 10.0, 0.1]
               for shape in ((5, 3), (4, 7, 3), (1, 3), (50, 3))]
    stats = RunningMeanStd.create((3,))
    for batch in batches:
        stats = stats.update(jnp.asarray(batch))
    seen = np.concatenate([b.reshape(-1, 3) for b in batches]).astype(np.float64)
    # the initial pseudo-count 1e-4 (mean 0, var 1) shifts the variance by ~1e-4 / 84 = 1.2e-6
    np.testing.assert_allclose(stats.mean, seen.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.var, seen.var(0), rtol=1e-5, atol=2e-6)
    np.testing.assert_allclose(stats.count, len(seen) + 1e-4, rtol=1e-7)

    x = jnp.asarray(batches[0])
    z = stats.normalize(x)
    np.testing.assert_allclose(z, (batches[0] - seen.mean(0)) / np.sqrt(seen.var(0) + 1e-8), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats.denormalize(z), x, rtol=1e-5, atol=1e-5)
    assert float(jnp.abs(stats.normalize(x * 100.0, clip=2.0)).max()) == 2.0


def test_scalar_statistics_of_returns():
    rng = np.random.default_rng(1)
    batches = [rng.exponential(5.0, size=n).astype(np.float32) for n in (8, 3, 20)]
    stats = RunningMeanStd.create()
    for batch in batches:
        stats = stats.update(jnp.asarray(batch))
    seen = np.concatenate(batches).astype(np.float64)
    np.testing.assert_allclose([stats.mean, stats.var], [seen.mean(), seen.var()], rtol=1e-5)


def test_sanitize_maps_nan_to_zero_and_clips():
    x = jnp.array([np.nan, np.inf, -np.inf, 2e6, -3.0])
    np.testing.assert_array_equal(sanitize(x), [0.0, 1e6, -1e6, 1e6, -3.0])
