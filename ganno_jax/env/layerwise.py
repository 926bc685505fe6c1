"""``LayerwiseLREnv``: GANNO's multi-agent environment, one agent per parameterised layer.

One env step applies every agent's action to its layer's learning rate, runs ``task.tau``
optimiser steps in ``lax.scan`` on on-device minibatches, measures train/validation metrics and
returns the Appendix D observations. The nine LR actions (paper Appendix D) are in ``actions.py``;
the new LR is clipped to ``[params.lr_min, params.lr_max]`` (default [0, 0.1]: 0 allows the paper's
warm-up-from-zero case, 0.1 is already far past Adam's useful range).

Joint LR + weight-decay control (``EnvParams.control_wd``, beyond the paper): every layer also owns its
weight decay (``EnvState.wds``, starting at the run's weight decay), each agent's action is the pair
(LR action, WD action) of ``actions.py`` (``spaces.MultiDiscrete((9, 5))``), the new WD is clipped to
``[params.wd_min, params.wd_max]``, and the observation rows gain the layer's WD and previous WD action.
Without it the state's ``wds`` / ``prev_wd_action`` are None and nothing differs from the paper's env.

Rewards (``EnvParams.reward_mode``, static):
- ``accuracy``: validation accuracy after the step (the paper's evaluation reward);
- ``difference``: acting branch minus the joint no-op branch (paper, training; with WD control the no-op
  keeps both LR and WD), both run as one
  vmap over a branch axis with the same minibatches and evaluation examples (common random
  numbers), so the reward of the joint no-op action is exactly 0; costs 2x the inner compute;
- ``per_agent_difference``: agent i's reward is the acting branch minus the branch where only
  agent i took the no-op (N+1 branches: costs (N+1)x the inner compute).
Reward arrays are [num_agents] in every mode.

The episode ends (``terminated``) after ``task.horizon`` steps: the inner run is over and the
progress feature makes the end observable, so it is a true terminal. ``truncated`` is always False.
Randomness comes from the ``key`` passed to ``reset``/``step`` (gymnax convention); the state holds
no key. Data comes from ``params.data`` (gymnax convention too): the env is built from what the task is
(``InnerTrainer`` reads only the dataset's shape) and ``default_params`` loads the task's dataset, so the
dataset travels into every jitted program as an argument, as ``params`` does. Divergence: see
``inner.py``; observations and rewards stay finite.
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from ganno_jax.checks import check_choice, check_float_range, require
from ganno_jax.data import Dataset, load_dataset
from ganno_jax.env import features
from ganno_jax.env.actions import ACTION_SETS, action_nvec, apply_actions, apply_wd_actions, num_actions, split_action
from ganno_jax.env.base import FunctionalEnv, log_uniform
from ganno_jax.env.blocked import blocked_vmap
from ganno_jax.env.inner import InnerState, InnerTrainer, Metrics
from ganno_jax.env.spaces import Box, Discrete, MultiDiscrete
from ganno_jax.tasks.config import Task

REWARD_MODES = ("accuracy", "difference", "per_agent_difference")


@struct.dataclass
class EnvParams:
    """Environment parameters. Float fields are leaves (vmappable: e.g. a grid of initial LRs).

    ``init_lr_*``/``init_wd_*``: log-uniform ranges (bounds > 0) of the initial LR and weight decay
    sampled at reset (paper: [1e-5, 1e-2] and [1e-5, 1e-1]); ``init_lr``/``init_wd``: a fixed initial
    LR / weight decay (>= 0; 0 is the paper's warm-up-from-zero case) used instead of sampling when not
    None (evaluation: ``fixed_start``). ``lr_min``/``lr_max``: clip range of the per-layer LRs.
    ``control_wd`` (static): the agents also set their layer's weight decay (module docstring), clipped to
    ``[wd_min, wd_max]``. ``action_set`` (static): the LR actions the agents choose from (``actions.ACTION_SETS``:
    ``paper``, the nine of Appendix D; ``wide``, four coarse steps more). ``data``: the ``Dataset`` the inner
    runs train and measure on (array leaves;
    ``LayerwiseLREnv.default_params`` loads the task's). It is the one field a run folder does not save:
    ``config.json`` holds every other field and evaluation derives its params from them (``for_evaluation``).
    """

    init_lr_min: float = 1e-5
    init_lr_max: float = 1e-2
    init_wd_min: float = 1e-5
    init_wd_max: float = 1e-1
    init_lr: Optional[float] = None
    init_wd: Optional[float] = None
    lr_min: float = 0.0
    lr_max: float = 0.1
    wd_min: float = 0.0
    wd_max: float = 1.0
    reward_mode: str = struct.field(pytree_node=False, default="difference")
    obs_mask: Optional[tuple] = struct.field(pytree_node=False, default=None)
    track_test: bool = struct.field(pytree_node=False, default=False)
    control_wd: bool = struct.field(pytree_node=False, default=False)
    action_set: str = struct.field(pytree_node=False, default="paper")
    data: Optional[Dataset] = None

    def __post_init__(self):
        check_choice("reward_mode", self.reward_mode, REWARD_MODES)
        check_choice("action_set", self.action_set, ACTION_SETS)
        features.feature_mask(self.obs_mask)  # validates group names
        for field in ("init_lr_min", "init_lr_max", "init_wd_min", "init_wd_max"):
            value = getattr(self, field)
            if isinstance(value, (int, float)):  # arrays (traced params) are not checked
                check_float_range(field, value, 0, low_open=True,
                                  note=" (a log-uniform range; fix a value with init_lr / init_wd)")
        if self.data is not None and not isinstance(self.data, Dataset):
            raise ValueError(f"data={type(self.data).__name__} must be a ganno_jax.data.Dataset (or None)")
        require("control_wd", self.control_wd, isinstance(self.control_wd, bool), "True or False")
        for field in ("init_lr", "init_wd", "lr_min", "lr_max", "wd_min", "wd_max"):
            value = getattr(self, field)
            if isinstance(value, (int, float)):
                check_float_range(field, value, 0)
        for low, high in (("init_lr_min", "init_lr_max"), ("init_wd_min", "init_wd_max"), ("lr_min", "lr_max"),
                         ("wd_min", "wd_max")):
            lo, hi = getattr(self, low), getattr(self, high)
            if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
                raise ValueError(f"{low}={lo!r} must not exceed {high}={hi!r}")

    def fixed_start(self, init_lr, weight_decay) -> "EnvParams":
        """Params whose resets use exactly this initial LR and weight decay (evaluation)."""
        return self.replace(init_lr=init_lr, init_wd=weight_decay)

    def for_evaluation(self, data: Dataset, init_lr, weight_decay) -> "EnvParams":
        """These params (a trained run's, whole) as evaluation runs them: on ``data``, from this initial LR
        and weight decay, with the accuracy reward (one branch) and test metrics tracked. Exactly the
        fields of ``EVALUATION_OVERRIDES`` change; every other field, present or future, carries over."""
        return self.replace(reward_mode="accuracy", track_test=True, data=data).fixed_start(init_lr, weight_decay)

    def required_data(self) -> Dataset:
        """``data``, or a ``ValueError`` saying how to give it."""
        if self.data is None:
            raise ValueError("EnvParams.data is None: the env needs a dataset; use env.default_params, or "
                             "params.replace(data=ganno_jax.data.load_dataset(name, data_dir))")
        return self.data


#: The fields ``EnvParams.for_evaluation`` sets; evaluation keeps every other field of a run's params.
EVALUATION_OVERRIDES = ("reward_mode", "track_test", "data", "init_lr", "init_wd")


@struct.dataclass
class EnvState:
    """Whole inner training run plus what the observations need (per-agent arrays are [N]).

    ``weight_decay`` is the run's initial weight decay (scalar); with ``control_wd`` the per-layer weight
    decays are ``wds`` [N] and the last WD actions ``prev_wd_action`` [N] (None without it).
    """

    inner: InnerState
    lrs: jax.Array
    prev_action: jax.Array
    step: jax.Array
    init_lr: jax.Array
    weight_decay: jax.Array
    metrics: Metrics
    diverged: jax.Array
    grad_norm: jax.Array
    update_norm: jax.Array
    wds: Optional[jax.Array] = None
    prev_wd_action: Optional[jax.Array] = None

    @property
    def layer_wds(self) -> jax.Array:
        """Weight decay of every layer [N] (the run's weight decay without WD control)."""
        return jnp.broadcast_to(self.weight_decay, self.lrs.shape) if self.wds is None else self.wds


class LayerwiseLREnv(FunctionalEnv):
    """GANNO environment for a ``Task``: obs [num_agents, OBS_DIM], 9 discrete actions per agent (13 with
    ``EnvParams.action_set="wide"``; with ``EnvParams.control_wd``: obs [num_agents, features.obs_dim(True)],
    actions [num_agents, 2])."""

    def __init__(self, task: Task, trainer: Optional[InnerTrainer] = None):
        self.task = task
        self.trainer = trainer if trainer is not None else InnerTrainer(task)
        self.layers = self.trainer.layers
        self.num_agents = self.trainer.num_agents
        self._layer_constants = features.layer_constants(self.layers)

    @property
    def default_params(self) -> EnvParams:
        """Paper defaults (training ranges, difference reward, all features) on the task's dataset
        (``data.load_dataset``, cached)."""
        return EnvParams(data=load_dataset(self.task.dataset, self.task.data_dir))

    def action_space(self, params: Optional[EnvParams] = None) -> Discrete | MultiDiscrete:
        """The action set's LR actions per agent (9 for ``paper``); with ``control_wd`` a factorised (LR, WD)
        action, ``MultiDiscrete((9, 5))``."""
        params = EnvParams() if params is None else params
        if params.control_wd:
            return MultiDiscrete(action_nvec(True, params.action_set))
        return Discrete(num_actions(params.action_set))

    def observation_space(self, params: Optional[EnvParams] = None) -> Box:
        """Box of shape (num_agents, obs_dim): ``OBS_DIM``, wider with ``control_wd`` or the wide action set
        (``features.obs_dim``)."""
        params = EnvParams() if params is None else params
        return Box(-np.inf, np.inf, (self.num_agents, features.obs_dim(params.control_wd, params.action_set)))

    # ------------------------------------------------------------------ observations
    def get_obs(self, state: EnvState, params: EnvParams) -> jax.Array:
        """Observation [num_agents, OBS_DIM] of a state (``features.observe``)."""
        wd_rows = None
        if params.control_wd:
            if state.wds is None:
                raise ValueError("EnvParams.control_wd is True but the state was reset without it; reset with "
                                 "the same params")
            wd_rows = features.wd_features(state.wds, state.prev_wd_action)
        return features.observe(
            state.metrics, state.diverged, state.step / self.task.horizon, state.init_lr, state.weight_decay,
            state.lrs, state.prev_action, self._layer_constants, state.grad_norm, state.update_norm,
            features.weight_stats(state.inner.params, self.trainer.groups),
            features.feature_mask(params.obs_mask, params.control_wd, params.action_set), wd_rows,
            num_actions(params.action_set))

    # ------------------------------------------------------------------ dynamics
    def reset_env(self, key: jax.Array, params: EnvParams):
        """New inner run with the initial LR (all layers) and weight decay of ``params``: fixed, or sampled."""
        k_net, k_lr, k_wd, k_eval = jax.random.split(key, 4)
        init_lr = (log_uniform(k_lr, params.init_lr_min, params.init_lr_max) if params.init_lr is None
                   else jnp.asarray(params.init_lr, jnp.float32))
        wd = (log_uniform(k_wd, params.init_wd_min, params.init_wd_max) if params.init_wd is None
              else jnp.asarray(params.init_wd, jnp.float32))
        data = params.required_data()
        inner = self.trainer.init(k_net, init_lr)
        zeros = jnp.zeros(self.num_agents, jnp.float32)
        state = EnvState(
            inner=inner, lrs=jnp.full(self.num_agents, init_lr), prev_action=jnp.zeros(self.num_agents, jnp.int32),
            step=jnp.int32(0), init_lr=init_lr, weight_decay=wd,
            metrics=self.trainer.measure(data, self.trainer.eval_params(inner), k_eval),
            diverged=jnp.bool_(False), grad_norm=zeros, update_norm=zeros,
        )
        if params.control_wd:
            state = state.replace(wds=jnp.full(self.num_agents, wd), prev_wd_action=jnp.zeros_like(state.prev_action))
        return self.get_obs(state, params), state

    def _branches(self, old: jax.Array, new: jax.Array, mode: str) -> jax.Array:
        """Per-agent values (LRs or WDs) of each reward branch, [branches, N]; branch 0 is the acting one,
        the others keep ``old`` (all agents: ``difference``; agent i only: ``per_agent_difference``)."""
        if mode == "accuracy":
            return new[None]
        if mode == "difference":
            return jnp.stack([new, old])
        only_agent_noop = jnp.where(jnp.eye(self.num_agents, dtype=bool), old[None], new[None])
        return jnp.concatenate([new[None], only_agent_noop])

    def _segment(self, data: Dataset, key: jax.Array, state: EnvState, per_step_lrs: jax.Array, wds: jax.Array):
        """tau optimiser steps on ``data`` at per-step LRs [tau, N] and weight decays [N], then metrics:
        (inner, SegmentStats, Metrics). ``data`` is an argument, not closed over: the blocked
        (``custom_vmap``) call cannot close over a traced array."""
        k_train, k_eval = jax.random.split(key)
        inner, stats = self.trainer.train(data, state.inner, per_step_lrs, wds, k_train)
        return inner, stats, self.trainer.measure(data, self.trainer.eval_params(inner), k_eval)

    def _advance(self, state: EnvState, segment, lrs: jax.Array, action: jax.Array, params: EnvParams,
                 wds: Optional[jax.Array] = None, wd_action: Optional[jax.Array] = None):
        """(obs, next state, terminated, info) after a segment's result ``(inner, stats, metrics)``; ``wds`` /
        ``wd_action`` [N]: the new per-layer weight decays and WD actions (None: unchanged / no-op)."""
        inner, stats, metrics = segment
        new_state = state.replace(
            inner=inner, lrs=lrs, prev_action=action, step=state.step + 1, metrics=metrics, diverged=stats.diverged,
            grad_norm=stats.grad_norm, update_norm=stats.update_norm,
        )
        if state.wds is not None:
            new_state = new_state.replace(wds=state.wds if wds is None else wds,
                                          prev_wd_action=jnp.zeros_like(action) if wd_action is None else wd_action)
        info = {
            "train_loss": features.safe_loss(metrics.train_loss), "train_acc": metrics.train_acc,
            "val_loss": features.safe_loss(metrics.val_loss), "val_acc": metrics.val_acc,
            "lrs": lrs, "wds": new_state.layer_wds, "diverged": stats.diverged, "step": new_state.step,
        }
        if params.track_test:
            info.update(self.test_info(new_state, params))
        return self.get_obs(new_state, params), new_state, new_state.step >= self.task.horizon, info

    def test_info(self, state: EnvState, params: EnvParams) -> dict:
        """``{"test_loss", "test_acc"}`` (scalars) of the state's network on the whole test split of ``params.data``:
        what ``track_test`` adds to every step's info (evaluation may measure it less often: ``--test-every``)."""
        test_loss, test_acc = self.trainer.test_metrics(params.required_data(), self.trainer.eval_params(state.inner))
        return {"test_loss": features.safe_loss(test_loss), "test_acc": test_acc}

    def step_env(self, key: jax.Array, state: EnvState, action: jax.Array, params: EnvParams):
        """One env step without auto-reset: tau optimiser steps, then metrics, obs and reward."""
        if not self.trainer.rule.per_layer_lrs:
            raise ValueError(f"step_env sets per-layer LRs, but the trainer's optimizer {self.trainer.rule.name!r} "
                             "takes one global LR; drive it with step_schedule")
        action, wd_action = split_action(action, params.control_wd)
        new_lrs = apply_actions(state.lrs, action, params.lr_min, params.lr_max)
        branch_lrs = self._branches(state.lrs, new_lrs, params.reward_mode)
        per_step = jnp.broadcast_to(branch_lrs[:, None], (branch_lrs.shape[0], self.task.tau, self.num_agents))
        new_wds = None
        if wd_action is not None:
            if not self.trainer.rule.per_layer_wd:
                rule = getattr(self.trainer.rule, "name", type(self.trainer.rule).__name__)
                raise ValueError(f"control_wd sets per-layer weight decays, but the trainer's optimizer {rule!r} "
                                 "takes one global weight decay")
            new_wds = apply_wd_actions(state.layer_wds, wd_action, params.wd_min, params.wd_max)
            branch_wds = self._branches(state.layer_wds, new_wds, params.reward_mode)
        else:
            branch_wds = jnp.broadcast_to(state.layer_wds, branch_lrs.shape)
        # same key in every branch: identical minibatches and evaluation examples (common random numbers)
        # vmapped over env copies, the inner runs go in cache-sized blocks on CPU (see blocked.py)
        segments = blocked_vmap(jax.vmap(self._segment, in_axes=(None, None, None, 0, 0)))(
            params.required_data(), key, state, per_step, branch_wds)
        val_acc = segments[2].val_acc
        reward = val_acc[0] if params.reward_mode == "accuracy" else val_acc[0] - val_acc[1:]
        reward = jnp.broadcast_to(reward, (self.num_agents,)).astype(jnp.float32)
        acting = jax.tree.map(lambda x: x[0], segments)
        obs, new_state, terminated, info = self._advance(state, acting, new_lrs, action, params, new_wds, wd_action)
        return obs, new_state, reward, terminated, jnp.bool_(False), info

    def step_schedule(self, key: jax.Array, state: EnvState, per_step_lrs: jax.Array, params: EnvParams):
        """Advance by tau optimiser steps at externally given LRs [tau, N] (handcrafted schedules).

        Same inner training and measurements as ``step_env`` with the same key, no reward, no
        auto-reset. Returns (obs, state, terminated, info); ``info["lrs"]`` is the last step's LRs as
        applied (optimisers that adapt their step size, e.g. Prodigy, report the adapted one).
        """
        segment = blocked_vmap(self._segment)(params.required_data(), key, state, per_step_lrs, state.layer_wds)
        no_action = jnp.zeros(self.num_agents, jnp.int32)
        applied = self.trainer.rule.effective_lr(segment[0].opt_state, per_step_lrs[-1])
        return self._advance(state, segment, applied, no_action, params)
