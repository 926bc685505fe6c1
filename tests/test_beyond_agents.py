"""Beyond the paper, agents (issue 14 items 2-3): the centralised (MAPPO) critic and per-agent credit.

The critic's contract: one parameter set for any number of agents (depths 2 and 5 of the real GANNO env),
padded agents masked out of the pools, every agent's value depending on its env copy's other agents, and
training through the rollout and whole-env minibatches (feed-forward and recurrent actors).
``per_agent_difference`` trains through ``ganno train`` and leaves the acting branch (hence every
accuracy the evaluation harness reports) as the other reward modes do.
"""
import dataclasses
import json
import os

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ganno_jax as gj
from envs_for_tests import MatchIdEnv
from ganno_jax import cli, evaluate
from ganno_jax.agents import IPPOConfig, make_train
from ganno_jax.agents.networks import ActorCritic, make_network
from ganno_jax.env.features import OBS_DIM
from ganno_jax.evaluation import controllers

SMALL = dict(actor_layers=(16,), gru_size=8, actor_post_gru=8, critic_layers=(16, 16))
CENTRAL_CFG = IPPOConfig(num_envs=4, num_steps=16, total_timesteps=2_048, lr=3e-3, update_epochs=4,
                         activation="tanh", critic="centralised", recurrent=False)
NUM_SEEDS = 8


def tiny_task(name: str):
    return gj.tasks.get(name, tau=2, horizon=3, batch_size=16, width=2, eval_batch=64)


@pytest.fixture(scope="module")
def depth_obs():
    """Real GANNO observations of 3 env copies each of digits-cnn2 (2 agents) and digits-cnn5 (5 agents):
    ``{depth: [3, depth, OBS_DIM]}``."""
    out = {}
    for name in ("digits-cnn2", "digits-cnn5"):
        env = gj.env.LayerwiseLREnv(tiny_task(name))
        reset = jax.jit(jax.vmap(env.reset, in_axes=(0, None)))
        obs, _ = reset(jax.random.split(jax.random.key(0), 3), env.default_params)
        out[env.num_agents] = obs
    assert sorted(out) == [2, 5]
    return out


@pytest.fixture(scope="module")
def central():
    """A centralised actor-critic and one parameter set (initialised on a single agent)."""
    network = make_network(IPPOConfig(critic="centralised", **SMALL), 9)
    params = network.init(jax.random.key(1), jnp.zeros((1, 8)), jnp.zeros((1, 1, OBS_DIM)), jnp.zeros((1, 1), bool),
                          num_agents=1)
    return network, params


def test_critic_field_is_validated():
    assert IPPOConfig().critic == "independent"
    with pytest.raises(ValueError, match=r"IPPOConfig.critic='mappo' .*allowed: independent, centralised"):
        IPPOConfig(critic="mappo")


def test_one_critic_for_two_depths_and_padded_agents_change_nothing(central, depth_obs):
    network, params = central
    critic = params["params"]["central_critic"]
    chex.assert_shape(critic["embed"]["Dense_0"]["kernel"], (OBS_DIM, 16))  # no parameter sized by the depth
    chex.assert_shape(critic["torso"]["Dense_0"]["kernel"], (3 * 16, 16))
    values = {a: network.apply(params, obs, method=ActorCritic.value) for a, obs in depth_obs.items()}
    chex.assert_shape(values[2], (3, 2))
    chex.assert_shape(values[5], (3, 5))
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in values.values())

    # both depths in one batch: cnn2 padded to 5 agents with garbage rows, masked out
    garbage = 1e3 * jax.random.normal(jax.random.key(2), (3, 3, OBS_DIM))
    batch = jnp.concatenate([jnp.concatenate([depth_obs[2], garbage], axis=1), depth_obs[5]])  # [6, 5, d]
    mask = jnp.concatenate([jnp.tile(jnp.arange(5) < 2, (3, 1)), jnp.ones((3, 5), bool)])
    mixed = network.apply(params, batch, mask, method=ActorCritic.value)
    chex.assert_shape(mixed, (6, 5))
    np.testing.assert_allclose(mixed[:3, :2], values[2], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(mixed[3:], values[5], rtol=1e-5, atol=1e-6)
    # gradients stay finite through the masked pools, even for an env copy with no real agent
    empty = mask.at[0].set(False)
    grads = jax.grad(lambda p: jnp.sum(network.apply(p, batch, empty, method=ActorCritic.value) * empty))(params)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    # an all-True mask is no mask
    np.testing.assert_allclose(network.apply(params, depth_obs[5], jnp.ones((3, 5), bool), method=ActorCritic.value),
                               values[5], rtol=1e-6, atol=1e-7)


def test_every_agent_sees_its_env_copy_and_only_it(central, depth_obs):
    network, params = central
    obs = depth_obs[5]
    moved = obs.at[0, 4].add(1.0)  # change the last agent of env copy 0 only
    before, after = (network.apply(params, x, method=ActorCritic.value) for x in (obs, moved))
    assert np.all(np.abs(np.asarray(after[0, :4] - before[0, :4])) > 0)  # the other agents' values move
    np.testing.assert_array_equal(after[1:], before[1:])  # other env copies do not
    # the folded actor axis [E * A] regroups into env copies
    folded = network.apply(params, obs.reshape(15, OBS_DIM), 5, method=ActorCritic.actor_values)
    np.testing.assert_allclose(folded, before.reshape(15), rtol=1e-6)
    with pytest.raises(ValueError, match="num_agents=4 must divide the actor axis"):
        network.apply(params, obs.reshape(15, OBS_DIM), 4, method=ActorCritic.actor_values)


def test_independent_critic_sees_only_its_own_observation(depth_obs):
    network = make_network(IPPOConfig(**SMALL), 9)
    params = network.init(jax.random.key(1), jnp.zeros((1, 8)), jnp.zeros((1, 1, OBS_DIM)), jnp.zeros((1, 1), bool))
    assert "central_critic" not in params["params"] and "critic_torso" in params["params"]
    obs = depth_obs[5]
    before, after = (network.apply(params, x, method=ActorCritic.value) for x in (obs, obs.at[0, 4].add(1.0)))
    np.testing.assert_array_equal(after[0, :4], before[0, :4])


def test_centralised_critic_trains_on_match_env():
    env = MatchIdEnv(num_agents=3, horizon=8)
    outs = jax.jit(jax.vmap(make_train(CENTRAL_CFG, env, ())))(jax.random.split(jax.random.key(0), NUM_SEEDS))
    accuracy = np.asarray(outs.metrics["accuracy"])  # [S, U, T, E]
    first, last = accuracy[:, :4].mean(axis=(1, 2, 3)), accuracy[:, -8:].mean(axis=(1, 2, 3))
    value_loss = np.asarray(outs.metrics["loss"]["value"])  # [S, U]
    ratio = value_loss[:, -8:].mean(axis=1) / value_loss[:, :4].mean(axis=1)
    print(f"\ncentralised critic, MatchIdEnv(3): accuracy first {np.round(first, 2)}, last {np.round(last, 2)}, "
          f"value loss last/first {np.round(ratio, 3)}")
    # Master keys 0..7 (64 seeds): first 0.45-0.56, last 0.94-1.00, value-loss ratio 0.004-0.011 per seed.
    assert np.median(first) < 0.6
    assert np.median(last) >= 0.9
    assert np.median(ratio) < 0.05


def test_reward_modes_share_the_acting_branch():
    """Same key and actions: the observation and every measured accuracy are the acting branch's in all
    reward modes (the harness evaluates with ``accuracy``); only the reward differs."""
    env = gj.env.LayerwiseLREnv(tiny_task("digits-mlp"))
    action = jnp.array([2, 4, 7], jnp.int32)
    _, state = jax.jit(env.reset)(jax.random.key(0), env.default_params)  # the reward mode plays no part here
    results = {}
    for mode in ("accuracy", "difference", "per_agent_difference"):
        params = dataclasses.replace(env.default_params, reward_mode=mode, track_test=True)
        results[mode] = jax.jit(env.step_env)(jax.random.key(1), state, action, params)
    acc_obs, _, acc_reward, _, _, acc_info = results["accuracy"]
    for mode in ("difference", "per_agent_difference"):
        obs, _, reward, _, _, info = results[mode]
        np.testing.assert_allclose(obs, acc_obs, rtol=1e-5, atol=1e-6)
        for k in ("val_acc", "train_acc", "test_acc"):
            np.testing.assert_allclose(info[k], acc_info[k], atol=1e-6)
        chex.assert_shape(reward, (3,))
    np.testing.assert_allclose(acc_reward, acc_info["val_acc"])
    assert not np.allclose(results["per_agent_difference"][2], acc_reward)


def test_cli_trains_recurrent_centralised_critic_with_per_agent_difference_and_evaluates(tmp_path, capsys):
    """``ganno train --critic centralised --reward-mode per_agent_difference`` (recurrent actor, the default)."""
    run = str(tmp_path / "run")
    task_flags = ["--task", "digits-mlp", "--tau", "2", "--horizon", "3", "--batch-size", "16", "--width", "2"]
    small = ["--num-envs", "2", "--num-steps", "8", "--total-timesteps", "16", "--update-epochs", "1",
             "--num-minibatches", "1", "--actor-layers", "8", "--gru-size", "4", "--actor-post-gru", "4",
             "--critic-layers", "8,8"]
    assert cli.main(["train", *task_flags, *small, "--critic", "centralised", "--reward-mode", "per_agent_difference",
                     "--out", run]) == 0
    conf = json.load(open(os.path.join(run, "config.json")))
    assert conf["ippo"]["critic"] == "centralised" and conf["env_params"]["reward_mode"] == "per_agent_difference"
    policy = controllers.from_run(run)
    assert "central_critic" in policy.policy.params["params"]
    res = evaluate.run(policy, tiny_task("digits-mlp"), init_lrs=(1e-3,), seeds=2)
    assert res.final_acc.shape == (1, 2) and np.all(np.isfinite(res.final_acc))
    assert cli.main(["train", *task_flags, *small, "--critic", "mappo", "--out", str(tmp_path / "bad")]) == 2
    assert "critic='mappo'" in capsys.readouterr().err
