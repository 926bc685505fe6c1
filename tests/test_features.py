"""Observation columns (env/features.py via LayerwiseLREnv.get_obs) against NumPy recomputations from the
parameters, gradients and metrics of one Adam step."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ganno_jax as gj
from ganno_jax.env import LayerwiseLREnv, features

TASK = gj.tasks.get("digits-mlp", width=4, tau=1, horizon=4, eval_batch=64)
LR, WD = 3e-3, 0.01


def _columns(obs, group):
    """The columns of feature group ``group`` in an observation [num_agents, OBS_DIM]."""
    offsets = np.cumsum([0] + list(features.FEATURE_GROUPS.values()))
    i = list(features.FEATURE_GROUPS).index(group)
    return np.asarray(obs)[:, offsets[i]:offsets[i + 1]]


def _per_layer(tree):
    """[num_layers] lists of float64 arrays: leaves of top-level entry ``L0i_...`` belong to layer i."""
    return [[np.asarray(x, np.float64).ravel() for x in jax.tree.leaves(tree[name])] for name in sorted(tree)]


def _log(x):
    return np.log10(np.abs(x) + 1e-8)


@pytest.fixture(scope="module")
def stepped():
    """(obs, state, first-step gradients) after one Adam step from a fixed start, observed by ``get_obs``."""
    env = LayerwiseLREnv(TASK)
    params = env.default_params.fixed_start(LR, WD)
    _, state = env.reset(jax.random.key(0), params)
    trainer, data = env.trainer, params.data
    idx = trainer.sample_batch_indices(data, jax.random.key(1), 1)
    lrs = jnp.array([[LR, 2 * LR, 4 * LR]])
    inner, stats = jax.jit(trainer.train)(data, state.inner, lrs, WD, jax.random.key(2), idx)
    x, y = data.x_train[idx[0]], data.y_train[idx[0]]
    grads = jax.grad(lambda p: trainer.loss_and_accuracy(p, x, y)[0])(state.inner.params)
    state = state.replace(inner=inner, lrs=lrs[0], prev_action=jnp.array([0, 2, 7]), step=jnp.int32(1),
                          grad_norm=stats.grad_norm, update_norm=stats.update_norm,
                          metrics=trainer.measure(data, inner.params, jax.random.key(3)))
    return jax.jit(env.get_obs)(state, params), state, grads


def test_norm_and_trust_ratio_columns_equal_numpy(stepped):
    obs, state, grads = stepped
    g = _per_layer(grads)
    g_norm = np.array([np.sqrt(sum(np.sum(leaf**2) for leaf in layer)) for layer in g])
    # Adam's first direction: m_hat = g, v_hat = g^2, so u = g / (|g| + eps)
    u_norm = np.array([np.sqrt(sum(np.sum((leaf / (np.abs(leaf) + 1e-8)) ** 2) for leaf in layer)) for layer in g])
    w = [np.concatenate(layer) for layer in _per_layer(state.inner.params)]
    w_norm = np.array([np.linalg.norm(v) for v in w])
    np.testing.assert_allclose(_columns(obs, "grad_norm")[:, 0], _log(g_norm), atol=1e-5)
    np.testing.assert_allclose(_columns(obs, "update_norm")[:, 0], _log(u_norm), atol=1e-5)
    np.testing.assert_allclose(_columns(obs, "trust_ratio")[:, 0], _log(w_norm / (u_norm + 1e-8)), atol=1e-5)
    np.testing.assert_allclose(_columns(obs, "weight_norm")[:, 0], _log(w_norm), atol=1e-5)
    np.testing.assert_allclose(_columns(obs, "weight_mean")[:, 0], [np.mean(v) for v in w], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(_columns(obs, "weight_var")[:, 0], _log([np.var(v) for v in w]), atol=1e-5)


def test_lr_action_layer_and_global_columns(stepped):
    obs, state, _ = stepped
    m = state.metrics
    np.testing.assert_allclose(_columns(obs, "current_lr")[:, 0], _log([LR, 2 * LR, 4 * LR]), atol=1e-6)
    np.testing.assert_array_equal(_columns(obs, "previous_action"), np.eye(9)[[0, 2, 7]])
    np.testing.assert_array_equal(_columns(obs, "layer_type"), np.eye(3)[[0, 0, 0]])  # three dense layers
    expected = {
        "train_accuracy": m.train_acc, "val_accuracy": m.val_acc, "train_loss": m.train_loss,
        "val_loss": m.val_loss, "nan_flag": 0.0, "progress": 1 / TASK.horizon,
        "loss_ratio": np.clip(float(m.train_loss) / float(m.val_loss), 0, 10),
        "initial_lr": _log(LR), "initial_wd": _log(WD),
    }
    for group, value in expected.items():  # the global row is the same on every agent's row
        np.testing.assert_allclose(_columns(obs, group)[:, 0], np.full(3, value), rtol=1e-5, err_msg=group)
    assert 0.0 < float(m.train_loss) < features.LOSS_CAP and float(m.train_loss) != float(m.val_loss)
