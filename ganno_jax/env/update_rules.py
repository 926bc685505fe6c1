"""Update rules: how ``InnerTrainer`` turns one minibatch gradient into new parameters.

Two kinds, one protocol (``init``, ``apply``, ``eval_params``, ``effective_lr``, ``per_layer_lrs``):

- ``DirectionRule`` (the env's rule, GANNO): an optax transform gives a direction ``u`` and each
  parameter moves by ``-lr[layer] * u``. The decay enters as the rule's ``weight_decay_mode`` says:
  ``l2`` feeds ``g + weight_decay * theta`` to the transform (GANNO's J(theta; lambda), PyTorch's
  ``Adam(weight_decay=...)``); ``decoupled`` moves by ``-lr[layer] * (u + weight_decay * theta)``
  (AdamW). Learning rates are per layer and are plain data, so the optimiser state never depends on them.
  ``DecayedDirectionRule`` is its variant whose direction already holds the decay (LAMB's trust
  ratio scales the decayed step): each parameter moves by ``-lr[layer] * u``.
- ``OptimizerRule``: a whole optax optimiser that owns part of its step size (schedule-free AdamW
  keeps an averaged iterate, Prodigy adapts a step-size estimate ``d``). It is rebuilt at every step
  from ``make(lr, init_lr, weight_decay)`` with the step's *global* LR (the same for all layers), the
  run's initial LR and the weight decay, all of which may be traced: so a grid of initial LRs still
  vmaps and nothing recompiles. The optimiser applies its own (AdamW-style, LR-scaled) decay.

Weight decays reach ``apply`` as ``wd_leaves``, one (possibly traced) scalar per parameter leaf like the
LRs. ``DirectionRule`` applies each leaf's own (``per_layer_wd``: a per-layer weight decay works);
the others take one global decay, that of the first leaf.

Every rule names how its decay is applied in ``weight_decay_mode`` (``l2`` or ``decoupled``), which the
evaluation tables print.
"""
from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import optax
from flax import struct

from ganno_jax.tasks.config import WEIGHT_DECAY_MODES


class DirectionRule:
    """Per-layer LRs times an optax direction, with L2 (``g + wd * theta``) or decoupled (``lr * wd * theta``)
    weight decay.

    Args:
      direction: optax transform from a gradient to the direction ``u`` (e.g. ``scale_by_adam()``).
      weight_decay_mode: ``decoupled`` (default, AdamW) or ``l2`` (decay added to the gradient first).
    """

    per_layer_lrs = True
    per_layer_wd = True

    def __init__(self, direction: optax.GradientTransformation, weight_decay_mode: str = "decoupled"):
        if weight_decay_mode not in WEIGHT_DECAY_MODES:
            raise ValueError(f"weight_decay_mode={weight_decay_mode!r} is not valid; allowed: "
                             f"{', '.join(WEIGHT_DECAY_MODES)}")
        self.direction = direction
        self.weight_decay_mode = weight_decay_mode

    def init(self, params, init_lr=None) -> optax.OptState:
        """Direction state for ``params`` (``init_lr`` is not needed)."""
        return self.direction.init(params)

    def apply(self, grads, opt_state, params, lr_leaves, wd_leaves):
        """(new params, new state, direction u); ``lr_leaves`` / ``wd_leaves``: one LR / weight decay per
        parameter leaf (trees of scalars, may be traced)."""
        if self.weight_decay_mode == "l2":
            grads = jax.tree.map(lambda g, p, wd: g + wd * p, grads, params, wd_leaves)
            direction, opt_state = self.direction.update(grads, opt_state, params)
            new = jax.tree.map(lambda p, u, lr: p - lr * u, params, direction, lr_leaves)
        else:
            direction, opt_state = self.direction.update(grads, opt_state, params)
            new = jax.tree.map(lambda p, u, lr, wd: p - lr * (u + wd * p), params, direction, lr_leaves, wd_leaves)
        return new, opt_state, direction

    def eval_params(self, params, opt_state):
        """Parameters at which the model is evaluated: the iterate itself."""
        return params

    def effective_lr(self, opt_state, lrs: jax.Array) -> jax.Array:
        """The step sizes actually applied, [num_agents]: the given LRs."""
        return lrs


class DecayedDirectionRule(DirectionRule):
    """Per-layer LRs times a direction that already holds the weight decay: ``-lr[layer] * u``.

    For optimisers whose decay must pass through the direction, e.g. LAMB, where the trust ratio
    ``||theta|| / ||adam + wd * theta||`` scales the decayed step (You et al. 2020, ``optax.lamb``).
    ``make(weight_decay) -> optax.GradientTransformation`` is rebuilt at every step with the (possibly
    traced) decay; its state must not depend on the decay's value.
    """

    per_layer_wd = False

    def __init__(self, make: Callable):
        super().__init__(make(0.0), weight_decay_mode="decoupled")
        self.make = make

    def apply(self, grads, opt_state, params, lr_leaves, wd_leaves):
        """(new params, new state, direction u with the decay); ``lr_leaves``: one LR per parameter leaf;
        the decay is global: ``wd_leaves``' first leaf."""
        direction, opt_state = self.make(jax.tree.leaves(wd_leaves)[0]).update(grads, opt_state, params)
        return jax.tree.map(lambda p, u, lr: p - lr * u, params, direction, lr_leaves), opt_state, direction


@struct.dataclass
class OwnedLRState:
    """State of an ``OptimizerRule``: the run's initial LR (scalar) and the optax optimiser's state."""

    init_lr: jax.Array
    inner: optax.OptState


class OptimizerRule:
    """A whole optax optimiser that owns part of its step size; one global LR per step.

    Args:
      name: the optimiser's name (error messages).
      make: ``make(lr, init_lr, weight_decay) -> optax.GradientTransformation``; called with traced
        scalars, so it must not branch on their values in Python.
      eval_params: ``eval_params(optax_state, params) -> params`` at which the model is evaluated
        (default: ``params``; schedule-free methods evaluate their averaged iterate).
      effective_lr: ``effective_lr(optax_state, lr, init_lr) -> lr`` applied step size (default ``lr``).
    """

    per_layer_lrs = False
    per_layer_wd = False
    weight_decay_mode = "decoupled"

    def __init__(self, name: str, make: Callable, eval_params: Optional[Callable] = None,
                 effective_lr: Optional[Callable] = None):
        self.name = name
        self.make = make
        self._eval_params = eval_params
        self._effective_lr = effective_lr

    def init(self, params, init_lr=None) -> OwnedLRState:
        """Optimiser state for ``params`` in a run starting at ``init_lr`` (scalar, may be traced)."""
        if init_lr is None:
            raise ValueError(f"optimizer {self.name!r} needs the run's init_lr to build its state")
        init_lr = jnp.asarray(init_lr, jnp.float32)
        return OwnedLRState(init_lr, self.make(init_lr, init_lr, 0.0).init(params))

    def apply(self, grads, opt_state: OwnedLRState, params, lr_leaves, wd_leaves):
        """(new params, new state, applied step); every leaf of ``lr_leaves`` holds the same global LR, and
        the decay is global too (``wd_leaves``' first leaf)."""
        lr, weight_decay = jax.tree.leaves(lr_leaves)[0], jax.tree.leaves(wd_leaves)[0]
        updates, inner = self.make(lr, opt_state.init_lr, weight_decay).update(grads, opt_state.inner, params)
        return optax.apply_updates(params, updates), opt_state.replace(inner=inner), updates

    def eval_params(self, params, opt_state: OwnedLRState):
        """Parameters at which the model is evaluated (e.g. schedule-free's averaged iterate)."""
        return params if self._eval_params is None else self._eval_params(opt_state.inner, params)

    def effective_lr(self, opt_state: OwnedLRState, lrs: jax.Array) -> jax.Array:
        """The step sizes actually applied, [num_agents] (e.g. Prodigy's ``d * lr / init_lr``)."""
        if self._effective_lr is None:
            return lrs
        return self._effective_lr(opt_state.inner, lrs, opt_state.init_lr)
