"""GlobalLREnv: action mapping, eq. (1) reward, divergence penalty, obs layout, SGD epochs, vmap, resets."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ganno_jax as gj
from ganno_jax.sgd_scheduler import env as global_lr
from ganno_jax.sgd_scheduler import (GLOBAL_OBS_DIM, MAX_LAYERS, GlobalEnvParams, GlobalLREnv, action_to_lr,
                                     divergence_penalty, global_reward, lr_to_action)

TASK = gj.tasks.get("digits-mlp", batch_size=256, horizon=3, eval_batch=64)  # optimizer "adam": env must ignore it
ACT_1E3 = jnp.zeros((1, 1))  # action 0 -> LR 1e-3


@pytest.fixture(scope="module")
def env():
    return GlobalLREnv(TASK)


def test_action_to_lr_ends_centre_clipping_and_round_trip():
    lrs = action_to_lr(jnp.array([-1.0, 0.0, 1.0, -7.0, 3.0]), 1e-6, 1.0)
    np.testing.assert_allclose(lrs, [1e-6, 1e-3, 1.0, 1e-6, 1.0], rtol=1e-5)
    actions = jnp.linspace(-1.0, 1.0, 11)
    np.testing.assert_allclose(lr_to_action(action_to_lr(actions, 1e-6, 1.0), 1e-6, 1.0), actions, atol=1e-5)
    np.testing.assert_allclose(lr_to_action(jnp.array([1e-3, 1e-9, 10.0]), 1e-6, 1.0), [0.0, -1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(action_to_lr(0.0, 1e-4, 1e-2), 1e-3, rtol=1e-5)


def test_reward_formula_on_hand_computed_cases():
    # improvement over the best so far, 2 epochs left: 10 * (0.7 - 0.5) + 1 * 2
    np.testing.assert_allclose(global_reward(0.5, 0.7, 2), 4.0, rtol=1e-6)
    # worse than the best, last epoch: 10 * (0.7 - 0.9) + 0
    np.testing.assert_allclose(global_reward(0.9, 0.7, 0), -2.0, rtol=1e-6)
    np.testing.assert_allclose(global_reward(0.5, 0.7, 4, gamma=2.0, lam=0.5), 2.4, rtol=1e-6)
    # A.8 ablation: the reward is the (negated) validation loss; gamma, lambda and best loss are ignored
    np.testing.assert_allclose(global_reward(0.5, 0.7, 2, 10.0, 1.0, mode="val_loss"), -0.5, rtol=1e-6)
    np.testing.assert_allclose(jax.jit(global_reward)(0.5, 0.7, 2), 4.0, rtol=1e-6)


def test_divergence_penalty_range():
    pen = jax.vmap(divergence_penalty)(jax.random.split(jax.random.key(0), 2000))
    assert jnp.all((pen >= -2000.0) & (pen <= -1000.0))
    assert pen.min() < -1900.0 and pen.max() > -1100.0


def test_reset_obs_layout_and_spaces(env, reset):
    params = env.default_params.replace(init_lr=5e-3)
    obs, state = reset(jax.random.key(0), params)
    chex.assert_shape(obs, (1, GLOBAL_OBS_DIM))
    assert obs.dtype == jnp.float32 and env.observation_space(params).shape == (1, GLOBAL_OBS_DIM)
    chex.assert_tree_all_finite(obs)
    n = env.trainer.num_agents
    row = np.asarray(obs[0])
    np.testing.assert_allclose(row[0], state.val_loss)
    assert 1.5 < row[0] < 3.5  # ~ln(10) for an untrained 10-class network
    assert row[1] == 1.0  # all epochs remain
    np.testing.assert_allclose(row[2], np.log10(5e-3), rtol=1e-5)
    grads, mask = row[3:3 + MAX_LAYERS], row[3 + MAX_LAYERS:]
    np.testing.assert_array_equal(mask, [1.0] * n + [0.0] * (MAX_LAYERS - n))
    np.testing.assert_array_equal(grads[n:], 0.0)
    np.testing.assert_allclose(grads[:n], np.log10(np.asarray(state.grad_norm, np.float64) + 1e-8), atol=1e-6)
    assert np.all(np.asarray(state.grad_norm) > 1e-6)  # a real gradient on the reset minibatch, layer by layer
    space = env.action_space(params)
    assert space.shape == (1,) and (space.low, space.high) == (-1.0, 1.0)
    assert state.best_loss == state.val_loss and state.epoch == 0


def test_one_step_is_an_epoch_of_plain_sgd(env, reset, step):
    """Whatever task.optimizer says, an env step is p <- p - lr * g over a permutation of the train split."""
    params = env.default_params.replace(weight_decay=0.01)
    _, state = reset(jax.random.key(1), params)
    key = jax.random.key(2)
    action = jnp.full((1, 1), 0.5)
    obs, new_state, reward, terminated, truncated, info = step(key, state, action, params)
    lr = float(action_to_lr(0.5, params.lr_min, params.lr_max))
    np.testing.assert_allclose(info["lr"], lr, rtol=1e-6)
    key_step = jax.random.split(key)[0]  # FunctionalEnv.step's key for step_env
    idx = env.epoch_indices(jax.random.split(key_step, 3)[0])
    assert idx.shape == (1293 // 256, 256) and len(np.unique(np.asarray(idx))) == idx.size
    p = state.inner.params
    data = params.data
    for b in idx:
        g = jax.grad(lambda q: env.trainer.loss_and_accuracy(q, data.x_train[b], data.y_train[b])[0])(p)
        p = jax.tree.map(lambda w, d: w - lr * (d + 0.01 * w), p, g)
    chex.assert_trees_all_close(new_state.inner.params, p, rtol=1e-4, atol=1e-6)
    assert not terminated and not truncated and not info["diverged"] and info["epoch"] == 1
    assert info["steps"] == idx.shape[0] == env.steps_per_epoch  # the optimiser steps the epoch ran
    row = obs[0]
    np.testing.assert_allclose(row[1], 2 / 3, rtol=1e-6)
    np.testing.assert_allclose(row[2], np.log10(lr), rtol=1e-5)
    np.testing.assert_allclose(row[0], info["val_loss"])
    np.testing.assert_allclose(reward, [10 * (state.best_loss - info["val_loss"]) + 2.0], rtol=1e-5)


def test_episode_terminates_at_horizon_and_auto_resets(env, reset, step):
    params = env.default_params
    _, state = reset(jax.random.key(3), params)
    best = float(state.best_loss)
    keys = jax.random.split(jax.random.key(4), TASK.horizon)
    for t, key in enumerate(keys, start=1):
        obs, state, reward, terminated, truncated, info = step(key, state, ACT_1E3, params)
        val = float(info["val_loss"])
        np.testing.assert_allclose(reward, [10 * (best - val) + (TASK.horizon - t)], rtol=1e-5, atol=1e-5)
        best = min(best, val)
        assert bool(terminated) == (t == TASK.horizon) and not truncated and int(info["epoch"]) == t
        chex.assert_tree_all_finite((obs, reward, info["final_obs"]))
    assert info["final_obs"][0, 1] == 0.0  # no epoch left in the finished episode
    assert state.epoch == 0 and obs[0, 1] == 1.0  # auto-reset: a new episode starts
    np.testing.assert_allclose(obs[0, 2], np.log10(params.init_lr), rtol=1e-5)


def test_divergence_penalty_terminates_with_finite_obs(env, reset, step):
    params = env.default_params.replace(lr_max=1e30)  # action +1 -> LR 1e30
    _, state = reset(jax.random.key(5), params)
    obs, new_state, reward, terminated, truncated, info = step(jax.random.key(6), state, jnp.ones((1, 1)), params)
    assert info["diverged"] and terminated and not truncated
    assert -2000.0 <= float(reward[0]) <= -1000.0
    chex.assert_tree_all_finite((obs, info["final_obs"], reward, info["val_loss"], info["train_loss"]))
    assert new_state.epoch == 0  # auto-reset after the divergent epoch


def test_val_loss_reward_mode_and_test_tracking(env, reset):
    params = env.default_params.replace(reward_mode="val_loss", track_test=True)
    _, state = reset(jax.random.key(7), params)
    _, _, reward, _, _, info = jax.jit(env.step_env)(jax.random.key(8), state, ACT_1E3, params)
    np.testing.assert_allclose(reward, [-info["val_loss"]], rtol=1e-6)
    assert 0.0 <= info["test_acc"] <= 1.0 and np.isfinite(info["test_loss"])


def test_vmap_over_envs_and_determinism(env):
    n = 4
    params = env.default_params
    keys = jax.random.split(jax.random.key(9), n)
    obs, state = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))(keys, params)
    chex.assert_shape(obs, (n, 1, GLOBAL_OBS_DIM))
    actions = jax.vmap(lambda k: env.action_space(params).sample(k)[None])(keys)
    chex.assert_shape(actions, (n, 1, 1))
    vstep = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    out = vstep(keys, state, actions, params)
    obs, state2, reward, terminated, truncated, info = out
    chex.assert_shape(obs, (n, 1, GLOBAL_OBS_DIM))
    chex.assert_shape(reward, (n, 1))
    chex.assert_shape([terminated, truncated, info["lr"], info["val_loss"]], (n,))
    assert reward.dtype == jnp.float32 and terminated.dtype == jnp.bool_
    chex.assert_tree_all_finite((obs, reward))
    assert len(np.unique(np.asarray(info["lr"]))) == n
    chex.assert_trees_all_equal(vstep(keys, state, actions, params), out)  # same key, same result
    other = vstep(jax.random.split(jax.random.key(10), n), state, actions, params)
    assert not np.allclose(other[0], obs)
    # LRs, weight decay and reward weights are data: no recompilation
    vstep(keys, state, actions, params.replace(weight_decay=1e-3, reward_gamma=1.0, init_lr=1e-2))
    assert vstep._cache_size() == 1


@pytest.mark.parametrize("kwargs,match", [
    (dict(lr_min=0.0), "lr_min"), (dict(lr_max=-1.0), "lr_max"), (dict(lr_min=1.0, lr_max=0.5), "lr_min"),
    (dict(init_lr=2.0), "init_lr"), (dict(weight_decay=-0.1), "weight_decay"),
    (dict(reward_gamma=float("nan")), "reward_gamma"), (dict(reward_lambda=float("inf")), "reward_lambda"),
    (dict(reward_mode="accuracy"), "reward_mode"),
])
def test_params_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GlobalEnvParams(**kwargs)


def test_env_validation(env, monkeypatch):
    with pytest.raises(ValueError, match="batch_size"):
        GlobalLREnv(TASK.replace(batch_size=5000))
    monkeypatch.setattr(global_lr, "MAX_LAYERS", 2)
    with pytest.raises(ValueError, match="'mlp'.*MAX_LAYERS=2"):
        GlobalLREnv(TASK, trainer=env.trainer)
