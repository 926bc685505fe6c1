"""SingleAgentLREnv (env/wrappers.py): one action moves every layer's LR, global observation only."""
import jax
import jax.numpy as jnp
import numpy as np

import ganno_jax as gj
from ganno_jax.env import LayerwiseLREnv, features
from ganno_jax.env.wrappers import SINGLE_AGENT_GROUPS, SingleAgentLREnv

TASK = gj.tasks.get("digits-mlp", width=4, tau=2, horizon=3, eval_batch=64)


def test_single_action_applies_to_every_layer_and_obs_keeps_global_groups():
    env = SingleAgentLREnv(LayerwiseLREnv(TASK))
    params = env.default_params.fixed_start(1e-3, 1e-4).replace(reward_mode="accuracy")
    obs, state = env.reset(jax.random.key(0), params)
    state = state.replace(lrs=jnp.array([1e-3, 2e-3, 4e-3]))  # layers apart, so each must be scaled on its own
    step = jax.jit(env.step_env)
    lrs = np.array([1e-3, 2e-3, 4e-3])
    for action, change in ((2, lambda lr: lr * 1.10), (8, lambda lr: lr - 1e-3)):
        new_obs, new_state, reward, terminated, _, info = step(jax.random.key(1), state, jnp.array([action]), params)
        np.testing.assert_allclose(new_state.lrs, change(lrs), rtol=1e-6)
        np.testing.assert_array_equal(new_state.prev_action, [action] * 3)
        assert reward.shape == (1,) and new_obs.shape == (1, features.OBS_DIM)
        np.testing.assert_allclose(reward, [info["val_acc"]])
        state, lrs = new_state, change(lrs)

    offsets = np.cumsum([0] + list(features.FEATURE_GROUPS.values()))
    for i, group in enumerate(features.FEATURE_GROUPS):
        cols = np.asarray(new_obs)[0, offsets[i]:offsets[i + 1]]
        if group not in SINGLE_AGENT_GROUPS:
            np.testing.assert_array_equal(cols, 0.0, err_msg=group)
    assert set(SINGLE_AGENT_GROUPS) == set(features.GLOBAL_GROUPS)  # "only global information" (G.1): no LR
    initial_lr = offsets[list(features.FEATURE_GROUPS).index("initial_lr")]
    np.testing.assert_allclose(new_obs[0, initial_lr], np.log10(1e-3 + 1e-8), atol=1e-6)  # a global feature
