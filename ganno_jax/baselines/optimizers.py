"""Optimiser baselines: named optimisers of the registry (``tasks.OPTIMIZERS``) run under one schedule,
the same LR for every layer, through ``InnerTrainer`` with that optimiser's update rule.

=====================  =========================================================================
name                   update rule (``tasks/update_rules.py``)
=====================  =========================================================================
None                   the task's own optimiser, decay per ``task.weight_decay_mode``
lion                   ``optax.lion(lr, weight_decay=wd)``
lamb                   ``optax.lamb(lr, weight_decay=wd)``: decay inside the trust ratio, as the paper
schedule_free_adamw    ``optax.contrib.schedule_free_adamw(lr, weight_decay=wd)``; measured at its
                       averaged iterate
prodigy                ``optax.contrib.prodigy(1, estim_lr0=init_lr, weight_decay=wd)``, its step times
                       ``lr / init_lr``
=====================  =========================================================================

Each keeps the decay its authors define (decoupled), whatever the task's mode (its rule's ``weight_decay_mode``
names it). The initial LR keeps its meaning: schedule-free AdamW's LR is the grid's initial LR (times the
schedule); Prodigy starts its step-size estimate ``d`` at the initial LR (``estim_lr0``, paper default
1e-6) and multiplies its step by the schedule's value over the initial LR, so a constant schedule is
Prodigy as published (``learning_rate = 1``) and the grid probes its sensitivity to ``d0``. Prodigy's
reported LR is the adapted ``d`` times that multiplier.
"""
from __future__ import annotations

from typing import Optional

from ganno_jax.tasks.optimizers import optimizer_rule

#: The optimiser baselines (``evaluation.controllers.OPTIMIZER_BASELINES`` gives each one's schedule).
UPDATE_RULES = ("lion", "lamb", "schedule_free_adamw", "prodigy")


def make_update_rule(optimizer: Optional[str]):
    """``InnerTrainer`` rule for ``optimizer``, a name in ``tasks.OPTIMIZERS`` (None: the task's own)."""
    return None if optimizer is None else optimizer_rule(optimizer)


def check_optimizer_init_lrs(optimizer: Optional[str], init_lrs) -> None:
    """``ValueError`` when ``optimizer`` needs initial LRs > 0 (Prodigy's ``d0``) and ``init_lrs`` holds one <= 0."""
    bad = [lr for lr in init_lrs if lr <= 0]
    if optimizer is not None and make_update_rule(optimizer).positive_init_lr and bad:
        raise ValueError(f"init_lrs contains {bad[0]!r}; optimizer {optimizer!r} needs initial LRs > 0 "
                         "(its initial step-size estimate d0)")
