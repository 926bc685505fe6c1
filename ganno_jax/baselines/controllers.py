"""Controllers for evaluation: learned or simple policies acting every env step, and handcrafted
schedules / other optimisers acting every optimiser step. ``get(name)`` builds the named ones.

- ``PolicyController``: any ``ganno_jax.agents.Controller`` (learned GANNO policy, random agent,
  constant no-op) choosing the Appendix D actions every ``tau`` steps; ``obs_mask`` and
  ``single_agent`` select the paper's ablation variants.
- ``ScheduleController``: an optax schedule from ``baselines.SCHEDULES`` evaluated at every
  optimiser step, with the task's optimiser or another update direction (``lion``: optax
  ``scale_by_lion``; ``lamb``: ``scale_by_adam(eps=1e-6)`` followed by ``scale_by_trust_ratio``).
  Weight decay stays decoupled (``lr * wd * theta``) for every direction, as in the env.

VeLO needs downloaded weights and is left out. Schedule-free AdamW and Prodigy keep their own
learning-rate state inside the optimiser, which does not fit the per-layer "direction x LR"
update the env uses; they are not provided yet.
"""
from __future__ import annotations

from typing import Any, Optional

import flax.struct
import optax

from ganno_jax.baselines.schedules import SCHEDULES, make_schedule

DIRECTIONS = ("task", "lion", "lamb")


def make_direction(optimizer: str) -> Optional[optax.GradientTransformation]:
    """Update-direction transform for ``optimizer`` (None: the task's own adam/sgd)."""
    if optimizer == "task":
        return None
    if optimizer == "lion":
        return optax.scale_by_lion()
    if optimizer == "lamb":
        return optax.chain(optax.scale_by_adam(eps=1e-6), optax.scale_by_trust_ratio())
    raise ValueError(f"optimizer={optimizer!r} is not valid; allowed: {', '.join(DIRECTIONS)}")


@flax.struct.dataclass
class ScheduleController:
    """A handcrafted LR schedule (all layers alike), applied at every optimiser step."""

    name: str = flax.struct.field(pytree_node=False)
    schedule: str = flax.struct.field(pytree_node=False, default="constant")
    optimizer: str = flax.struct.field(pytree_node=False, default="task")

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not valid; allowed: {', '.join(SCHEDULES)}")
        make_direction(self.optimizer)

    def lr_schedule(self, init_lr, total_steps: int) -> optax.Schedule:
        """step -> LR for a run starting at ``init_lr`` with ``total_steps`` optimiser steps."""
        return make_schedule(self.schedule, init_lr, total_steps)


@flax.struct.dataclass
class PolicyController:
    """A policy (``agents.Controller``) choosing LR actions every env step."""

    name: str = flax.struct.field(pytree_node=False)
    policy: Any = None
    obs_mask: Optional[tuple] = flax.struct.field(pytree_node=False, default=None)
    single_agent: bool = flax.struct.field(pytree_node=False, default=False)


def names() -> list[str]:
    """Names ``get`` understands: every schedule, ``random``, ``lion``, ``lamb``."""
    return [*SCHEDULES, "random", "lion", "lamb"]


def get(name: str):
    """The controller called ``name`` (see ``names()``); learned policies come from ``learned``."""
    from ganno_jax.agents import RandomPolicy
    from ganno_jax.env.features import NUM_ACTIONS

    if name in SCHEDULES:
        return ScheduleController(name, schedule=name)
    if name == "random":
        return PolicyController("random", RandomPolicy(NUM_ACTIONS))
    if name in ("lion", "lamb"):
        return ScheduleController(name, schedule="constant", optimizer=name)
    raise ValueError(f"unknown controller {name!r}; valid names: {', '.join(names())}")


def learned(name: str, policy, obs_mask: Optional[tuple] = None, single_agent: bool = False) -> PolicyController:
    """Controller for a trained policy (e.g. ``agents.policy_from(out)``) and its training variant."""
    return PolicyController(name, policy, obs_mask=obs_mask, single_agent=single_agent)
