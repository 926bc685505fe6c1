"""GANNO paper, Appendix H.1, Figure 7: the cosine one-cycle schedule against three schedules GANNO chose.

Draws, from the results of ``experiments/warmup.py`` (nothing is trained or evaluated; seconds), one panel
per GANNO run: its per-layer learning rates, started from GANNO's first start LR (0, the paper's warm-up
case, unless warmup.py was given --ganno-init-lrs), beside the ``onecycle_cosine`` schedule at ``--peak-lr``
(the grid's nearest peak), against optimiser steps (decisions x the task's tau). ``--runs`` GANNO runs are
taken spread over the run axis (member-major: at --scale paper, 3 runs are one of each of the 3 trained
members). Writes ``<out>/fig7.png`` and ``<out>/fig7.csv`` (column ``step``, the one-cycle LR, then each run's
per-layer LRs).

    python experiments/warmup.py --scale paper --data-dir ~/data --out results/warmup
    python experiments/fig7.py --results results/warmup/cifar10-cnn5 --out results/fig7
"""
from __future__ import annotations

import argparse
import io
import json
import os

import numpy as np

from ganno_jax import experiment as ex
from ganno_jax import flags
from ganno_jax.checks import check_float_range, check_int
from ganno_jax.files import prepare_out, write_atomic

SCHEDULE = "onecycle_cosine"


def build_parser() -> argparse.ArgumentParser:
    """Flags: --results, --peak-lr, --runs, --out, --overwrite, --print-config."""
    p = argparse.ArgumentParser(prog="fig7.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", required=True, metavar="DIR",
                   help="one evaluation task's folder written by experiments/warmup.py (schedules.json, "
                        "ganno_from_zero.json)")
    p.add_argument("--peak-lr", type=float, default=1e-3, help="peak LR of the one-cycle schedule shown (the "
                                                               "grid's nearest; the paper gives none) (default: 1e-3)")
    p.add_argument("--runs", type=int, default=3, help="GANNO runs shown (default: 3, the paper's)")
    flags.add(p, "--out", "results/fig7")
    flags.add(p, "--overwrite")
    p.add_argument("--print-config", action="store_true", help="print the resolved configuration as JSON and exit")
    return p


def _load(folder: str, name: str) -> dict:
    path = os.path.join(folder, f"{name}.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--results {folder!r} has no {name}.json: give an evaluation task's folder written "
                                f"by experiments/warmup.py, e.g. results/warmup/cifar10-cnn5")
    with open(path) as f:
        return json.load(f)


def curves(folder: str, peak_lr: float, runs: int) -> dict:
    """What the figure shows, from warmup.py's JSON files: ``step`` [T] (optimiser steps at each decision's end),
    ``onecycle`` [T] (the schedule's LR at the peak nearest ``peak_lr``), ``ganno`` [runs, T, N] (per-layer LRs
    of the chosen GANNO runs), ``peak_lr``, ``ganno_init_lr``, ``run_index`` (their places on the run axis)."""
    schedules, ganno = _load(folder, "schedules"), _load(folder, "ganno_from_zero")
    by_name = {r["method"]: r for r in schedules["results"]}
    if SCHEDULE not in by_name:
        raise ValueError(f"{folder}/schedules.json has no {SCHEDULE!r} row (it has {', '.join(by_name)}); run "
                         f"warmup.py with {SCHEDULE} in --schedules")
    cycle = by_name[SCHEDULE]
    peak = int(np.argmin(np.abs(np.log10(cycle["init_lrs"]) - np.log10(peak_lr))))
    learned = ganno["results"][0]
    lrs = np.asarray(learned["curves"]["lrs"], np.float64)[0]  # [R, T, N] at GANNO's first start LR
    check_int("--runs", runs, 1, lrs.shape[0], note=f" (the GANNO runs in {folder}/ganno_from_zero.json)")
    index = np.unique(np.round(np.linspace(0, lrs.shape[0] - 1, runs)).astype(int))
    tau = ganno["task"]["tau"]
    return {"step": tau * np.arange(1, lrs.shape[1] + 1), "peak_lr": cycle["init_lrs"][peak],
            "onecycle": np.asarray(cycle["curves"]["lrs"], np.float64)[peak, 0].mean(-1), "ganno": lrs[index],
            "ganno_init_lr": learned["init_lrs"][0], "run_index": index.tolist(), "method": learned["method"]}


def values_csv(c: dict) -> str:
    """CSV text: ``step``, ``onecycle_cosine``, then ``run<r>_layer<l>`` per shown run and layer."""
    runs = [(r, layer) for r in range(len(c["run_index"])) for layer in range(c["ganno"].shape[-1])]
    out = io.StringIO()
    out.write(",".join(["step", SCHEDULE, *(f"run{c['run_index'][r]}_layer{layer}" for r, layer in runs)]) + "\n")
    for t, step in enumerate(c["step"]):
        row = [c["onecycle"][t], *(c["ganno"][r, t, layer] for r, layer in runs)]
        out.write(",".join([str(int(step)), *(f"{v:.8g}" for v in row)]) + "\n")
    return out.getvalue()


def plot(c: dict, path: str) -> str:
    """One panel per GANNO run: its per-layer LRs and the one-cycle LR against optimiser steps; returns ``path``."""
    from ganno_jax.evaluation.plots import plt, save_figure

    n = len(c["run_index"])
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), sharey=True, squeeze=False)
    for r, (ax, run) in enumerate(zip(axes[0], c["run_index"])):
        for layer in range(c["ganno"].shape[-1]):
            ax.plot(c["step"], c["ganno"][r, :, layer], lw=1.2, label=f"GANNO layer {layer}")
        ax.plot(c["step"], c["onecycle"], "k--", lw=1.5, label=f"cosine one-cycle, peak {c['peak_lr']:g}")
        ax.set_title(f"{c['method']} run {run} (start LR {c['ganno_init_lr']:g})", fontsize=9)
        ax.set_xlabel("optimiser step")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("learning rate")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv=None) -> dict:
    """Writes the figure and the CSV; returns {"png": path, "csv": path} (or the config with --print-config)."""
    args = build_parser().parse_args(argv)
    check_float_range("--peak-lr", args.peak_lr, 0, low_open=True)
    c = curves(args.results, args.peak_lr, args.runs)
    config = {"results": args.results, "schedule": SCHEDULE, "peak_lr": c["peak_lr"], "runs": c["run_index"],
              "ganno_init_lr": c["ganno_init_lr"], "out": args.out}
    if args.print_config:
        print(json.dumps(config, indent=2))
        return config
    prepare_out(args.out, args.overwrite)
    paths = {"csv": os.path.join(args.out, "fig7.csv"), "png": os.path.join(args.out, "fig7.png")}
    write_atomic(paths["csv"], values_csv(c))
    plot(c, paths["png"])
    print(f"wrote {paths['png']} and {paths['csv']}")
    return paths


if __name__ == "__main__":
    ex.script_entry(main)
