"""Named optimisers for the baselines, all from optax / optax.contrib, as ``InnerTrainer`` update rules.

=====================  =========================================================================
name                   update rule
=====================  =========================================================================
None                   the task's own optimiser (``scale_by_adam`` for adam, identity for sgd)
lion                   ``optax.scale_by_lion()`` direction x LR
lamb                   ``scale_by_adam(eps=1e-6)``, ``add_decayed_weights(wd)``, then
                       ``scale_by_trust_ratio()``, x LR: ``optax.lamb`` and the LAMB paper
schedule_free_adamw    ``optax.contrib.schedule_free_adamw(lr, weight_decay=wd)``; measured at
                       its averaged iterate (``schedule_free_eval_params``)
prodigy                ``optax.contrib.prodigy(lr / init_lr, estim_lr0=init_lr, weight_decay=wd)``
=====================  =========================================================================

The direction optimisers (the task's, lion, lamb) take per-layer LRs. The task's own optimiser applies
the decay as ``task.weight_decay_mode`` says (``l2``: ``wd * theta`` added to the gradient, as GANNO's
objective; ``decoupled``: ``lr * wd * theta``, ``optax.adamw``). The other optimisers keep the decay
their authors define, whatever the task's mode (``weight_decay_mode(optimizer, task_mode)`` names it):
Lion decoupled (``optax.lion``); LAMB decays inside its trust ratio, so the layer's step is
``lr * ||theta|| / ||adam + wd theta|| * (adam + wd theta)``; schedule-free AdamW and Prodigy own part of
their step size, so they run with one global LR per step (``update_rules.OptimizerRule``) and apply
their own AdamW-style decay, also scaled by the step size. Their initial LR keeps its meaning:
schedule-free AdamW's LR is the grid's initial LR (times the schedule); Prodigy starts its step-size
estimate ``d`` at the initial LR (``estim_lr0``, paper default 1e-6) and multiplies it by the
schedule's unit value, so a constant
schedule is Prodigy as published (``learning_rate = 1``) and the grid probes its sensitivity to
``d0``. Prodigy's reported LR is the adapted ``d`` times the schedule.
"""
from __future__ import annotations

from typing import Optional

import optax

from ganno_jax.env.update_rules import DecayedDirectionRule, DirectionRule, OptimizerRule


def _schedule_free_adamw(lr, init_lr, weight_decay):
    return optax.contrib.schedule_free_adamw(learning_rate=lr, weight_decay=weight_decay)


def _prodigy(lr, init_lr, weight_decay):
    return optax.contrib.prodigy(learning_rate=lr / init_lr, estim_lr0=init_lr, weight_decay=weight_decay)


def _lamb(weight_decay):
    return optax.chain(optax.scale_by_adam(eps=1e-6), optax.add_decayed_weights(weight_decay),
                       optax.scale_by_trust_ratio())


def _prodigy_lr(state, lrs, init_lr):
    return state.estim_lr * lrs / init_lr


#: Optimisers whose initial LR must be > 0 (Prodigy divides by its initial step-size estimate).
POSITIVE_INIT_LR = ("prodigy",)
UPDATE_RULES = ("lion", "lamb", "schedule_free_adamw", "prodigy")


def make_update_rule(optimizer: Optional[str]):
    """``InnerTrainer`` rule for ``optimizer`` (one of ``UPDATE_RULES``; None: the task's own adam/sgd)."""
    if optimizer is None:
        return None
    if optimizer == "lion":
        return DirectionRule(optax.scale_by_lion())
    if optimizer == "lamb":
        return DecayedDirectionRule(_lamb)
    if optimizer == "schedule_free_adamw":
        return OptimizerRule(optimizer, _schedule_free_adamw, eval_params=optax.contrib.schedule_free_eval_params)
    if optimizer == "prodigy":
        return OptimizerRule(optimizer, _prodigy, effective_lr=_prodigy_lr)
    raise ValueError(f"optimizer={optimizer!r} is not valid; allowed: None (the task's own), "
                     f"{', '.join(UPDATE_RULES)}")


def weight_decay_mode(optimizer: Optional[str], task_mode: str) -> str:
    """How the decay enters a run with ``optimizer``: ``task_mode`` (the task's ``weight_decay_mode``)
    for the task's own optimiser (None), else the optimiser's own (``decoupled`` for every one of
    ``UPDATE_RULES``)."""
    return task_mode if optimizer is None else make_update_rule(optimizer).weight_decay_mode


def check_optimizer_init_lrs(optimizer: Optional[str], init_lrs) -> None:
    """``ValueError`` when ``optimizer`` needs initial LRs > 0 and ``init_lrs`` holds one <= 0."""
    bad = [lr for lr in init_lrs if lr <= 0]
    if optimizer in POSITIVE_INIT_LR and bad:
        raise ValueError(f"init_lrs contains {bad[0]!r}; optimizer {optimizer!r} needs initial LRs > 0 "
                         "(its initial step-size estimate d0)")
