"""Baselines of the single-agent SGD-scheduler paper (seed ``000``) on ``GlobalLREnv``'s epoch structure.

Every method trains the same network with the same minibatches: a run from key ``k`` starts from
``env.reset_env(split(k)[0])`` and epoch ``e`` uses the key ``split(split(k)[1], E)[e]``, which
``GlobalLREnv.step_env`` (an agent) and ``GlobalLREnv.step_schedule`` (a schedule, ``run_schedule``)
split alike, so every method sees identical epochs (common random numbers).

- Optimisers (``BASELINE_OPTIMIZERS``): ``sgd``, ``adam``, ``adadelta``, ``adagrad``: the optax direction
  transforms ``identity``, ``scale_by_adam()``, ``scale_by_adadelta()``, ``scale_by_rss`` (the direction of
  ``optax.adagrad``) with PyTorch's defaults (Adam betas (0.9, 0.999), eps 1e-8; Adadelta rho 0.9, eps
  1e-6; Adagrad initial accumulator 0, eps 1e-10 added to the root, written as 1e-20 under optax's root)
  inside ``InnerTrainer``; the LR multiplies them.
- Schedules (``BASELINE_SCHEDULES``): ``fixed`` (the LR itself), ``constant_lr`` (PyTorch ``ConstantLR`` with
  its defaults factor 1/3, total_iters 5, stepped once per *epoch* as in pytorch/examples/mnist) and
  ``onecycle`` (PyTorch ``OneCycleLR`` with ``max_lr`` = the initial LR, stepped once per *batch* over
  ``epochs * steps_per_epoch`` steps, as PyTorch documents).
- Grid search (``evaluation.global_lr.grid_search``): ``num_lrs`` constant LRs (``grid_lrs``: ``linear``,
  the paper's ``k / N * lr_max``, k = 1..N, i.e. its [0, 1] range without the no-op LR 0; or ``log``,
  log-spaced over ``[lr_min, lr_max]``), each trained for one whole episode (``task.horizon`` epochs, a ``fixed``
  schedule), so every grid point trains as long as every evaluation run and the grid spends ``num_lrs``
  episodes in all; the best LR is then run on the evaluation seeds.
- ``run_sls``: stochastic Armijo line search (SLS, Vaswani et al. 2019) with
  ``optax.scale_by_backtracking_linesearch`` on the same minibatch, c = 0.1, step halved on failure,
  the guess grown by ``2 ** (1 / steps_per_epoch)`` per step (SLS's reset option), capped at ``lr_max``.

``run_schedule``, ``run_policy`` and ``run_sls`` are one run each, pure functions of ``GlobalEnvParams``
(its ``data`` an argument, never closed over). Grids of them (schedules x initial LRs x seeds, the
grid search and its best LR, SLS and trained agents over seeds) run through evaluation's grid runner,
``ganno_jax.evaluation.global_lr``: memory-planned chunks, split over devices, progress.

Every curve carries ``steps`` (optimiser steps run per epoch); ``run_steps`` sums them per run, so
tables report the steps each method actually trained for.

Divergence never raises: ``InnerTrainer`` skips non-finite updates and flags them; ``diverged`` in the
curves is cumulative, and ``final_losses`` reports a diverged run's final loss as ``inf``.
"""
from __future__ import annotations

import math
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ganno_jax.baselines.torch_schedules import torch_constant_lr, torch_onecycle_lr
from ganno_jax.checks import check_choice, check_int
from ganno_jax.env import features
from ganno_jax.env.inner import InnerTrainer
from ganno_jax.sgd_scheduler.env import GlobalEnvParams, GlobalLREnv
from ganno_jax.tasks.config import Task

BASELINE_OPTIMIZERS = {"sgd": optax.identity, "adam": optax.scale_by_adam, "adadelta": optax.scale_by_adadelta,
                       "adagrad": lambda: optax.scale_by_rss(initial_accumulator_value=0.0, eps=1e-20)}
BASELINE_SCHEDULES = ("fixed", "constant_lr", "onecycle")
GRID_SPACINGS = ("linear", "log")
CURVE_KEYS = ("val_loss", "train_loss", "lr", "diverged", "steps")


def optimizer_env(task: Task, optimizer: str = "sgd") -> GlobalLREnv:
    """``GlobalLREnv`` whose inner optimiser is ``optimizer`` (one of ``BASELINE_OPTIMIZERS``) at the
    scheduled LR."""
    check_choice("optimizer", optimizer, BASELINE_OPTIMIZERS)
    return GlobalLREnv(task, trainer=InnerTrainer(task, direction=BASELINE_OPTIMIZERS[optimizer]()))


def schedule_table(schedule: str, lr, epochs: int, steps_per_epoch: int) -> jax.Array:
    """Per-step LRs ``[epochs, steps_per_epoch]`` of ``schedule`` from initial LR ``lr`` (may be traced)."""
    check_choice("schedule", schedule, BASELINE_SCHEDULES)
    if schedule == "fixed":
        return jnp.full((epochs, steps_per_epoch), lr, jnp.float32)
    if schedule == "constant_lr":
        per_epoch = torch_constant_lr(lr)(jnp.arange(epochs))
        return jnp.broadcast_to(per_epoch[:, None], (epochs, steps_per_epoch)).astype(jnp.float32)
    steps = epochs * steps_per_epoch  # onecycle
    return torch_onecycle_lr(lr, steps)(jnp.arange(steps)).reshape(epochs, steps_per_epoch).astype(jnp.float32)


def _keys(key: jax.Array, epochs: int):
    k_reset, k_run = jax.random.split(key)
    return k_reset, jax.random.split(k_run, epochs)


def _cumulative(curves: dict) -> dict:
    return {**curves, "diverged": jnp.cumsum(curves["diverged"].astype(jnp.int32)) > 0}


def run_schedule(env: GlobalLREnv, params: GlobalEnvParams, lrs: jax.Array, key: jax.Array) -> dict:
    """One run with per-step LRs ``lrs [E, steps_per_epoch]``; curves ``{k: [E]}`` for ``CURVE_KEYS``."""
    k_reset, keys = _keys(key, lrs.shape[0])
    _, state = env.reset_env(k_reset, params)

    def body(state, inputs):
        lrs, k = inputs
        _, state, _, info = env.step_schedule(k, state, lrs, params)
        return state, {name: info[name] for name in CURVE_KEYS}

    _, curves = jax.lax.scan(body, state, (lrs, keys))
    return _cumulative(curves)


def run_policy(env: GlobalLREnv, params: GlobalEnvParams, policy, key: jax.Array, epochs: Optional[int] = None) -> dict:
    """Rolls a controller (``init``/``act`` with float actions ``[1, 1]``) for ``epochs`` (default: the
    horizon) epochs through ``env.step_env`` (no auto-reset); curves ``{k: [E]}`` for ``CURVE_KEYS``."""
    epochs = env.task.horizon if epochs is None else epochs
    k_reset, keys = _keys(key, epochs)
    obs, state = env.reset_env(k_reset, params)
    carry = policy.init(k_reset, 1)

    def body(loop, k):
        obs, state, carry, done = loop
        action, carry = policy.act(jax.random.fold_in(k, 1), obs, carry, done)
        obs, state, _, _, _, info = env.step_env(k, state, action, params)
        return (obs, state, carry, jnp.bool_(False)), {name: info[name] for name in CURVE_KEYS}

    _, curves = jax.lax.scan(body, (obs, state, carry, jnp.bool_(True)), keys)
    return _cumulative(curves)


def grid_lrs(spacing: str, num_lrs: int, lr_min: float, lr_max: float) -> jax.Array:
    """The ``num_lrs`` constant LRs ``[N]`` of a grid search: ``linear`` = ``k / N * lr_max`` (k = 1..N),
    ``log`` = log-spaced over ``[lr_min, lr_max]``."""
    check_choice("spacing", spacing, GRID_SPACINGS)
    check_int("num_lrs", num_lrs)
    if spacing == "linear":
        return jnp.arange(1, num_lrs + 1, dtype=jnp.float32) * jnp.float32(lr_max / num_lrs)
    return jnp.logspace(math.log10(lr_min), math.log10(lr_max), num_lrs, dtype=jnp.float32)


def run_sls(env: GlobalLREnv, params: GlobalEnvParams, key: jax.Array, epochs: Optional[int] = None,
            c: float = 0.1, max_backtracking_steps: int = 20) -> dict:
    """SGD with a stochastic Armijo line search on each minibatch (SLS) for ``epochs`` (default: the
    horizon) epochs, same epochs as ``run_schedule``; curves ``{k: [E]}`` (``lr``: mean accepted step)."""
    epochs = env.task.horizon if epochs is None else epochs
    trainer, data = env.trainer, params.required_data()
    tx = optax.chain(optax.sgd(1.0), optax.scale_by_backtracking_linesearch(
        max_backtracking_steps=max_backtracking_steps, slope_rtol=c, decrease_factor=0.5,
        increase_factor=2.0 ** (1.0 / env.steps_per_epoch), max_learning_rate=params.lr_max))
    k_reset, keys = _keys(key, epochs)
    _, state = env.reset_env(k_reset, params)

    def loss_fn(p, x, y):
        return trainer.loss_and_accuracy(p, x, y)[0]

    def sgd_step(carry, idx):
        p, opt_state = carry
        x, y = data.x_train[idx], data.y_train[idx]
        loss, grad = jax.value_and_grad(loss_fn)(p, x, y)
        updates, new_opt = tx.update(grad, opt_state, p, value=loss, grad=grad, value_fn=loss_fn, x=x, y=y)
        new_p = optax.apply_updates(p, updates)
        finite = jnp.isfinite(loss) & jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(new_p)]))

        def keep(a, b):
            return jax.tree.map(lambda u, v: jnp.where(finite, u, v), a, b)

        lr = optax.tree_utils.tree_get(new_opt, "learning_rate")
        return (keep(new_p, p), keep(new_opt, opt_state)), (jnp.where(finite, loss, 0.0), lr, ~finite)

    def epoch(carry, k):
        k_perm, k_eval, _ = jax.random.split(k, 3)
        carry, (losses, lrs, bad) = jax.lax.scan(sgd_step, carry, env.epoch_indices(k_perm))
        val_loss = trainer.measure(data, carry[0], k_eval).val_loss
        info = {"val_loss": features.safe_loss(val_loss), "train_loss": losses.sum() / jnp.maximum((~bad).sum(), 1),
                "lr": lrs.mean(), "diverged": bad.any() | ~jnp.isfinite(val_loss), "steps": jnp.int32(bad.shape[0])}
        return carry, info

    params0 = state.inner.params
    _, curves = jax.lax.scan(epoch, (params0, tx.init(params0)), keys)
    return _cumulative(curves)


def run_steps(curves: dict) -> jax.Array:
    """Optimiser steps each run trained for: ``curves["steps"]`` summed over epochs, ``[...]`` of ``[..., E]``."""
    return jnp.sum(curves["steps"], axis=-1)


def final_losses(curves: dict) -> jax.Array:
    """Final validation loss per run, ``inf`` where the run diverged at any epoch: shape ``[...]`` of
    curves ``[..., E]``."""
    return jnp.where(curves["diverged"][..., -1], jnp.inf, curves["val_loss"][..., -1])


def loss_summary(final_loss) -> dict:
    """Best and average final loss over the finite runs, the number of diverged (non-finite) runs and
    whether a divergent case exists; ``best``/``avg`` are ``inf`` when every run diverged."""
    x = np.asarray(final_loss, np.float64).ravel()
    ok = np.isfinite(x)
    best = float(x[ok].min()) if ok.any() else math.inf
    avg = float(x[ok].mean()) if ok.any() else math.inf
    return {"best": best, "avg": avg, "diverged_runs": int((~ok).sum()), "runs": int(x.size),
            "divergent": bool((~ok).any())}

