"""Joint LR + weight-decay control (issue 14 item 5): WD actions, the env with ``control_wd``, per-layer
weight decays in the inner trainer, the factorised head, training, warm start and evaluation across WDs."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ganno_jax as gj
from envs_for_tests import FactorMatchEnv
from ganno_jax import cli
from ganno_jax.agents import IPPOConfig, make_train
from ganno_jax.agents import warm_start as ws
from ganno_jax.agents.networks import FactorisedCategoricalHead, action_space_of, init_hidden, make_network
from ganno_jax.env import features
from ganno_jax.env.actions import NUM_WD_ACTIONS, apply_wd_actions, split_action, with_wd_noop
from ganno_jax.evaluation import controllers

TASK = gj.tasks.get("digits-mlp", tau=2, horizon=3, batch_size=16, width=2, eval_batch=64)
WD_PARAMS = gj.env.EnvParams(data=gj.data.load_dataset(TASK.dataset), control_wd=True)
NUM_SEEDS = 8


@pytest.fixture(scope="module")
def env():
    return gj.env.LayerwiseLREnv(TASK)


@pytest.fixture(scope="module")
def step(env):
    return jax.jit(env.step_env)


def test_wd_actions_scale_and_clip():
    wds = jnp.full(5, 0.01)
    np.testing.assert_allclose(apply_wd_actions(wds, jnp.arange(5), 0.0, 1.0),
                               [0.01, 0.0125, 0.008, 0.02, 0.005], rtol=1e-6)
    np.testing.assert_allclose(apply_wd_actions(jnp.array([0.8, 1e-6, 0.0]), jnp.array([3, 4, 3]), 1e-5, 1.0),
                               [1.0, 1e-5, 1e-5], rtol=1e-6)
    with pytest.raises(ValueError, match=r"shape \[num_agents, 2\]"):
        split_action(jnp.zeros(3, jnp.int32), control_wd=True)
    np.testing.assert_array_equal(with_wd_noop(jnp.array([4, 2]), True), [[4, 0], [2, 0]])
    space = gj.env.MultiDiscrete((9, NUM_WD_ACTIONS))
    samples = space.sample(jax.random.key(0), (1000,))
    assert samples.shape == (1000, 2) and bool(space.contains(samples))
    assert int(samples[:, 1].max()) == NUM_WD_ACTIONS - 1 and not bool(space.contains(jnp.array([0, 5])))


@pytest.mark.parametrize("kwargs, match", [({"wd_min": -1.0}, "wd_min"), ({"wd_min": 0.5, "wd_max": 0.1}, "wd_min"),
                                           ({"control_wd": 1}, "control_wd")])
def test_env_params_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        gj.env.EnvParams(**kwargs)


def test_spaces_and_observations_extend_the_papers(env):
    assert env.action_space(WD_PARAMS) == gj.env.MultiDiscrete((9, NUM_WD_ACTIONS))
    assert env.observation_space(WD_PARAMS).shape == (env.num_agents, gj.env.OBS_DIM + 1 + NUM_WD_ACTIONS)
    assert env.action_space(env.default_params).n == 9
    key = jax.random.key(3)
    params = WD_PARAMS.fixed_start(1e-3, 0.01)
    obs, state = env.reset(key, params)
    plain_obs, plain_state = env.reset(key, env.default_params.fixed_start(1e-3, 0.01))
    assert plain_state.wds is None and plain_obs.shape[-1] == gj.env.OBS_DIM
    np.testing.assert_array_equal(obs[:, :gj.env.OBS_DIM], plain_obs)  # the paper's features first, unchanged
    np.testing.assert_allclose(state.wds, 0.01)
    np.testing.assert_allclose(obs[:, gj.env.OBS_DIM], np.log10(0.01 + 1e-8), rtol=1e-6)
    np.testing.assert_array_equal(obs[:, gj.env.OBS_DIM + 1:], jax.nn.one_hot(jnp.zeros(env.num_agents, jnp.int32), 5))
    with pytest.raises(ValueError, match="reset with the same params"):
        env.get_obs(plain_state, params)


def test_actions_set_each_layers_weight_decay(env, step):
    params = WD_PARAMS.replace(reward_mode="accuracy").fixed_start(1e-3, 0.01)
    _, state = env.reset(jax.random.key(0), params)
    action = jnp.stack([jnp.array([2, 0, 4]), jnp.array([3, 4, 1])], 1)
    obs, new, _, _, _, info = step(jax.random.key(1), state, action, params)
    np.testing.assert_allclose(new.wds, [0.02, 0.005, 0.0125], rtol=1e-6)
    np.testing.assert_allclose(new.lrs, [1.1e-3, 1e-3, 1e-3 / 1.1], rtol=1e-6)
    np.testing.assert_allclose(info["wds"], new.wds)
    np.testing.assert_array_equal(new.prev_wd_action, [3, 4, 1])
    np.testing.assert_array_equal(obs[:, -NUM_WD_ACTIONS:], jax.nn.one_hot(jnp.array([3, 4, 1]), NUM_WD_ACTIONS))
    plain = env.default_params.replace(reward_mode="accuracy").fixed_start(1e-3, 0.01)
    _, plain_state = env.reset(jax.random.key(0), plain)
    *_, plain_info = step(jax.random.key(1), plain_state, jnp.array([2, 0, 4]), plain)
    np.testing.assert_allclose(plain_info["wds"], 0.01)


def test_difference_reward_is_against_keeping_lr_and_wd(env, step):
    start = WD_PARAMS.fixed_start(3e-3, 0.1)
    _, state = env.reset(jax.random.key(0), start)
    noop = jnp.zeros((env.num_agents, 2), jnp.int32)
    _, _, reward, *_ = step(jax.random.key(1), state, noop, start)
    np.testing.assert_array_equal(reward, 0.0)
    action = jnp.stack([jnp.zeros(env.num_agents, jnp.int32), jnp.full(env.num_agents, 3)], 1)
    acc = start.replace(reward_mode="accuracy")
    acting = step(jax.random.key(1), state, action, acc)[2]
    kept = step(jax.random.key(1), state, noop, acc)[2]
    difference = step(jax.random.key(1), state, action, start)[2]
    np.testing.assert_allclose(difference, acting - kept, atol=1e-6)


def test_per_layer_weight_decay_reaches_only_its_layer():
    """One decoupled step: layer 0's new weights depend only on its own decay (lr * wd * theta)."""
    trainer = gj.env.InnerTrainer(TASK)
    state = trainer.init(jax.random.key(0))
    lrs = jnp.full((1, trainer.num_agents), 0.05)
    key, data = jax.random.key(1), gj.data.load_dataset(TASK.dataset)
    base, _ = trainer.train(data, state, lrs, 0.01, key)
    same, _ = trainer.train(data, state, lrs, jnp.full(trainer.num_agents, 0.01), key)
    layer1, _ = trainer.train(data, state, lrs, jnp.array([0.01, 0.5, 0.01]), key)
    jax.tree.map(np.testing.assert_array_equal, base.params, same.params)
    names = list(base.params)
    np.testing.assert_array_equal(base.params[names[0]]["kernel"], layer1.params[names[0]]["kernel"])
    delta = base.params[names[1]]["kernel"] - layer1.params[names[1]]["kernel"]
    np.testing.assert_allclose(delta, 0.05 * 0.49 * state.params[names[1]]["kernel"], rtol=1e-4, atol=1e-7)


def test_rules_with_one_global_decay_refuse_per_layer_control():
    from ganno_jax.baselines.optimizers import make_update_rule

    env = gj.env.LayerwiseLREnv(TASK, trainer=gj.env.InnerTrainer(TASK, rule=make_update_rule("lamb")))
    _, state = env.reset(jax.random.key(0), WD_PARAMS)
    with pytest.raises(ValueError, match="one global weight decay"):
        env.step_env(jax.random.key(1), state, jnp.zeros((env.num_agents, 2), jnp.int32), WD_PARAMS)


def test_single_agent_broadcasts_its_pair(env):
    single = gj.env.SingleAgentLREnv(env)
    params = WD_PARAMS.replace(reward_mode="accuracy").fixed_start(1e-3, 0.01)
    obs, state = single.reset(jax.random.key(0), params)
    assert obs.shape == (1, single.observation_space(params).shape[-1]) == (1, features.obs_dim(True))
    _, new, *_ = single.step_env(jax.random.key(1), state, jnp.array([[2, 3]]), params)
    np.testing.assert_allclose(new.wds, 0.02)
    np.testing.assert_allclose(new.lrs, 1.1e-3, rtol=1e-6)


def test_factorised_head_sums_its_factors():
    head = FactorisedCategoricalHead((9, 5))
    x = jax.random.normal(jax.random.key(0), (4, 6))
    params = head.init(jax.random.key(1), x)
    params = jax.tree.map(lambda p: p + jax.random.normal(jax.random.key(2), p.shape), params)
    pi = head.apply(params, x)
    logits = [x @ params["params"][f"factor_{i}"]["kernel"] + params["params"][f"factor_{i}"]["bias"] for i in (0, 1)]
    action = jnp.array([[8, 4], [0, 0], [3, 2], [5, 1]])
    expected = sum(jax.nn.log_softmax(lg)[jnp.arange(4), action[:, i]] for i, lg in enumerate(logits))
    np.testing.assert_allclose(pi.log_prob(action), expected, rtol=1e-5)
    entropy = sum(-(jax.nn.softmax(lg) * jax.nn.log_softmax(lg)).sum(-1) for lg in logits)
    np.testing.assert_allclose(pi.entropy(), entropy, rtol=1e-5)
    np.testing.assert_array_equal(pi.mode(), jnp.stack([lg.argmax(-1) for lg in logits], 1))
    samples = pi.sample(seed=jax.random.key(3), sample_shape=(2000,))
    assert samples.shape == (2000, 4, 2) and int(samples[..., 1].max()) == 4 and int(samples[..., 0].max()) == 8
    network = make_network(IPPOConfig(), gj.env.MultiDiscrete((9, 5)))
    full = network.init(jax.random.key(0), init_hidden(IPPOConfig(), 1), jnp.zeros((1, 1, 7)), jnp.zeros((1, 1), bool))
    assert action_space_of(full) == gj.env.MultiDiscrete((9, 5))


def test_factorised_ppo_learns_every_factor():
    cfg = IPPOConfig(num_envs=4, num_steps=16, total_timesteps=2_048, lr=3e-3, update_epochs=4, activation="tanh",
                     recurrent=False, actor_layers=(32,), critic_layers=(32,))
    env = FactorMatchEnv(num_agents=2, nvec=(3, 2), horizon=8)
    outs = jax.jit(jax.vmap(make_train(cfg, env, ())))(jax.random.split(jax.random.key(0), NUM_SEEDS))
    accuracy = np.asarray(outs.metrics["accuracy"])  # [S, U, T, E]
    first, last = accuracy[:, :4].mean(axis=(1, 2, 3)), accuracy[:, -8:].mean(axis=(1, 2, 3))
    print(f"\nfactorised PPO, FactorMatchEnv: per seed first {np.round(first, 2)}, last {np.round(last, 2)}")
    # chance is (1/3 + 1/2) / 2 = 0.42; both factors must be learned to pass 0.9
    assert np.median(first) < 0.6
    assert np.median(last) >= 0.9


def test_warm_start_demonstrates_the_wd_no_op(env):
    task = TASK.replace(tau=4, horizon=16)
    wd_env = gj.env.LayerwiseLREnv(task)
    demos = ws.demonstrations(wd_env, WD_PARAMS, ("warmup_cosine",), (3e-4, 3e-3), 2, jax.random.key(0))
    assert demos.actions.shape == (16, 4, wd_env.num_agents, 2)
    assert demos.obs.shape[-1] == features.obs_dim(True)
    np.testing.assert_array_equal(demos.actions[..., 1], 0)
    cfg = IPPOConfig(activation="tanh")
    network = make_network(cfg, wd_env.action_space(WD_PARAMS))
    params = network.init(jax.random.key(1), init_hidden(cfg, 1), jnp.zeros((1, 1, demos.obs.shape[-1])),
                          jnp.zeros((1, 1), bool))
    cloned, obs_stats, _ = jax.jit(lambda p: ws.behaviour_clone(network, cfg, p, demos, steps=300))(params)
    assert float(ws.imitation_accuracy(network, cfg, cloned, obs_stats, demos)) >= 0.9


def test_cli_trains_and_evaluation_spans_weight_decays(tmp_path):
    run = str(tmp_path / "run")
    assert cli.main(["train", "--task", "digits-mlp", "--tau", "2", "--horizon", "3", "--batch-size", "16",
                     "--width", "2", "--eval-batch", "64", "--out", run, "--control-wd", "--wd-max", "0.5",
                     "--num-envs", "2", "--num-steps", "3", "--seq-len", "3", "--num-minibatches", "1",
                     "--update-epochs", "1", "--total-timesteps", "12", "--log-episodes", "0"]) == 0
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["env_params"]["control_wd"] is True and config["env_params"]["wd_max"] == 0.5
    header = open(os.path.join(run, "schedules.csv")).readline().strip().split(",")
    assert {"lr_0", "wd_0", "wd_2"} <= set(header)
    controller = controllers.from_run(run, actions="sample")
    assert controller.env_params.control_wd and controller.env_params.wd_max == 0.5
    task = TASK.replace(horizon=2)
    factors = np.array([1.0, 1.25, 0.8, 2.0, 0.5])
    for wd in (1e-4, 0.1):
        res = gj.evaluate.run(controller, task, init_lrs=(1e-3,), seeds=2, weight_decay=wd)
        wds = res.curves["wds"]  # [L, S, T, N]
        assert wds.shape == (1, 2, 2, 3) and res.weight_decay == pytest.approx(wd)
        ratios = wds[..., 0, :] / wd  # after the first decision: one WD action from the grid's decay
        assert np.all(np.min(np.abs(ratios[..., None] - factors), axis=-1) < 1e-4)
        assert np.all(wds <= 0.5)
    constant = gj.evaluate.run(controllers.baseline("constant"), task, init_lrs=(1e-3,), seeds=1, weight_decay=0.1)
    np.testing.assert_allclose(constant.curves["wds"], 0.1, rtol=1e-6)
