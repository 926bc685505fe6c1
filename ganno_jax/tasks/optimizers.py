"""Inner optimisers by name (``Task(optimizer=...)``): one registry, built-ins registered like a user's.

Each entry builds the update rule (``tasks.update_rules``) that ``InnerTrainer`` trains with, and in every
rule the per-layer LR is data, so GANNO's per-layer LR scales that optimiser's step per layer:

=====================  =========================================================================
name                   rule; what the layer's LR ``lr`` means
=====================  =========================================================================
adam                   ``scale_by_adam()`` direction x ``lr``; decay per ``task.weight_decay_mode``
sgd                    the gradient x ``lr``; decay per ``task.weight_decay_mode``
momentum               ``optax.trace(0.9)`` (``optax.sgd(lr, momentum=0.9)``) x ``lr``; decay per mode
adamw                  ``scale_by_adam()`` x ``lr``, always decoupled decay (``optax.adamw``)
lion                   ``optax.lion(1, wd)``'s update x ``lr`` (= ``optax.lion(lr, weight_decay=wd)``)
lamb                   ``optax.lamb(1, wd)``'s update x ``lr``: decay inside the trust ratio, as the paper
prodigy                multiplier ``lr / lr0`` on Prodigy's own step (``d0`` = initial LR ``lr0``)
schedule_free_adamw    the layer's step size gamma (its AdamW step on ``z``); averaged with the largest
=====================  =========================================================================

Optimisers a user registers (``register_optimizer(name, factory)``) run like lion and lamb: each layer moves
by its LR times the update of ``factory(1.0, weight_decay)``. The ``adam`` / ``sgd`` / ``momentum`` rules
take a per-layer weight decay (joint LR + weight-decay control); the others one global decay, their own.
"""
from __future__ import annotations

from typing import Callable

import optax

from ganno_jax.registry import Registry
from ganno_jax.tasks.update_rules import DirectionRule, ProdigyRule, ScaledRule, ScheduleFreeRule

#: ``name -> rule(weight_decay_mode)``: the rule ``InnerTrainer`` trains with for ``Task(optimizer=name)``.
OPTIMIZERS: Registry[Callable] = Registry("optimizer")


def register_optimizer(name: str, factory: Callable, overwrite: bool = False) -> None:
    """Makes ``Task(optimizer=name)`` train with ``factory(learning_rate, weight_decay) ->
    optax.GradientTransformation``: each layer moves by its LR times the update of ``factory(1.0,
    weight_decay)`` (rebuilt every step with the traced decay, so its state must not depend on the decay's
    value), which is ``factory(lr, weight_decay)`` when its LR only scales its update, as in optax's own
    optimisers. ``overwrite=True`` replaces a registered name."""
    if not callable(factory) or not isinstance(factory(1.0, 0.0), optax.GradientTransformation):
        raise ValueError(f"factory={factory!r} must be callable as factory(learning_rate, weight_decay) -> "
                         "optax.GradientTransformation")
    OPTIMIZERS.register(name, lambda weight_decay_mode: ScaledRule(name, factory), overwrite)


def optimizer_rule(name: str, weight_decay_mode: str = "decoupled"):
    """The update rule of optimiser ``name`` (``weight_decay_mode``: the task's, used by adam / sgd /
    momentum); ``ValueError`` naming the registered optimisers."""
    return OPTIMIZERS.get(name)(weight_decay_mode)


def _direction(name: str, direction: Callable[[], optax.GradientTransformation], mode: str | None = None) -> None:
    """Registers a ``DirectionRule`` optimiser (decay per the task's mode unless ``mode`` fixes it)."""
    OPTIMIZERS.register(name, lambda weight_decay_mode: DirectionRule(direction(), mode or weight_decay_mode, name))


_direction("adam", optax.scale_by_adam)
_direction("sgd", optax.identity)
_direction("momentum", lambda: optax.trace(decay=0.9))
_direction("adamw", optax.scale_by_adam, mode="decoupled")
register_optimizer("lion", lambda learning_rate, weight_decay: optax.lion(learning_rate, weight_decay=weight_decay))
register_optimizer("lamb", lambda learning_rate, weight_decay: optax.lamb(learning_rate, weight_decay=weight_decay))
OPTIMIZERS.register("prodigy", lambda weight_decay_mode: ProdigyRule())
OPTIMIZERS.register("schedule_free_adamw", lambda weight_decay_mode: ScheduleFreeRule())
