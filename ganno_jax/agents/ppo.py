"""PPO pieces independent of the env: transitions, GAE with truncation bootstrap, minibatches of sequences, loss.

Array axes: ``T`` rollout steps, ``N = num_envs * num_agents`` actors (agents folded into the batch),
``L = seq_len``, ``C = T / L`` sequences per env copy, ``S = C * num_envs`` sequences (``L`` steps of an env
copy with all its agents), ``M`` minibatches, ``B = S / M * num_agents`` actor sequences per minibatch.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from ganno_jax.agents.config import IPPOConfig


class Transition(NamedTuple):
    """One rollout step for every actor; stacked by ``lax.scan`` to ``[T, N, ...]``."""

    obs: jnp.ndarray  # [N, d] observation the action was taken on (sanitised, not normalised)
    reset: jnp.ndarray  # [N] bool: previous step ended an episode, hidden state reset before acting
    hidden: jnp.ndarray  # [N, H] hidden state entering this step (before the reset)
    action: jnp.ndarray  # [N] int32 (discrete) or [N, D] float32 (Box)
    log_prob: jnp.ndarray  # [N]
    value: jnp.ndarray  # [N] critic estimate in return units
    reward: jnp.ndarray  # [N] sanitised reward
    done: jnp.ndarray  # [N] bool: this step ended the episode (terminated or truncated)
    bootstrap_value: jnp.ndarray  # [N] value of the pre-reset obs if truncated (not terminated), else 0


class PPOBatch(NamedTuple):
    """What the loss needs, in network units, ``[T, N, ...]`` or minibatched ``[L, B, ...]``."""

    obs: jnp.ndarray  # normalised observations
    reset: jnp.ndarray
    hidden: jnp.ndarray
    action: jnp.ndarray
    log_prob: jnp.ndarray
    value: jnp.ndarray  # value at acting time, in the critic's (normalised) units
    advantage: jnp.ndarray
    target: jnp.ndarray  # value target in the critic's (normalised) units


def gae(traj: Transition, last_value: jnp.ndarray, gamma: float, gae_lambda: float):
    """Generalised advantage estimates; ``traj`` fields ``[T, N]``, ``last_value [N]`` (value of the obs
    after the last step) -> ``(advantages [T, N], returns [T, N])``. Truncated steps bootstrap from
    ``bootstrap_value``; ``done`` cuts the recursion (the next obs belongs to a new episode)."""

    def backward(carry, t: Transition):
        next_adv, next_value = carry
        alive = 1.0 - t.done.astype(jnp.float32)
        delta = t.reward + gamma * (alive * next_value + t.bootstrap_value) - t.value
        adv = delta + gamma * gae_lambda * alive * next_adv
        return (adv, t.value), adv

    _, advantages = jax.lax.scan(backward, (jnp.zeros_like(last_value), last_value), traj, reverse=True)
    return advantages, advantages + traj.value


def minibatches(key: jax.Array, batch: PPOBatch, seq_len: int, num_minibatches: int, num_envs: int) -> PPOBatch:
    """Deals ``[T, N, ...]`` (``N = num_envs * A`` actors, env-major) into minibatches of whole sequences.

    A sequence is ``seq_len`` consecutive steps of one env copy with all its ``A`` agents (Mava's
    sequence adder). The ``S = C * num_envs`` sequences are shuffled and dealt to ``M = num_minibatches``
    minibatches: every leaf becomes ``[M, L, B, ...]`` with ``B = S / M * A`` (sequence-major, agent
    minor; scan over M, time-major inside)."""

    num_steps, num_actors = batch.action.shape[:2]
    num_agents, seqs_per_env = num_actors // num_envs, num_steps // seq_len
    num_seqs = seqs_per_env * num_envs
    perm = jax.random.permutation(key, num_seqs)

    def cut_and_deal(x):  # [T, N, ...] -> [L, S, A, ...] -> [M, L, B, ...] (explicit sizes: H may be 0)
        rest = x.shape[2:]
        x = jnp.swapaxes(x.reshape((seqs_per_env, seq_len, num_actors) + rest), 0, 1)
        x = jnp.take(x.reshape((seq_len, num_seqs, num_agents) + rest), perm, axis=1)
        x = x.reshape((seq_len, num_minibatches, num_seqs // num_minibatches * num_agents) + rest)
        return jnp.swapaxes(x, 0, 1)

    return jax.tree.map(cut_and_deal, batch)


def ppo_loss(params, apply_fn: Callable, cfg: IPPOConfig, mb: PPOBatch):
    """Clipped PPO objective on one minibatch (``[L, B, ...]`` leaves; sequences start from ``mb.hidden[0]``).

    ``apply_fn(params, hidden [B, H], obs [L, B, d], reset [L, B]) -> (hidden, pi, value [L, B])``.
    Returns ``(total, stats)`` with scalar ``stats`` keys total, value, actor, entropy, approx_kl, clip_frac.
    """
    _, pi, value = apply_fn(params, mb.hidden[0], mb.obs, mb.reset)

    value_loss = jnp.square(value - mb.target)
    if cfg.clip_value:
        clipped = mb.value + jnp.clip(value - mb.value, -cfg.clip_eps, cfg.clip_eps)
        value_loss = jnp.maximum(value_loss, jnp.square(clipped - mb.target))
    value_loss = 0.5 * value_loss.mean()

    log_ratio = pi.log_prob(mb.action) - mb.log_prob
    ratio = jnp.exp(log_ratio)
    adv = mb.advantage
    if cfg.normalize_advantages:
        adv = (adv - adv.mean()) / (adv.std() + 1e-8)
    actor_loss = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv).mean()
    entropy = pi.entropy().mean()

    total = actor_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
    stats = {
        "total": total,
        "value": value_loss,
        "actor": actor_loss,
        "entropy": entropy,
        "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
        "clip_frac": (jnp.abs(ratio - 1.0) > cfg.clip_eps).mean(),
    }
    return total, stats
