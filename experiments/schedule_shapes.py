"""GANNO paper, Appendix E, Figure 5: the nine handcrafted learning-rate schedules used in the paper
(``baselines.schedules.FIGURE5_SCHEDULES``, the nine its tables name: constant, linear, quadratic, cosine,
exponential, step ("piecewise"), SGDR, linear warm-up + cosine decay, cosine one-cycle), drawn over one run
of ``--steps`` optimiser updates from ``--init-lr`` (the peak LR of the last two) exactly as the evaluation
applies them (``make_schedule``; the LR of update ``t`` is the schedule at ``t``, ``t = 0 .. steps-1``).

Writes ``<out>/schedule_shapes.png`` (one panel per schedule) and ``<out>/schedule_shapes.csv`` (column
``update``, then one column per schedule). No training; seconds on a CPU.

    python experiments/schedule_shapes.py [--steps 30000] [--init-lr 1e-3] [--out results/schedule_shapes]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os

import numpy as np

from ganno_jax import experiment as ex
from ganno_jax import flags
from ganno_jax.baselines.schedules import (
    FIGURE5_SCHEDULES,
    check_total_steps,
    make_schedule,
)
from ganno_jax.checks import check_float_range
from ganno_jax.files import prepare_out, write_atomic
from ganno_jax.scales import ganno_scale

#: Optimiser updates of one paper-scale evaluation run (horizon x tau: 300 x 100); the paper's figure gives none.
PAPER_STEPS = ganno_scale("paper").task["horizon"] * ganno_scale("paper").task["tau"]


def build_parser() -> argparse.ArgumentParser:
    """Flags: --out, --overwrite, --steps, --init-lr, --print-config."""
    p = argparse.ArgumentParser(prog="schedule_shapes.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add(p, "--out", "results/schedule_shapes")
    flags.add(p, "--overwrite")
    p.add_argument("--steps", type=int, default=PAPER_STEPS,
                   help=f"optimiser updates in the run (default: {PAPER_STEPS}, one paper-scale evaluation run; the "
                        "paper's figure gives no length)")
    p.add_argument("--init-lr", type=float, default=1e-3, help="initial (peak) learning rate (default: 1e-3)")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration as JSON and exit")
    return p


def schedule_values(steps: int, init_lr: float) -> dict[str, np.ndarray]:
    """The LR of every update of a ``steps``-update run, per Figure 5 schedule: name -> [steps] array."""
    t = np.arange(steps)
    return {name: np.asarray(make_schedule(name, init_lr, steps)(t), np.float64) for name in FIGURE5_SCHEDULES}


def values_csv(values: dict[str, np.ndarray]) -> str:
    """CSV text: column ``update`` (the update index t), then one column per schedule."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["update", *values])
    for t, row in enumerate(zip(*values.values())):
        writer.writerow([t, *(f"{v:.8g}" for v in row)])
    return out.getvalue()


def plot_values(values: dict[str, np.ndarray], init_lr: float, path: str) -> str:
    """A 3x3 grid of panels, one per schedule (LR against update); returns ``path``."""
    from ganno_jax.evaluation.plots import plt, save_figure

    fig, axes = plt.subplots(3, 3, figsize=(10, 8), sharex=True, sharey=True)
    for ax, (name, lr) in zip(axes.flat, values.items()):
        ax.plot(np.arange(lr.size), lr, color="C0")
        ax.set_title(name)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("optimiser update")
    for ax in axes[:, 0]:
        ax.set_ylabel("learning rate")
    fig.suptitle(f"Handcrafted schedules (GANNO Fig. 5), initial LR {init_lr:g}, {lr.size} updates")
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv=None) -> dict:
    """Writes the figure and the CSV; returns {"png": path, "csv": path} (or the config with --print-config)."""
    args = build_parser().parse_args(argv)
    steps = check_total_steps(args.steps, "--steps")
    check_float_range("--init-lr", args.init_lr, 0, low_open=True)
    config = {"schedules": list(FIGURE5_SCHEDULES), "steps": steps, "init_lr": args.init_lr, "out": args.out}
    if args.print_config:
        print(json.dumps(config, indent=2))
        return config
    prepare_out(args.out, args.overwrite)
    values = schedule_values(steps, args.init_lr)
    paths = {"csv": os.path.join(args.out, "schedule_shapes.csv"), "png": os.path.join(args.out, "schedule_shapes.png")}
    write_atomic(paths["csv"], values_csv(values))
    plot_values(values, args.init_lr, paths["png"])
    print(f"wrote {paths['png']} and {paths['csv']}")
    return paths


if __name__ == "__main__":
    ex.script_entry(main)
