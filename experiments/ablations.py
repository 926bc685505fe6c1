"""GANNO paper, Appendix G, Table 4: ablations showing the need for the MARL formulation. Four agents
are trained on a 2-layer CNN and evaluated zero-shot on a 5-layer CNN over initial LRs including 0:
GANNO-LR-only (observes only its current LR), GANNO-timestep-only (only training progress),
GANNO-single-agent (global observations, one global LR) and full GANNO.

Initial LR 0 is allowed here because every method is a learned agent whose additive actions can
raise the LR from 0 (the paper's first column).

Offline default: train on digits-cnn2, evaluate on digits-cnn5. With --data-dir: train on
fashion_mnist-cnn2, evaluate on cifar10-cnn5 (the paper's setting).

    python experiments/ablations.py
    python experiments/ablations.py --train-run results/generalisation/agent   # reuse a GANNO run
"""
from __future__ import annotations

import os
import time

from ganno_jax import experiment as ex
from ganno_jax import flags, scales
from ganno_jax.evaluation import report
from ganno_jax.env.wrappers import VARIANTS
from ganno_jax.files import prepare_out

DEFAULT_VARIANTS = ("lr_only", "timestep_only", "single_agent", "ganno")


def _variant_runs(text: str) -> dict:
    pairs = [s.split("=", 1) for s in text.split(",") if s]
    if any(len(p) != 2 for p in pairs):
        raise ValueError(f"--variant-runs {text!r}: expected VARIANT=DIR[,VARIANT=DIR]")
    return dict(pairs)


def build_parser():
    """Flags of this experiment (the shared ones plus --variants, --variant-runs)."""
    p = ex.parser("ablations.py", __doc__, "results/ablations", init_lrs_default="0,1e-4,3e-4,1e-3,3e-3,1e-2")
    p.add_argument("--variants", type=flags.parse_names, metavar="V,V",
                   help=f"variants to train and compare, of: {', '.join(VARIANTS)} (default: "
                        f"{','.join(DEFAULT_VARIANTS)})")
    p.add_argument("--variant-runs", type=_variant_runs, default={}, metavar="VARIANT=DIR,...",
                   help="reuse trained run folders per variant (--train-run is the ganno one)")
    return p


def main(argv=None) -> dict:
    """Runs the experiment; returns {eval task: Markdown table}."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    scale = ex.scale_of(args)
    init_lrs = scales.check_init_lrs(
        ex.default_init_lrs(args, smoke=(0.0, 1e-3), full=(0.0, *scales.PAPER_INIT_LRS)), allow_zero=True)
    seeds = ex.seeds_of(args, scale)
    variants = ex.check_names(args.variants or DEFAULT_VARIANTS, tuple(VARIANTS), "variant")
    runs = dict(args.variant_runs)
    ex.check_names(runs, tuple(VARIANTS), "variant")
    if args.train_run:
        runs["ganno"] = args.train_run
    train_task, eval_tasks = ex.pick_tasks(args, "digits-cnn2", ("digits-cnn5",), "fashion_mnist-cnn2",
                                           ("cifar10-cnn5",))
    if ex.print_config(args, scale, train_task, eval_tasks, init_lrs=list(init_lrs), variants=list(variants)):
        return {}
    ex.check_inputs(args, scale, train_task, eval_tasks, reused=list(runs.values()),
                    trains=any(v not in runs for v in variants))
    prepare_out(args.out, args.overwrite, protect=list(runs.values()))
    policies = [ex.train_or_load(args, scale, train_task, os.path.join(args.out, "agents", v), variant=v,
                                 run_dir=runs.get(v)) for v in variants]
    tables = {}
    for name in eval_tasks:
        task = ex.eval_task(name, scale, args)
        _, tables[name] = report.evaluate_task(policies, task, init_lrs, seeds, os.path.join(args.out, name),
                                           seed=args.seed, **ex.run_options(args))
    sections = [(f"{name}: final test accuracy (%) by initial LR", table) for name, table in tables.items()]
    report.finish(args.out, f"Ablations: agents trained on {train_task} ({ex.scale_note(scale, seeds)})",
                  sections, start)
    return tables


if __name__ == "__main__":
    ex.script_entry(main)
