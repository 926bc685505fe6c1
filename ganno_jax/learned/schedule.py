"""A trained GANNO controller as an optax transformation: per-layer learning rates in anyone's training loop.

``schedule(optimizer, policy, tau=..., horizon=...)`` wraps any optax optimiser. Every ``tau`` updates (a
*decision*, the first at update 0, ``horizon`` of them) it builds each layer's Appendix-D observation with
``env.features.observe`` (the function ``LayerwiseLREnv.get_obs`` calls) from what it sees: the metrics passed
to ``update``, the last update's gradient and direction norms, the parameters, its own LRs and previous
actions and the progress ``decision / horizon``. The policy picks one action per layer (``env.actions``) and
each layer's update is scaled to that layer's LR until the next decision; after the horizon every layer
keeps its last LR. A policy therefore decides exactly as it would in ``LayerwiseLREnv`` (a test checks).

Learning rates. The wrapped optimiser's update is its step at its own LR ``lr_base(t)``; layer ``l`` gets
``update_l * lr_l / lr_base(t)``, i.e. the step at LR ``lr_l`` (a zero ``lr_base``, e.g. a warm-up's first
step, gives a zero step). ``lr_base`` is found in this order:

- ``init_lr=`` (a float or an optax schedule of the update count): the LR the optimiser was built with, e.g.
  ``schedule(optax.adam(1e-3), policy, init_lr=1e-3, ...)`` (optax keeps a plain optimiser's LR in a closure
  no one can read);
- the ``learning_rate`` hyperparameter of an optimiser built with ``optax.inject_hyperparams`` (read from its
  state at every update: ``optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)`` needs no ``init_lr``).

Every layer starts at ``lr_base(0)`` (a schedule's first value). A bare direction such as
``optax.scale_by_adam()`` has no LR and points uphill; give it one as optax does,
``optax.chain(optax.scale_by_adam(), optax.scale_by_learning_rate(1e-3))`` (that is ``optax.adam(1e-3)``),
with ``init_lr=1e-3``. A base schedule is replaced, not composed: from update 0 on the agent owns the LR.

Metrics (extra keyword arguments of ``update``; others are ignored and passed on to the wrapped optimiser):
``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` of the parameters being updated, and
``weight_decay`` unless the optimiser's state holds a ``weight_decay`` hyperparameter (``inject_hyperparams``;
0.0 for none). They are read at decision steps only: outside ``jit`` a missing one raises a ``ValueError``
there; under ``jit`` / ``lax.scan`` / ``vmap`` the update count is not known while tracing, so pass them at
every update (``is_decision_step(state)`` says when fresh values are due; stale ones are never read). The
``initial_wd`` feature is the weight decay at the first decision.

Differences from the env, by construction: the transformation does not skip a non-finite step (the env
does); its ``nan_flag`` feature says some gradient or update since the last decision was non-finite; its
direction norm is the wrapped update's at unit LR, which for ``optax.adamw`` includes the decoupled decay
(the env's ``decoupled`` mode excludes it; ``l2`` mode, ``optax.chain(optax.add_decayed_weights(wd),
optax.adam(lr))``, is the same in both).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganno_jax.checks import check_int
from ganno_jax.env import features
from ganno_jax.env.actions import apply_actions, num_actions
from ganno_jax.env.inner import Metrics
from ganno_jax.env.layerwise import EnvParams
from ganno_jax.tasks.models import DEPTHS, AgentLayer, agent_layers, leaf_agents

#: Metrics ``update`` needs at a decision step (besides ``weight_decay``, see the module docstring).
REQUIRED_METRICS = ("train_loss", "train_acc", "val_loss", "val_acc")


class LearnedScheduleState(NamedTuple):
    """State of ``schedule``'s transformation (N = layers, H = the policy's hidden size)."""

    base: optax.OptState  # the wrapped optimiser's state
    count: jax.Array  # [] int32, updates so far
    lrs: jax.Array  # [N] current per-layer LRs
    prev_action: jax.Array  # [N] int32, the last decision's actions (0 before the first)
    init_lr: jax.Array  # [] every layer's initial LR
    init_wd: jax.Array  # [] weight decay at the first decision
    grad_norm: jax.Array  # [N] ||g_l|| of the last update
    update_norm: jax.Array  # [N] ||u_l|| of the last update's direction (its step at unit LR)
    diverged: jax.Array  # [] bool, a non-finite gradient or update since the last decision
    due: jax.Array  # [] bool, the next update takes a decision (reads the metrics)
    carry: Any  # the policy's recurrent state, e.g. [N, H]
    key: jax.Array  # PRNG key of sampled actions


class Layers(NamedTuple):
    """The layers (agents) of a parameter tree: ``leaf_layer`` (a tree of int layer indices like the
    parameters), ``groups`` (``features.leaf_groups``) and ``constants`` (``features.layer_constants``)."""

    leaf_layer: Any
    groups: tuple
    constants: np.ndarray


def layers_of(params, label_fn: Optional[Callable] = None) -> Layers:
    """``Layers`` of ``params``: GANNO's grouping (``tasks.agent_layers`` / ``leaf_agents``: one layer per
    submodule owning a ``kernel``), or ``label_fn(params)``, a tree like ``params`` of int layer indices
    0..N-1 (kind ``conv`` where the layer holds a 4-D leaf, else ``linear``; depth by index)."""
    if label_fn is None:
        owners = leaf_agents(params)
        return Layers(owners, features.leaf_groups(owners), features.layer_constants(agent_layers(params)))
    labels = label_fn(params)
    groups = features.leaf_groups(labels)
    if any(not g for g in groups):
        raise ValueError(f"label_fn must label layers 0..{len(groups) - 1} with no gap; some index has no leaf")
    leaves = jax.tree.leaves(params)
    last = len(groups) - 1
    layers = tuple(AgentLayer(i, f"layer{i}", "conv" if any(np.ndim(leaves[j]) == 4 for j in g) else "linear",
                              DEPTHS[0] if i == 0 else DEPTHS[2] if i == last else DEPTHS[1])
                   for i, g in enumerate(groups))
    return Layers(labels, groups, features.layer_constants(layers))


def _find(tree, name: str):
    """The one value called ``name`` in an optimiser state (``optax.inject_hyperparams``), or None."""
    try:
        return optax.tree_utils.tree_get(tree, name)
    except KeyError:
        raise ValueError(f"the wrapped optimiser's state holds several {name!r} values; wrap one optimiser "
                         "whose hyperparameter is unambiguous") from None


def schedule(optimizer: optax.GradientTransformation, policy, *, tau: Optional[int] = None,
             horizon: Optional[int] = None, init_lr=None, env_params: Optional[EnvParams] = None,
             label_fn: Optional[Callable] = None, key: Any = 0) -> optax.GradientTransformationExtraArgs:
    """``optimizer`` with per-layer LRs set by ``policy`` every ``tau`` updates for ``horizon`` decisions.

    Args:
      optimizer: any optax optimiser (a descent step at its own LR; see the module docstring).
      policy: an ``agents.Policy`` (``LearnedPolicy`` acts greedily or samples as its ``greedy`` says) or a
        ``learned.Controller`` (``pretrained(...)``), whose policy, ``tau``, ``horizon`` and ``env_params``
        are the defaults.
      tau, horizon: updates per decision and decisions (required with a bare policy).
      init_lr: the optimiser's own LR (float or optax schedule) when its state does not hold it.
      env_params: ``EnvParams`` the policy was trained with (observation mask, ``lr_min`` / ``lr_max``);
        default: the controller's, else the paper's. Weight-decay control is not supported.
      label_fn: ``label_fn(params)`` -> tree of int layer indices; default GANNO's grouping (``layers_of``).
      key: PRNG key (or int seed) of sampled actions, kept in the state. ``jax.vmap(tx.init)`` gives every run
        this key; for independently sampled runs vmap ``lambda p, k: schedule(..., key=k).init(p)`` instead.
    Returns:
      ``optax.GradientTransformationExtraArgs``; ``update(grads, state, params, train_loss=..., ...)`` needs
      ``params``; its state is a ``LearnedScheduleState`` (``lrs(state)`` reads the per-layer LRs).
    """
    tau = getattr(policy, "tau", None) if tau is None else tau
    horizon = getattr(policy, "horizon", None) if horizon is None else horizon
    env_params = getattr(policy, "env_params", EnvParams()) if env_params is None else env_params
    if getattr(policy, "variant", "ganno") == "single_agent":
        raise ValueError("schedule runs one agent per layer; a single_agent controller sees other observations")
    policy = getattr(policy, "policy", policy)
    for name, value in (("tau", tau), ("horizon", horizon)):
        check_int(name, value, note=" (a bare policy needs tau= and horizon=)")
    if env_params.control_wd:
        raise ValueError("schedule sets per-layer LRs only: a policy trained with control_wd=True also sets "
                         "weight decays, which an optax transformation cannot apply to any optimiser")
    mask = features.feature_mask(env_params.obs_mask, action_set=env_params.action_set)
    choices = num_actions(env_params.action_set)
    key = jax.random.key(key) if isinstance(key, int) else key

    def base_lr(base_state, count):
        if init_lr is None:
            lr = _find(base_state, "learning_rate")
            if lr is None:
                raise ValueError("schedule cannot read the wrapped optimiser's learning rate: pass init_lr= (the LR "
                                 "it was built with, e.g. optax.adam(1e-3) -> init_lr=1e-3) or build it with "
                                 "optax.inject_hyperparams(optax.adam)(learning_rate=1e-3)")
            return jnp.asarray(lr, jnp.float32)
        return jnp.asarray(init_lr(count) if callable(init_lr) else init_lr, jnp.float32)

    def init_fn(params):
        base = optimizer.init(params)
        lr0 = base_lr(base, jnp.int32(0))
        n = len(layers_of(params, label_fn).groups)
        zeros = jnp.zeros(n, jnp.float32)
        return LearnedScheduleState(
            base=base, count=jnp.int32(0), lrs=jnp.full(n, lr0), prev_action=jnp.zeros(n, jnp.int32), init_lr=lr0,
            init_wd=jnp.float32(0.0), grad_norm=zeros, update_norm=zeros, diverged=jnp.bool_(False),
            due=jnp.bool_(True), carry=policy.init(key, n), key=key)

    def decide(state, params, layers, metrics, weight_decay):
        decision = state.count // tau
        init_wd = jnp.where(decision == 0, weight_decay, state.init_wd)
        obs = features.observe(metrics, state.diverged, decision / horizon, state.init_lr, init_wd, state.lrs,
                               state.prev_action, layers.constants, state.grad_norm, state.update_norm,
                               features.weight_stats(params, layers.groups), mask, action_choices=choices)
        key, k_act = jax.random.split(state.key)
        action, carry = policy.act(k_act, obs, state.carry, jnp.bool_(False))
        lrs = apply_actions(state.lrs, action, env_params.lr_min, env_params.lr_max)
        return state._replace(lrs=lrs, prev_action=action.astype(jnp.int32), init_wd=init_wd,
                              diverged=jnp.bool_(False), carry=carry, key=key)

    def update_fn(updates, state, params=None, **extra):
        if params is None:
            raise ValueError("schedule's update needs params: update(grads, state, params, train_loss=..., ...)")
        layers = layers_of(params, label_fn)
        metrics, weight_decay = _metrics(extra, state.base, state.due)
        state = jax.lax.cond(state.due, lambda s: decide(s, params, layers, metrics, weight_decay), lambda s: s, state)
        steps, base = optax.with_extra_args_support(optimizer).update(updates, state.base, params, **extra)
        lr = base_lr(base, state.count)
        unit = jnp.where(lr != 0, 1.0 / jnp.where(lr != 0, lr, 1.0), 0.0)
        scale = state.lrs * unit
        scaled = jax.tree.map(lambda s, a: s * scale[a], steps, layers.leaf_layer)
        g_sq, s_sq = features.squared_norms(updates, layers.groups), features.squared_norms(steps, layers.groups)
        finite = jnp.all(jnp.isfinite(g_sq)) & jnp.all(jnp.isfinite(s_sq))
        count = state.count + 1
        return scaled, state._replace(
            base=base, count=count, grad_norm=jnp.nan_to_num(jnp.sqrt(g_sq)),
            update_norm=jnp.nan_to_num(jnp.sqrt(s_sq) * jnp.abs(unit)), diverged=state.diverged | ~finite,
            due=(count % tau == 0) & (count // tau < horizon))

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)


def _metrics(extra: dict, base_state, due):
    """(``Metrics``, weight decay) from ``update``'s keyword arguments; a missing one raises where ``due`` may
    be true (zeros stand in where it is known to be false: they are never read)."""
    weight_decay = extra.get("weight_decay", _find(base_state, "weight_decay"))
    values = {name: extra.get(name) for name in REQUIRED_METRICS}
    missing = [name for name, v in values.items() if v is None] + (["weight_decay"] if weight_decay is None else [])
    if missing:
        if not isinstance(due, jax.core.Tracer) and not bool(due):
            values = {name: 0.0 if v is None else v for name, v in values.items()}
            weight_decay = 0.0 if weight_decay is None else weight_decay
        else:
            when = ("at every update under jit / lax.scan / vmap, where the update count is not known while "
                    "tracing" if isinstance(due, jax.core.Tracer) else "at this decision step")
            raise ValueError(f"learned.schedule: update(...) is missing {missing[0]}= (needs "
                             f"{', '.join(REQUIRED_METRICS)} and weight_decay, unless the optimiser's state holds "
                             f"it, {when}); missing: {', '.join(missing)}")
    as_f32 = lambda v: jnp.asarray(v, jnp.float32)  # noqa: E731
    return Metrics(**{k: as_f32(v) for k, v in values.items()}), as_f32(weight_decay)


def _own(state) -> LearnedScheduleState:
    """The one ``LearnedScheduleState`` in ``state`` (itself, or inside a chain's state)."""
    found = [s for s in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, LearnedScheduleState))
             if isinstance(s, LearnedScheduleState)]
    if len(found) != 1:
        raise ValueError(f"expected one learned.schedule state inside the optimiser state, found {len(found)}")
    return found[0]


def is_decision_step(state) -> jax.Array:
    """Whether the next ``update`` takes a decision and reads the metrics: bool [] (``[runs]`` vmapped)."""
    return _own(state).due


def lrs(state) -> jax.Array:
    """Current per-layer LRs [N] (``[runs, N]`` when vmapped) of a ``schedule`` state, alone or in a chain's."""
    return _own(state).lrs
