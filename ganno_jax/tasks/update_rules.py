"""Update rules: how ``InnerTrainer`` turns one minibatch gradient into new parameters, per-layer LRs as data.

One protocol (``init``, ``apply``, ``eval_params``, ``effective_lr``; attributes ``name``,
``per_layer_lrs``, ``per_layer_wd``, ``weight_decay_mode``, ``positive_init_lr``). ``apply`` gets one LR
and one weight decay per parameter leaf (``lr_leaves``, ``wd_leaves``: trees of possibly traced scalars,
each leaf holding its layer's value), so changing an LR never recompiles and the optimiser state never
depends on the LRs' values.

- ``DirectionRule`` (adam, sgd, momentum, adamw): an optax transform gives a direction ``u`` and each
  parameter moves by ``-lr[layer] * u``. The decay enters as ``weight_decay_mode`` says: ``l2`` feeds
  ``g + weight_decay * theta`` to the transform (GANNO's J(theta; lambda), PyTorch's
  ``Adam(weight_decay=...)``); ``decoupled`` moves by ``-lr[layer] * (u + weight_decay * theta)`` (AdamW).
  Each leaf's own decay applies (``per_layer_wd``: joint LR + weight-decay control works).
- ``ScaledRule`` (lion, lamb, any ``register_optimizer`` factory): the optax optimiser
  ``factory(1.0, weight_decay)`` gives the step at LR 1 and each parameter moves by ``lr[layer]`` times it:
  for an optimiser whose LR is a final scale of its update (optax's adam, sgd, lion, lamb, ...) that is
  ``factory(lr, weight_decay)`` exactly, per layer. The decay is the optimiser's own, one global value.
- ``ProdigyRule``: Prodigy owns its step size ``d``. It runs as published (``optax.contrib.prodigy``,
  ``learning_rate=1``, ``d0`` = the run's initial LR ``lr0``), and the layer's LR is a multiplier on
  Prodigy's own step: each parameter moves by ``(lr[layer] / lr0) * prodigy_update``. The LR a policy
  sees and sets (the observation's LR column) is ``lr[layer]``, starting at ``lr0`` (multiplier 1); the
  step size actually applied (``effective_lr``) is ``d * lr[layer] / lr0``.
- ``ScheduleFreeRule``: schedule-free AdamW (``optax.contrib.schedule_free_adamw``) with the layer's LR as
  that layer's step size gamma: it multiplies the layer's AdamW step on the ``z`` sequence; the averaging
  weights use the largest layer LR (one average for the network). With equal LRs this is
  ``schedule_free_adamw(learning_rate=lr)`` exactly; the model is measured at the averaged iterate.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from ganno_jax.checks import check_choice

#: ``l2``: ``weight_decay * theta`` is added to the gradient before the optimiser (GANNO's J(theta; lambda),
#: ``torch.optim.Adam(weight_decay=...)``); ``decoupled``: ``lr * weight_decay * theta`` is subtracted
#: after it (AdamW).
WEIGHT_DECAY_MODES = ("l2", "decoupled")


class Rule:
    """Defaults of the protocol: per-layer LRs, one global (decoupled) decay, measured at the iterate."""

    name = "rule"
    per_layer_lrs = True
    per_layer_wd = False
    weight_decay_mode = "decoupled"
    positive_init_lr = False  # the initial LR must be > 0 (Prodigy's d0)

    def eval_params(self, params, opt_state):
        """Parameters at which the model is evaluated: the iterate itself."""
        return params

    def effective_lr(self, opt_state, lrs: jax.Array) -> jax.Array:
        """The step sizes actually applied, [num_agents]: the given LRs."""
        return lrs


def _global(wd_leaves) -> jax.Array:
    """The one weight decay of rules without per-layer decay: the first leaf's."""
    return jax.tree.leaves(wd_leaves)[0]


class DirectionRule(Rule):
    """Per-layer LRs times an optax direction, with L2 (``g + wd * theta``) or decoupled (``lr * wd * theta``)
    weight decay.

    Args:
      direction: optax transform from a gradient to the direction ``u`` (e.g. ``scale_by_adam()``).
      weight_decay_mode: ``decoupled`` (default, AdamW) or ``l2`` (decay added to the gradient first).
      name: the optimiser's name (error messages).
    """

    per_layer_wd = True

    def __init__(self, direction: optax.GradientTransformation, weight_decay_mode: str = "decoupled",
                 name: str = "direction"):
        check_choice("weight_decay_mode", weight_decay_mode, WEIGHT_DECAY_MODES)
        self.direction = direction
        self.weight_decay_mode = weight_decay_mode
        self.name = name

    def init(self, params, init_lr=None) -> optax.OptState:
        """Direction state for ``params`` (``init_lr`` is not needed)."""
        return self.direction.init(params)

    def apply(self, grads, opt_state, params, lr_leaves, wd_leaves):
        """(new params, new state, direction u); one LR / weight decay per parameter leaf."""
        if self.weight_decay_mode == "l2":
            grads = jax.tree.map(lambda g, p, wd: g + wd * p, grads, params, wd_leaves)
            direction, opt_state = self.direction.update(grads, opt_state, params)
            new = jax.tree.map(lambda p, u, lr: p - lr * u, params, direction, lr_leaves)
        else:
            direction, opt_state = self.direction.update(grads, opt_state, params)
            new = jax.tree.map(lambda p, u, lr, wd: p - lr * (u + wd * p), params, direction, lr_leaves,
                               wd_leaves)
        return new, opt_state, direction


class ScaledRule(Rule):
    """Per-layer LRs times the update of ``factory(1.0, weight_decay)``, an optax optimiser rebuilt at every
    step with the (possibly traced) global decay; its state must not depend on the decay's value."""

    def __init__(self, name: str, factory: Callable):
        self.name = name
        self.factory = factory

    def init(self, params, init_lr=None) -> optax.OptState:
        """The optimiser's state for ``params`` (``init_lr`` is not needed)."""
        return self.factory(1.0, 0.0).init(params)

    def apply(self, grads, opt_state, params, lr_leaves, wd_leaves):
        """(new params, new state, the step at LR 1); one LR per parameter leaf, the first leaf's decay."""
        updates, opt_state = self.factory(1.0, _global(wd_leaves)).update(grads, opt_state, params)
        return jax.tree.map(lambda p, u, lr: p + lr * u, params, updates, lr_leaves), opt_state, updates


@struct.dataclass
class OwnedLRState:
    """State of a ``ProdigyRule``: the run's initial LR (scalar) and the optax optimiser's state."""

    init_lr: jax.Array
    inner: optax.OptState


class ProdigyRule(Rule):
    """Prodigy as published (``d0`` = the run's initial LR ``lr0``); each layer's step times ``lr / lr0``."""

    name = "prodigy"
    positive_init_lr = True

    @staticmethod
    def _prodigy(init_lr, weight_decay) -> optax.GradientTransformation:
        return optax.contrib.prodigy(learning_rate=1.0, estim_lr0=init_lr, weight_decay=weight_decay)

    def init(self, params, init_lr=None) -> OwnedLRState:
        """Prodigy's state for ``params`` in a run starting at ``init_lr`` (scalar, may be traced; > 0)."""
        if init_lr is None:
            raise ValueError(f"optimizer {self.name!r} needs the run's init_lr to build its state")
        init_lr = jnp.asarray(init_lr, jnp.float32)
        return OwnedLRState(init_lr, self._prodigy(init_lr, 0.0).init(params))

    def apply(self, grads, opt_state: OwnedLRState, params, lr_leaves, wd_leaves):
        """(new params, new state, Prodigy's own step); one LR per parameter leaf, the first leaf's decay."""
        prodigy = self._prodigy(opt_state.init_lr, _global(wd_leaves))
        updates, inner = prodigy.update(grads, opt_state.inner, params)
        new = jax.tree.map(lambda p, u, lr: p + (lr / opt_state.init_lr) * u, params, updates, lr_leaves)
        return new, opt_state.replace(inner=inner), updates

    def effective_lr(self, opt_state: OwnedLRState, lrs: jax.Array) -> jax.Array:
        """Prodigy's applied step sizes ``d * lrs / lr0``, [num_agents]."""
        return opt_state.inner.estim_lr * lrs / opt_state.init_lr


def _scale_by_leaf_lrs(lr_leaves) -> optax.GradientTransformation:
    """``optax.scale_by_learning_rate`` with one (traced) LR per leaf; ``None`` only to build the state."""
    return optax.GradientTransformation(
        optax.init_empty_state,
        lambda updates, state, params=None: (jax.tree.map(lambda g, lr: (-1 * lr) * g, updates, lr_leaves), state))


class ScheduleFreeRule(Rule):
    """``optax.contrib.schedule_free_adamw`` (its defaults) with one step size per layer."""

    name = "schedule_free_adamw"

    @staticmethod
    def _optimizer(lr_leaves, weight_decay) -> optax.GradientTransformation:
        peak = 0.0 if lr_leaves is None else jnp.max(jnp.stack(jax.tree.leaves(lr_leaves)))
        base = optax.chain(optax.scale_by_rms(decay=0.999, eps=1e-8, eps_in_sqrt=False, bias_correction=True),
                           optax.add_decayed_weights(weight_decay), _scale_by_leaf_lrs(lr_leaves))
        return optax.contrib.schedule_free(base, learning_rate=peak, b1=0.9)

    def init(self, params, init_lr=None) -> optax.OptState:
        """Schedule-free state for ``params`` (``init_lr`` is not needed)."""
        return self._optimizer(None, 0.0).init(params)

    def apply(self, grads, opt_state, params, lr_leaves, wd_leaves):
        """(new params, new state, applied step); one LR per parameter leaf, the first leaf's decay."""
        updates, opt_state = self._optimizer(lr_leaves, _global(wd_leaves)).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, updates

    def eval_params(self, params, opt_state):
        """The averaged iterate ``x`` (``optax.contrib.schedule_free_eval_params``)."""
        return optax.contrib.schedule_free_eval_params(opt_state, params)
