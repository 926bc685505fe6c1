"""The ``ganno`` command: ``train``, ``evaluate``, ``demo``.

    ganno train --task digits-cnn2 --total-timesteps 20000 --out runs/x      # progress bar, checkpoints
    ganno train --resume runs/x                                             # continue a killed run
    ganno train --task fashion_mnist-cnn2 --members 3 --log-episodes 0,40 --out runs/f  # 3 agents, Fig. 1
    ganno evaluate --run runs/x --task digits-cnn3 --methods constant,cosine,random --out results/y  # run's sizes
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

from ganno_jax import bench, distributed, flags, learned, run_log
from ganno_jax.agents import IPPOConfig
from ganno_jax.agents.sharding import use_cpu_cores
from ganno_jax.env.layerwise import EnvParams
from ganno_jax.scales import PAPER_INIT_LRS

#: ``EnvParams`` ranges ``ganno train`` takes as ``--<field>`` flags.
ENV_RANGES = ("init_lr_min", "init_lr_max", "init_wd_min", "init_wd_max", "lr_min", "lr_max", "wd_min", "wd_max")
EVALUATE_SIZES = """Evaluates the --run agent (if given) and the --methods baselines on --task over --init-lrs x
--seeds.

The task's sizes, lowest first: the registry's; a --run's tau, horizon, optimiser, weight-decay mode and data
folder, and on the run's own dataset its width and batch size (the agent keeps its saved EnvParams whole:
action set, LR/WD bounds, weight-decay control, variant); --scale's; the task-size flags. results.json
records the task used under "task"."""


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


def _task_args(parser: argparse.ArgumentParser, default: str) -> None:
    """``--task`` (default ``default``), the task-size flags (``flags.add_task_sizes``) and ``--import``."""
    flags.add(parser, "--task", default)
    flags.add_task_sizes(parser)
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="Python module or .py file run first, e.g. one that calls tasks.register_model "
                             "(repeatable; also needed with --resume for a registered model)")


def _env_args(parser: argparse.ArgumentParser) -> None:
    """One ``--field`` per ``EnvParams`` range and the reward mode (defaults: the paper's)."""
    group = parser.add_argument_group("environment (EnvParams; defaults: GANNO paper)")
    defaults = EnvParams()
    for name in ENV_RANGES:
        group.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(defaults, name),
                           help=f"(default: {getattr(defaults, name)})")
    group.add_argument("--init-lr", type=float, help="fixed initial LR instead of sampling the range")
    group.add_argument("--init-wd", type=float, help="fixed weight decay instead of sampling the range")
    flags.add(group, "--reward-mode", defaults.reward_mode)
    flags.add(group, "--actions", defaults.action_set)
    group.add_argument("--control-wd", action="store_true",
                       help="joint LR + weight-decay control: every layer also sets its own weight decay (a second "
                            "action per agent, clipped to [--wd-min, --wd-max]; beyond the paper)")


def _env_params_from(args) -> EnvParams:
    names = (*ENV_RANGES, "init_lr", "init_wd", "reward_mode", "control_wd", "action_set")
    return EnvParams(**{name: getattr(args, name) for name in names})


def _train_tasks(args) -> list:
    """Tasks ``ganno train`` trains on: ``--task-family``'s, ``--tasks``' or ``--task`` alone."""
    from ganno_jax.tasks import families

    if args.task_family:
        names = families.family(args.task_family)
    elif args.tasks:
        names = families.parse_tasks(args.tasks)
    else:
        names = (args.task,)
    return [flags.task_from(name, args) for name in names]


def _cmd_train(args) -> int:
    from ganno_jax import training

    if args.resume:
        training.train_run(args.resume, resume=True, checkpoint_every=args.checkpoint_every, devices=args.devices,
                           max_checkpoints=args.max_checkpoints, progress=not args.no_progress, track=args.log or ())
        print(f"resumed and finished {args.resume}")
        return 0
    if not args.out:
        raise SystemExit("ganno train: --out is required (or --resume RUN)")
    cfg = IPPOConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(IPPOConfig)})
    tasks = _train_tasks(args)
    training.train_run(args.out, tasks[0], cfg, variant=args.variant, env_params=_env_params_from(args),
                       seed=args.seed, checkpoint_every=args.checkpoint_every, overwrite=args.overwrite,
                       progress=not args.no_progress, devices=args.devices, members=args.members,
                       log_episodes=args.log_episodes, max_checkpoints=args.max_checkpoints,
                       warm_start=flags.parse_names(args.warm_start), warm_start_steps=args.warm_start_steps,
                       tasks=tasks[1:], track=args.log or ())
    print(f"trained; run folder: {args.out} ({run_log.final_metrics(args.out)})")
    return 0


def _cmd_evaluate(args) -> int:
    from ganno_jax import scales, tracking
    from ganno_jax.evaluation import controllers
    from ganno_jax.evaluation.report import check_evaluation_out, evaluate_task
    from ganno_jax.evaluation.tables import summary_rows
    from ganno_jax.runs import load_config

    track = tracking.check_names(args.log or ())  # a missing extra is refused before any work
    if args.run and args.pretrained:
        raise ValueError("give --run or --pretrained, not both")
    methods = [controllers.baseline(m) for m in args.methods]
    init_lrs = scales.check_init_lrs(args.init_lrs, allow_zero=bool(args.run or args.pretrained))
    seeds = scales.check_seeds(args.seeds, "--seeds")
    if args.pretrained:
        ctrl = learned.pretrained(args.pretrained, greedy=args.eval_actions == "greedy")
        learned_method, run_task = controllers.learned(ctrl.name, ctrl.policy, ctrl.env_params, ctrl.variant), ctrl.task
    elif args.run:
        learned_method = controllers.from_run(args.run, actions=args.eval_actions)
        run_task = load_config(args.run).task
    else:
        learned_method = run_task = None
    task = flags.task_from(args.task, args, explicit_sizes=flags.scale_sizes(args.scale), run_task=run_task)
    check_evaluation_out(args.out, args.overwrite, args.resume, protect=[args.run])  # before anything is written
    if learned_method is not None:
        methods.insert(0, learned_method)
    results, table = evaluate_task(methods, task, init_lrs, seeds, args.out, weight_decay=args.weight_decay,
                                   seed=args.seed, plot_prefix="", max_parallel_runs=args.max_parallel_runs,
                                   devices=args.devices, progress=not args.no_progress and distributed.is_writer(),
                                   test_every=args.test_every, resume=args.resume)
    tracking.log_summary(track, args.out, {k: v for k, v in vars(args).items() if k != "func"}, summary_rows(results))
    if distributed.is_writer():
        print(table)
        print(f"wrote {args.out}/ (results.json, results.md, results.csv, plots)")
    return 0


def _cmd_demo(args) -> int:
    from ganno_jax import demo

    demo.run(args.out, overwrite=args.overwrite)
    return 0


def _run_import(spec: str) -> None:
    """Runs the ``.py`` file ``spec`` or imports module ``spec`` (both register user datasets / models); an
    error there is an ``ImportError`` naming ``spec``."""
    import importlib
    import runpy

    try:
        if spec.endswith(".py"):
            runpy.run_path(spec)
        else:
            importlib.import_module(spec)
    except Exception as err:  # the user's code: any error it raises is reported in one line
        raise ImportError(f"--import {spec}: {type(err).__name__}: {err}") from None


def build_parser() -> argparse.ArgumentParser:
    """The ``ganno`` argument parser."""
    parser = argparse.ArgumentParser(prog="ganno", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train GANNO agents with IPPO",
                           formatter_class=_HelpFormatter)
    _task_args(train, "digits-cnn2")
    family = train.add_mutually_exclusive_group()
    family.add_argument("--tasks", metavar="TASK,TASK", help="train one policy on several tasks at once, "
                        "--num-envs env copies and --total-timesteps env steps of each (replaces --task)")
    flags.add(family, "--task-family")
    flags.add(train, "--out", note=": the run (config.json, metrics.csv, schedules.csv/.png, checkpoints/)")
    train.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last checkpoint")
    flags.add(train, "--overwrite")
    flags.add(train, "--no-progress")
    flags.add(train, "--variant", "ganno")
    flags.add(train, "--seed", 0, note=" of the run")
    train.add_argument("--checkpoint-every", "--chunk-updates", type=int, default=10, metavar="N",
                       help="PPO updates between checkpoints (one jitted call)")
    train.add_argument("--max-checkpoints", "--max-chunks", type=int, metavar="N",
                       help="stop after N checkpoints, e.g. to fit a cluster's time limit; --resume continues")
    flags.add(train, "--members", 1)
    train.add_argument("--log-episodes", type=_episodes, default=(0, 40), metavar="K,K",
                       help="episodes of env copy 0 whose LR schedules go to schedules.csv/.png (paper Fig. 1; "
                            "'' for none)")
    flags.add(train, "--log", note="; --resume continues the run's own")
    flags.add(train, "--devices", shown="as many as divide --num-envs", note="; training splits the env copies")
    distributed.add_args(train)
    train.add_argument("--warm-start", default="", metavar="NAME,NAME",
                       help="handcrafted schedules (e.g. warmup_cosine,onecycle_cosine) the policy imitates "
                            "before IPPO (behaviour cloning; warm_start.json reports how well)")
    train.add_argument("--warm-start-steps", type=int, default=300, help="behaviour-cloning steps")
    _env_args(train)
    _ippo_args(train)
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="evaluate a trained run and baselines over init-LR x seed grids",
                        formatter_class=_HelpFormatter, description=EVALUATE_SIZES)
    _task_args(ev, "digits-cnn3")
    ev.add_argument("--run", help="trained run folder to evaluate (zero-shot on --task, at the run's sizes)")
    ev.add_argument("--pretrained", metavar="NAME", help="evaluate a controller shipped with the package (its table "
                    "row is NAME; at its training sizes, as --run), of: " + ", ".join(learned.pretrained_names()))
    flags.add(ev, "--scale", note="; its task sizes win over the run's")
    flags.add(ev, "--methods", ("constant", "cosine", "sgdr", "random"))
    flags.add(ev, "--eval-actions", "greedy", note="; the --run agent's")
    flags.add(ev, "--init-lrs", PAPER_INIT_LRS)
    flags.add(ev, "--seeds", 5)
    flags.add(ev, "--seed", 0, note=" of the grid")
    ev.add_argument("--weight-decay", type=float, metavar="WD", help="weight decay of every run (default: the "
                                                                      "task's, 0.1)")
    flags.add(ev, "--out", required=True, note=": results.json/.md/.csv, plots")
    flags.add(ev, "--overwrite")
    ev.add_argument("--resume", action="store_true", help="continue the evaluation in --out that was killed: the same "
                    "command plus --resume runs only the chunks of runs not in --out/partial/ (refused if the grid "
                    "differs); a new or empty --out starts afresh")
    flags.add(ev, "--test-every", 1)
    flags.add(ev, "--max-parallel-runs")
    flags.add(ev, "--devices", shown="all", note="; evaluation splits the runs")
    flags.add(ev, "--no-progress")
    flags.add(ev, "--log", note="; the final table's accuracies as summary scalars")
    distributed.add_args(ev)
    ev.set_defaults(func=_cmd_evaluate)

    dm = sub.add_parser("demo", help="train a small GANNO on digits and evaluate it zero-shot (CPU, minutes)")
    flags.add(dm, "--out", "results/demo")
    flags.add(dm, "--overwrite")
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
