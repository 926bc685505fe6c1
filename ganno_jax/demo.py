"""``make demo`` / ``ganno demo``: train a small GANNO on digits (2-layer CNN) on CPU, evaluate it
zero-shot on a deeper CNN and on mnist1d against constant LR, random agents and the handcrafted
schedules, write tables and plots to ``results/demo``. Sized to finish in minutes on 2 CPU cores.

Sizes: the ``cpu`` scale of ``scales.GANNO_SCALES`` (the paper's is ``experiments/generalisation.py
--scale paper``): tau = 5 optimiser steps per decision, 40 decisions per run (200 Adam steps, batch
32), the wide action set, width-8 CNNs, IPPO with 8 env copies; evaluation over the paper's five initial
LRs x 3 seeds, weight decay 0.1.
"""
from __future__ import annotations

import os
import time

from ganno_jax import tasks, training
from ganno_jax.agents import IPPOConfig
from ganno_jax.evaluation import controllers
from ganno_jax.evaluation.report import evaluate_task
from ganno_jax.files import prepare_out, write_atomic
from ganno_jax.scales import GANNO_SCALES, PAPER_INIT_LRS

SCALE = GANNO_SCALES["cpu"]
TRAIN_TASK = "digits-cnn2"
EVAL_TASKS = ("digits-cnn3", "mnist1d-cnn2")
BASELINES = ("constant", "step", "exponential", "linear", "quadratic", "cosine", "sgdr", "warmup_cosine",
             "onecycle_cosine", "random", "lion", "schedule_free_adamw", "prodigy")


def evaluate_all(policy, out: str, eval_tasks=EVAL_TASKS, baselines=BASELINES, seeds: int = SCALE.seeds,
                 init_lrs=PAPER_INIT_LRS, settings=None, progress: bool = True) -> dict:
    """Evaluates ``policy`` and ``baselines`` on each eval task; writes tables and plots; returns tables."""
    settings = SCALE.task if settings is None else settings
    methods = [policy, *[controllers.baseline(b) for b in baselines]]
    return {name: evaluate_task(methods, tasks.get(name, **settings), init_lrs, seeds, os.path.join(out, name),
                                plot_prefix="", progress=progress)[1]
            for name in eval_tasks}


def run(out: str = "results/demo", overwrite: bool = False, ippo: IPPOConfig = SCALE.ippo, seeds: int = SCALE.seeds,
        baselines=BASELINES, init_lrs=PAPER_INIT_LRS, progress: bool = True) -> dict:
    """The whole demo; returns {eval task: Markdown table}. Refuses to replace ``out`` without ``overwrite``."""
    start = time.perf_counter()
    prepare_out(out, overwrite)
    run_dir = os.path.join(out, "agent")
    train_task = tasks.get(TRAIN_TASK, **SCALE.task)
    print(f"[demo] training GANNO on {train_task.name} ({ippo.total_timesteps} env steps, "
          f"{ippo.num_envs} envs, tau={train_task.tau}, difference reward)")
    training.train_run(run_dir, train_task, ippo, env_params=SCALE.env_params(),
                       checkpoint_every=SCALE.checkpoint_every, progress=progress)
    train_secs = time.perf_counter() - start
    policy = controllers.from_run(run_dir)
    print(f"[demo] trained in {train_secs:.0f}s; evaluating zero-shot on {', '.join(EVAL_TASKS)}")
    tables = evaluate_all(policy, out, seeds=seeds, baselines=baselines, init_lrs=init_lrs, progress=progress)
    elapsed = time.perf_counter() - start
    report = [f"# GANNO demo ({elapsed / 60:.1f} min on this machine; training {train_secs / 60:.1f} min)\n"]
    for name, table in tables.items():
        report.append(f"\n## {name}: final test accuracy (%), mean ± std over {seeds} seeds\n\n{table}")
    write_atomic(os.path.join(out, "README.md"), "".join(report))
    print("".join(report))
    print(f"[demo] wrote {out}/ (tables, results.json, plots) in {elapsed:.0f}s")
    return tables
