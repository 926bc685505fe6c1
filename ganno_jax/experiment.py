"""Shared machinery of the ``experiments/*.py`` scripts (one script per GANNO paper result).

Each script is a thin ``main(argv)`` over this module: common flags (``parser``), the scale
(``scales.GannoScale``), input checks that fail before any file is written (``check_*``, all of them
through ``check_inputs`` before ``prepare_out``; initial-LR grids and seeds: ``scales.check_init_lrs`` /
``check_seeds``), training or reusing a GANNO
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
import os
import sys
from typing import Callable, Optional, Sequence

from ganno_jax import distributed, flags, tasks, training
from ganno_jax.agents.sharding import use_cpu_cores
from ganno_jax.checks import check_choice, check_float_range, check_int, require
from ganno_jax.evaluation import controllers
from ganno_jax.flags import parse_floats, parse_names  # noqa: F401 (ex.parse_floats: the scripts' list flags)
from ganno_jax.data import load_dataset
from ganno_jax.files import prepare_out
from ganno_jax.runs import RunConfig, load_config
from ganno_jax.scales import PAPER_INIT_LRS, GannoScale, check_init_lrs, ganno_scale


# ----------------------------------------------------------------------------------------- checks
def seeds_of(args, scale: GannoScale) -> int:
    """``--seeds`` if given, else the scale's; an integer >= 1 (else ``ValueError``)."""
    return check_int("--seeds", args.seeds if args.seeds is not None else scale.seeds)


def check_names(names: Sequence[str], valid: Sequence[str], what: str) -> tuple:
    """``names`` unchanged if each is in ``valid``; else a ValueError naming ``what`` and the valid ones."""
    return tuple(check_choice(what, n, valid) for n in names)


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


def check_weight_decays(wds: Sequence[float]) -> tuple:
    """Validated weight decays: non-empty, each finite and in [0, 10]; else ``ValueError``."""
    require("--weight-decays", wds, len(wds) > 0, "a non-empty list, e.g. --weight-decays 0.1")
    return tuple(float(check_float_range("weight_decay", w, 0, 10)) for w in wds)


# ----------------------------------------------------------------------------------------- flags
def base_parser(prog: str, description: str, default_out: str, scale_help: str,
                scale_default: Optional[str] = "cpu") -> argparse.ArgumentParser:
    """ArgumentParser with the flags of every script: --out, --overwrite, --scale (default ``scale_default``;
    None: ``scale_of`` tells an explicit one from the default cpu), --smoke, and --coordinator /
    --num-processes / --process-id (several processes, ``distributed.add_args``)."""
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add(p, "--out", default_out)
    flags.add(p, "--overwrite")
    flags.add(p, "--scale", scale_default, shown="cpu", note=": " + scale_help)
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (tests); overrides --scale")
    distributed.add_args(p)
    return p


def parser(prog: str, description: str, default_out: str,
           init_lrs_default: str = "1e-4,3e-4,1e-3,3e-3,1e-2, the paper's") -> argparse.ArgumentParser:
    """ArgumentParser with the flags every GANNO experiment shares (``flags.FLAGS``; the defaults that
    differ from the ``ganno`` command's are the scale's)."""
    p = base_parser(prog, description, default_out,
                    "cpu: minutes on 2 CPU cores (the demo's sizes); paper: tau=100, the registry's "
                    "horizons/widths, IPPO paper defaults, 5 seeds (an accelerator); with --train-run, the run's "
                    "sizes unless --scale or --smoke is given", scale_default=None)
    flags.add(p, "--seeds", shown="the scale's: 1 smoke, 3 cpu, 5 paper")
    flags.add(p, "--init-lrs", shown=f"{init_lrs_default}; --smoke: a smaller one")
    p.add_argument("--train-task", help="training task <dataset>-<model> (default: per experiment)")
    p.add_argument("--eval-tasks", type=parse_names, metavar="TASK,TASK",
                   help="evaluation tasks (default: per experiment)")
    p.add_argument("--train-run", help="reuse this trained run folder (from `ganno train` or an earlier "
                                       "experiment's <out>/agent) instead of training; its sizes carry over")
    flags.add(p, "--seed", 0, note=" of training and evaluation")
    flags.add(p, "--no-progress")
    flags.add(p, "--max-parallel-runs")
    flags.add(p, "--test-every", 1)
    flags.add(p, "--members", shown="the scale's: 1, 3 at --scale paper")
    flags.add(p, "--eval-actions", shown="the scale's: greedy, sample at --scale paper")
    p.add_argument("--print-config", action="store_true",
                   help="print the fully resolved configuration as one JSON object and exit without training")
    flags.add_task_sizes(p, data_dir_note="; with the Fashion-MNIST / CIFAR-10 files the default tasks are the "
                                          "paper's: train on fashion_mnist, evaluate on cifar10 (default: offline "
                                          "digits / mnist1d)")
    return p


def run_options(args) -> dict:
    """Keyword arguments of ``evaluation.report.evaluate_task`` from the flags: runs at once
    (``--max-parallel-runs``: an integer >= 1, else ``ValueError``), progress bar, test cadence (``--test-every``;
    1 for a script without it)."""
    if args.max_parallel_runs is not None:
        check_int("--max-parallel-runs", args.max_parallel_runs, note=" (or leave it out: chosen from free memory)")
    test_every = check_int("--test-every", getattr(args, "test_every", 1))
    return dict(max_parallel_runs=args.max_parallel_runs, progress=not args.no_progress and distributed.is_writer(),
                test_every=test_every)


def explicit_scale(args) -> bool:
    """True when ``--smoke`` or ``--scale`` was given (its sizes then win over a ``--train-run``'s)."""
    return bool(getattr(args, "smoke", False) or getattr(args, "scale", None))


def scale_of(args) -> GannoScale:
    """The GANNO scale selected by ``--smoke`` / ``--scale`` (default cpu), with ``--members`` /
    ``--eval-actions``."""
    scale = ganno_scale("smoke" if args.smoke else args.scale or "cpu")
    if getattr(args, "members", None) is not None:
        scale = dataclasses.replace(scale, members=check_int("--members", args.members))
    if getattr(args, "eval_actions", None) is not None:
        scale = dataclasses.replace(scale, eval_actions=args.eval_actions)
    return scale


def default_init_lrs(args, smoke=(1e-3, 1e-2), full=PAPER_INIT_LRS) -> tuple:
    """``--init-lrs`` if given, else the smoke or the paper grid."""
    if args.init_lrs is not None:
        return args.init_lrs
    return smoke if args.smoke else full


def grid_of(args) -> tuple[GannoScale, tuple, int]:
    """(scale, initial-LR grid, seeds per initial LR) of a GANNO script's evaluation grid: ``scale_of``,
    ``default_init_lrs`` checked by ``scales.check_init_lrs``, ``seeds_of``, validated in that order."""
    scale = scale_of(args)
    return scale, check_init_lrs(default_init_lrs(args)), seeds_of(args, scale)


def make_task(name: str, scale: GannoScale, args=None, run_task: Optional[tasks.Task] = None) -> "tasks.Task":
    """Task ``name`` at ``scale`` with the task-size flags of ``args`` (``flags.task_from``); a trained run's
    task ``run_task`` lends it its sizes (``flags.carried``) unless ``--scale`` / ``--smoke`` was given."""
    explicit = scale.task if args is not None and explicit_scale(args) else None
    return flags.task_from(name, args, sizes=scale.task, explicit_sizes=explicit, run_task=run_task)


def eval_task(name: str, scale: GannoScale, args) -> "tasks.Task":
    """Evaluation task ``name``: ``make_task`` with the sizes of the ``--train-run`` (when given)."""
    return make_task(name, scale, args, load_config(args.train_run).task if args.train_run else None)


def pick_tasks(args, offline_train: str, offline_eval: Sequence[str], files_train: str,
               files_eval: Sequence[str]) -> tuple[str, tuple]:
    """(train task, eval tasks): the flags if given, else the offline or the ``--data-dir`` defaults."""
    train = args.train_task or (files_train if args.data_dir else offline_train)
    evals = args.eval_tasks or tuple(files_eval if args.data_dir else offline_eval)
    require("--eval-tasks", evals, len(evals) > 0, "a non-empty list of tasks")
    return check_tasks([train])[0], check_tasks(evals)


# ------------------------------------------------------------------------------------- training
def train_or_load(args, scale: GannoScale, train_task: str, folder: str, variant: str = "ganno",
                  run_dir: Optional[str] = None, actions: Optional[str] = None, name: Optional[str] = None):
    """The evaluation controller of ``run_dir`` if given, else of a run of ``scale.members`` members
    trained into ``folder``; its policy acts by ``actions`` (default ``scale.eval_actions``)."""
    actions = scale.eval_actions if actions is None else actions
    if not run_dir:
        task = make_task(train_task, scale, args)
        print(f"[{scale.name}] training {variant} on {task.name}: {scale.members} member(s), "
              f"{scale.ippo.total_timesteps} env steps, {scale.ippo.num_envs} envs, tau={task.tau}, "
              f"horizon={task.horizon}")
        training.train_run(folder, task, scale.ippo, variant=variant, env_params=scale.env_params(), seed=args.seed,
                           checkpoint_every=scale.checkpoint_every, progress=not args.no_progress,
                           members=scale.members)
    return controllers.from_run(run_dir or folder, actions=actions, name=name)


def check_inputs(args, scale: GannoScale, train_task: str, eval_tasks: Sequence[str],
                 reused: Sequence[Optional[str]] = (), trains: bool = True) -> None:
    """Checks every input a script has not checked yet, writing nothing: each ``reused`` run folder
    (``check_runs``), the task trained on (when ``trains``), then each evaluation task, built with the
    task-size flags, their datasets loaded (the files of ``--data-dir``; cached, so training and evaluation
    reuse them) and ``--max-parallel-runs`` (``prepare_out`` then checks ``--out``). Bad input raises the
    error naming it (``ValueError``; ``FileNotFoundError``, e.g. ``data.DatasetError``)."""
    check_runs(reused)
    built = ([make_task(train_task, scale, args)] if trains else []) + [eval_task(n, scale, args) for n in eval_tasks]
    for task in built:
        load_dataset(task.dataset, task.data_dir)
    run_options(args)


def prepare_out_and_agent(args, scale: GannoScale, train_task: str, eval_tasks: Sequence[str],
                          actions: Optional[str] = None, name: Optional[str] = None):
    """Prepares ``args.out`` once every input passed ``check_inputs`` (``files.prepare_out``; ``--train-run``
    is protected) and returns the GANNO controller: reused from ``--train-run``, or trained into
    ``<out>/agent`` (``actions``, ``name``: see ``train_or_load``)."""
    check_inputs(args, scale, train_task, eval_tasks, reused=[args.train_run], trains=not args.train_run)
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
        run = RunConfig(make_task(train_task, scale, args), scale.ippo, scale.env_params(), seed=args.seed,
                        members=scale.members)
    trained = run.to_dict()
    evals = {name: eval_task(name, scale, args) for name in eval_tasks}
    # inner runs per decision in training: the acting branch plus the no-op branch of the difference reward
    # (per-agent difference: one per layer as well; None here, it depends on the model's depth)
    branches = {"accuracy": 1, "difference": 2}.get(run.env_params.reward_mode)
    decisions = run.ippo.num_updates * run.ippo.num_steps * run.ippo.num_envs * run.members
    return {
        "scale": scale.name, "train_run": args.train_run,
        "train_task": trained["task"], "env_params": trained["env_params"], "ippo": trained["ippo"],
        "variant": trained["variant"], "members": run.members, "seed": args.seed,
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
    return [controllers.baseline(n) for n in names]


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
