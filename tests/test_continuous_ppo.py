"""Continuous (Gaussian-head) PPO: learns a target-matching env, chunked == fused, greedy policy = mean."""
import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs_for_tests import TargetMatchEnv
from ganno_jax.agents import IPPOConfig, make_train, make_train_pieces, policy_from
from ganno_jax.agents.networks import GaussianHead

CFG = IPPOConfig(num_envs=8, num_steps=16, seq_len=8, total_timesteps=8 * 16 * 40, lr=3e-3, update_epochs=4,
                 ent_coef=0.0, recurrent=False, actor_layers=(32,), actor_post_gru=32, critic_layers=(32,),
                 init_log_std=-0.5)


@pytest.fixture(scope="module")
def env():
    return TargetMatchEnv(num_agents=2)


@pytest.fixture(scope="module")
def out(env):
    return jax.jit(make_train(CFG, env, env.default_params))(jax.random.key(0))


def test_gaussian_head_shapes_and_log_prob():
    head = GaussianHead(action_dim=3, init_log_std=-1.0)
    x = jnp.ones((5, 4, 7))
    params = head.init(jax.random.key(0), x)
    pi = head.apply(params, x)
    chex.assert_shape(pi.sample(seed=jax.random.key(1)), (5, 4, 3))
    chex.assert_shape(pi.log_prob(jnp.zeros((5, 4, 3))), (5, 4))
    np.testing.assert_allclose(params["params"]["log_std"], -1.0)
    np.testing.assert_allclose(pi.stddev(), np.exp(-1.0), rtol=1e-6)


def test_continuous_ppo_learns_target_matching(out):
    reward = np.asarray(out.metrics["reward"])  # [U, T, E], one-step episodes
    first, last = reward[:3].mean(), reward[-5:].mean()
    print(f"\nTargetMatch mean reward: first updates {first:.3f}, last updates {last:.3f}")
    assert last > -0.05 and last > first + 0.1
    chex.assert_shape(out.runner_state.params["params"]["head"]["log_std"], (1,))


def test_greedy_policy_acts_with_the_mean(env, out):
    policy = policy_from(out)
    obs, _ = env.reset(jax.random.key(3), env.default_params)
    carry = policy.init(jax.random.key(0), env.num_agents)
    action, _ = jax.jit(policy.act)(jax.random.key(0), obs, carry, jnp.bool_(True))
    chex.assert_shape(action, (env.num_agents, 1))
    assert action.dtype == jnp.float32
    np.testing.assert_allclose(action[:, 0], obs[:, 0], atol=0.1)  # the target is the first feature
    sampled = dataclasses.replace(policy, greedy=False)
    a1, _ = jax.jit(sampled.act)(jax.random.key(1), obs, carry, jnp.bool_(True))
    assert not np.allclose(a1, action)


def test_chunked_update_equals_fused_train_continuous(env):
    cfg = dataclasses.replace(CFG, recurrent=True, total_timesteps=8 * 16 * 2, gru_size=8)  # GRU: the harder path
    fused = jax.jit(make_train(cfg, env, env.default_params))(jax.random.key(7))
    pieces = make_train_pieces(cfg, env, env.default_params)
    update = jax.jit(pieces.update, static_argnums=1)
    rs = jax.jit(pieces.init)(jax.random.key(7))
    rs, _ = update(rs, 1)
    rs, _ = update(rs, 1)
    for a, b in zip(jax.tree.leaves(fused.runner_state.params), jax.tree.leaves(rs.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
