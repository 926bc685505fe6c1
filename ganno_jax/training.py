"""Chunked GANNO training runs with a run folder: progress bar, orbax checkpoints, resume.

A run folder (``runs.py``) holds ``config.json`` (``runs.RunConfig``: task, IPPO config, every
``EnvParams`` field, variant, seed), ``metrics.csv``
(one row per PPO update) and ``checkpoints/<update>``; ``evaluation.controllers.from_run`` loads its
policy for evaluation. Training runs ``chunk_updates`` PPO updates
per jitted call (``agents.make_train_pieces``), then writes metrics and a checkpoint, so a run
killed mid-way (even during a save) resumes from its last complete checkpoint, drops the metrics rows
written after it, and ends exactly as an uninterrupted run would (chunked and fused training give
identical parameters for the same key; ``tests/test_resume.py`` kills ``ganno train`` for real).

Variants (the paper's ablations, ``env.wrappers.VARIANTS``): ``ganno`` (all observations), ``lr_only``,
``timestep_only`` (observation masks) and ``single_agent`` (one agent, global observations, one global LR).
"""
from __future__ import annotations

import csv
import io
import os
import time
from typing import Optional

import jax
import numpy as np
from tqdm.auto import tqdm

from ganno_jax import checkpoint
from ganno_jax.agents import IPPOConfig, RunnerState, make_train_pieces
from ganno_jax.agents.sharding import mesh_for
from ganno_jax.env.layerwise import EnvParams
from ganno_jax.runs import RunConfig, load_config, prepare_out, save_config, write_atomic
from ganno_jax.tasks.config import Task

METRIC_FIELDS = ("update", "env_steps", "mean_reward", "val_acc", "final_val_acc", "diverged_frac",
                 "loss_total", "loss_value", "loss_actor", "entropy", "approx_kl", "env_steps_per_s")
COUNT_FIELDS = ("update", "env_steps")  # integer columns of metrics.csv


def _metric_rows(metrics: dict, first_update: int, cfg: IPPOConfig, seconds: float) -> list[dict]:
    """One dict per update from an ``update`` call's metrics (leading axis = updates)."""
    m = jax.device_get(metrics)
    n = m["reward"].shape[0]
    done = m["done"].astype(bool)
    rows = []
    for u in range(n):
        final = m["val_acc"][u][done[u]]
        rows.append({
            "update": first_update + u + 1, "env_steps": (first_update + u + 1) * cfg.num_steps * cfg.num_envs,
            "mean_reward": float(m["reward"][u].mean()), "val_acc": float(m["val_acc"][u].mean()),
            "final_val_acc": float(final.mean()) if final.size else float("nan"),
            "diverged_frac": float(m["diverged"][u].mean()),
            "loss_total": float(m["loss"]["total"][u]), "loss_value": float(m["loss"]["value"][u]),
            "loss_actor": float(m["loss"]["actor"][u]), "entropy": float(m["loss"]["entropy"][u]),
            "approx_kl": float(m["loss"]["approx_kl"][u]),
            "env_steps_per_s": n * cfg.num_steps * cfg.num_envs / max(seconds, 1e-9),
        })
    return rows


def _read_rows(path: str, upto: int) -> list[dict]:
    """Rows of ``metrics.csv`` up to update ``upto``, typed as ``_metric_rows`` makes them (counts as
    ``int``), so a resumed run rewrites its earlier rows exactly as they were."""
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        rows = [{k: int(v) if k in COUNT_FIELDS else float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    return [r for r in rows if r["update"] <= upto]


def _write_rows(path: str, rows: list[dict]) -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=METRIC_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, out.getvalue())


def train_run(out_dir: str, task: Optional[Task] = None, cfg: Optional[IPPOConfig] = None, variant: str = "ganno",
              env_params: Optional[EnvParams] = None, seed: int = 0, chunk_updates: int = 10, resume: bool = False,
              overwrite: bool = False, progress: bool = True, max_chunks: Optional[int] = None,
              devices: Optional[int] = None) -> RunnerState:
    """Trains (or, with ``resume``, continues) a run in ``out_dir``; returns the final ``RunnerState``.

    ``env_params``: the ``EnvParams`` trained on (default: the paper's, difference reward); the
    variant sets its ``obs_mask``. With ``resume`` the configuration comes from ``out_dir/config.json``.
    ``max_chunks`` stops early (as if killed) after that many chunks; a later ``resume`` finishes the
    run. ``devices``: split the env copies over that many devices (None: as many as divide
    ``cfg.num_envs``; results are the same up to float rounding, see ``agents.sharding``).
    """
    if chunk_updates < 1:
        raise ValueError(f"chunk_updates={chunk_updates!r} must be an integer >= 1")
    if resume:
        config = load_config(out_dir)
    else:
        config = RunConfig(task, cfg, EnvParams() if env_params is None else env_params, variant, seed)
        prepare_out(out_dir, overwrite, what="run folder", hint="pass --resume to continue it or --overwrite to "
                                                                 "replace it")
        save_config(out_dir, config)
    task, cfg, variant = config.task, config.ippo, config.variant
    env, params = config.env()
    pieces = make_train_pieces(cfg, env, params, mesh_for(cfg.num_envs, devices))
    runner_state = jax.jit(pieces.init)(jax.random.key(config.seed))
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    done_updates = 0
    if resume and checkpoint.latest_step(ckpt_dir) is not None:
        done_updates, runner_state = checkpoint.restore(ckpt_dir, runner_state)
    metrics_path = os.path.join(out_dir, "metrics.csv")
    rows = _read_rows(metrics_path, done_updates)
    update = jax.jit(pieces.update, static_argnums=1)
    bar = tqdm(total=cfg.num_updates, initial=done_updates, unit="upd", disable=not progress,
               desc=f"train {task.name} [{variant}]")
    chunks = 0
    while done_updates < cfg.num_updates and (max_chunks is None or chunks < max_chunks):
        n = min(chunk_updates, cfg.num_updates - done_updates)
        start = time.perf_counter()
        runner_state, metrics = update(runner_state, n)
        jax.block_until_ready(runner_state)
        new_rows = _metric_rows(metrics, done_updates, cfg, time.perf_counter() - start)
        rows += new_rows
        done_updates += n
        chunks += 1
        _write_rows(metrics_path, rows)
        checkpoint.save(ckpt_dir, done_updates, runner_state)
        last = new_rows[-1]
        bar.update(n)
        bar.set_postfix(env_steps_s=f"{last['env_steps_per_s']:.1f}", reward=f"{last['mean_reward']:.4f}",
                        val_acc=f"{last['val_acc']:.3f}")
    bar.close()
    return runner_state


def final_metrics(run_dir: str) -> dict:
    """Last row of a run's metrics.csv (empty dict if none)."""
    rows = _read_rows(os.path.join(run_dir, "metrics.csv"), np.inf)
    return rows[-1] if rows else {}
