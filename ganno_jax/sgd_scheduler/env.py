"""``GlobalLREnv``: the single-agent SGD scheduler environment (paper ``000``, eq. (1)).

One agent sets one global learning rate for plain SGD once per epoch. One env step = one epoch:
a fresh permutation of the train split cut into ``n_train // batch_size`` minibatches (the
remainder is dropped), trained in ``lax.scan`` at the chosen LR, then validation metrics. An
episode lasts ``task.horizon`` epochs (set it with ``task.replace(horizon=E)``); ``task.tau`` and
``task.optimizer`` are not used (the inner optimiser is SGD: ``direction=optax.identity()``).
Weight decay is ``GlobalEnvParams.weight_decay`` (default 0.0: PyTorch's default, and paper 000 uses
none), applied as ``task.weight_decay_mode`` says (``l2``, in the gradient, is PyTorch's ``weight_decay``
for SGD, Adam, Adadelta and Adagrad; for plain SGD both modes give the same step).

Action: one float per agent, shape [1, 1], clipped to [-1, 1] and mapped log-linearly onto
[``lr_min``, ``lr_max``] (paper: [1e-6, 1]) by ``action_to_lr``: -1 -> 1e-6, 0 -> 1e-3, +1 -> 1.
It sets the LR of the epoch about to run, the first epoch included.

Observation [1, GLOBAL_OBS_DIM] (paper: validation loss of the previous epoch, distance to the
end of training, layer-wise gradient norms; plus the current LR), by index:

    0                     validation loss after the previous epoch (``features.safe_loss``:
                          non-finite -> cap, clipped to [0, 100]); the initial network's at reset
    1                     epochs remaining as a fraction, ``(horizon - epoch) / horizon`` (1 at reset); the
                          paper's ``epoch_max - epoch`` is the count, ``horizon`` times this: the same input
                          once PPO normalises observations (running mean and std per feature), as it does
    2                     log10 of the current LR (the previous epoch's; ``init_lr`` at reset)
    3 .. 3+M-1            log10(||g_l|| + 1e-8) of layer l at the epoch's last SGD step (at reset:
                          the initial network's gradient on one random minibatch); 0 beyond the model
    3+M .. 3+2M-1         mask: 1 for the model's layers, 0 for padding

with ``M = MAX_LAYERS`` (32; every built-in model fits, ResNet-18 has 18 layers).

Validation metrics come from ``InnerTrainer.measure``: ``task.eval_batch`` random examples of the
validation split, i.e. the whole split when ``eval_batch`` >= its size (digits: 144 <= 512, the default);
set ``eval_batch`` to the split size for the paper's full-split loss.

Reward (``EnvParams.reward_mode``, static), see ``global_reward``:
- ``eq1``: eq. (1), ``gamma * (best_loss - val_loss) + lambda * (epoch_max - epoch)`` with
  ``best_loss`` the lowest validation loss *before* this epoch (the initial network's at reset; with
  the current loss included the first term could never be positive), ``epoch`` the epochs done after
  this step, so the second term counts the epochs still to run (horizon-1 .. 0). Losses are capped
  as in the observation, so a finite-but-exploded loss gives a reward >= about -1000.
- ``val_loss``: ``-val_loss`` (appendix A.8 ablation: gamma = 1, lambda = 0, best loss dropped;
  negated so that higher is better); ``reward_gamma``/``reward_lambda`` are ignored.
Divergence (a non-finite training loss or update during the epoch, or a non-finite validation
loss) replaces the reward by ``-(1000 + 1000 u)``, u ~ U(0, 1) from the step key, and terminates the
episode (the paper only says it "penalize[s] the agent"; a PyTorch run with NaN weights cannot go on, so
its episode ends there too; here the non-finite step was skipped, and ending keeps one penalty per run).
Otherwise the episode terminates after ``task.horizon`` epochs; ``truncated`` is False.

``init_lr`` only fills the LR feature of the first observation. The paper's "initial LRs" (5e-4,
1e-3, 5e-3, 1e-2) are, for the agent, its own PPO learning rate ("Agent LR", appendix A.2/A.8),
and the starting LR of the constant/one-cycle baselines.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from ganno_jax.checks import check_choice, check_float_range
from ganno_jax.data import Dataset, load_dataset, num_train
from ganno_jax.env import features
from ganno_jax.env.base import FunctionalEnv
from ganno_jax.env.inner import InnerState, InnerTrainer
from ganno_jax.env.layerwise import EnvParams
from ganno_jax.env.spaces import Box
from ganno_jax.tasks.config import Task

MAX_LAYERS = 32
GLOBAL_OBS_DIM = 3 + 2 * MAX_LAYERS
GLOBAL_REWARD_MODES = ("eq1", "val_loss")
PENALTY_BASE = 1000.0
_EPS = 1e-8


def action_to_lr(action, lr_min, lr_max) -> jax.Array:
    """LR for actions in [-1, 1] (clipped first), log-linear: -1 -> lr_min, +1 -> lr_max. Same shape."""
    a = jnp.clip(jnp.asarray(action, jnp.float32), -1.0, 1.0)
    lo, hi = jnp.log10(jnp.float32(lr_min)), jnp.log10(jnp.float32(lr_max))
    return jnp.power(jnp.float32(10.0), lo + (a + 1.0) / 2.0 * (hi - lo))


def lr_to_action(lr, lr_min, lr_max) -> jax.Array:
    """Inverse of ``action_to_lr``: the action in [-1, 1] giving ``lr`` (clipped to the range)."""
    lo, hi = jnp.log10(jnp.float32(lr_min)), jnp.log10(jnp.float32(lr_max))
    return jnp.clip(2.0 * (jnp.log10(jnp.asarray(lr, jnp.float32)) - lo) / (hi - lo) - 1.0, -1.0, 1.0)


def global_reward(val_loss, best_loss, epochs_remaining, gamma=10.0, lam=1.0, mode: str = "eq1") -> jax.Array:
    """Eq. (1) (``eq1``) or ``-val_loss`` (``val_loss``) for scalars; see the module docstring."""
    val_loss = jnp.asarray(val_loss, jnp.float32)
    if mode == "val_loss":
        return -val_loss
    return gamma * (best_loss - val_loss) + lam * jnp.asarray(epochs_remaining, jnp.float32)


def divergence_penalty(key: jax.Array) -> jax.Array:
    """``-(1000 + 1000 u)`` with u ~ U(0, 1): a scalar in [-2000, -1000]."""
    return -PENALTY_BASE * (1.0 + jax.random.uniform(key, (), jnp.float32))


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@struct.dataclass
class GlobalEnvParams:
    """Environment parameters. Float fields are leaves (vmappable); validated when concrete.

    ``lr_min``/``lr_max``: LR range of the action (paper [1e-6, 1]); ``init_lr``: LR shown in the
    first observation; ``weight_decay``: SGD weight decay; ``reward_gamma``/``reward_lambda``: gamma
    and lambda of eq. (1) (paper 10 and 1); ``track_test``: add test metrics to ``info``; ``data``: the
    ``Dataset`` trained on (``GlobalLREnv.default_params`` loads the task's), as in ``EnvParams``.
    """

    lr_min: float = 1e-6
    lr_max: float = 1.0
    init_lr: float = 1e-3
    weight_decay: float = 0.0
    reward_gamma: float = 10.0
    reward_lambda: float = 1.0
    reward_mode: str = struct.field(pytree_node=False, default="eq1")
    track_test: bool = struct.field(pytree_node=False, default=False)
    data: Optional[Dataset] = None

    def __post_init__(self):
        check_choice("reward_mode", self.reward_mode, GLOBAL_REWARD_MODES)
        for field in ("lr_min", "lr_max", "init_lr"):  # arrays (traced params) are not checked
            if _is_number(getattr(self, field)):
                check_float_range(field, getattr(self, field), 0, low_open=True,
                                  note=" (learning rates are mapped log-linearly)")
        if _is_number(self.weight_decay):
            check_float_range("weight_decay", self.weight_decay, 0)
        for field in ("reward_gamma", "reward_lambda"):
            if _is_number(getattr(self, field)):
                check_float_range(field, getattr(self, field))
        lo, hi, init = self.lr_min, self.lr_max, self.init_lr
        if _is_number(lo) and _is_number(hi) and lo >= hi:
            raise ValueError(f"lr_min={lo!r} must be below lr_max={hi!r}")
        if all(map(_is_number, (lo, hi, init))) and not lo <= init <= hi:
            raise ValueError(f"init_lr={init!r} must lie in [lr_min, lr_max] = [{lo!r}, {hi!r}]")

    def fixed_start(self, init_lr, weight_decay) -> "GlobalEnvParams":
        """Params starting from this LR and using this weight decay (evaluation, as in ``EnvParams``)."""
        return self.replace(init_lr=init_lr, weight_decay=weight_decay)

    required_data = EnvParams.required_data


@struct.dataclass
class GlobalEnvState:
    """Inner run plus the observation/reward inputs (scalars unless noted)."""

    inner: InnerState
    lr: jax.Array  # LR of the previous epoch (init_lr at reset)
    epoch: jax.Array  # epochs done, int32
    val_loss: jax.Array  # capped validation loss after the previous epoch
    best_loss: jax.Array  # lowest capped validation loss so far, initial network included
    grad_norm: jax.Array  # [num_agents] per-layer gradient norms at the last step


class GlobalLREnv(FunctionalEnv):
    """Single-agent global-LR SGD environment: obs [1, GLOBAL_OBS_DIM], action [1, 1] in [-1, 1].

    Args:
      task: the ``Task`` (uses dataset, model, width, batch_size, horizon, eval_batch).
      trainer: an ``InnerTrainer`` to share (default: plain SGD, ``direction=optax.identity()``;
        another direction schedules that optimiser's global LR instead).
    """

    num_agents = 1

    def __init__(self, task: Task, trainer: Optional[InnerTrainer] = None):
        self.task = task
        self.trainer = trainer if trainer is not None else InnerTrainer(task, direction=optax.identity())
        self.layers = self.trainer.layers
        if self.trainer.num_agents > MAX_LAYERS:
            raise ValueError(f"model {task.model!r} has {self.trainer.num_agents} parameterised layers; "
                             f"GlobalLREnv observes at most MAX_LAYERS={MAX_LAYERS}")
        self.num_train = n_train = num_train(task.dataset, task.data_dir)
        self.steps_per_epoch = n_train // task.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"batch_size={task.batch_size} exceeds the {n_train} training examples of "
                             f"{task.dataset!r}: an epoch would have no minibatch")
        self._layer_mask = np.arange(MAX_LAYERS) < self.trainer.num_agents

    @property
    def default_params(self) -> GlobalEnvParams:
        """Paper defaults (LR range [1e-6, 1], eq. (1) with gamma=10, lambda=1, no weight decay) on the task's
        dataset."""
        return GlobalEnvParams(data=load_dataset(self.task.dataset, self.task.data_dir))

    def action_space(self, params: Optional[GlobalEnvParams] = None) -> Box:
        """One float in [-1, 1] per agent."""
        return Box(-1.0, 1.0, (1,))

    def observation_space(self, params: Optional[GlobalEnvParams] = None) -> Box:
        """Box of shape (1, GLOBAL_OBS_DIM)."""
        return Box(-np.inf, np.inf, (1, GLOBAL_OBS_DIM))

    def get_obs(self, state: GlobalEnvState, params: GlobalEnvParams) -> jax.Array:
        """Observation [1, GLOBAL_OBS_DIM] of a state (layout in the module docstring)."""
        remaining = (self.task.horizon - state.epoch) / self.task.horizon
        grads = jnp.zeros(MAX_LAYERS, jnp.float32).at[: self.trainer.num_agents].set(jnp.log10(state.grad_norm + _EPS))
        head = jnp.stack([state.val_loss, remaining, jnp.log10(state.lr)]).astype(jnp.float32)
        row = jnp.concatenate([head, grads, jnp.asarray(self._layer_mask, jnp.float32)])
        return jnp.nan_to_num(row, posinf=1e3, neginf=-1e3)[None]

    def reset_env(self, key: jax.Array, params: GlobalEnvParams):
        """Fresh network; obs from its validation loss and gradient norms on one minibatch."""
        k_net, k_eval, k_batch = jax.random.split(key, 3)
        inner = self.trainer.init(k_net, params.init_lr)
        data = params.required_data()
        idx = self.trainer.sample_batch_indices(data, k_batch, 1)[0]
        grads, _ = jax.grad(self.trainer.loss_and_accuracy, has_aux=True)(inner.params, data.x_train[idx],
                                                                            data.y_train[idx])
        val_loss = features.safe_loss(self.trainer.measure(data, self.trainer.eval_params(inner), k_eval).val_loss)
        state = GlobalEnvState(
            inner=inner, lr=jnp.asarray(params.init_lr, jnp.float32), epoch=jnp.int32(0), val_loss=val_loss,
            best_loss=val_loss, grad_norm=jnp.nan_to_num(jnp.sqrt(self.trainer.squared_norms(grads))),
        )
        return self.get_obs(state, params), state

    def epoch_indices(self, key: jax.Array) -> jax.Array:
        """One epoch's minibatches: a permutation of the train split, [steps_per_epoch, batch_size]."""
        size = self.steps_per_epoch * self.task.batch_size
        return jax.random.permutation(key, self.num_train)[:size].reshape(self.steps_per_epoch, self.task.batch_size)

    def _epoch(self, key: jax.Array, state: GlobalEnvState, per_step_lrs: jax.Array, params: GlobalEnvParams):
        """One epoch of training at ``per_step_lrs [steps_per_epoch]``: (state, diverged, info, penalty key).

        ``info``'s ``lr`` is the LR the state keeps (the epoch's last); callers report their own; ``steps``
        counts the optimiser steps the epoch ran (int32; summed by the experiment to report budgets)."""
        k_perm, k_eval, k_penalty = jax.random.split(key, 3)
        lrs = jnp.broadcast_to(per_step_lrs[:, None], (self.steps_per_epoch, self.trainer.num_agents))
        data = params.required_data()
        inner, stats = self.trainer.train(data, state.inner, lrs, params.weight_decay, k_perm,
                                          self.epoch_indices(k_perm))
        metrics = self.trainer.measure(data, self.trainer.eval_params(inner), k_eval)
        diverged = stats.diverged | ~jnp.isfinite(metrics.val_loss)
        val_loss = features.safe_loss(metrics.val_loss)
        new_state = GlobalEnvState(inner=inner, lr=per_step_lrs[-1], epoch=state.epoch + 1, val_loss=val_loss,
                                   best_loss=jnp.minimum(state.best_loss, val_loss), grad_norm=stats.grad_norm)
        info = {
            "val_loss": val_loss, "val_acc": metrics.val_acc, "train_loss": features.safe_loss(stats.train_loss),
            "lr": per_step_lrs[-1], "diverged": diverged, "epoch": new_state.epoch,
            "steps": jnp.int32(per_step_lrs.shape[0]),
        }
        if params.track_test:
            test_loss, test_acc = self.trainer.test_metrics(data, self.trainer.eval_params(inner))
            info.update(test_loss=features.safe_loss(test_loss), test_acc=test_acc)
        return new_state, diverged, info, k_penalty

    def step_env(self, key: jax.Array, state: GlobalEnvState, action: jax.Array, params: GlobalEnvParams):
        """One epoch of SGD at the action's LR, without auto-reset; reward [1]."""
        lr = action_to_lr(jnp.reshape(action, ()), params.lr_min, params.lr_max)
        new_state, diverged, info, k_penalty = self._epoch(key, state, jnp.full((self.steps_per_epoch,), lr), params)
        reward = global_reward(new_state.val_loss, state.best_loss, self.task.horizon - new_state.epoch,
                               params.reward_gamma, params.reward_lambda, params.reward_mode)
        reward = jnp.where(diverged, divergence_penalty(k_penalty), reward)
        terminated = diverged | (new_state.epoch >= self.task.horizon)
        reward = jnp.reshape(reward, (1,)).astype(jnp.float32)
        return self.get_obs(new_state, params), new_state, reward, terminated, jnp.bool_(False), info

    def step_schedule(self, key: jax.Array, state: GlobalEnvState, per_step_lrs: jax.Array,
                      params: GlobalEnvParams):
        """One epoch at externally given LRs ``[steps_per_epoch]`` (handcrafted schedules).

        Same training and measurements as ``step_env`` with the same key (common random numbers), no
        reward, no auto-reset. Returns (obs [1, GLOBAL_OBS_DIM], state, terminated, info); ``info["lr"]``
        is the epoch's mean LR.
        """
        new_state, diverged, info, _ = self._epoch(key, state, jnp.asarray(per_step_lrs, jnp.float32), params)
        info["lr"] = jnp.mean(per_step_lrs)
        terminated = diverged | (new_state.epoch >= self.task.horizon)
        return self.get_obs(new_state, params), new_state, terminated, info
