"""gymnax-1.0-style functional environment base: ``step`` auto-resets at episode end."""
from __future__ import annotations

import jax
import jax.numpy as jnp


def rollout(env, params, policy_step, carry, key: jax.Array):
    """One episode without auto-reset: ``reset_env``, then ``env.task.horizon`` steps, each
    ``policy_step(t, key, obs, state, carry, params) -> (obs, state, carry, info)``; returns the infos stacked on
    a leading [T] axis (what evaluation measures of a run)."""
    k_reset, k_steps = jax.random.split(key)
    obs, state = env.reset_env(k_reset, params)

    def body(loop, inputs):
        t, k = inputs
        obs, state, carry, info = policy_step(t, k, *loop, params)
        return (obs, state, carry), info

    horizon = env.task.horizon
    _, infos = jax.lax.scan(body, (obs, state, carry), (jnp.arange(horizon), jax.random.split(k_steps, horizon)))
    return infos


def log_uniform(key: jax.Array, low, high) -> jax.Array:
    """A float32 scalar from log-uniform[low, high], ``0 < low <= high`` (a fixed value is not a range:
    see ``EnvParams.init_lr``)."""
    return jnp.exp(jax.random.uniform(key, (), jnp.float32, jnp.log(low), jnp.log(high)))


class FunctionalEnv:
    """Subclasses define ``reset_env(key, params)`` and ``step_env(key, state, action, params)``.

    ``step`` runs ``step_env`` and, where the episode ended (terminated or truncated), replaces the
    returned obs/state by a fresh ``reset_env``; ``info["final_obs"]`` keeps the last observation of
    the finished episode (for bootstrapping truncated episodes).
    """

    @property
    def default_params(self):
        """Default ``EnvParams``."""
        raise NotImplementedError

    def reset(self, key: jax.Array, params=None):
        """(obs [num_agents, obs_dim], state) of a new episode."""
        return self.reset_env(key, self.default_params if params is None else params)

    def step(self, key: jax.Array, state, action: jax.Array, params=None):
        """(obs, state, reward [num_agents], terminated, truncated, info) with auto-reset."""
        params = self.default_params if params is None else params
        key_step, key_reset = jax.random.split(key)
        obs_st, state_st, reward, terminated, truncated, info = self.step_env(key_step, state, action, params)
        obs_re, state_re = self.reset_env(key_reset, params)
        done = terminated | truncated
        state = jax.tree.map(lambda a, b: jnp.where(done, a, b), state_re, state_st)
        obs = jnp.where(done, obs_re, obs_st)
        return obs, state, reward, terminated, truncated, {**info, "final_obs": obs_st}
