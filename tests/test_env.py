"""LayerwiseLREnv: shapes under vmap, actions, rewards, determinism, divergence, masks, validation."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ganno_jax as gj
from ganno_jax.env import EnvParams, LayerwiseLREnv, features

TASK = gj.tasks.get("digits-mlp", tau=3, horizon=3, eval_batch=64)


@pytest.fixture(scope="module")
def env():
    return LayerwiseLREnv(TASK)


def test_vmapped_shapes_dtypes_and_spaces(env):
    n = 4
    params = env.default_params
    keys = jax.random.split(jax.random.key(0), n)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    chex.assert_shape(obs, (n, env.num_agents, features.OBS_DIM))
    assert env.observation_space(params).shape == (env.num_agents, features.OBS_DIM)
    assert env.action_space(params).n == 9
    actions = jax.vmap(lambda k: env.action_space(params).sample(k, (env.num_agents,)))(keys)
    step = jax.jit(jax.vmap(env.step, in_axes=(0, 0, 0, None)))
    obs, state, reward, terminated, truncated, info = step(keys, state, actions, params)
    chex.assert_shape(obs, (n, env.num_agents, features.OBS_DIM))
    chex.assert_shape(reward, (n, env.num_agents))
    chex.assert_shape([terminated, truncated], (n,))
    chex.assert_shape(info["lrs"], (n, env.num_agents))
    chex.assert_shape(info["final_obs"], (n, env.num_agents, features.OBS_DIM))
    assert obs.dtype == jnp.float32 and reward.dtype == jnp.float32 and terminated.dtype == jnp.bool_
    chex.assert_tree_all_finite((obs, reward))
    # LRs are data: stepping states with other LRs reuses the compiled program.
    step(keys, state.replace(lrs=state.lrs * 3.0), actions, params)
    assert step._cache_size() == 1


@pytest.mark.parametrize("action,expected", [
    (0, lambda lr: lr), (1, lambda lr: lr * 1.01), (2, lambda lr: lr * 1.10), (3, lambda lr: lr / 1.01),
    (4, lambda lr: lr / 1.10), (5, lambda lr: lr + 0.0005), (6, lambda lr: lr - 0.0005),
    (7, lambda lr: lr + 0.001), (8, lambda lr: lr - 0.001),
])
def test_each_action_changes_lr_as_defined(env, step_env, reset, action, expected):
    params = env.default_params.fixed_start(0.003, 0.01).replace(reward_mode="accuracy")
    _, state = reset(jax.random.key(1), params)
    _, new_state, *_ = step_env(jax.random.key(2), state, jnp.full(env.num_agents, action), params)
    np.testing.assert_allclose(new_state.lrs, np.full(env.num_agents, expected(0.003)), rtol=1e-6)
    np.testing.assert_array_equal(new_state.prev_action, action)


def test_lrs_clipped_to_documented_range():
    lrs = gj.env.apply_actions(jnp.array([0.0002, 0.0999]), jnp.array([6, 7]), 0.0, 0.1)
    np.testing.assert_array_equal(lrs, np.array([0.0, 0.1], np.float32))


def test_reset_samples_initial_conditions_in_ranges(env, reset):
    params = env.default_params
    states = jax.vmap(lambda k: reset(k, params)[1])(jax.random.split(jax.random.key(3), 64))
    assert bool(jnp.all((states.init_lr >= 1e-5) & (states.init_lr <= 1e-2)))
    assert bool(jnp.all((states.weight_decay >= 1e-5) & (states.weight_decay <= 1e-1)))
    assert float(jnp.std(jnp.log10(states.init_lr))) > 0.5  # spread over orders of magnitude
    np.testing.assert_array_equal(states.lrs, jnp.broadcast_to(states.init_lr[:, None], states.lrs.shape))
    fixed_params = params.fixed_start(0.0, 0.1)  # explicit values; the sampling ranges stay as they were
    assert (fixed_params.init_lr, fixed_params.init_wd, fixed_params.init_lr_max) == (0.0, 0.1, params.init_lr_max)
    _, fixed = reset(jax.random.key(4), fixed_params)
    assert float(fixed.init_lr) == 0.0 and float(fixed.weight_decay) == np.float32(0.1)


def test_determinism_under_fixed_key(env, step_env, reset):
    params = env.default_params
    _, state = reset(jax.random.key(5), params)
    action = jnp.arange(env.num_agents) % 9
    a = step_env(jax.random.key(6), state, action, params)
    b = step_env(jax.random.key(6), state, action, params)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    c = step_env(jax.random.key(7), state, action, params)
    assert not np.array_equal(a[1].inner.params["L00_dense"]["kernel"], c[1].inner.params["L00_dense"]["kernel"])


@pytest.mark.parametrize("mode", ["difference", "per_agent_difference"])
def test_difference_reward_is_zero_for_joint_noop(env, step_env, reset, mode):
    params = env.default_params.replace(reward_mode=mode)
    _, state = reset(jax.random.key(8), params)
    _, _, reward, *_ = step_env(jax.random.key(9), state, jnp.zeros(env.num_agents, jnp.int32), params)
    np.testing.assert_array_equal(reward, np.zeros(env.num_agents, np.float32))


def test_difference_reward_compares_against_noop_branch(env):
    """Acting minus no-op: equals val-acc(acting) - val-acc(noop) measured with the same randomness."""
    base = env.default_params.fixed_start(1e-3, 1e-4)
    _, state = env.reset(jax.random.key(10), base)
    action = jnp.full(env.num_agents, 8)  # -0.001: LR 1e-3 -> 0
    key = jax.random.key(11)
    _, _, diff, *_ = env.step_env(key, state, action, base.replace(reward_mode="difference"))
    _, _, acting, *_ = env.step_env(key, state, action, base.replace(reward_mode="accuracy"))
    _, _, noop, *_ = env.step_env(key, state, jnp.zeros_like(action), base.replace(reward_mode="accuracy"))
    np.testing.assert_allclose(diff, acting - noop, atol=1e-6)


def test_per_agent_difference_reverts_only_that_agent(env, step_env, reset):
    """Agent i's reward: val-acc(all act) - val-acc(all act but agent i, whose LR stays), same randomness."""
    base = env.default_params.fixed_start(1e-3, 1e-4)
    _, state = reset(jax.random.key(10), base)
    action = jnp.array([8, 8, 8])  # LRs 1e-3 -> 0: each reverted branch trains only its agent's layer
    key = jax.random.key(11)
    _, _, reward, *_ = step_env(key, state, action, base.replace(reward_mode="per_agent_difference"))
    accuracy = base.replace(reward_mode="accuracy")
    acting = float(step_env(key, state, action, accuracy)[2][0])
    reverted = [float(step_env(key, state, action.at[i].set(0), accuracy)[2][0]) for i in range(env.num_agents)]
    np.testing.assert_allclose(reward, acting - np.array(reverted), atol=1e-6)
    assert len(np.unique(np.asarray(reward))) == env.num_agents  # distinct per agent: a mixed-up branch would show


def test_episode_terminates_at_horizon_and_auto_resets(env):
    params = env.default_params.replace(reward_mode="accuracy")
    obs, state = env.reset(jax.random.key(12), params)
    step = jax.jit(env.step)
    for t in range(TASK.horizon):
        obs, state, reward, terminated, truncated, info = step(jax.random.key(20 + t), state, jnp.zeros(3, int), params)
        assert bool(terminated) == (t == TASK.horizon - 1) and not bool(truncated)
    assert int(state.step) == 0 and int(info["step"]) == TASK.horizon
    # the progress feature of the final observation reports the finished episode, the new obs a fresh one
    col = list(features.FEATURE_GROUPS).index("progress")
    assert float(info["final_obs"][0, col]) == 1.0 and float(obs[0, col]) == 0.0


def test_divergence_masks_update_and_keeps_everything_finite(env, step_env, reset):
    params = env.default_params.replace(reward_mode="difference", lr_max=1e30).fixed_start(1e30, 0.1)
    _, state = reset(jax.random.key(13), params)
    obs, new_state, reward, *_, info = step_env(jax.random.key(14), state, jnp.zeros(3, jnp.int32), params)
    assert bool(info["diverged"]) and bool(new_state.diverged)
    chex.assert_tree_all_finite((obs, reward, new_state.inner, info["train_loss"], info["val_loss"]))
    assert float(obs[0, list(features.FEATURE_GROUPS).index("nan_flag")]) == 1.0


def test_observation_masks_for_ablations(env, reset):
    groups = list(features.FEATURE_GROUPS)
    offsets = np.cumsum([0] + list(features.FEATURE_GROUPS.values()))
    for preset, kept in (("lr_only", "current_lr"), ("timestep_only", "progress")):
        params = env.default_params.replace(obs_mask=features.OBS_MASKS[preset])
        obs, _ = reset(jax.random.key(15), params)
        i = groups.index(kept)
        outside = np.delete(np.asarray(obs), np.arange(offsets[i], offsets[i + 1]), axis=1)
        assert np.all(outside == 0.0)
    obs, _ = reset(jax.random.key(15), env.default_params.replace(obs_mask=features.OBS_MASKS["lr_only"]))
    assert np.all(np.asarray(obs)[:, offsets[groups.index("current_lr")]] != 0.0)


def test_layer_features_identify_agents(env, reset):
    obs, _ = reset(jax.random.key(16), env.default_params)
    groups = list(features.FEATURE_GROUPS)
    offsets = np.cumsum([0] + list(features.FEATURE_GROUPS.values()))
    depth = np.asarray(obs)[:, offsets[groups.index("depth")]:offsets[groups.index("depth") + 1]]
    np.testing.assert_array_equal(depth, np.eye(3))  # first, intermediate, final


@pytest.mark.parametrize("kwargs,match", [
    (dict(reward_mode="bogus"), "reward_mode='bogus'.*accuracy, difference"),
    (dict(obs_mask=("current_lr", "colour")), "unknown groups.*colour"),
    (dict(init_lr_min=0.1, init_lr_max=0.01), "init_lr_min=0.1 must not exceed init_lr_max"),
    (dict(lr_max=-1.0), "lr_max=-1.0 must be a finite number >= 0"),
    (dict(init_lr_min=0.0), "init_lr_min=0.0 must be a finite number > 0 .*init_lr"),
    (dict(init_wd=-1.0), "init_wd=-1.0 must be a finite number >= 0"),
])
def test_env_params_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EnvParams(**kwargs)


def test_cnn_env_runs_and_tracks_test_metrics():
    env = LayerwiseLREnv(gj.tasks.get("digits-cnn2", tau=2, horizon=2, eval_batch=32, width=4))
    params = env.default_params.replace(reward_mode="accuracy", track_test=True)
    obs, state = env.reset(jax.random.key(0), params)
    obs, state, reward, _, _, info = jax.jit(env.step)(jax.random.key(1), state, jnp.ones(2, jnp.int32), params)
    assert [layer.kind for layer in env.layers] == ["conv", "linear"] and obs.shape == (2, features.OBS_DIM)
    assert 0.0 <= float(info["test_acc"]) <= 1.0 and np.isfinite(float(info["test_loss"]))
    np.testing.assert_allclose(reward, info["val_acc"])
