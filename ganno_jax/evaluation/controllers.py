"""Controllers for evaluation: learned or simple policies acting every env step, and handcrafted
schedules / other optimisers acting every optimiser step. ``baseline(name)`` builds the named ones.

- ``PolicyController``: any ``ganno_jax.agents.Policy`` (learned GANNO policy, random agent,
  constant no-op) choosing the Appendix D actions every ``tau`` steps, under the ``EnvParams`` it was
  trained with (kept whole: observation mask, LR/WD bounds, weight-decay control; evaluation changes only
  ``EnvParams.for_evaluation``'s fields) and its training ``variant`` (``single_agent``: one global
  action). ``from_run`` loads a trained run's, with
  its actions sampled (as Mava's executors act, the paper's evaluation) or greedy (``EVAL_ACTIONS``);
  a run of several trained members (``members``) gives one controller whose ``members`` policies
  are all evaluated on every (initial LR, seed) cell.
- ``ScheduleController``: an optax schedule from ``baselines.SCHEDULES`` evaluated at every
  optimiser step, with the task's optimiser (``optimizer=None``) or another from
  ``baselines.optimizers`` (Lion, LAMB, schedule-free AdamW, Prodigy). Weight decay: the task's
  ``weight_decay_mode`` with the task's optimiser, each other optimiser's own (decoupled).

VeLO needs downloaded weights and is left out.
"""
from __future__ import annotations

from typing import Any, Optional

import flax.struct

from ganno_jax.agents import RandomPolicy
from ganno_jax.baselines.schedules import SCHEDULES
from ganno_jax.checks import check_choice
from ganno_jax.env.features import NUM_ACTIONS
from ganno_jax.env.layerwise import EnvParams
from ganno_jax.env.wrappers import check_variant
from ganno_jax.runs import load_policy
from ganno_jax.tasks.optimizers import OPTIMIZERS

#: How a learned policy picks its action in evaluation: ``sample`` from the policy (seeded by the run's
#: key, so every method keeps its common random numbers) or ``greedy`` (its most likely action).
EVAL_ACTIONS = ("sample", "greedy")
#: Optimiser baselines ``baseline`` knows, with the schedule each runs under: Lion and Prodigy at a
#: constant LR; LAMB with cosine decay (GANNO Table 1: "LAMB w/ cosine decay"); schedule-free AdamW with
#: the linear warm-up its authors recommend (no decay).
OPTIMIZER_BASELINES = {"lion": "constant", "lamb": "cosine", "schedule_free_adamw": "warmup_linear",
                       "prodigy": "constant"}


@flax.struct.dataclass
class ScheduleController:
    """A handcrafted LR schedule (all layers alike), applied at every optimiser step."""

    name: str = flax.struct.field(pytree_node=False)
    schedule: str = flax.struct.field(pytree_node=False, default="constant")
    optimizer: Optional[str] = flax.struct.field(pytree_node=False, default=None)  # None: the task's own

    def __post_init__(self):
        check_choice("schedule", self.schedule, SCHEDULES)
        if self.optimizer is not None:
            check_choice("optimizer", self.optimizer, OPTIMIZERS)


@flax.struct.dataclass
class PolicyController:
    """A policy (``agents.Policy``) choosing LR actions every env step.

    ``env_params``: the ``EnvParams`` the policy was trained with (a run's, whole, without data; default:
    the paper's); ``variant``: its training variant (``env.wrappers.VARIANTS``). ``members > 1``: ``policy``
    holds that many independently trained policies stacked on a leading axis of its arrays (a run trained
    with ``members``); evaluation runs each of them on every cell. ``optimizer``: the inner optimiser whose
    step the policy scales per layer (None: the task's; a controller trained over Prodigy names ``prodigy``).
    """

    name: str = flax.struct.field(pytree_node=False)
    policy: Any = None
    env_params: EnvParams = flax.struct.field(pytree_node=False, default=EnvParams())
    variant: str = flax.struct.field(pytree_node=False, default="ganno")
    members: int = flax.struct.field(pytree_node=False, default=1)
    optimizer: Optional[str] = flax.struct.field(pytree_node=False, default=None)  # None: the task's own

    def __post_init__(self):
        check_variant(self.variant)
        if self.optimizer is not None:
            check_choice("optimizer", self.optimizer, OPTIMIZERS)
        if not isinstance(self.env_params, EnvParams) or self.env_params.data is not None:
            raise ValueError("env_params must be an EnvParams without data (evaluation gives each task's)")


def baseline_names() -> list[str]:
    """Names ``baseline`` understands: every schedule, ``random`` and the optimiser baselines."""
    return [*SCHEDULES, "random", *OPTIMIZER_BASELINES]


def baseline(name: str):
    """The baseline controller called ``name`` (see ``baseline_names()``); learned policies come from
    ``learned`` / ``from_run``."""
    check_choice("controller", name, baseline_names())
    if name == "random":
        return PolicyController("random", RandomPolicy(NUM_ACTIONS))
    if name in OPTIMIZER_BASELINES:
        return ScheduleController(name, schedule=OPTIMIZER_BASELINES[name], optimizer=name)
    return ScheduleController(name, schedule=name)


def check_eval_actions(actions: str) -> str:
    """``actions`` if it is one of ``EVAL_ACTIONS``, else ``ValueError`` naming the allowed values."""
    return check_choice("eval_actions", actions, EVAL_ACTIONS)


def learned(name: str, policy, env_params: Optional[EnvParams] = None, variant: str = "ganno",
            members: int = 1, optimizer: Optional[str] = None) -> PolicyController:
    """Controller for a trained policy (e.g. ``agents.policy_from(out)``) under the ``EnvParams`` it was
    trained with (None: the paper's; any ``data`` is dropped), its training ``variant``, the number of
    trained policies stacked in it (``members``) and the inner optimiser it drives (None: the task's)."""
    params = EnvParams() if env_params is None else env_params.replace(data=None)
    return PolicyController(name, policy, env_params=params, variant=variant, members=members, optimizer=optimizer)


def from_run(run_dir: str, actions: str = "greedy", name: Optional[str] = None) -> PolicyController:
    """The controller of a trained run folder (``ganno train``, an experiment's ``<out>/agent``): its
    policy acting by ``actions`` (``EVAL_ACTIONS``) with its variant's observation mask / single-agent
    setting, its saved ``EnvParams`` whole and all of its trained policies (read back from
    ``config.json``). ``name`` defaults to ``GANNO`` (``GANNO-<variant>`` for ablations)."""
    policy, config = load_policy(run_dir, greedy=check_eval_actions(actions) == "greedy")
    if name is None:
        name = "GANNO" if config.variant == "ganno" else f"GANNO-{config.variant.replace('_', '-')}"
    return learned(name, policy, config.env_params, config.variant, config.members)
