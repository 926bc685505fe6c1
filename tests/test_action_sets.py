"""Action sets (``EnvParams.action_set``): the wide set's coarse steps, the paper's indices unchanged, the
policy's choices and the previous-action observation as wide as the set, and greedy tracking that reaches
a far LR sooner with the wide set."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganno_jax import tasks
from ganno_jax.agents.warm_start import schedule_actions
from ganno_jax.env import LayerwiseLREnv, apply_actions, features
from ganno_jax.env.actions import ACTION_SETS, NUM_ACTIONS, action_nvec, num_actions
from ganno_jax.env.layerwise import EnvParams


def test_wide_set_adds_coarse_steps_after_the_papers_nine():
    assert ACTION_SETS["wide"][:NUM_ACTIONS] == ACTION_SETS["paper"]
    assert (num_actions("paper"), num_actions("wide")) == (9, 13)
    lrs = jnp.full(13, 0.01)
    new = np.asarray(apply_actions(lrs, jnp.arange(13), 0.0, 1.0))
    np.testing.assert_allclose(new[:9], [0.01, 0.0101, 0.011, 0.01 / 1.01, 0.01 / 1.1, 0.0105, 0.0095, 0.011, 0.009],
                               rtol=1e-6)
    np.testing.assert_allclose(new[9:], [0.0125, 0.008, 0.02, 0.005], rtol=1e-6)
    assert action_nvec(True, "wide") == (13, 5)


def test_bad_action_set_is_refused_naming_the_field():
    with pytest.raises(ValueError, match="action_set.*'huge'.*paper.*wide"):
        EnvParams(action_set="huge")


def test_wide_env_takes_13_actions_and_observes_the_previous_one():
    env = LayerwiseLREnv(tasks.get("digits-mlp", tau=1, horizon=2, width=2, batch_size=8, eval_batch=16))
    params = env.default_params.replace(action_set="wide", reward_mode="accuracy").fixed_start(1e-3, 0.0)
    assert env.action_space(params).n == 13 and env.action_space(env.default_params).n == 9
    assert env.observation_space(params).shape[-1] == features.OBS_DIM + 4
    obs, state = env.reset(jax.random.key(0), params)
    action = jnp.full(env.num_agents, 11)  # x2
    obs, state, *_ = env.step_env(jax.random.key(1), state, action, params)
    np.testing.assert_allclose(state.lrs, 2e-3, rtol=1e-6)
    groups = features.feature_groups(action_set="wide")
    start = sum(list(groups.values())[:list(groups).index("previous_action")])
    np.testing.assert_array_equal(obs[:, start:start + 13], np.eye(13)[[11] * env.num_agents])


def test_greedy_tracking_reaches_a_far_lr_sooner_with_the_wide_set():
    targets = jnp.full(10, 5e-2)
    _, paper = schedule_actions(1e-4, targets, action_set="paper")
    _, wide = schedule_actions(1e-4, targets, action_set="wide")
    assert float(paper[-1]) < 0.011 < 0.045 < float(wide[-1])  # paper: +0.001 per decision; wide: x2
