"""Controllers for evaluation: learned or simple policies acting every env step, and handcrafted
schedules / other optimisers acting every optimiser step. ``get(name)`` builds the named ones.

- ``PolicyController``: any ``ganno_jax.agents.Controller`` (learned GANNO policy, random agent,
  constant no-op) choosing the Appendix D actions every ``tau`` steps; ``obs_mask`` and
  ``single_agent`` select the paper's ablation variants.
- ``ScheduleController``: an optax schedule from ``baselines.SCHEDULES`` evaluated at every
  optimiser step, with the task's optimiser or another from ``baselines.optimizers`` (Lion, LAMB,
  schedule-free AdamW, Prodigy). Weight decay is AdamW-style (scaled by the step size) for all.

VeLO needs downloaded weights and is left out.
"""
from __future__ import annotations

from typing import Any, Optional

import flax.struct

from ganno_jax.baselines.optimizers import make_update_rule
from ganno_jax.baselines.schedules import SCHEDULES

#: Optimiser baselines ``get`` knows, with the schedule each runs under: Lion, LAMB and Prodigy at a
#: constant LR; schedule-free AdamW with the linear warm-up its authors recommend (no decay).
OPTIMIZER_BASELINES = {"lion": "constant", "lamb": "constant", "schedule_free_adamw": "warmup_linear",
                       "prodigy": "constant"}


@flax.struct.dataclass
class ScheduleController:
    """A handcrafted LR schedule (all layers alike), applied at every optimiser step."""

    name: str = flax.struct.field(pytree_node=False)
    schedule: str = flax.struct.field(pytree_node=False, default="constant")
    optimizer: str = flax.struct.field(pytree_node=False, default="task")

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not valid; allowed: {', '.join(SCHEDULES)}")
        make_update_rule(self.optimizer)  # validates the name


@flax.struct.dataclass
class PolicyController:
    """A policy (``agents.Controller``) choosing LR actions every env step."""

    name: str = flax.struct.field(pytree_node=False)
    policy: Any = None
    obs_mask: Optional[tuple] = flax.struct.field(pytree_node=False, default=None)
    single_agent: bool = flax.struct.field(pytree_node=False, default=False)


def names() -> list[str]:
    """Names ``get`` understands: every schedule, ``random`` and the optimiser baselines."""
    return [*SCHEDULES, "random", *OPTIMIZER_BASELINES]


def get(name: str):
    """The controller called ``name`` (see ``names()``); learned policies come from ``learned``."""
    from ganno_jax.agents import RandomPolicy
    from ganno_jax.env.features import NUM_ACTIONS

    if name in SCHEDULES:
        return ScheduleController(name, schedule=name)
    if name == "random":
        return PolicyController("random", RandomPolicy(NUM_ACTIONS))
    if name in OPTIMIZER_BASELINES:
        return ScheduleController(name, schedule=OPTIMIZER_BASELINES[name], optimizer=name)
    raise ValueError(f"unknown controller {name!r}; valid names: {', '.join(names())}")


def learned(name: str, policy, obs_mask: Optional[tuple] = None, single_agent: bool = False) -> PolicyController:
    """Controller for a trained policy (e.g. ``agents.policy_from(out)``) and its training variant."""
    return PolicyController(name, policy, obs_mask=obs_mask, single_agent=single_agent)
