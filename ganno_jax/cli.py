"""The ``ganno`` command: ``train``, ``evaluate``, ``demo``.

    ganno train --task digits-cnn2 --total-timesteps 20000 --out runs/x      # progress bar, checkpoints
    ganno train --resume runs/x                                             # continue a killed run
    ganno train --task fashion_mnist-cnn2 --train-seeds 3 --log-episodes 0,40 --out runs/f  # 3 agents, Fig. 1
    ganno evaluate --run runs/x --task digits-cnn3 --methods constant,cosine,random --out results/y
    ganno demo --out results/demo                                           # what `make demo` runs
    ganno bench --out results/bench                                         # what `make bench` runs
    ganno train --task digits-cnn2 --warm-start warmup_cosine,onecycle_cosine --out runs/w  # imitate, then IPPO
    ganno train --tasks digits-cnn2,mnist1d-cnn2,digits-mlp --out runs/fam    # one policy, a family of tasks
    ganno train --import my_models.py --task my_data-my_net --data-dir data/ --out runs/m   # your own task
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from ganno_jax import bench
from ganno_jax import distributed
from ganno_jax.agents import IPPOConfig
from ganno_jax.agents.sharding import use_cpu_cores
from ganno_jax.env.layerwise import REWARD_MODES, EnvParams


def _episodes(text: str) -> tuple:
    """``"0,40"`` -> (0, 40); ``""`` -> () (argparse reports a malformed list)."""
    return tuple(int(v) for v in text.split(",") if v.strip())


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds ``(default: X)`` to a flag's help unless the help already gives its default or there is none
    (None, False, an empty list or string)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if "default" in text or default is None or default is False or default in ((), [], ""):
            return text
        return super()._get_help_string(action)


def _ippo_args(parser: argparse.ArgumentParser) -> None:
    """One ``--field`` per IPPOConfig field, defaults (the paper's) shown in --help."""
    group = parser.add_argument_group("IPPO (defaults: GANNO paper, Appendix D)")
    for f in dataclasses.fields(IPPOConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            group.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=f.default,
                               metavar="BOOL", help=f"(default: {f.default})")
        elif isinstance(f.default, tuple):
            group.add_argument(flag, type=lambda s: tuple(int(v) for v in s.split(",")), default=f.default,
                               metavar="N,N", help=f"(default: {','.join(map(str, f.default))})")
        else:
            group.add_argument(flag, type=type(f.default), default=f.default, help=f"(default: {f.default})")


def _task_args(parser: argparse.ArgumentParser, default: str = "digits-cnn2") -> None:
    parser.add_argument("--task", default=default, help=f"task name <dataset>-<model> (default: {default})")
    parser.add_argument("--tau", type=int, help="optimiser steps per env step (default: the task's, 100)")
    parser.add_argument("--horizon", type=int, help="env steps per episode (default: the task's)")
    parser.add_argument("--batch-size", type=int, help="inner minibatch size (default: the task's)")
    parser.add_argument("--width", type=int, help="model width multiplier (default: the task's, 16)")
    parser.add_argument("--data-dir", help="folder with MNIST/Fashion-MNIST/CIFAR files and <name>.npz datasets saved "
                                           "by data.from_arrays(..., save_to=DIR)")
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="Python module or .py file run first, e.g. one that calls tasks.register_model "
                             "(repeatable; also needed with --resume for a registered model)")
    parser.add_argument("--eval-batch", type=int, help="train/validation examples measured per env step "
                                                       "(default: the task's, 512)")
    parser.add_argument("--test-chunk", type=int, help="test examples measured at once in evaluation "
                                                       "(default: the task's, 500; lower it to save memory)")


def _env_args(parser: argparse.ArgumentParser) -> None:
    """One ``--field`` per ``EnvParams`` range and the reward mode (defaults: the paper's)."""
    group = parser.add_argument_group("environment (EnvParams; defaults: GANNO paper)")
    defaults = EnvParams()
    for name in ("init_lr_min", "init_lr_max", "init_wd_min", "init_wd_max", "lr_min", "lr_max", "wd_min", "wd_max"):
        group.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name),
                           help=f"(default: {getattr(defaults, name)})")
    group.add_argument("--init-lr", type=float, help="fixed initial LR instead of sampling the range")
    group.add_argument("--init-wd", type=float, help="fixed weight decay instead of sampling the range")
    group.add_argument("--reward-mode", default=defaults.reward_mode, choices=REWARD_MODES,
                       help=f"(default: {defaults.reward_mode})")
    group.add_argument("--control-wd", action="store_true",
                       help="joint LR + weight-decay control: every layer also sets its own weight decay (a second "
                            "action per agent, clipped to [--wd-min, --wd-max]; beyond the paper)")


def _env_params_from(args) -> EnvParams:
    names = ("init_lr_min", "init_lr_max", "init_wd_min", "init_wd_max", "lr_min", "lr_max", "wd_min", "wd_max",
             "init_lr", "init_wd", "reward_mode", "control_wd")
    return EnvParams(**{name: getattr(args, name) for name in names})


def _task_from(args, name=None):
    """The task ``name`` (default ``--task``) with the command line's task overrides."""
    import ganno_jax as gj

    names = ("tau", "horizon", "batch_size", "width", "data_dir", "eval_batch", "test_chunk")
    overrides = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    return gj.tasks.get(args.task if name is None else name, **overrides)


def _train_tasks(args) -> list:
    """Tasks ``ganno train`` trains on: ``--task-family``'s, ``--tasks``' or ``--task`` alone."""
    from ganno_jax.tasks import families

    if args.task_family:
        names = families.family(args.task_family)
    elif args.tasks:
        names = families.parse_tasks(args.tasks)
    else:
        names = (args.task,)
    return [_task_from(args, name) for name in names]


def _cmd_train(args) -> int:
    from ganno_jax import training
    from ganno_jax.experiment import parse_names

    if args.resume:
        training.train_run(args.resume, resume=True, chunk_updates=args.chunk_updates, devices=args.devices,
                           max_chunks=args.max_chunks)
        print(f"resumed and finished {args.resume}")
        return 0
    if not args.out:
        raise SystemExit("ganno train: --out is required (or --resume RUN)")
    cfg = IPPOConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(IPPOConfig)})
    tasks = _train_tasks(args)
    training.train_run(args.out, tasks[0], cfg, variant=args.variant, env_params=_env_params_from(args),
                       seed=args.seed, chunk_updates=args.chunk_updates, overwrite=args.overwrite,
                       devices=args.devices, train_seeds=args.train_seeds, log_episodes=args.log_episodes,
                       max_chunks=args.max_chunks, warm_start=parse_names(args.warm_start),
                       warm_start_steps=args.warm_start_steps, tasks=tasks[1:])
    print(f"trained; run folder: {args.out} ({training.final_metrics(args.out)})")
    return 0


def _cmd_evaluate(args) -> int:
    from ganno_jax import scales
    from ganno_jax.evaluation import controllers
    from ganno_jax.evaluation.report import evaluate_task
    from ganno_jax.experiment import parse_floats
    from ganno_jax.runs import check_out

    methods = [controllers.baseline(m) for m in args.methods.split(",") if m]
    init_lrs = scales.check_init_lrs(parse_floats(args.init_lrs), allow_zero=bool(args.run))
    seeds = scales.check_seeds(args.seeds)
    task = _task_from(args)
    if args.run:
        methods.insert(0, controllers.from_run(args.run, actions=args.eval_actions))
    check_out(args.out, args.overwrite, protect=[args.run])  # files are written only once all runs end
    _, table = evaluate_task(methods, task, init_lrs, seeds, args.out,
                             weight_decay=args.weight_decay, plot_prefix="", max_parallel_runs=args.max_parallel_runs,
                             devices=args.devices, progress=not args.no_progress and distributed.is_writer())
    if distributed.is_writer():
        print(table)
        print(f"wrote {args.out}/ (results.json, results.md, results.csv, plots)")
    return 0


def _cmd_demo(args) -> int:
    from ganno_jax import demo

    demo.run(args.out, overwrite=args.overwrite)
    return 0


def _run_import(spec: str) -> None:
    """Runs the ``.py`` file ``spec`` or imports module ``spec`` (both register user datasets / models)."""
    import importlib
    import runpy

    if spec.endswith(".py"):
        runpy.run_path(spec)
    else:
        importlib.import_module(spec)


def build_parser() -> argparse.ArgumentParser:
    """The ``ganno`` argument parser."""
    parser = argparse.ArgumentParser(prog="ganno", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train GANNO agents with IPPO",
                           formatter_class=_HelpFormatter)
    _task_args(train)
    family = train.add_mutually_exclusive_group()
    family.add_argument("--tasks", metavar="TASK,TASK", help="train one policy on several tasks at once, "
                        "--num-envs env copies and --total-timesteps env steps of each (replaces --task)")
    family.add_argument("--task-family", metavar="NAME", help="--tasks preset from tasks/families.py: small "
                        "(digits, mnist1d x mlp, cnn2, cnn3) or paper (file datasets; --data-dir)")
    train.add_argument("--out", help="run folder (config.json, metrics.csv, schedules.csv/.png, checkpoints/)")
    train.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last checkpoint")
    train.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    train.add_argument("--variant", default="ganno", help="ganno | lr_only | timestep_only | single_agent")
    train.add_argument("--seed", type=int, default=0, help="master PRNG seed of the run")
    train.add_argument("--chunk-updates", type=int, default=10, help="PPO updates between checkpoints")
    train.add_argument("--max-chunks", type=int, metavar="N",
                       help="stop after N chunks (each checkpointed), e.g. to fit a cluster's time limit; "
                            "--resume continues")
    train.add_argument("--train-seeds", type=int, default=1, metavar="A",
                       help="agents trained at once (one vmap over seeds; the paper's +- covers trained agents)")
    train.add_argument("--log-episodes", type=_episodes, default=(0, 40), metavar="K,K",
                       help="episodes of env copy 0 whose LR schedules go to schedules.csv/.png (paper Fig. 1; "
                            "'' for none)")
    train.add_argument("--devices", type=int, help="split the env copies over this many devices (default: as "
                                                   "many as divide --num-envs; on CPU one device per core)")
    distributed.add_args(train)
    train.add_argument("--warm-start", default="", metavar="NAME,NAME",
                       help="handcrafted schedules (e.g. warmup_cosine,onecycle_cosine) the policy imitates "
                            "before IPPO (behaviour cloning; warm_start.json reports how well)")
    train.add_argument("--warm-start-steps", type=int, default=300, help="behaviour-cloning steps")
    _env_args(train)
    _ippo_args(train)
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="evaluate a trained run and baselines over init-LR x seed grids",
                        formatter_class=_HelpFormatter)
    _task_args(ev, default="digits-cnn3")
    ev.add_argument("--run", help="trained run folder to evaluate (zero-shot on --task)")
    ev.add_argument("--methods", default="constant,cosine,sgdr,random", help="comma-separated baseline names")
    ev.add_argument("--eval-actions", default="greedy", choices=("sample", "greedy"),
                    help="how the --run agent acts: sample from its policy (Mava's executors, the paper) or "
                         "greedy (default: greedy)")
    ev.add_argument("--init-lrs", default="1e-4,3e-4,1e-3,3e-3,1e-2")
    ev.add_argument("--seeds", type=int, default=5)
    ev.add_argument("--weight-decay", type=float, default=None, help="default: the task's (0.1)")
    ev.add_argument("--out", required=True, help="results folder (table .md/.csv, results .json, plots)")
    ev.add_argument("--overwrite", action="store_true")
    ev.add_argument("--max-parallel-runs", type=int, metavar="N",
                    help="runs vmapped at once (default: as many as fit the free memory, split over all devices)")
    ev.add_argument("--devices", type=int, help="split the runs over this many devices (default: all; on CPU "
                                                "one device per core)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    distributed.add_args(ev)
    ev.set_defaults(func=_cmd_evaluate)

    dm = sub.add_parser("demo", help="train a small GANNO on digits and evaluate it zero-shot (CPU, minutes)")
    dm.add_argument("--out", default="results/demo")
    dm.add_argument("--overwrite", action="store_true")
    dm.set_defaults(func=_cmd_demo)
    bench.add_parser(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``ganno`` command."""
    args = build_parser().parse_args(argv)
    use_cpu_cores()
    try:
        distributed.initialize(getattr(args, "coordinator", None), getattr(args, "num_processes", None),
                               getattr(args, "process_id", None))
        for spec in getattr(args, "imports", ()):
            _run_import(spec)
        return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError, ImportError, MemoryError) as err:
        print(f"ganno {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
