"""GANNO observations (paper Appendix D): global features repeated on every agent's row, then
layer-wise features. ``FEATURE_GROUPS`` names every group in row order with its width.

Scaling decisions (the paper lists the quantities, not their encoding):
- losses are clipped to [0, ``LOSS_CAP``] after non-finite values are replaced by the cap, so a
  diverged run still gives finite observations; the train/validation loss ratio is clipped to [0, 10];
- learning rates, norms, trust ratio and weight variance enter as ``log10(x + 1e-8)``;
- previous action, layer type (linear/conv/attention) and depth (first/intermediate/final) are one-hot;
- ``u`` in the LAMB trust ratio ``||theta_l|| / ||u_l||`` is the optimiser direction (Adam's
  ``m_hat / (sqrt(v_hat) + eps)``) before the learning rate.

With weight-decay control (``EnvParams.control_wd``, beyond the paper) every row gains the layer's
current weight decay (log10) and its previous WD action (one-hot) after the paper's features
(``WD_LAYER_GROUPS``); without it the observation is exactly the paper's, ``OBS_DIM`` wide.

One function builds the whole observation (``observe``) from what any driver of an inner run sees: the
metrics, the per-layer LRs and actions, the last step's gradient and direction norms and the parameters
(``weight_stats`` over a ``leaf_groups`` grouping). ``LayerwiseLREnv.get_obs`` and the optax transformation
of ``ganno_jax.learned`` both call it, so a policy sees the same numbers in both places.

Ablation masks zero the features outside the kept groups (the observation width never changes, so
one network architecture serves every ablation). ``OBS_MASKS`` holds the paper's presets.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from ganno_jax.env.actions import NUM_ACTIONS, NUM_WD_ACTIONS, num_actions
from ganno_jax.tasks.models import DEPTHS, LAYER_KINDS, AgentLayer

LOSS_CAP = 100.0
_EPS = 1e-8

GLOBAL_GROUPS = {
    "train_accuracy": 1, "val_accuracy": 1, "train_loss": 1, "val_loss": 1, "nan_flag": 1,
    "progress": 1, "loss_ratio": 1, "initial_lr": 1, "initial_wd": 1,
}
LAYER_GROUPS = {
    "current_lr": 1, "previous_action": NUM_ACTIONS, "layer_type": len(LAYER_KINDS), "depth": len(DEPTHS),
    "trust_ratio": 1, "grad_norm": 1, "update_norm": 1, "weight_mean": 1, "weight_var": 1, "weight_norm": 1,
}
WD_LAYER_GROUPS = {"current_wd": 1, "previous_wd_action": NUM_WD_ACTIONS}
FEATURE_GROUPS = {**GLOBAL_GROUPS, **LAYER_GROUPS}
OBS_DIM = sum(FEATURE_GROUPS.values())
OBS_MASKS = {
    "full": None,
    "lr_only": ("current_lr",),
    "timestep_only": ("progress",),
    "global_only": tuple(GLOBAL_GROUPS),
}


def feature_groups(control_wd: bool = False, action_set: str = "paper") -> dict[str, int]:
    """Feature groups of an observation row in order, with their widths (``WD_LAYER_GROUPS`` last with
    weight-decay control; the previous-action one-hot as wide as ``action_set``'s actions)."""
    groups = {**FEATURE_GROUPS, "previous_action": num_actions(action_set)}
    return {**groups, **WD_LAYER_GROUPS} if control_wd else groups


def obs_dim(control_wd: bool = False, action_set: str = "paper") -> int:
    """Width of an observation row: ``OBS_DIM``, plus the weight-decay groups with weight-decay control and
    the wide action set's extra previous actions."""
    return sum(feature_groups(control_wd, action_set).values())


def feature_mask(keep: Optional[tuple[str, ...]], control_wd: bool = False, action_set: str = "paper") -> np.ndarray:
    """[obs_dim(control_wd, action_set)] float mask with ones on the features of the kept groups (all when
    ``keep`` is None); ``keep`` may name the weight-decay groups either way (without WD control they are absent)."""
    groups = feature_groups(control_wd, action_set)
    if keep is None:
        return np.ones(obs_dim(control_wd, action_set), np.float32)
    unknown = [g for g in keep if g not in feature_groups(True)]
    if unknown:
        raise ValueError(f"obs_mask has unknown groups {unknown}; allowed: {', '.join(feature_groups(True))}")
    return np.concatenate([np.full(n, float(g in keep), np.float32) for g, n in groups.items()])


def layer_constants(layers: tuple[AgentLayer, ...]) -> np.ndarray:
    """One-hot layer type and depth per agent, [num_agents, len(LAYER_KINDS) + len(DEPTHS)]."""
    kinds = np.eye(len(LAYER_KINDS), dtype=np.float32)[[LAYER_KINDS.index(layer.kind) for layer in layers]]
    depths = np.eye(len(DEPTHS), dtype=np.float32)[[DEPTHS.index(layer.depth) for layer in layers]]
    return np.concatenate([kinds, depths], axis=1)


def leaf_groups(leaf_layer) -> tuple[tuple[int, ...], ...]:
    """Indices (in ``jax.tree.leaves`` order) of the parameter leaves each layer owns, from a tree of int
    layer indices like the parameters (``tasks.leaf_agents``); one tuple per layer, layers 0..N-1."""
    owners = [int(a) for a in jax.tree.leaves(leaf_layer)]
    return tuple(tuple(i for i, a in enumerate(owners) if a == layer) for layer in range(max(owners) + 1))


def per_layer(leaf_values, groups: tuple[tuple[int, ...], ...]) -> jax.Array:
    """[num_layers] sums of one scalar per parameter leaf (a tree like the parameters) over each layer's
    leaves (``leaf_groups``)."""
    values = jax.tree.leaves(leaf_values)
    return jnp.stack([sum(values[i] for i in group) for group in groups])


def squared_norms(tree, groups: tuple[tuple[int, ...], ...]) -> jax.Array:
    """[num_layers] squared L2 norms of a parameter-shaped tree's layers."""
    return per_layer(jax.tree.map(lambda x: jnp.sum(jnp.square(x)), tree), groups)


def weight_stats(params, groups: tuple[tuple[int, ...], ...]):
    """(norm, mean, variance) of each layer's parameters, each [num_layers]."""
    count = per_layer(jax.tree.map(lambda x: jnp.asarray(x.size, jnp.float32), params), groups)
    total = per_layer(jax.tree.map(jnp.sum, params), groups)
    sq = squared_norms(params, groups)
    mean = total / count
    return jnp.sqrt(sq), mean, jnp.maximum(sq / count - mean**2, 0.0)


def _log(x):
    return jnp.log10(jnp.abs(x) + _EPS)


def safe_loss(loss: jax.Array) -> jax.Array:
    """Loss with non-finite values replaced by ``LOSS_CAP`` and clipped to [0, LOSS_CAP]."""
    return jnp.clip(jnp.nan_to_num(loss, nan=LOSS_CAP, posinf=LOSS_CAP), 0.0, LOSS_CAP)


def global_features(train_acc, val_acc, train_loss, val_loss, diverged, progress, init_lr, init_wd) -> jax.Array:
    """[len(GLOBAL_GROUPS)] global features from scalars."""
    train_loss, val_loss = safe_loss(train_loss), safe_loss(val_loss)
    ratio = jnp.clip(train_loss / jnp.maximum(val_loss, _EPS), 0.0, 10.0)
    values = [train_acc, val_acc, train_loss, val_loss, diverged, progress, ratio, _log(init_lr), _log(init_wd)]
    return jnp.stack([jnp.asarray(v, jnp.float32) for v in values])


def layer_features(lrs, prev_action, constants, grad_norm, update_norm, weight_norm, weight_mean, weight_var,
                   action_choices: int = NUM_ACTIONS):
    """[num_agents, sum(LAYER_GROUPS)] layer-wise features (the previous action one-hot over
    ``action_choices``); per-agent inputs are [num_agents]."""
    trust = weight_norm / (update_norm + _EPS)
    columns = [
        _log(lrs)[:, None],
        jax.nn.one_hot(prev_action, action_choices),
        jnp.asarray(constants),
        _log(trust)[:, None], _log(grad_norm)[:, None], _log(update_norm)[:, None],
        weight_mean[:, None], _log(weight_var)[:, None], _log(weight_norm)[:, None],
    ]
    return jnp.nan_to_num(jnp.concatenate(columns, axis=1).astype(jnp.float32), posinf=1e3, neginf=-1e3)


def wd_features(wds, prev_wd_action) -> jax.Array:
    """[num_agents, sum(WD_LAYER_GROUPS)] weight-decay features from per-agent WDs and WD actions [num_agents]."""
    columns = [_log(wds)[:, None], jax.nn.one_hot(prev_wd_action, NUM_WD_ACTIONS)]
    return jnp.concatenate(columns, axis=1).astype(jnp.float32)


def observation(global_row: jax.Array, layer_rows: jax.Array, mask: np.ndarray) -> jax.Array:
    """[num_agents, OBS_DIM] observation: the global row repeated beside each agent's row, masked."""
    n = layer_rows.shape[0]
    return jnp.concatenate([jnp.broadcast_to(global_row, (n, global_row.shape[0])), layer_rows], axis=1) * mask


def observe(metrics, diverged, progress, init_lr, init_wd, lrs, prev_action, constants, grad_norm, update_norm,
            weights, mask: np.ndarray, wd_rows: Optional[jax.Array] = None,
            action_choices: int = NUM_ACTIONS) -> jax.Array:
    """[num_agents, obs_dim] observation of an inner run (Appendix D, module docstring).

    ``metrics``: anything with scalar ``train_acc``, ``val_acc``, ``train_loss``, ``val_loss`` (``inner.Metrics``);
    ``diverged``, ``progress`` (decisions taken / horizon), ``init_lr``, ``init_wd``: scalars; ``lrs``,
    ``prev_action``, ``grad_norm``, ``update_norm``: [num_agents]; ``constants``: ``layer_constants``;
    ``weights``: ``weight_stats`` of the parameters; ``mask``: ``feature_mask``; ``wd_rows``: ``wd_features``
    with weight-decay control, else None; ``action_choices``: LR actions of the env's action set.
    """
    global_row = global_features(metrics.train_acc, metrics.val_acc, metrics.train_loss, metrics.val_loss, diverged,
                                 progress, init_lr, init_wd)
    w_norm, w_mean, w_var = weights
    layer_rows = layer_features(lrs, prev_action, constants, grad_norm, update_norm, w_norm, w_mean, w_var,
                                action_choices)
    if wd_rows is not None:
        layer_rows = jnp.concatenate([layer_rows, wd_rows], 1)
    return observation(global_row, layer_rows, mask)
