"""``SingleAgentLREnv``: the paper's GANNO-single-agent ablation (Appendix G.1).

One agent sees "only global information (e.g. classification loss)" (Appendix G.1): Appendix D's global
features (train/validation accuracy and loss, NaN flag, progress, loss ratio, initial LR and WD), not the
layer-wise ones, so neither the current LR nor its previous action (nor, with ``control_wd``, the current WD);
its recurrent policy carries what it did. Its one action sets the learning rate (and WD) of every layer, so it
learns a global schedule. Rewards are the wrapped env's (identical on every layer) taken from layer 0.
"""
from __future__ import annotations

import jax.numpy as jnp

from ganno_jax.checks import check_choice
from ganno_jax.env import features
from ganno_jax.env.base import FunctionalEnv
from ganno_jax.env.layerwise import LayerwiseLREnv
from ganno_jax.env.spaces import Box

#: What the single agent observes: Appendix D's global features only.
SINGLE_AGENT_GROUPS = features.OBS_MASKS["global_only"]


class SingleAgentLREnv(FunctionalEnv):
    """Wraps a ``LayerwiseLREnv``: obs [1, obs_dim] (every layer-wise group zeroed), action [1]
    (``control_wd``: [1, 2]) broadcast to all layers, reward [1]."""

    num_agents = 1

    def __init__(self, env: LayerwiseLREnv):
        self.env = env
        self.task = env.task

    @property
    def default_params(self):
        """The wrapped env's default params."""
        return self.env.default_params

    def action_space(self, params=None):
        """The wrapped env's action space (9 actions, or the factorised (LR, WD) pair)."""
        return self.env.action_space(params)

    def observation_space(self, params=None) -> Box:
        """Box of shape (1, obs_dim) (see ``LayerwiseLREnv.observation_space``)."""
        return Box(-jnp.inf, jnp.inf, (1, self.env.observation_space(params).shape[-1]))

    def _obs(self, obs, params):
        return obs[:1] * features.feature_mask(SINGLE_AGENT_GROUPS, params.control_wd, params.action_set)

    def reset_env(self, key, params):
        """Reset of the wrapped env; obs [1, obs_dim]."""
        obs, state = self.env.reset_env(key, params)
        return self._obs(obs, params), state

    def step_env(self, key, state, action, params):
        """One global action [1] (``control_wd``: [1, 2]) applied to every layer."""
        one = jnp.asarray(action, jnp.int32).reshape((-1, 2) if params.control_wd else (-1,))[:1]
        actions = jnp.broadcast_to(one, (self.env.num_agents, *one.shape[1:]))
        obs, state, reward, terminated, truncated, info = self.env.step_env(key, state, actions, params)
        return self._obs(obs, params), state, reward[:1], terminated, truncated, info

    def step_schedule(self, key, state, per_step_lrs, params):
        """The wrapped env's ``step_schedule`` with obs [1, obs_dim]."""
        obs, state, terminated, info = self.env.step_schedule(key, state, per_step_lrs, params)
        return self._obs(obs, params), state, terminated, info


#: The paper's training variants (ablations): variant -> (observation mask, single agent).
VARIANTS = {
    "ganno": (None, False),
    "lr_only": (features.OBS_MASKS["lr_only"], False),
    "timestep_only": (features.OBS_MASKS["timestep_only"], False),
    "single_agent": (None, True),
}


def check_variant(variant: str) -> str:
    """``variant`` if it is one of ``VARIANTS``, else a ``ValueError`` naming the allowed ones."""
    return check_choice("variant", variant, VARIANTS)


def variant_params(params, variant: str):
    """``params`` (``EnvParams``) with the observation mask of a training ``variant`` (``VARIANTS``). A run's
    saved EnvParams already hold it (``runs.RunConfig``), so evaluation takes them whole."""
    return params.replace(obs_mask=VARIANTS[check_variant(variant)][0])


def variant_env(env: LayerwiseLREnv, variant: str):
    """``env`` as a training ``variant`` sees it (``VARIANTS``): wrapped in ``SingleAgentLREnv`` for
    ``single_agent``, unchanged otherwise (the observation mask lives in the params: ``variant_params``)."""
    return SingleAgentLREnv(env) if VARIANTS[check_variant(variant)][1] else env
