"""The SGD-scheduler paper's grids (``GlobalLREnv``, paper ``000``) through evaluation's grid runner.

Every method of that paper is one pure per-run function of ``sgd_scheduler.baselines``: per-step LRs
(``run_schedule``: SGD/Adam/Adadelta/Adagrad x ConstantLR/OneCycleLR, the grid search's constant LRs),
a trained policy (``run_policy``) or SLS (``run_sls``). Here each is mapped over a flat axis of ``R``
runs by ``chunked.RunMapper``, as GANNO's grids are in ``harness``: chunks sized from the compiled
program's memory analysis, split over a mesh's devices, ``on_chunk`` after each chunk (progress bars).
The ``GlobalEnvParams`` (its ``data`` leaves included) are the input every run shares, an argument of
the compiled programs and never a constant in them. Mappers are cached per env and kind, so another
grid of the same shapes (another optimiser's best LR, other policies) reuses the compiled programs.

``run_options`` are ``RunMapper``'s: ``mesh`` (``chunked.grid_mesh(devices)``; None: one device),
``max_parallel_runs`` (None: as many as fit the free memory) and ``on_chunk``. Every function returns
its result as NumPy arrays and the ``ChunkPlan`` it ran with; results equal one ``vmap`` over all runs
up to float round-off. Axes: ``R`` runs, ``L`` initial LRs, ``S`` seeds, ``E`` epochs (``task.horizon``),
``N`` grid LRs, ``spe`` = ``env.steps_per_epoch``.
"""
from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from ganno_jax.evaluation.chunked import ChunkPlan, RunMapper
from ganno_jax.sgd_scheduler.baselines import (final_losses, grid_lrs, run_policy, run_schedule, run_sls, run_steps,
                                               schedule_table)
from ganno_jax.sgd_scheduler.env import GlobalEnvParams, GlobalLREnv

@lru_cache(maxsize=32)
def _runs(env: GlobalLREnv, kind: str) -> RunMapper:
    """``RunMapper`` of ``env``'s runs of one ``kind``: ``fn(params, run) -> curves {k: [E]}`` with ``run`` =
    ``(lrs [E, spe], key)`` (``schedule``), ``(policy, key)`` (``policy``) or ``key`` (``sls``)."""
    fns = {"schedule": lambda params, run: run_schedule(env, params, *run),
           "policy": lambda params, run: run_policy(env, params, *run),
           "sls": lambda params, key: run_sls(env, params, key)}
    task = env.task
    hint = (f"One run's memory grows with the task's eval_batch (now {task.eval_batch}; e.g. "
            f"task.replace(eval_batch={max(1, task.eval_batch // 4)})) and batch_size (now {task.batch_size}).")
    return RunMapper(fns[kind], f"{task.name}: {kind} runs", hint)


def _map(env: GlobalLREnv, kind: str, params: GlobalEnvParams, runs, run_options: dict) -> tuple[dict, ChunkPlan]:
    """``_runs(env, kind)`` over ``runs`` (leading axis R), ``params`` as arrays (its Python-float fields too)."""
    return _runs(env, kind)(jax.tree.map(jnp.asarray, params), runs, **run_options)


def map_schedules(env: GlobalLREnv, params: GlobalEnvParams, lrs, keys: jax.Array,
                  **run_options) -> tuple[dict, ChunkPlan]:
    """Run ``r`` trains at per-step LRs ``lrs[r]`` (``[R, E, spe]``) from ``keys[r]`` (``[R]``): curves
    ``{k: [R, E]}`` (``baselines.CURVE_KEYS``) and the plan."""
    return _map(env, "schedule", params, (jnp.asarray(lrs, jnp.float32), keys), run_options)


def map_policies(env: GlobalLREnv, params: GlobalEnvParams, policies, keys: jax.Array,
                 **run_options) -> tuple[dict, ChunkPlan]:
    """Run ``r`` rolls out policy ``r`` (a controller pytree, leaves ``[R, ...]``) for ``task.horizon``
    epochs from ``keys[r]`` (``[R]``): curves ``{k: [R, E]}`` and the plan."""
    return _map(env, "policy", params, (policies, keys), run_options)


def map_sls(env: GlobalLREnv, params: GlobalEnvParams, keys: jax.Array, **run_options) -> tuple[dict, ChunkPlan]:
    """SLS (``baselines.run_sls``, its defaults) from each of ``keys [R]``: curves ``{k: [R, E]}`` and the plan."""
    return _map(env, "sls", params, keys, run_options)


def schedule_tables(schedule: str, init_lrs, epochs: int, steps_per_epoch: int) -> jax.Array:
    """``baselines.schedule_table`` of every initial LR of ``init_lrs [L]``: ``[L, epochs, steps_per_epoch]``."""
    lrs = jnp.asarray(init_lrs, jnp.float32)
    return jax.vmap(lambda lr: schedule_table(schedule, lr, epochs, steps_per_epoch))(lrs)


def grid_search(env: GlobalLREnv, params: GlobalEnvParams, key: jax.Array, num_lrs: int = 100,
                spacing: str = "linear", **run_options) -> tuple[dict, ChunkPlan]:
    """Constant-LR grid search over ``baselines.grid_lrs(spacing, num_lrs, params.lr_min, params.lr_max)``.

    Every LR trains one whole episode (``task.horizon`` epochs) from the same initial network and
    minibatches (``key`` for every run). Returns ``lrs [N]``, ``final_loss [N]`` (validation, ``inf``
    where diverged), ``diverged [N]`` bool, ``steps [N]`` (optimiser steps each run took) and ``best_lr``
    (the LR of the lowest final loss; the first LR when every run diverged), and the plan.
    """
    lrs = np.asarray(grid_lrs(spacing, num_lrs, params.lr_min, params.lr_max))
    tables = schedule_tables("fixed", lrs, env.task.horizon, env.steps_per_epoch)
    keys = key[None][np.zeros(num_lrs, int)]  # the grid key for every LR
    curves, plan = map_schedules(env, params, tables, keys, **run_options)
    final = np.asarray(final_losses(curves))
    result = {"lrs": lrs, "final_loss": final, "diverged": curves["diverged"][:, -1],
              "steps": np.asarray(run_steps(curves)), "best_lr": lrs[np.argmin(final)]}
    return result, plan


def run_baselines(env: GlobalLREnv, params: GlobalEnvParams, init_lrs, seeds: int, key: jax.Array,
                  grid_key: jax.Array, schedules=("constant_lr", "onecycle"), num_lrs: int = 100,
                  spacing: str = "linear", **run_options) -> tuple[dict, ChunkPlan]:
    """Every schedule of ``schedules`` from every initial LR ``[L]`` x ``seeds``, ``grid_search`` (``grid_key``)
    for ``env``'s optimiser and its best LR on the same ``seeds`` keys, in two grids of runs.

    Seed ``s`` uses ``split(key, seeds)[s]`` for every schedule, LR and the best LR (common random numbers).
    Returns ``{schedule: curves [L, S, E], "grid": grid_search result, "grid_best": curves [S, E]}`` and the
    plan of the schedules' grid (the best LR's runs ride along in it).
    """
    grid, _ = grid_search(env, params, grid_key, num_lrs, spacing, **run_options)
    epochs, spe, num_init = env.task.horizon, env.steps_per_epoch, len(init_lrs)
    tables = jnp.concatenate([schedule_tables(name, init_lrs, epochs, spe) for name in schedules]
                             + [schedule_tables("fixed", [grid["best_lr"]], epochs, spe)])  # [K * L + 1, E, spe]
    table_of, seed_of = np.divmod(np.arange(tables.shape[0] * seeds), seeds)  # run r = (table, seed)
    curves, plan = map_schedules(env, params, tables[table_of], jax.random.split(key, seeds)[seed_of], **run_options)
    curves = jax.tree.map(lambda x: x.reshape(tables.shape[0], seeds, *x.shape[1:]), curves)
    out = {name: jax.tree.map(lambda x: x[i * num_init:(i + 1) * num_init], curves) for i, name in enumerate(schedules)}
    return {**out, "grid": grid, "grid_best": jax.tree.map(lambda x: x[-1], curves)}, plan
