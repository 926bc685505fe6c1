"""GANNO paper, Appendix H.1, Table 5: warm-up schedules vs GANNO started from LR 0. The warm-up
schedules (linear warm-up + cosine decay, cosine one-cycle, linear warm-up + constant) run over a grid
of peak LRs; GANNO, trained on a 2-layer CNN, is evaluated zero-shot on a 5-layer CNN with its initial
LR set to 0 so that it has to warm up itself (its additive actions +0.0005/+0.001 leave 0).

Peak LRs must be > 0 (a schedule scaled by 0 is 0 throughout); GANNO's start LRs default to 0 and may
be set with --ganno-init-lrs (>= 0).

Offline default: train on digits-cnn2, evaluate on digits-cnn5. With --data-dir: train on
fashion_mnist-cnn2, evaluate on cifar10-cnn5 (the paper's setting).

    python experiments/warmup.py
"""
from __future__ import annotations

import os
import time

from ganno_jax import experiment as ex
from ganno_jax import flags, scales
from ganno_jax.evaluation import report
from ganno_jax.baselines import schedule_names

SCHEDULES = ("warmup_cosine", "onecycle_cosine", "warmup_linear")


def build_parser():
    """Flags of this experiment (the shared ones plus --schedules, --ganno-init-lrs)."""
    p = ex.parser("warmup.py", __doc__, "results/warmup",
                  init_lrs_default="peak LRs 1e-4,3e-4,1e-3,3e-3,1e-2, the paper's")
    flags.add(p, "--schedules", shown=",".join(SCHEDULES))
    p.add_argument("--ganno-init-lrs", type=flags.parse_floats, default=(0.0,), metavar="LR,LR",
                   help="GANNO's initial LRs (default: 0, the paper's case)")
    return p


def main(argv=None) -> dict:
    """Runs the experiment; returns {"<task> schedules" / "<task> GANNO": Markdown table}."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    scale = ex.scale_of(args)
    peaks = scales.check_init_lrs(ex.default_init_lrs(args), what="peak-LR grid")
    ganno_lrs = scales.check_init_lrs(args.ganno_init_lrs, allow_zero=True, what="GANNO init-LR grid")
    seeds = ex.seeds_of(args, scale)
    names = ex.check_names(args.schedules or SCHEDULES, schedule_names(), "schedule")
    schedules = ex.baseline_controllers(names)
    train_task, eval_tasks = ex.pick_tasks(args, "digits-cnn2", ("digits-cnn5",), "fashion_mnist-cnn2",
                                           ("cifar10-cnn5",))
    if ex.print_config(args, scale, train_task, eval_tasks, init_lrs=list(peaks), ganno_init_lrs=list(ganno_lrs),
                       schedules=list(names)):
        return {}
    policy = ex.prepare_out_and_agent(args, scale, train_task, eval_tasks)
    tables = {}
    for name in eval_tasks:
        task = ex.eval_task(name, scale, args)
        folder, options = os.path.join(args.out, name), ex.run_options(args)
        _, tables[f"{name} schedules"] = report.evaluate_task(schedules, task, peaks, seeds, folder, seed=args.seed,
                                                          name="schedules", **options)
        _, tables[f"{name} GANNO"] = report.evaluate_task([policy], task, ganno_lrs, seeds, folder, seed=args.seed,
                                                      name="ganno_from_zero", plot_lr=ganno_lrs[0], **options)
    sections = []
    for name in eval_tasks:
        sections.append((f"{name}: warm-up schedules, final test accuracy (%) by peak LR", tables[f"{name} schedules"]))
        sections.append((f"{name}: GANNO by initial LR", tables[f"{name} GANNO"]))
    report.finish(args.out, f"Warm-up: GANNO trained on {train_task} from LR 0 vs warm-up schedules "
                        f"({ex.scale_note(scale, seeds)})", sections, start)
    return tables


if __name__ == "__main__":
    ex.script_entry(main)
