"""Small functional envs with an agent axis (gymnax-1.0 style) for testing env-agnostic trainers.

All follow the interface of ``ganno_jax.agents.make_train``: ``reset(key, params) -> (obs [A, d], state)``,
``step(key, state, action [A], params) -> (obs, state, reward, terminated, truncated, info)`` with
auto-reset and ``info["final_obs"]`` (the pre-reset observation).
"""
from __future__ import annotations

from typing import NamedTuple

import flax.struct
import jax
import jax.numpy as jnp


class Discrete(NamedTuple):
    n: int


class Box(NamedTuple):
    shape: tuple[int, ...]


class MultiDiscrete(NamedTuple):
    nvec: tuple


def _auto_reset(env, key, params, obs, state, reward, terminated, truncated, info):
    """Replaces ``(obs, state)`` by a fresh episode where it ended; keeps the old obs as ``final_obs``."""
    reset_obs, reset_state = env.reset(key, params)
    done = terminated | truncated

    def pick(new, old):
        return jnp.where(done, new, old)

    info = {**info, "final_obs": obs}
    return (pick(reset_obs, obs), jax.tree.map(pick, reset_state, state), reward, terminated, truncated, info)


@flax.struct.dataclass
class CartPoleParams:
    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    length: float = 0.5
    force_mag: float = 10.0
    tau: float = 0.02
    theta_threshold: float = 12 * 2 * jnp.pi / 360
    x_threshold: float = 2.4
    max_steps_in_episode: int = 500


@flax.struct.dataclass
class CartPoleState:
    x: jnp.ndarray
    x_dot: jnp.ndarray
    theta: jnp.ndarray
    theta_dot: jnp.ndarray
    time: jnp.ndarray


class CartPole:
    """CartPole-v1 (gymnax dynamics) with one agent: obs ``[1, 4]``, 2 actions, scalar reward 1 per step,
    ``terminated`` when the pole falls or the cart leaves, ``truncated`` after 500 steps."""

    num_agents = 1

    @property
    def default_params(self) -> CartPoleParams:
        return CartPoleParams()

    def action_space(self, params) -> Discrete:
        return Discrete(2)

    def observation_space(self, params) -> Box:
        return Box((1, 4))

    @staticmethod
    def _obs(s: CartPoleState) -> jnp.ndarray:
        return jnp.stack([s.x, s.x_dot, s.theta, s.theta_dot])[None]

    def reset(self, key, params):
        x, x_dot, theta, theta_dot = jax.random.uniform(key, (4,), minval=-0.05, maxval=0.05)
        state = CartPoleState(x, x_dot, theta, theta_dot, jnp.zeros((), jnp.int32))
        return self._obs(state), state

    def step(self, key, state: CartPoleState, action, params):
        p = params
        force = p.force_mag * (2.0 * action[0] - 1.0)
        total_mass = p.masspole + p.masscart
        polemass_length = p.masspole * p.length
        cos, sin = jnp.cos(state.theta), jnp.sin(state.theta)
        temp = (force + polemass_length * state.theta_dot**2 * sin) / total_mass
        theta_acc = (p.gravity * sin - cos * temp) / (p.length * (4.0 / 3.0 - p.masspole * cos**2 / total_mass))
        x_acc = temp - polemass_length * theta_acc * cos / total_mass
        state = CartPoleState(
            x=state.x + p.tau * state.x_dot,
            x_dot=state.x_dot + p.tau * x_acc,
            theta=state.theta + p.tau * state.theta_dot,
            theta_dot=state.theta_dot + p.tau * theta_acc,
            time=state.time + 1,
        )
        terminated = (jnp.abs(state.x) > p.x_threshold) | (jnp.abs(state.theta) > p.theta_threshold)
        truncated = ~terminated & (state.time >= p.max_steps_in_episode)
        return _auto_reset(self, key, params, self._obs(state), state, jnp.ones(()), terminated, truncated,
                           {"length": state.time})


@flax.struct.dataclass
class MatchState:
    target: jnp.ndarray  # [A] int32
    time: jnp.ndarray


class MatchIdEnv:
    """``num_agents`` agents; agent i sees a one-hot of its own target id (random per episode) plus one
    noise feature and gets reward 1 for choosing that id: per-agent reward ``[A]``, episodes of
    ``horizon`` steps ended by truncation. Learning it requires consistent agent folding."""

    def __init__(self, num_agents: int = 3, horizon: int = 8):
        self.num_agents = num_agents
        self.horizon = horizon

    @property
    def default_params(self):
        return ()

    def action_space(self, params) -> Discrete:
        return Discrete(self.num_agents)

    def observation_space(self, params) -> Box:
        return Box((self.num_agents, self.num_agents + 1))

    def _obs(self, key, state: MatchState) -> jnp.ndarray:
        noise = jax.random.normal(key, (self.num_agents, 1))
        return jnp.concatenate([jax.nn.one_hot(state.target, self.num_agents), noise], axis=1)

    def reset(self, key, params):
        k_target, k_obs = jax.random.split(key)
        target = jax.random.randint(k_target, (self.num_agents,), 0, self.num_agents)
        state = MatchState(target, jnp.zeros((), jnp.int32))
        return self._obs(k_obs, state), state

    def step(self, key, state: MatchState, action, params):
        k_obs, k_reset = jax.random.split(key)
        reward = (action == state.target).astype(jnp.float32)
        state = state.replace(time=state.time + 1)
        truncated = state.time >= self.horizon
        return _auto_reset(self, k_reset, params, self._obs(k_obs, state), state, reward, jnp.zeros((), bool),
                           truncated, {"accuracy": reward.mean()})


@flax.struct.dataclass
class FactorState:
    targets: jnp.ndarray  # [A, F] int32
    time: jnp.ndarray


class FactorMatchEnv:
    """Factorised actions: agent i sees one-hots of its own target choice for every factor of ``nvec``
    (random per episode) and gets reward 1 per factor it matches, divided by the number of factors: per-agent
    reward ``[A]``, actions ``[A, F]``, episodes of ``horizon`` steps ended by truncation."""

    def __init__(self, num_agents: int = 2, nvec: tuple = (3, 2), horizon: int = 8):
        self.num_agents = num_agents
        self.nvec = nvec
        self.horizon = horizon

    @property
    def default_params(self):
        return ()

    def action_space(self, params) -> MultiDiscrete:
        return MultiDiscrete(self.nvec)

    def observation_space(self, params) -> Box:
        return Box((self.num_agents, sum(self.nvec)))

    def _obs(self, state: FactorState) -> jnp.ndarray:
        return jnp.concatenate([jax.nn.one_hot(state.targets[:, i], n) for i, n in enumerate(self.nvec)], axis=1)

    def reset(self, key, params):
        keys = jax.random.split(key, len(self.nvec))
        targets = jnp.stack([jax.random.randint(k, (self.num_agents,), 0, n) for k, n in zip(keys, self.nvec)], 1)
        state = FactorState(targets, jnp.zeros((), jnp.int32))
        return self._obs(state), state

    def step(self, key, state: FactorState, action, params):
        reward = (action == state.targets).astype(jnp.float32).mean(axis=1)
        state = state.replace(time=state.time + 1)
        truncated = state.time >= self.horizon
        return _auto_reset(self, key, params, self._obs(state), state, reward, jnp.zeros((), bool), truncated,
                           {"accuracy": reward.mean()})


class CorruptedEnv:
    """Wraps an env and replaces, with probability ``rate`` each, the reward, observation and final
    observation entries by NaN, +inf or -inf (a diverged inner run that leaked through)."""

    def __init__(self, env, rate: float = 0.2):
        self.env = env
        self.rate = rate
        self.num_agents = env.num_agents

    def __getattr__(self, name):
        return getattr(self.env, name)

    def _corrupt(self, key, x):
        k_mask, k_val = jax.random.split(key)
        bad = jnp.array([jnp.nan, jnp.inf, -jnp.inf])[jax.random.randint(k_val, x.shape, 0, 3)]
        return jnp.where(jax.random.uniform(k_mask, x.shape) < self.rate, bad, x)

    def reset(self, key, params):
        return self.env.reset(key, params)

    def step(self, key, state, action, params):
        k_env, k_obs, k_final, k_rew = jax.random.split(key, 4)
        obs, state, reward, terminated, truncated, info = self.env.step(k_env, state, action, params)
        reward = self._corrupt(k_rew, reward)
        info = {**info, "final_obs": self._corrupt(k_final, info["final_obs"]), "corrupted_reward": reward}
        return self._corrupt(k_obs, obs), state, reward, terminated, truncated, info


@flax.struct.dataclass
class TargetState:
    target: jnp.ndarray  # [A] float32 in [-0.8, 0.8]


class TargetMatchEnv:
    """Continuous one-step env: agent i sees ``[target_i, noise]`` and gets ``-(clip(a_i, -1, 1) - target_i)**2``
    for its action ``[A, 1]``; every step ends the episode (``terminated``). Random actions score about
    -0.55, a perfect policy 0; the target is a linear function of the observation."""

    def __init__(self, num_agents: int = 1):
        self.num_agents = num_agents

    @property
    def default_params(self):
        return ()

    def action_space(self, params) -> Box:
        return Box((1,))

    def observation_space(self, params) -> Box:
        return Box((self.num_agents, 2))

    def reset(self, key, params):
        k_target, k_noise = jax.random.split(key)
        target = jax.random.uniform(k_target, (self.num_agents,), minval=-0.8, maxval=0.8)
        obs = jnp.stack([target, jax.random.normal(k_noise, (self.num_agents,))], axis=1)
        return obs, TargetState(target)

    def step(self, key, state: TargetState, action, params):
        error = jnp.clip(action.reshape(self.num_agents), -1.0, 1.0) - state.target
        reward = -jnp.square(error)
        obs, _ = self.reset(key, params)  # placeholder obs of the (ended) episode; replaced by the reset
        return _auto_reset(self, key, params, obs, state, reward, jnp.ones((), bool), jnp.zeros((), bool),
                           {"abs_error": jnp.abs(error).mean()})


class OneStepEnv:
    """One agent, constant observation ``[1, 2]`` of ones, reward 1, and every step ends the episode: by
    truncation if ``truncate`` else by termination. Every step's value target is then exactly
    ``1 + gamma * V(ones)`` (truncated: bootstrapped from ``final_obs``) or ``1`` (terminated)."""

    num_agents = 1

    def __init__(self, truncate: bool):
        self.truncate = truncate

    @property
    def default_params(self):
        return ()

    def action_space(self, params) -> Discrete:
        return Discrete(2)

    def observation_space(self, params) -> Box:
        return Box((1, 2))

    def reset(self, key, params):
        return jnp.ones((1, 2)), jnp.zeros((), jnp.int32)

    def step(self, key, state, action, params):
        obs, state = self.reset(key, params)
        return _auto_reset(self, key, params, obs, state, jnp.ones(()), jnp.asarray(not self.truncate),
                           jnp.asarray(self.truncate), {})
