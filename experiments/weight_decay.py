"""GANNO paper, Tables 1-3 and Figure 3 (weight-decay sensitivity): GANNO, trained once on a 2-layer
CNN, and the baselines of Table 3's rows (constant, linear, quadratic, cosine, exponential, step =
"piecewise", SGDR, Lion; VeLO needs downloaded weights and is not included) evaluated zero-shot on a
5-layer CNN at several weight decays (default 1e-4, 1e-2, 1e-1: the paper's Table 3, Lion/VeLO extra runs
and Table 1). The decay enters as the task's weight-decay mode says: L2, added to Adam's gradient (the
paper's J(theta; lambda), Appendix B) at --scale paper; decoupled at the smoke and cpu scales; Lion keeps its
own decoupled decay (each table says which rows used which). Writes one table per weight decay and a
method x weight-decay table of averages.

Offline default: train on digits-cnn2, evaluate on digits-cnn5. With --data-dir: train on
fashion_mnist-cnn2, evaluate on cifar10-cnn5 (the paper's setting).

    python experiments/weight_decay.py
"""
from __future__ import annotations

import os
import time

from ganno_jax import experiment as ex
from ganno_jax import flags
from ganno_jax.evaluation import report
from ganno_jax.evaluation.tables import summary_rows
from ganno_jax.files import write_atomic

#: Table 3's rows, in its order (VeLO is absent: it needs downloaded weights).
BASELINES = ("constant", "linear", "quadratic", "cosine", "exponential", "step", "sgdr", "lion")
WEIGHT_DECAYS = (1e-4, 1e-2, 1e-1)


def build_parser():
    """Flags of this experiment (the shared ones plus --baselines, --weight-decays)."""
    p = ex.parser("weight_decay.py", __doc__, "results/weight_decay")
    flags.add(p, "--baselines", shown=",".join(BASELINES))
    flags.add(p, "--weight-decays", shown=",".join(map(str, WEIGHT_DECAYS)))
    return p


def sensitivity_table(rows_by_wd: dict) -> str:
    """Markdown table: one row per method, one column per weight decay (average over init LRs, mean ± std
    over seeds), then the spread (max - min) of the averages across weight decays."""
    wds = list(rows_by_wd)
    methods = [r["method"] for r in rows_by_wd[wds[0]]]
    lines = ["| Method | " + " | ".join(f"wd={w:g}" for w in wds) + " | Spread |", "|" + "---|" * (len(wds) + 2)]
    for i, method in enumerate(methods):
        avgs = [rows_by_wd[w][i]["avg_mean"] for w in wds]
        cells = [f"{rows_by_wd[w][i]['avg_mean']:.2f} ± {rows_by_wd[w][i]['avg_std']:.2f}" for w in wds]
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {max(avgs) - min(avgs):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    """Runs the experiment; returns {"<task> wd=<wd>" / "<task> sensitivity": Markdown table}."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    scale, init_lrs, seeds = ex.grid_of(args)
    wds = ex.check_weight_decays(args.weight_decays if args.weight_decays is not None else WEIGHT_DECAYS)
    train_task, eval_tasks = ex.pick_tasks(args, "digits-cnn2", ("digits-cnn5",), "fashion_mnist-cnn2",
                                           ("cifar10-cnn5",))
    baselines = ex.baseline_controllers(args.baselines or BASELINES)
    if ex.print_config(args, scale, train_task, eval_tasks, init_lrs=list(init_lrs), weight_decays=list(wds),
                       baselines=[b.name for b in baselines]):
        return {}
    policy = ex.prepare_out_and_agent(args, scale, train_task, eval_tasks)
    tables, sections = {}, []
    for name in eval_tasks:
        task = ex.eval_task(name, scale, args)
        rows_by_wd = {}
        for wd in wds:
            results, tables[f"{name} wd={wd:g}"] = report.evaluate_task(
                [policy, *baselines], task, init_lrs, seeds, os.path.join(args.out, name), weight_decay=wd,
                seed=args.seed, **ex.run_options(args), name=f"results_wd{wd:g}")
            rows_by_wd[wd] = summary_rows(results)
        tables[f"{name} sensitivity"] = sensitivity_table(rows_by_wd)
        write_atomic(os.path.join(args.out, name, "sensitivity.md"), tables[f"{name} sensitivity"])
        sections.append((f"{name}: average final test accuracy (%) by weight decay", tables[f"{name} sensitivity"]))
        sections += [(f"{name}, weight decay {wd:g}", tables[f"{name} wd={wd:g}"]) for wd in wds]
    report.finish(args.out, f"Weight-decay sensitivity: GANNO trained on {train_task} ({ex.scale_note(scale, seeds)})",
              sections, start)
    return tables


if __name__ == "__main__":
    ex.script_entry(main)
