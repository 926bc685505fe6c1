"""Held-out tasks (issue 22): pretrained GANNO controllers against tuned and tuning-free baselines on tasks no
controller trained on, with the statistics the learned-optimisation field reports.

Rows: each controller of ``--controllers`` (a name shipped in ``ganno_jax.learned`` or a folder exported by
``experiments/pretrain.py``), acting greedily over the inner optimiser it was trained with (GANNO over Adam,
over Prodigy, over schedule-free AdamW); then the baselines: Adam with a constant LR, cosine and cosine one-cycle
schedules (the table's ``tuned adam`` row picks the best of them and of the initial LRs on validation accuracy, per
task: a swept baseline), Prodigy, schedule-free AdamW, Lion and random layerwise agents.

Tasks: ``tasks.families.HELD_OUT`` (never in a pretraining family): offline ``digits-cnn5``, ``mnist1d-cnn5`` and
``digits28-cnn5`` (the digits at MNIST's 28 x 28); with ``--data-dir`` also each file task whose files are there
(MNIST / Fashion-MNIST CNN-5, CIFAR-10 CNN-5, CIFAR-100 CNN-3). Sizes: the scale's (cpu: tau 5, 40 decisions of
200 Adam steps, width 8, batch 32), over the paper's initial LRs x ``--seeds``.

Writes per task ``<out>/<task>/results.{md,csv,json}`` and plots, and ``<out>/README.md`` with every task's table
and the summary across tasks (``evaluation.statistics.summary_table``: IQM [95 % CI] per task, the probability of
improvement over Prodigy and the normalised score).

    python experiments/held_out.py                        # offline, CPU
    python experiments/held_out.py --data-dir ~/data      # adds the MNIST / Fashion-MNIST / CIFAR tasks found there
    python experiments/held_out.py --controllers family-cpu,results/pretrain/family-cpu --seeds 3
"""
from __future__ import annotations

import os
import time

from ganno_jax import experiment as ex
from ganno_jax import flags, learned
from ganno_jax.data import DatasetError, load_dataset
from ganno_jax.evaluation import controllers, report, statistics
from ganno_jax.files import prepare_out
from ganno_jax.tasks import families

CONTROLLERS = ("family-cpu", "demo-digits-cnn2", "digits-cnn2-prodigy", "digits-cnn2-schedule_free_adamw")
BASELINES = ("constant", "cosine", "onecycle_cosine", "prodigy", "schedule_free_adamw", "lion", "random")


def build_parser():
    """Flags of this experiment."""
    p = ex.base_parser("held_out.py", __doc__, "results/held_out", "named sizes of the evaluation runs")
    p.add_argument("--controllers", type=flags.parse_names, default=CONTROLLERS, metavar="NAME,NAME",
                   help="shipped controller names or exported folders (default: " + ",".join(CONTROLLERS) + ")")
    flags.add(p, "--baselines", shown=",".join(BASELINES))
    p.add_argument("--tasks", type=flags.parse_names, metavar="TASK,TASK",
                   help="held-out tasks (default: the offline ones, plus the file ones found in --data-dir)")
    flags.add(p, "--seeds", shown="the scale's: 1 smoke, 3 cpu, 5 paper")
    flags.add(p, "--init-lrs", shown="1e-4,3e-4,1e-3,3e-3,1e-2, the paper's; --smoke: a smaller one")
    flags.add(p, "--seed", 0, note=" of the evaluation grid")
    flags.add(p, "--test-every", 10, note="; curves are not this script's product")
    flags.add(p, "--max-parallel-runs")
    flags.add(p, "--no-progress")
    flags.add_task_sizes(p, data_dir_note="; adds the held-out file tasks whose files are there")
    return p


def held_out_tasks(args) -> tuple:
    """``--tasks`` (each must be held out), else the offline held-out tasks and the file ones whose dataset loads
    from ``--data-dir``."""
    held = families.held_out_tasks()
    if args.tasks:
        return ex.check_names(args.tasks, held, "held-out task")
    found = []
    for name in families.HELD_OUT["files"] if args.data_dir else ():
        try:
            load_dataset(name.rpartition("-")[0], args.data_dir)
            found.append(name)
        except DatasetError as err:
            print(f"[held_out] skipping {name}: {err}")
    return ex.check_tasks(families.HELD_OUT["offline"] + tuple(found))


def controller_rows(names) -> list:
    """One greedy ``PolicyController`` per controller name or folder, over the optimiser it was trained with."""
    rows = []
    for name in names:
        ctrl = learned.pretrained(name)
        optimizer = ctrl.task.optimizer
        label = f"GANNO {ctrl.name}" + ("" if optimizer == "adam" else f" (over {optimizer})")
        rows.append(controllers.learned(label, ctrl.policy, ctrl.env_params, ctrl.variant, optimizer=optimizer))
    return rows


def main(argv=None) -> dict:
    """Runs the experiment; returns {task: Markdown table, "summary": Markdown summary}."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    scale, init_lrs, seeds = ex.grid_of(args)
    names = held_out_tasks(args)
    methods = controller_rows(args.controllers) + ex.baseline_controllers(args.baselines or BASELINES)
    built = {name: ex.make_task(name, scale, args) for name in names}
    for task in built.values():
        load_dataset(task.dataset, task.data_dir)
    options = ex.run_options(args)
    prepare_out(args.out, args.overwrite)
    tables, results = {}, {}
    for name, task in built.items():
        results[name], tables[name] = report.evaluate_task(
            methods, task, init_lrs, seeds, os.path.join(args.out, name), seed=args.seed, plot_prefix="",
            **{**options, "test_every": min(options["test_every"], task.horizon)})
    summary = statistics.summary_table(results, reference="prodigy")
    sections = [(f"{name}: final test accuracy (%), {ex.scale_note(scale, seeds)}", table)
                for name, table in tables.items()]
    report.finish(args.out, "Held-out tasks: pretrained GANNO controllers vs tuned and tuning-free baselines",
                  sections + [("Across tasks (reference: Prodigy)", summary)], start,
                  extra={"summary_across_tasks": statistics.summary(results, reference="prodigy")})
    return {**tables, "summary": summary}


if __name__ == "__main__":
    ex.script_entry(main)
