"""Controllers for evaluation: learned or simple policies acting every env step, and handcrafted
schedules / other optimisers acting every optimiser step. ``baseline(name)`` builds the named ones.

- ``PolicyController``: any ``ganno_jax.agents.Policy`` (learned GANNO policy, random agent,
  constant no-op) choosing the Appendix D actions every ``tau`` steps (and, with ``wd_bounds``, the
  per-layer weight-decay actions); ``obs_mask`` and
  ``single_agent`` select the paper's ablation variants. ``from_run`` loads a trained run's, with
  its actions sampled (as Mava's executors act, the paper's evaluation) or greedy (``EVAL_ACTIONS``);
  a run of several trained agents (``train_seeds``) gives one controller whose ``members`` agents
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
from ganno_jax.baselines.optimizers import make_update_rule
from ganno_jax.baselines.schedules import SCHEDULES
from ganno_jax.env.features import NUM_ACTIONS
from ganno_jax.env.wrappers import VARIANTS
from ganno_jax.runs import load_policy

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
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is not valid; allowed: {', '.join(SCHEDULES)}")
        make_update_rule(self.optimizer)  # validates the name


@flax.struct.dataclass
class PolicyController:
    """A policy (``agents.Policy``) choosing LR actions every env step.

    ``members > 1``: ``policy`` holds that many independently trained agents stacked on a leading axis
    of its arrays (a run trained with ``train_seeds``); evaluation runs each of them on every cell.
    """

    name: str = flax.struct.field(pytree_node=False)
    policy: Any = None
    obs_mask: Optional[tuple] = flax.struct.field(pytree_node=False, default=None)
    single_agent: bool = flax.struct.field(pytree_node=False, default=False)
    # LR clip range (lr_min, lr_max) the policy was trained with; None: EnvParams' default
    lr_bounds: Optional[tuple] = flax.struct.field(pytree_node=False, default=None)
    # WD clip range (wd_min, wd_max) of a policy that also sets every layer's weight decay
    # (EnvParams.control_wd, actions [A, 2]); None: it sets LRs only
    wd_bounds: Optional[tuple] = flax.struct.field(pytree_node=False, default=None)
    members: int = flax.struct.field(pytree_node=False, default=1)


def baseline_names() -> list[str]:
    """Names ``baseline`` understands: every schedule, ``random`` and the optimiser baselines."""
    return [*SCHEDULES, "random", *OPTIMIZER_BASELINES]


def baseline(name: str):
    """The baseline controller called ``name`` (see ``baseline_names()``); learned policies come from
    ``learned`` / ``from_run``."""
    if name in SCHEDULES:
        return ScheduleController(name, schedule=name)
    if name == "random":
        return PolicyController("random", RandomPolicy(NUM_ACTIONS))
    if name in OPTIMIZER_BASELINES:
        return ScheduleController(name, schedule=OPTIMIZER_BASELINES[name], optimizer=name)
    raise ValueError(f"unknown controller {name!r}; valid names: {', '.join(baseline_names())}")


def check_eval_actions(actions: str) -> str:
    """``actions`` if it is one of ``EVAL_ACTIONS``, else ``ValueError`` naming the allowed values."""
    if actions not in EVAL_ACTIONS:
        raise ValueError(f"eval actions={actions!r} is not valid; allowed: {', '.join(EVAL_ACTIONS)}")
    return actions


def learned(name: str, policy, obs_mask: Optional[tuple] = None, single_agent: bool = False,
            lr_bounds: Optional[tuple] = None, members: int = 1, wd_bounds: Optional[tuple] = None) -> PolicyController:
    """Controller for a trained policy (e.g. ``agents.policy_from(out)``), its training variant, the
    LR clip range ``(lr_min, lr_max)`` it was trained with (None: ``EnvParams``' default), the number
    of trained agents stacked in it (``members``) and, for a policy trained with weight-decay control
    (``EnvParams.control_wd``), its WD clip range ``(wd_min, wd_max)``."""
    return PolicyController(name, policy, obs_mask=obs_mask, single_agent=single_agent, lr_bounds=lr_bounds,
                            members=members, wd_bounds=wd_bounds)


def from_run(run_dir: str, actions: str = "greedy", name: Optional[str] = None) -> PolicyController:
    """The controller of a trained run folder (``ganno train``, an experiment's ``<out>/agent``): its
    policy acting by ``actions`` (``EVAL_ACTIONS``) with its variant's observation mask / single-agent
    setting, the LR clip range of its ``EnvParams`` (and WD clip range, when it controls weight decays)
    and all of its trained agents (read back from ``config.json``). ``name`` defaults to ``GANNO``
    (``GANNO-<variant>`` for ablations)."""
    policy, config = load_policy(run_dir, greedy=check_eval_actions(actions) == "greedy")
    obs_mask, single = VARIANTS[config.variant]
    if name is None:
        name = "GANNO" if config.variant == "ganno" else f"GANNO-{config.variant.replace('_', '-')}"
    env_params = config.env_params
    wd_bounds = (env_params.wd_min, env_params.wd_max) if env_params.control_wd else None
    return learned(name, policy, obs_mask=obs_mask, single_agent=single, lr_bounds=(env_params.lr_min,
                   env_params.lr_max), members=config.train_seeds, wd_bounds=wd_bounds)
