"""GANNO's per-layer actions: the paper's nine learning-rate actions and the optional weight-decay ones.

Learning-rate actions (paper Appendix D), index -> operation on the layer's LR:

    0: +0 (no-op)   1: x1.01   2: x1.10   3: /1.01   4: /1.10
    5: +0.0005      6: -0.0005 7: +0.001  8: -0.001

Action sets (``EnvParams.action_set``, static): ``paper`` is the nine above (the default and the paper-scale
set); ``wide`` (beyond the paper, issue 22) adds four coarse multiplicative steps after them:

    9: x1.25        10: /1.25  11: x2     12: /2

Decided: with the paper's set an LR moves by at most x1.1 (or +0.001) per decision, so a run of 10
decisions can reach at most 2.6x its initial LR; the good LR of a CPU-scale task often lies 3-30x away
(docs/decisions.md, "Room to act"). ``wide`` keeps the paper's nine indices unchanged, so one table serves
both sets and a paper-set policy's actions mean the same in a wide env; only the policy's choices (its
head and the previous-action one-hot of the observation) grow from 9 to 13.

Weight-decay actions (beyond the paper, issue 14; ``EnvParams.control_wd``), index -> operation on the
layer's weight decay:

    0: +0 (no-op)   1: x1.25   2: /1.25   3: x2   4: /2

Decided: weight decays worth trying span decades (the paper evaluates 1e-4, 1e-2 and 0.1), so the WD
actions are multiplicative only, with a fine (x1.25) and a coarse (x2) step: three x2 steps cover a
decade, where the LR's x1.10 would need 24. Action 0 is the no-op in both, so the joint no-op of the
difference reward is "keep LR and WD". A weight decay of exactly 0 stays 0.

With weight-decay control an agent's action is the pair ``[lr_action, wd_action]`` (a factorised
discrete action: ``spaces.MultiDiscrete((9, 5))``); without it, the LR action alone.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ganno_jax.checks import check_choice

ACTION_NAMES = ("+0", "x1.01", "x1.10", "/1.01", "/1.10", "+0.0005", "-0.0005", "+0.001", "-0.001")
NUM_ACTIONS = len(ACTION_NAMES)
#: name -> the LR actions' names in index order; every set starts with the paper's nine.
ACTION_SETS = {"paper": ACTION_NAMES, "wide": ACTION_NAMES + ("x1.25", "/1.25", "x2", "/2")}
# one table for every set (the widest), indexed by action
_ACTION_MUL = np.array([1.0, 1.01, 1.10, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.25, 1.0, 2.0, 1.0], np.float32)
_ACTION_DIV = np.array([1.0, 1.0, 1.0, 1.01, 1.10, 1.0, 1.0, 1.0, 1.0, 1.0, 1.25, 1.0, 2.0], np.float32)
_ACTION_ADD = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 5e-4, -5e-4, 1e-3, -1e-3, 0.0, 0.0, 0.0, 0.0], np.float32)

WD_ACTION_NAMES = ("+0", "x1.25", "/1.25", "x2", "/2")
NUM_WD_ACTIONS = len(WD_ACTION_NAMES)
_WD_FACTOR = np.array([1.0, 1.25, 1 / 1.25, 2.0, 0.5], np.float32)


def num_actions(action_set: str = "paper") -> int:
    """LR actions each agent chooses from in ``action_set`` (``ACTION_SETS``): 9 (paper) or 13 (wide);
    ``ValueError`` naming the sets."""
    return len(ACTION_SETS[check_choice("action_set", action_set, ACTION_SETS)])


def apply_actions(lrs: jax.Array, actions: jax.Array, lr_min, lr_max) -> jax.Array:
    """New learning rates [N] after LR actions [N] of any action set (see the module table; the sets share
    indices), clipped to [lr_min, lr_max]."""
    new = (lrs * jnp.asarray(_ACTION_MUL)[actions] / jnp.asarray(_ACTION_DIV)[actions]
           + jnp.asarray(_ACTION_ADD)[actions])
    return jnp.clip(new, lr_min, lr_max)


def apply_wd_actions(wds: jax.Array, actions: jax.Array, wd_min, wd_max) -> jax.Array:
    """New weight decays [N] after WD actions [N] (see the module table), clipped to [wd_min, wd_max]."""
    return jnp.clip(wds * jnp.asarray(_WD_FACTOR)[actions], wd_min, wd_max)


def action_nvec(control_wd: bool, action_set: str = "paper") -> tuple[int, ...]:
    """Choices of each factor of one agent's action: ``(num_actions(action_set),)`` for LR control, with
    WD control ``(num_actions(action_set), 5)``."""
    lr_choices = num_actions(action_set)
    return (lr_choices, NUM_WD_ACTIONS) if control_wd else (lr_choices,)


def split_action(action: jax.Array, control_wd: bool) -> tuple[jax.Array, jax.Array | None]:
    """(LR actions [N], WD actions [N] or None) of an env action: [N] without WD control, [N, 2] with it."""
    action = jnp.asarray(action, jnp.int32)
    if not control_wd:
        return action, None
    if action.ndim < 1 or action.shape[-1] != 2:
        raise ValueError(f"with control_wd an action has shape [num_agents, 2] (LR action, WD action); got "
                         f"shape {action.shape}")
    return action[..., 0], action[..., 1]


def with_wd_noop(lr_actions: jax.Array, control_wd: bool) -> jax.Array:
    """LR actions [...] as env actions: unchanged without WD control, ``[..., 2]`` with the WD no-op added
    with it (how a handcrafted LR schedule, which keeps its weight decay, acts in a WD-controlling env)."""
    lr_actions = jnp.asarray(lr_actions, jnp.int32)
    return jnp.stack([lr_actions, jnp.zeros_like(lr_actions)], -1) if control_wd else lr_actions
