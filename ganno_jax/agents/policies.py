"""Policies: one protocol (``Policy``) for the learned policy and the simple reference agents.

A policy is a pytree (``flax.struct`` dataclass) with two pure, jit/vmap-able methods:

- ``init(key, num_agents) -> carry``
- ``act(key, obs [num_agents, obs_dim], carry, done) -> (action [num_agents] int32, carry)``
  (a ``LearnedPolicy`` with a Gaussian head returns ``[num_agents, D] float32`` actions instead, one
  with a factorised head ``[num_agents, F] int32``, e.g. the LR and WD actions of ``control_wd``)

``done`` (bool scalar or ``[num_agents]``) says that ``obs`` starts a new episode (the previous step
ended one); recurrent policies reset their state there. Evaluation wraps any policy in an
``evaluation.controllers.PolicyController`` (a controller is what the evaluation harness runs: a policy
or a schedule).
"""
from __future__ import annotations

from typing import Any, Protocol

import flax.struct
import jax
import jax.numpy as jnp

from ganno_jax.agents.config import IPPOConfig
from ganno_jax.agents.ippo import RunnerState, TrainOutput, normalize_obs
from ganno_jax.agents.networks import ActorCritic, action_dtype_of, action_space_of, init_hidden, make_network
from ganno_jax.agents.normalize import RunningMeanStd, sanitize


class Policy(Protocol):
    """Anything that picks one discrete action per agent from observations."""

    def init(self, key: jax.Array, num_agents: int) -> Any:
        """Initial carry for an episode of ``num_agents`` agents."""

    def act(self, key: jax.Array, obs: jnp.ndarray, carry: Any, done: jnp.ndarray) -> tuple[jnp.ndarray, Any]:
        """``obs [num_agents, obs_dim]`` -> ``(action [num_agents] int32, carry)``."""


@flax.struct.dataclass
class LearnedPolicy:
    """A trained actor with frozen observation statistics; carry = hidden state ``[num_agents, H]``."""

    params: Any
    obs_stats: RunningMeanStd
    cfg: IPPOConfig = flax.struct.field(pytree_node=False)
    greedy: bool = flax.struct.field(pytree_node=False, default=True)

    def init(self, key: jax.Array, num_agents: int) -> jnp.ndarray:
        """Zero hidden state ``[num_agents, H]`` (H = 0 for an MLP policy)."""
        return init_hidden(self.cfg, num_agents)

    def act(self, key, obs, carry, done):
        """Most likely action (the mean for a Gaussian head) if ``greedy`` else a sample; ``obs [A, d]``,
        ``carry [A, H]`` -> ``(action [A] int32, [A, F] int32 for a factorised head or [A, D] float32, carry)``."""
        space = action_space_of(self.params)
        network = make_network(self.cfg, space)
        x = normalize_obs(self.cfg, self.obs_stats, sanitize(obs))
        reset = jnp.broadcast_to(done, obs.shape[:1])
        carry, pi = network.apply(self.params, carry, x[None], reset[None], method=ActorCritic.policy)
        action = pi.mode() if self.greedy else pi.sample(seed=key)
        return action[0].astype(action_dtype_of(space)), carry


@flax.struct.dataclass
class RandomPolicy:
    """Uniformly random action for every agent; carry ``()``."""

    num_actions: int = flax.struct.field(pytree_node=False)

    def init(self, key, num_agents):
        """No state."""
        return ()

    def act(self, key, obs, carry, done):
        """``obs [A, d]`` -> uniform actions ``[A]`` in ``[0, num_actions)``."""
        return jax.random.randint(key, obs.shape[:1], 0, self.num_actions, jnp.int32), carry


@flax.struct.dataclass
class ConstantPolicy:
    """Always the same action (default 0, the no-op: a constant learning rate); carry ``()``."""

    action: int = flax.struct.field(pytree_node=False, default=0)

    def init(self, key, num_agents):
        """No state."""
        return ()

    def act(self, key, obs, carry, done):
        """``obs [A, d]`` -> ``[A]`` copies of ``action``."""
        return jnp.full(obs.shape[:1], self.action, jnp.int32), carry


def policy_from(source, cfg: IPPOConfig | None = None, *, greedy: bool = True, seed_index: int | None = None,
                obs_stats: RunningMeanStd | None = None) -> LearnedPolicy:
    """The learned policy from a ``TrainOutput`` (config read from it), a ``RunnerState`` or network
    parameters (both need ``cfg``; parameters also need ``obs_stats`` when ``cfg.normalize_obs``).
    ``seed_index`` picks one seed from an output of ``jax.vmap(train)``."""
    if isinstance(source, TrainOutput):
        cfg = source.cfg if cfg is None else cfg
        source = source.runner_state
    if isinstance(source, RunnerState):
        params, obs_stats = source.params, source.obs_stats
    else:
        params = source
    if cfg is None:
        raise ValueError("policy_from: cfg is required unless the source is a TrainOutput")
    if seed_index is not None:
        params, obs_stats = jax.tree.map(lambda x: x[seed_index], (params, obs_stats))
    if obs_stats is None:
        if cfg.normalize_obs:
            raise ValueError("policy_from: obs_stats is required for parameters trained with normalize_obs")
        obs_stats = RunningMeanStd.create(())
    return LearnedPolicy(params=params, obs_stats=obs_stats, cfg=cfg, greedy=greedy)
