"""Chunked GANNO training runs with a run folder: progress bar, orbax checkpoints, resume.

A run folder holds ``config.json`` (task, IPPO config, env params, variant, seed), ``metrics.csv``
(one row per PPO update) and ``checkpoints/<update>``. Training runs ``chunk_updates`` PPO updates
per jitted call (``agents.make_train_pieces``), then writes metrics and a checkpoint, so a run
killed mid-way (even during a save) resumes from its last complete checkpoint, drops the metrics rows
written after it, and ends exactly as an uninterrupted run would (chunked and fused training give
identical parameters for the same key; ``tests/test_resume.py`` kills ``ganno train`` for real).

Variants (the paper's ablations): ``ganno`` (all observations), ``lr_only``, ``timestep_only``
(observation masks) and ``single_agent`` (one agent, global observations, one global LR).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import shutil
import time
from typing import Optional

import jax
import numpy as np
from tqdm.auto import tqdm

from ganno_jax import checkpoint
from ganno_jax.agents import IPPOConfig, RunnerState, make_train_pieces, policy_from
from ganno_jax.agents.sharding import mesh_for
from ganno_jax.baselines.controllers import PolicyController, learned
from ganno_jax.env import features
from ganno_jax.env.layerwise import EnvParams, LayerwiseLREnv
from ganno_jax.env.wrappers import SingleAgentLREnv
from ganno_jax.evaluate import write_atomic
from ganno_jax.tasks.config import Task

VARIANTS = {
    "ganno": (None, False),
    "lr_only": (features.OBS_MASKS["lr_only"], False),
    "timestep_only": (features.OBS_MASKS["timestep_only"], False),
    "single_agent": (None, True),
}
METRIC_FIELDS = ("update", "env_steps", "mean_reward", "val_acc", "final_val_acc", "diverged_frac",
                 "loss_total", "loss_value", "loss_actor", "entropy", "approx_kl", "env_steps_per_s")
COUNT_FIELDS = ("update", "env_steps")  # integer columns of metrics.csv


def make_env(task: Task, variant: str = "ganno", reward_mode: str = "difference"):
    """(env, env_params) of a training variant (see module docstring)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is not valid; allowed: {', '.join(VARIANTS)}")
    obs_mask, single = VARIANTS[variant]
    env = LayerwiseLREnv(task)
    return (SingleAgentLREnv(env) if single else env), EnvParams(reward_mode=reward_mode, obs_mask=obs_mask)


def _config_dict(task: Task, cfg: IPPOConfig, variant: str, reward_mode: str, seed: int) -> dict:
    return {"task": dataclasses.asdict(task), "ippo": dataclasses.asdict(cfg), "variant": variant,
            "reward_mode": reward_mode, "seed": seed}


def load_config(run_dir: str) -> tuple[Task, IPPOConfig, str, str, int]:
    """(task, cfg, variant, reward_mode, seed) stored in a run folder's config.json."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir!r} is not a run folder: {path} is missing")
    with open(path) as f:
        conf = json.load(f)
    ippo = {k: tuple(v) if isinstance(v, list) else v for k, v in conf["ippo"].items()}
    return Task(**conf["task"]), IPPOConfig(**ippo), conf["variant"], conf["reward_mode"], conf["seed"]


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
              reward_mode: str = "difference", seed: int = 0, chunk_updates: int = 10, resume: bool = False,
              overwrite: bool = False, progress: bool = True, max_chunks: Optional[int] = None,
              devices: Optional[int] = None) -> RunnerState:
    """Trains (or, with ``resume``, continues) a run in ``out_dir``; returns the final ``RunnerState``.

    With ``resume`` the configuration comes from ``out_dir/config.json``. ``max_chunks`` stops early
    (as if killed) after that many chunks; a later ``resume`` finishes the run. ``devices``: split the
    env copies over that many devices (None: as many as divide ``cfg.num_envs``; results are the same
    up to float rounding, see ``agents.sharding``).
    """
    if chunk_updates < 1:
        raise ValueError(f"chunk_updates={chunk_updates!r} must be an integer >= 1")
    if resume:
        task, cfg, variant, reward_mode, seed = load_config(out_dir)
    else:
        if os.path.exists(out_dir) and os.listdir(out_dir):
            if not overwrite:
                raise FileExistsError(f"run folder {out_dir!r} exists; pass --resume to continue it or "
                                      f"--overwrite to replace it")
            shutil.rmtree(out_dir)
        os.makedirs(out_dir, exist_ok=True)
        write_atomic(os.path.join(out_dir, "config.json"),
                     json.dumps(_config_dict(task, cfg, variant, reward_mode, seed), indent=2))
    env, env_params = make_env(task, variant, reward_mode)
    pieces = make_train_pieces(cfg, env, env_params, mesh_for(cfg.num_envs, devices))
    runner_state = jax.jit(pieces.init)(jax.random.key(seed))
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


def load_policy(run_dir: str, greedy: bool = True) -> PolicyController:
    """The evaluation controller of a trained run (its variant's mask / single-agent setting included)."""
    task, cfg, variant, reward_mode, seed = load_config(run_dir)
    env, env_params = make_env(task, variant, reward_mode)
    like = jax.eval_shape(make_train_pieces(cfg, env, env_params).init, jax.random.key(seed))
    _, runner_state = checkpoint.restore(os.path.join(run_dir, "checkpoints"), like)
    obs_mask, single = VARIANTS[variant]
    name = "GANNO" if variant == "ganno" else f"GANNO-{variant.replace('_', '-')}"
    return learned(name, policy_from(runner_state, cfg, greedy=greedy), obs_mask=obs_mask, single_agent=single)


def final_metrics(run_dir: str) -> dict:
    """Last row of a run's metrics.csv (empty dict if none)."""
    rows = _read_rows(os.path.join(run_dir, "metrics.csv"), np.inf)
    return rows[-1] if rows else {}
