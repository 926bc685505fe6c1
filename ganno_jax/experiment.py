"""Shared machinery of the ``experiments/*.py`` scripts (one script per GANNO paper result).

Each script is a thin ``main(argv)`` over this module: common flags (``parser``), the scale
(``scales.GannoScale``), input checks that fail before any training (``check_*``; initial-LR grids and
seeds: ``scales.check_init_lrs`` / ``check_seeds``), training or reusing a GANNO
run (``train_or_load``). Evaluating controllers on a task and writing its folder is
``evaluation.report.evaluate_task``, the final report ``evaluation.report.finish``.

Scales (``--scale`` / ``--smoke``, defined in ``scales.GANNO_SCALES``): ``smoke`` (seconds, tests),
``cpu`` (default; the ``ganno demo`` sizes, minutes on 2 CPU cores), ``paper`` (an accelerator).

Datasets: offline by default (``digits`` for training, ``digits``/``mnist1d`` for evaluation);
``--data-dir`` switches to the paper's Fashion-MNIST (training) and CIFAR-10 (evaluation) files.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from typing import Callable, Optional, Sequence

from ganno_jax import distributed, tasks, training
from ganno_jax.agents.sharding import use_cpu_cores
from ganno_jax.evaluation import controllers
from ganno_jax.runs import RunConfig, load_config, prepare_out
from ganno_jax.scales import PAPER_INIT_LRS, GannoScale, check_seeds, ganno_scale


# ----------------------------------------------------------------------------------------- checks
def parse_floats(text: str) -> tuple:
    """``"1e-3,3e-3"`` -> (0.001, 0.003); a malformed list is a ValueError naming the bad item."""
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    try:
        return tuple(float(s) for s in items)
    except ValueError:
        raise ValueError(f"{text!r} is not a comma-separated list of numbers") from None


def parse_names(text: str) -> tuple:
    """``"a, b,"`` -> ("a", "b"): a comma-separated list of names (spaces stripped, empty items dropped)."""
    return tuple(x.strip() for x in str(text).split(",") if x.strip())


def seeds_of(args, scale: GannoScale) -> int:
    """``--seeds`` if given, else the scale's; an integer >= 1 (else ``ValueError``)."""
    return check_seeds(args.seeds if args.seeds is not None else scale.seeds)


def check_names(names: Sequence[str], valid: Sequence[str], what: str) -> tuple:
    """``names`` unchanged if each is in ``valid``; else a ValueError listing the valid ones."""
    for n in names:
        if n not in valid:
            raise ValueError(f"unknown {what} {n!r}; valid {what}s: {', '.join(valid)}")
    return tuple(names)


def check_tasks(names: Sequence[str]) -> tuple:
    """Task names, each checked against the registry (its error lists the valid names)."""
    for n in names:
        tasks.get(n)
    return tuple(names)


def check_runs(paths: Sequence[Optional[str]]) -> None:
    """Each given path is a training run folder (else ``FileNotFoundError`` naming it)."""
    for path in paths:
        if path:
            load_config(path)


# ----------------------------------------------------------------------------------------- flags
def base_parser(prog: str, description: str, default_out: str, scale_help: str) -> argparse.ArgumentParser:
    """ArgumentParser with the flags of every script: --out, --overwrite, --scale cpu|paper, --smoke, and
    --coordinator / --num-processes / --process-id (several processes, ``distributed.add_args``)."""
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=default_out, help=f"results folder (default: {default_out})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing non-empty results folder")
    p.add_argument("--scale", choices=("cpu", "paper"), default="cpu", help=scale_help)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (tests); overrides --scale")
    distributed.add_args(p)
    return p


def parser(prog: str, description: str, default_out: str,
           init_lrs_default: str = "1e-4,3e-4,1e-3,3e-3,1e-2, the paper's") -> argparse.ArgumentParser:
    """ArgumentParser with the flags every GANNO experiment shares."""
    p = base_parser(prog, description, default_out,
                    "cpu: minutes on 2 CPU cores (the demo's sizes); paper: tau=100, the registry's "
                    "horizons/widths, IPPO paper defaults, 5 seeds (an accelerator)")
    p.add_argument("--seeds", type=int, help="evaluation seeds per initial LR (default: 1 smoke, 3 cpu, 5 paper)")
    p.add_argument("--init-lrs", type=parse_floats, metavar="LR,LR",
                   help=f"initial-LR grid (default: {init_lrs_default}; --smoke: a smaller one)")
    p.add_argument("--data-dir", help="folder with the Fashion-MNIST / CIFAR-10 files: train on "
                                      "fashion_mnist, evaluate on cifar10 as in the paper (default: offline "
                                      "digits / mnist1d)")
    p.add_argument("--train-task", help="training task <dataset>-<model> (default: per experiment)")
    p.add_argument("--eval-tasks", type=parse_names, metavar="TASK,TASK",
                   help="evaluation tasks (default: per experiment)")
    p.add_argument("--train-run", help="reuse this trained run folder (from `ganno train` or an earlier "
                                       "experiment's <out>/agent) instead of training")
    p.add_argument("--seed", type=int, default=0, help="training and evaluation master seed (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (training, evaluation)")
    p.add_argument("--max-parallel-runs", type=int, metavar="N",
                   help="evaluation runs vmapped at once (default: as many as fit the free memory)")
    p.add_argument("--test-chunk", type=int, metavar="N",
                   help="test examples measured at once per run (default: the task's, 500); lower it if "
                        "one evaluation run does not fit memory")
    p.add_argument("--train-seeds", type=int, metavar="N",
                   help="GANNO agents trained at once (one jax.vmap over keys); tables give mean ± std over "
                        "trained agents x evaluation seeds (default: 1, 3 at --scale paper)")
    p.add_argument("--eval-actions", choices=controllers.EVAL_ACTIONS,
                   help="how learned agents act in evaluation: sample from the policy (Mava's executors, the "
                        "paper) or greedy (default: greedy, sample at --scale paper)")
    p.add_argument("--print-config", action="store_true",
                   help="print the fully resolved configuration as one JSON object and exit without training")
    return p


def run_options(args) -> dict:
    """Keyword arguments of ``evaluation.report.evaluate_task`` from the flags: runs at once, progress bar."""
    return dict(max_parallel_runs=args.max_parallel_runs, progress=not args.no_progress and distributed.is_writer())


def scale_of(args) -> GannoScale:
    """The GANNO scale selected by ``--smoke`` / ``--scale``, with ``--train-seeds`` / ``--eval-actions``."""
    scale = ganno_scale("smoke" if args.smoke else args.scale)
    if getattr(args, "train_seeds", None) is not None:
        scale = dataclasses.replace(scale, train_seeds=check_seeds(args.train_seeds, "--train-seeds"))
    if getattr(args, "eval_actions", None) is not None:
        scale = dataclasses.replace(scale, eval_actions=controllers.check_eval_actions(args.eval_actions))
    return scale


def default_init_lrs(args, smoke=(1e-3, 1e-2), full=PAPER_INIT_LRS) -> tuple:
    """``--init-lrs`` if given, else the smoke or the paper grid."""
    if args.init_lrs is not None:
        return args.init_lrs
    return smoke if args.smoke else full


def make_task(name: str, scale: GannoScale, args=None) -> "tasks.Task":
    """Task ``name`` at ``scale``, with ``args.data_dir`` (file-backed datasets) and ``args.test_chunk``."""
    overrides = dict(scale.task)
    for flag in ("data_dir", "test_chunk"):
        if getattr(args, flag, None) is not None:
            overrides[flag] = getattr(args, flag)
    return tasks.get(name, **overrides)


def pick_tasks(args, offline_train: str, offline_eval: Sequence[str], files_train: str,
               files_eval: Sequence[str]) -> tuple[str, tuple]:
    """(train task, eval tasks): the flags if given, else the offline or the ``--data-dir`` defaults."""
    train = args.train_task or (files_train if args.data_dir else offline_train)
    evals = args.eval_tasks or tuple(files_eval if args.data_dir else offline_eval)
    if not evals:
        raise ValueError("--eval-tasks is empty; give at least one task")
    return check_tasks([train])[0], check_tasks(evals)


# ------------------------------------------------------------------------------------- training
def train_or_load(args, scale: GannoScale, train_task: str, folder: str, variant: str = "ganno",
                  run_dir: Optional[str] = None, actions: Optional[str] = None, name: Optional[str] = None):
    """The evaluation controller of ``run_dir`` if given, else of a run of ``scale.train_seeds`` agents
    trained into ``folder``; its policy acts by ``actions`` (default ``scale.eval_actions``)."""
    actions = scale.eval_actions if actions is None else actions
    if not run_dir:
        task = make_task(train_task, scale, args)
        print(f"[{scale.name}] training {variant} on {task.name}: {scale.train_seeds} agent(s), "
              f"{scale.ippo.total_timesteps} env steps, {scale.ippo.num_envs} envs, tau={task.tau}, "
              f"horizon={task.horizon}")
        training.train_run(folder, task, scale.ippo, variant=variant, seed=args.seed,
                           chunk_updates=scale.chunk_updates, progress=not args.no_progress,
                           train_seeds=scale.train_seeds)
    return controllers.from_run(run_dir or folder, actions=actions, name=name)


def prepare_out_and_agent(args, scale: GannoScale, train_task: str, actions: Optional[str] = None,
                          name: Optional[str] = None):
    """Prepares ``args.out`` (``runs.prepare_out``; ``--train-run`` is protected) and returns the GANNO
    controller: reused from ``--train-run``, or trained into ``<out>/agent`` (``actions``, ``name``: see
    ``train_or_load``)."""
    check_runs([args.train_run])
    prepare_out(args.out, args.overwrite, protect=[args.train_run])
    return train_or_load(args, scale, train_task, os.path.join(args.out, "agent"), run_dir=args.train_run,
                         actions=actions, name=name)


def resolved_config(args, scale: GannoScale, train_task: str, eval_tasks: Sequence[str], **extra) -> dict:
    """The fully resolved configuration of a script as a JSON-ready dict: the training run's task, IPPO
    config, every ``EnvParams`` field and trained agents (read from ``--train-run`` when given), every
    field of each evaluation task, evaluation seeds and actions, optimiser steps per episode, ``extra``."""
    if args.train_run:
        run = load_config(args.train_run)
    else:
        run = RunConfig(make_task(train_task, scale, args), scale.ippo, seed=args.seed, train_seeds=scale.train_seeds)
    trained = run.to_dict()
    evals = {name: make_task(name, scale, args) for name in eval_tasks}
    # inner runs per decision in training: the acting branch plus the no-op branch of the difference reward
    # (per-agent difference: one per layer as well; None here, it depends on the model's depth)
    branches = {"accuracy": 1, "difference": 2}.get(run.env_params.reward_mode)
    decisions = run.ippo.num_updates * run.ippo.num_steps * run.ippo.num_envs * run.train_seeds
    return {
        "scale": scale.name, "train_run": args.train_run,
        "train_task": trained["task"], "env_params": trained["env_params"], "ippo": trained["ippo"],
        "variant": trained["variant"], "train_seeds": run.train_seeds, "seed": args.seed,
        "inner_steps_per_episode": run.task.total_inner_steps,
        "train_decisions": decisions,
        "train_inner_steps": None if branches is None else decisions * run.task.tau * branches,
        "eval_tasks": {n: {**dataclasses.asdict(t), "inner_steps_per_episode": t.total_inner_steps}
                       for n, t in evals.items()},
        "eval_seeds": seeds_of(args, scale), "eval_actions": scale.eval_actions, **extra,
    }


def print_config(args, scale: GannoScale, train_task: str, eval_tasks: Sequence[str], **extra) -> bool:
    """With ``--print-config``: prints ``resolved_config(...)`` as one JSON object and returns True (the
    script then exits without training or writing anything); else False."""
    if not getattr(args, "print_config", False):
        return False
    print(json.dumps(resolved_config(args, scale, train_task, eval_tasks, **extra), indent=2))
    return True


def baseline_controllers(names: Sequence[str]) -> list:
    """Controllers for baseline names (unknown names: ValueError listing ``controllers.baseline_names()``)."""
    return [controllers.baseline(n) for n in check_names(names, controllers.baseline_names(), "controller")]


def scale_note(scale: GannoScale, seeds: int) -> str:
    """One line naming the sizes used (for report headings)."""
    t = scale.task
    return (f"scale {scale.name}: tau={t.get('tau')}, horizon={t.get('horizon', 'registry')}, "
            f"width={t.get('width', 'registry')}, {seeds} seed(s)")


def script_entry(main: Callable[[Optional[list]], object]) -> None:
    """``if __name__ == "__main__"`` body: one CPU device per core (env copies split over them), joins a
    multi-process run (``distributed.initialize_from_argv``), then runs ``main``, turning input errors
    into one-line exits."""
    use_cpu_cores()
    try:
        distributed.initialize_from_argv(sys.argv[1:])
        main(sys.argv[1:])
    except (ValueError, FileExistsError, FileNotFoundError, MemoryError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def check_weight_decays(wds: Sequence[float]) -> tuple:
    """Validated weight decays: non-empty, finite, in [0, 10]; else ``ValueError``."""
    wds = tuple(float(w) for w in wds)
    if not wds:
        raise ValueError("the weight-decay list is empty; give at least one, e.g. --weight-decays 0.1")
    for w in wds:
        if not math.isfinite(w) or not 0 <= w <= 10:
            raise ValueError(f"weight decay {w!r} is not valid; weight decays must be finite and in [0, 10]")
    return wds
