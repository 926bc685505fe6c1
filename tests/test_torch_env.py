"""The PyTorch port that ``make bench`` compares against (ganno_jax/bench/torch_env.py) against ``LayerwiseLREnv``.

Started from the same parameters, LR and weight decay, stepped on the same minibatches, with every
example of the train/validation splits measured (``eval_batch`` above their sizes), both envs are
deterministic: the network function, the action table, the Adam + decoupled decay steps, the
observation and the difference reward must agree up to float32 round-off.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ganno_jax as gj
from ganno_jax.env import LayerwiseLREnv

torch = pytest.importorskip("torch")
from ganno_jax.bench import torch_env  # noqa: E402

INIT_LR, WD = 5e-4, 1e-3
DATA = gj.data.load_dataset("digits")


def _task(model):
    return gj.tasks.get(f"digits-{model}", tau=3, horizon=2, width=2, batch_size=16, eval_batch=10_000)


def _env_pair(model, reward_mode):
    """(JAX env, its params, JAX state, torch env) started from the same network, LR and weight decay."""
    env = LayerwiseLREnv(_task(model))
    params = env.default_params.fixed_start(INIT_LR, WD).replace(reward_mode=reward_mode)
    obs, state = env.reset(jax.random.key(0), params)
    port = torch_env.TorchLayerwiseEnv(env.task, DATA, reward_mode)
    port_obs = port.reset(state.inner.params, INIT_LR, WD)
    np.testing.assert_allclose(port_obs.numpy(), obs, rtol=1e-4, atol=1e-4)
    return env, params, state, port


def _env_minibatches(env, key):
    """Minibatch indices [tau, batch] that ``LayerwiseLREnv.step_env(key, ...)`` trains on: its segment key
    is the first half of ``key`` (a wrong guess here makes the comparison fail, it cannot pass silently)."""
    return env.trainer.sample_batch_indices(DATA, jax.random.split(key)[0], env.task.tau)


@pytest.mark.parametrize("model", ["mlp", "cnn2"])
def test_port_computes_the_same_network_function(model):
    env = LayerwiseLREnv(_task(model))
    params = env.trainer.init(jax.random.key(1)).params
    port = torch_env.TorchLayerwiseEnv(env.task, DATA)
    port.load_flax_params(params)
    x = DATA.x_train[:32]
    logits = env.trainer.module.apply({"params": params}, x)
    port_x = torch.from_numpy(np.array(x if model == "mlp" else np.transpose(x, (0, 3, 1, 2))))
    np.testing.assert_allclose(port.model(port_x).detach().numpy(), logits, rtol=1e-5, atol=1e-5)
    assert port.num_agents == env.num_agents


def test_action_table_and_lr_clipping_match_the_env():
    port = torch_env.TorchLayerwiseEnv(_task("mlp"), DATA)
    port.reset(init_lr=INIT_LR, weight_decay=WD)
    lrs = jnp.full(port.num_agents, INIT_LR)
    defaults = gj.env.EnvParams()
    for actions in ([0, 1, 2], [3, 4, 5], [6, 7, 8], [8, 2, 2]):  # every action; 6 and 8 clip agent 0 at 0
        port.step(actions)
        lrs = gj.env.apply_actions(lrs, jnp.array(actions), defaults.lr_min, defaults.lr_max)
        np.testing.assert_allclose(port.lrs.numpy(), lrs, rtol=1e-6)
    assert float(lrs[0]) == 0.0 and (torch_env.LR_MIN, torch_env.LR_MAX) == (defaults.lr_min, defaults.lr_max)


@pytest.mark.parametrize("model", ["mlp", "cnn2"])
def test_difference_step_matches_the_jax_env(model):
    env, params, state, port = _env_pair(model, "difference")
    step = jax.jit(env.step_env)
    for t, actions in enumerate(([7] * env.num_agents, [2, 8, 5][:env.num_agents])):
        key = jax.random.key(10 + t)
        obs, state, reward, terminated, _, _ = step(key, state, jnp.array(actions), params)
        idx = torch.from_numpy(np.array(_env_minibatches(env, key))).long()
        port_obs, port_reward, port_done = port.step(actions, idx)
        np.testing.assert_allclose(port.lrs.numpy(), state.lrs, rtol=1e-6)
        for name, p in zip(sorted(state.inner.params), range(0, len(port.params), 2)):
            np.testing.assert_allclose(port.params[p + 1].detach().numpy(), state.inner.params[name]["bias"],
                                       rtol=1e-4, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(port_obs.numpy(), obs, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(port_reward.numpy(), reward, atol=1e-6)
        assert port_done == bool(terminated)
    assert np.any(np.asarray(reward) != 0.0)  # acting differed from the no-op branch
