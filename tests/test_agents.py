"""IPPO trainer, networks and controllers (ganno_jax.agents) on small test envs.

Compile time dominates: every compiled training function lives in a module-scoped fixture and is
reused by several tests. Run with ``-s`` to see the CartPole return curves.
"""
import dataclasses
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs_for_tests import CartPole, CorruptedEnv, MatchIdEnv, OneStepEnv
from ganno_jax.agents import (ConstantPolicy, IPPOConfig, RandomPolicy, ScannedGRU, make_train,
                              make_train_pieces, policy_from)
from ganno_jax.agents.ippo import normalize_obs
from ganno_jax.agents.networks import ActorCritic, make_network

# 100k steps, not 50k: at 50k a quarter of the seeds are still on the ~150-250 plateau where the cart drifts
# off the track (docs/decisions.md, "Robust CartPole PPO"); at 100k the median seed holds 500.
# Both tuned with tanh (the purejaxrl-style activation, not the paper's relu default).
CARTPOLE_CFG = IPPOConfig(num_envs=8, num_steps=64, total_timesteps=100_000, lr=1e-3, update_epochs=4, anneal_lr=True,
                          activation="tanh")
MATCH_CFG = IPPOConfig(num_envs=4, num_steps=16, total_timesteps=2_048, lr=3e-3, update_epochs=4, activation="tanh")
# Learning tests train NUM_SEEDS seeds in one vmapped program and assert a statistic over seeds with a
# margin measured under master keys 0..7: one seed's float trajectory differs between CPUs.
NUM_SEEDS = 8


def train_seeds(cfg: IPPOConfig, env, master_key: jax.Array, num_seeds: int = NUM_SEEDS):
    """``jit(vmap(train))`` over ``num_seeds`` keys split from ``master_key``: every leaf of the
    ``TrainOutput`` gains a leading seed axis ``[S, ...]``."""
    train = make_train(cfg, env, env.default_params)
    return jax.jit(jax.vmap(train))(jax.random.split(master_key, num_seeds))


def episode_returns_per_update(reward: np.ndarray, done: np.ndarray) -> list[np.ndarray]:
    """Returns of the episodes finished in each update of one run, from ``reward``/``done`` ``[U, T, E]``."""
    num_updates, num_steps, num_envs = reward.shape
    running, per_update = np.zeros(num_envs), [[] for _ in range(num_updates)]
    for i, (r, d) in enumerate(zip(reward.reshape(-1, num_envs), done.reshape(-1, num_envs))):
        running += r
        per_update[i // num_steps].extend(running[d])
        running[d] = 0.0
    return [np.asarray(x) for x in per_update]


def cartpole_returns(metrics) -> tuple[np.ndarray, np.ndarray]:
    """From seed-batched metrics (``reward``/``done`` ``[S, U, T, E]``): each seed's mean return of the
    episodes finished in the last 20% of updates ``[S]`` (NaN if none finished) and the median over
    seeds of each update's mean episode return ``[U]`` (NaN where no seed finished an episode)."""
    last, curves = [], []
    for reward, done in zip(np.asarray(metrics["reward"]), np.asarray(metrics["done"])):
        per_update = episode_returns_per_update(reward, done)
        finished = np.concatenate(per_update[-len(per_update) // 5:])
        last.append(finished.mean() if finished.size else np.nan)
        curves.append([r.mean() if r.size else np.nan for r in per_update])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN updates stay NaN
        return np.asarray(last), np.nanmedian(np.asarray(curves), axis=0)


def leaves_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def all_finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(tree))


@pytest.fixture(scope="module")
def cartpole():
    return CartPole()


@pytest.fixture(scope="module")
def match_env():
    return MatchIdEnv(num_agents=3, horizon=8)


@pytest.fixture(scope="module")
def match_train(match_env):
    return jax.jit(make_train(MATCH_CFG, match_env, match_env.default_params))


@pytest.fixture(scope="module")
def match_out(match_train):
    return match_train(jax.random.key(0))


# ---------------------------------------------------------------- learning


@pytest.fixture(scope="module")
def match_outs(match_env):
    return train_seeds(MATCH_CFG, match_env, jax.random.key(0))


def match_accuracy(outs) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed mean accuracy over the first 4 and the last 8 updates, each ``[S]``."""
    accuracy = np.asarray(outs.metrics["accuracy"])  # [S, U, T, E]
    return accuracy[:, :4].mean(axis=(1, 2, 3)), accuracy[:, -8:].mean(axis=(1, 2, 3))


@pytest.mark.parametrize("recurrent", [True, False], ids=["gru", "mlp"])
def test_ppo_solves_cartpole(cartpole, recurrent):
    cfg = dataclasses.replace(CARTPOLE_CFG, recurrent=recurrent)
    out = train_seeds(cfg, cartpole, jax.random.key(0))
    last, curve = cartpole_returns(out.metrics)
    print(f"\nCartPole {'GRU' if recurrent else 'MLP'}, median over {NUM_SEEDS} seeds "
          "of the mean episode return per update:")
    print(" ".join("-" if np.isnan(c) else f"{c:.0f}" for c in curve))
    print(f"last 20% of updates, mean return per seed: {np.round(last)}")
    # Master keys 0..7, 8 seeds each (64 seeds per network): medians of 8 were 456-500 (GRU) and 471-500
    # (MLP); single seeds: GRU median 492, min 255, 3/64 below 300; MLP median 500, min 187, 3/64 below
    # 250. A median below 250 needs 4 of 8 seeds below it: about 3e-4 at 3/64 per seed.
    assert np.median(last) >= 250
    assert all_finite(out.runner_state.params)
    chex.assert_shape(out.metrics["loss"]["total"], (NUM_SEEDS, cfg.num_updates))
    chex.assert_shape(out.metrics["length"], (NUM_SEEDS, cfg.num_updates, cfg.num_steps, cfg.num_envs))


def test_multi_agent_folding_learns_per_agent_targets(match_outs):
    first, last = match_accuracy(match_outs)
    print(f"\nMatchIdEnv(3 agents) accuracy per seed: first updates {np.round(first, 2)}, last {np.round(last, 2)}")
    # Master keys 0..7 (64 seeds, minibatches of whole-env sequences): medians of 8 were 0.47-0.50 first
    # (seed max 0.55) and 0.92-0.97 last (seed min 0.87, none below 0.85).
    assert np.median(first) < 0.6
    assert np.median(last) >= 0.85
    reward = np.asarray(match_outs.metrics["reward"])
    chex.assert_shape(reward, (NUM_SEEDS, MATCH_CFG.num_updates, MATCH_CFG.num_steps, MATCH_CFG.num_envs))


# ---------------------------------------------------------------- determinism and structure


def test_chunked_update_equals_fused_train(match_env, match_out):
    pieces = make_train_pieces(MATCH_CFG, match_env, match_env.default_params)
    half = MATCH_CFG.num_updates // 2
    assert 2 * half == MATCH_CFG.num_updates
    update = jax.jit(pieces.update, static_argnums=1)
    state = jax.jit(pieces.init)(jax.random.key(0))
    state, first = update(state, half)
    state, second = update(state, half)
    leaves_equal(state.params, match_out.runner_state.params)
    leaves_equal((state.obs_stats, state.ret_stats),
                 (match_out.runner_state.obs_stats, match_out.runner_state.ret_stats))
    np.testing.assert_array_equal(np.concatenate([first["reward"], second["reward"]]), match_out.metrics["reward"])


def test_vmap_over_seeds(match_env, match_train, match_out):
    again = match_train(jax.random.key(0))  # same key, same program: bit-identical
    leaves_equal(again.runner_state.params, match_out.runner_state.params)

    # Training is chaotic over many updates (float reassociation under vmap grows), so the batched
    # program is compared with single runs over two updates.
    cfg = dataclasses.replace(MATCH_CFG, total_timesteps=2 * MATCH_CFG.num_envs * MATCH_CFG.num_steps)
    train = make_train(cfg, match_env, match_env.default_params)
    keys = jax.random.split(jax.random.key(42), 2)
    outs = jax.jit(jax.vmap(train))(keys)
    kernel = np.asarray(outs.runner_state.params["params"]["head"]["logits"]["kernel"])
    assert not np.allclose(kernel[0], kernel[1])
    for i in range(2):
        single = jax.jit(train)(keys[i])
        for x, y in zip(jax.tree.leaves(single.runner_state.params), jax.tree.leaves(outs.runner_state.params)):
            np.testing.assert_allclose(np.asarray(y[i]), np.asarray(x), rtol=1e-3, atol=1e-5)
        policy = policy_from(outs, seed_index=i)
        leaves_equal(policy.params, jax.tree.map(lambda x: x[i], outs.runner_state.params))


def test_scanned_gru_resets_hidden_state_on_done():
    gru = ScannedGRU(hidden_size=5)
    key_x, key_h, key_p = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(key_x, (10, 3, 4))
    carry = jax.random.normal(key_h, (3, 5))
    resets = jnp.zeros((10, 3), bool).at[4, 1].set(True)
    params = gru.init(key_p, carry, (x, resets))
    _, out = gru.apply(params, carry, (x, resets))
    _, fresh = gru.apply(params, jnp.zeros((3, 5)), (x[4:], jnp.zeros((6, 3), bool)))
    np.testing.assert_allclose(out[4:, 1], fresh[:, 1], rtol=1e-6, atol=1e-6)
    _, no_reset = gru.apply(params, carry, (x, jnp.zeros((10, 3), bool)))
    np.testing.assert_array_equal(out[:, 0], no_reset[:, 0])  # other actors untouched
    assert not np.allclose(out[4:, 1], no_reset[4:, 1])


@pytest.mark.parametrize("truncate", [True, False], ids=["truncated", "terminated"])
def test_value_targets_bootstrap_truncated_steps_only(truncate):
    env = OneStepEnv(truncate)
    cfg = IPPOConfig(num_envs=2, num_steps=8, total_timesteps=16, update_epochs=1, num_minibatches=1, recurrent=False)
    pieces = make_train_pieces(cfg, env, env.default_params)
    rs = jax.jit(pieces.init)(jax.random.key(0))
    obs = normalize_obs(cfg, rs.obs_stats, jnp.ones((1, 2)))
    value = float(make_network(cfg, env.action_space(None)).apply(rs.params, obs, method=ActorCritic.value)[0])
    assert abs(cfg.gamma * value) > 1e-2  # the two cases differ
    rs, _ = jax.jit(pieces.update, static_argnums=1)(rs, 1)
    # ret_stats saw only this update's 16 value targets (its prior count is 1e-4), all equal.
    np.testing.assert_allclose(rs.ret_stats.mean, 1.0 + cfg.gamma * value if truncate else 1.0, rtol=1e-4)


# ---------------------------------------------------------------- robustness


def test_nan_and_inf_from_env_stay_out_of_training(match_env):
    cfg = IPPOConfig(num_envs=2, num_steps=16, total_timesteps=256, update_epochs=1, num_minibatches=2)
    env = CorruptedEnv(match_env, rate=0.2)
    out = jax.jit(make_train(cfg, env, env.default_params))(jax.random.key(3))
    assert not np.all(np.isfinite(out.metrics["corrupted_reward"]))  # corruption did reach the trainer
    rs = out.runner_state
    assert all_finite((rs.params, rs.opt_state, rs.obs_stats, rs.ret_stats, rs.hidden))
    assert all_finite(out.metrics["loss"])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(num_steps=12), "num_steps"),
        (dict(num_envs=0), "num_envs"),
        (dict(gamma=0.0), "gamma"),
        (dict(gamma=1.5), "gamma"),
        (dict(gae_lambda=-0.1), "gae_lambda"),
        (dict(lr=-1e-3), "lr"),
        (dict(clip_eps=0.0), "clip_eps"),
        (dict(actor_layers=(128, 0)), "actor_layers"),
        (dict(activation="gelu"), "activation"),
        (dict(total_timesteps=10), "total_timesteps"),
        (dict(num_envs=1, num_steps=8, num_minibatches=4), "num_minibatches"),  # 1 sequence for 4 minibatches
    ],
)
def test_config_validation_names_field(kwargs, field):
    with pytest.raises(ValueError, match=rf"IPPOConfig\.{field}="):
        IPPOConfig(**kwargs)


def test_config_validation_against_env(match_env):
    class NoAgents:  # an env without agents has nothing to train
        num_agents = 0

    with pytest.raises(ValueError, match=r"IPPOConfig\.num_agents=0"):
        make_train(MATCH_CFG, NoAgents(), match_env.default_params)


# ---------------------------------------------------------------- controllers


def test_controllers_share_one_protocol(match_env, match_outs):
    params = match_env.default_params
    controllers = {
        "learned": policy_from(match_outs, seed_index=0),
        "random": RandomPolicy(num_actions=3),
        "constant": ConstantPolicy(),
    }

    @jax.jit
    def episode_accuracy(controller, key):
        k_reset, k_init, k_run = jax.random.split(key, 3)
        obs, state = match_env.reset(k_reset, params)
        carry = controller.init(k_init, match_env.num_agents)

        def step(c, k):
            obs, state, carry, done = c
            k_act, k_env = jax.random.split(k)
            action, carry = controller.act(k_act, obs, carry, done)
            chex.assert_shape(action, (match_env.num_agents,))
            chex.assert_type(action, jnp.int32)
            obs, state, reward, term, trunc, _ = match_env.step(k_env, state, action, params)
            return (obs, state, carry, term | trunc), (reward.mean(), action)

        _, (reward, actions) = jax.lax.scan(step, (obs, state, carry, jnp.array(True)), jax.random.split(k_run, 32))
        return reward.mean(), actions

    acc = {name: episode_accuracy(c, jax.random.key(7)) for name, c in controllers.items()}
    learned = [episode_accuracy(policy_from(match_outs, seed_index=i), jax.random.key(7))[0] for i in range(NUM_SEEDS)]
    # Master keys 0..7 (64 seeds): medians of 8 were all 1.00, seed min 0.91 (3/64 below 0.99).
    assert np.median(learned) >= 0.9
    assert 0.1 < acc["random"][0] < 0.6
    np.testing.assert_array_equal(acc["constant"][1], 0)
    batched = jax.vmap(episode_accuracy, in_axes=(None, 0))(controllers["learned"],
                                                            jax.random.split(jax.random.key(1), 3))
    assert batched[0].shape == (3,)
