"""A family of tasks for one policy: ``EnvGroup`` (one task's env, params and copies), the checks that the
groups can share one network, and the helpers that lay their actors side by side (``agents.ippo``).
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax.numpy as jnp
from jax.sharding import Mesh

from ganno_jax.agents.config import IPPOConfig
from ganno_jax.agents.networks import action_shape_of, is_discrete, is_factorised
from ganno_jax.agents.sharding import check_divisible
from ganno_jax.checks import check_int


class EnvGroup(NamedTuple):
    """One task of a family: ``env`` (agent-axis gymnax style, see ``make_train_pieces``), its
    ``env_params``, ``num_envs`` vmapped copies (None: ``IPPOConfig.num_envs``) and a ``name`` for metrics."""

    env: Any
    env_params: Any
    num_envs: Optional[int] = None
    name: str = ""


def check_groups(cfg: IPPOConfig, groups: tuple, mesh: Optional[Mesh]) -> tuple:
    """Groups with ``num_envs`` filled in; ``ValueError`` naming the group unless every group fits the
    config and mesh and all share the first group's observation size and action space."""
    if not groups or not all(isinstance(g, EnvGroup) for g in groups):
        raise ValueError(f"envs={groups!r} must be a non-empty sequence of EnvGroup")
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ValueError(f"EnvGroup names {names} must be distinct")
    groups = tuple(g._replace(num_envs=cfg.num_envs if g.num_envs is None else g.num_envs) for g in groups)
    for g in groups:  # an env without agents has nothing to train (checked before its spaces are read)
        cfg.validate_for(int(g.env.num_agents))
    first = groups[0]
    space = space_signature(first.env.action_space(first.env_params))
    obs_dim = first.env.observation_space(first.env_params).shape[-1]
    for g in groups:
        check_int(f"EnvGroup {g.name!r}: num_envs", g.num_envs)
        check_divisible(g.num_envs, mesh)
        sequences = g.num_envs * (cfg.num_steps // cfg.seq_len)
        if sequences % cfg.num_minibatches:
            raise ValueError(f"EnvGroup {g.name!r}: num_minibatches={cfg.num_minibatches} must divide its "
                             f"num_envs*num_steps/seq_len = {sequences} sequences")
        g_dim = g.env.observation_space(g.env_params).shape[-1]
        if g_dim != obs_dim:
            raise ValueError(f"EnvGroup {g.name!r}: obs_dim={g_dim} differs from {first.name!r}'s {obs_dim}; "
                             "all groups share one network")
        g_space = space_signature(g.env.action_space(g.env_params))
        if g_space != space:
            raise ValueError(f"EnvGroup {g.name!r}: action space {g_space} differs from {first.name!r}'s {space}; "
                             "all groups share one network")
    return groups


def space_signature(space) -> tuple:
    """Comparable description of an action space: ``("discrete", n)``, ``("factorised", nvec)`` or
    ``("box", per-agent shape)``."""
    if is_discrete(space):
        return ("discrete", int(space.n))
    if is_factorised(space):
        return ("factorised", tuple(int(n) for n in space.nvec))
    return ("box", action_shape_of(space))


def concat(parts, axis: int = 0) -> jnp.ndarray:
    """Per-group arrays joined on their actor ``axis`` (a single group's array as it is)."""
    parts = list(parts)
    return parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=axis)


def starts(sizes: tuple) -> tuple:
    """Offsets of consecutive blocks of ``sizes``: ``(2, 3, 4) -> (0, 2, 5)``."""
    return tuple(sum(sizes[:i]) for i in range(len(sizes)))
