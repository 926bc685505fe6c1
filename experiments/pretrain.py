"""Pretrain one GANNO controller on a family of tasks and export it as a named controller (issue 22).

One policy trains on every task of the family at once (``RunConfig.tasks``: ``num_envs`` env copies of each
per PPO update) at the scale's sizes and action set. The held-out tasks of ``experiments/held_out.py``
(``tasks.families.HELD_OUT``) are never in a family (checked). The run folder is ``<out>/run`` (resumable with
``--resume``); the controller is exported to ``<out>/<name>/`` (``learned.export``: the policy, the run's whole
config and this exact command), which ``ganno evaluate --pretrained <out>/<name>`` and
``ganno_jax.learned.pretrained("<out>/<name>")`` load; ``--ship`` writes it into the package instead, where
``pretrained(name)`` finds it by name (maintainers).

Default (cpu): the ``small`` family (digits and mnist1d x MLP / CNN-2 / CNN-3) at the cpu scale's sizes (tau 5,
40 decisions of 200 Adam steps, the wide action set, width 8, batch 32), 8 env copies per task and 800 PPO
updates: 34 minutes on 2 CPU cores here. ``--scale paper``: the ``paper`` family (the MNIST, Fashion-MNIST and
CIFAR-10 files of ``--data-dir``) at the paper's sizes, IPPO and action set (an accelerator's job).
``--optimizer``: the inner optimiser GANNO scales per layer (e.g. ``prodigy``, ``schedule_free_adamw``).

    python experiments/pretrain.py                                        # -> results/pretrain/family-cpu
    python experiments/pretrain.py --optimizer prodigy                    # -> .../family-cpu-prodigy
    python experiments/pretrain.py --tasks digits-cnn2 --updates 160 --name digits-cnn2-prodigy --optimizer prodigy
    python experiments/pretrain.py --scale paper --data-dir ~/data --out results/pretrain-paper
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import time

from ganno_jax import experiment as ex
from ganno_jax import flags, learned, run_log, scales, tasks, training
from ganno_jax.checks import check_int, require
from ganno_jax.data import load_dataset
from ganno_jax.files import prepare_out
from ganno_jax.tasks import families

#: PPO updates of each scale's pretraining (None: the scale's own IPPO budget)
UPDATES = {"smoke": None, "cpu": 800, "paper": None}


def build_parser() -> argparse.ArgumentParser:
    """Flags of the pretraining script."""
    p = argparse.ArgumentParser(prog="pretrain.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add(p, "--scale", "cpu")
    family = p.add_mutually_exclusive_group()
    flags.add(family, "--task-family", shown="small; paper at --scale paper")
    family.add_argument("--tasks", metavar="TASK,TASK", help="train on these tasks instead of a family")
    p.add_argument("--updates", type=int, metavar="N", help="PPO updates (default: 800 at cpu, the scale's otherwise)")
    p.add_argument("--optimizer", default="adam", help="inner optimiser GANNO scales per layer (tasks.optimizers)")
    p.add_argument("--name", help="controller name (default: family-<scale>, -<optimizer> unless adam)")
    flags.add(p, "--out", "results/pretrain", note=": run/ and the exported <name>/")
    flags.add(p, "--overwrite")
    p.add_argument("--resume", action="store_true", help="continue <out>/run from its last checkpoint, then export")
    p.add_argument("--ship", action="store_true", help="export into the package (ganno_jax/learned/controllers/)")
    flags.add(p, "--seed", 0, note=" of the run")
    p.add_argument("--data-dir", help="folder of the MNIST / Fashion-MNIST / CIFAR files (--scale paper)")
    flags.add(p, "--no-progress")
    return p


def family_tasks(args, scale) -> list:
    """The family's tasks at ``scale``'s sizes with ``--optimizer`` and ``--data-dir``, every dataset loaded
    (so a missing file is refused before anything is written); ``ValueError`` if one is held out."""
    if args.tasks:
        flag, name, names = "--tasks", args.tasks, families.parse_tasks(args.tasks)
    else:
        flag = "--task-family"
        name = args.task_family or ("paper" if scale.name == "paper" else "small")
        names = families.family(name)
    held = sorted(set(names) & set(families.held_out_tasks()))
    require(flag, name, not held, f"tasks that are not held out (it holds {', '.join(held)})")
    built = [tasks.get(n, **scale.task, optimizer=args.optimizer, data_dir=args.data_dir) for n in names]
    for task in built:
        load_dataset(task.dataset, task.data_dir)
    return built


def ippo_config(args, scale):
    """The scale's IPPO config with ``--updates`` PPO updates (default ``UPDATES``)."""
    updates = args.updates if args.updates is not None else UPDATES[scale.name]
    if updates is None:
        return scale.ippo
    check_int("--updates", updates)
    return dataclasses.replace(scale.ippo, total_timesteps=updates * scale.ippo.num_envs * scale.ippo.num_steps)


def main(argv=None) -> str:
    """Trains (or resumes) the family run and exports its controller; returns the controller's folder."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    scale = scales.ganno_scale(args.scale)
    name = args.name or f"family-{scale.name}" + ("" if args.optimizer == "adam" else f"-{args.optimizer}")
    run_dir = os.path.join(args.out, "run")
    start = time.perf_counter()
    if args.resume:
        training.train_run(run_dir, resume=True, checkpoint_every=scale.checkpoint_every,
                           progress=not args.no_progress)
    else:
        family = family_tasks(args, scale)
        cfg = ippo_config(args, scale)
        prepare_out(args.out, args.overwrite)
        print(f"[pretrain] {name}: one policy on {', '.join(t.name for t in family)} ({cfg.num_updates} PPO updates, "
              f"{cfg.num_envs} env copies per task, tau={family[0].tau}, horizon={family[0].horizon}, "
              f"actions={scale.env_params().action_set}, optimizer={args.optimizer})", flush=True)
        training.train_run(run_dir, family[0], cfg, env_params=scale.env_params(), seed=args.seed,
                           checkpoint_every=scale.checkpoint_every, progress=not args.no_progress,
                           tasks=family[1:], log_episodes=(0,))
    minutes = (time.perf_counter() - start) / 60
    command = " ".join(["python experiments/pretrain.py", *map(shlex.quote, argv)]) + f"  # {minutes:.0f} min here"
    folder = learned.export(run_dir, name, command, folder=None if args.ship else args.out)
    print(f"[pretrain] trained in {minutes:.1f} min ({run_log.final_metrics(run_dir)}); controller: {folder}")
    print(f"[pretrain] evaluate it: ganno evaluate --pretrained {name if args.ship else folder} --task mnist1d-cnn5")
    return folder


if __name__ == "__main__":
    ex.script_entry(main)
