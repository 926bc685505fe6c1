"""GANNO paper, Figure 3 (and Figure 6): generalising to deeper networks. GANNO is trained on a
ResNet-9 and evaluated zero-shot on a ResNet-18, against random layerwise agents, SGDR and a constant
LR, at two weight decays (0.01 and 0.1), at the paper's initial LR 1e-3 by default.

Offline default: train on digits-resnet9, evaluate on digits-resnet18 (--eval-tasks adds others,
e.g. mnist1d-resnet18). With
--data-dir: train on fashion_mnist-resnet9, evaluate on cifar10-resnet18 (the paper's setting).
--scale cpu keeps ResNets narrow (width 4) and trains 10 PPO updates; it is still compile-bound on
XLA:CPU (tens of minutes on 2 cores), so prefer an accelerator; --scale paper uses tau=100, the
registry's horizons and ResNet base width 64 (He et al.'s ResNet-18; ResNet-9 as DAWNBench's
64-128-256-512), L2 weight decay and the IPPO paper defaults. ResNet-18 has 18 agents (each 1x1 shortcut
conv moves with its block's first conv). VeLO needs downloaded weights and is not included.

    python experiments/resnet.py
    python experiments/resnet.py --scale paper --data-dir ~/data
"""
from __future__ import annotations

import dataclasses
import os
import time

from ganno_jax import experiment as ex
from ganno_jax import flags, scales
from ganno_jax.evaluation import report

BASELINES = ("random", "sgdr", "constant")
WEIGHT_DECAYS = (0.01, 0.1)


def build_parser():
    """Flags of this experiment (the shared ones plus --baselines, --weight-decays)."""
    p = ex.parser("resnet.py", __doc__, "results/resnet", init_lrs_default="1e-3")
    flags.add(p, "--baselines", shown=",".join(BASELINES))
    flags.add(p, "--weight-decays", shown=",".join(map(str, WEIGHT_DECAYS)))
    return p


def resnet_scale(scale: scales.GannoScale) -> scales.GannoScale:
    """The CPU scale made ResNet-sized (width 4, 10 PPO updates); smoke and paper unchanged."""
    if scale.name != "cpu":
        return scale
    ippo = dataclasses.replace(scale.ippo, total_timesteps=scale.ippo.num_envs * scale.ippo.num_steps * 10)
    return dataclasses.replace(scale, task={**scale.task, "width": 4}, ippo=ippo)


def main(argv=None) -> dict:
    """Runs the experiment; returns {"<task> wd=<wd>": Markdown table}."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    scale = resnet_scale(ex.scale_of(args))
    init_lrs = scales.check_init_lrs(ex.default_init_lrs(args, smoke=(1e-3,), full=(1e-3,)))
    seeds = ex.seeds_of(args, scale)
    wds = ex.check_weight_decays(args.weight_decays if args.weight_decays is not None else WEIGHT_DECAYS)
    train_task, eval_tasks = ex.pick_tasks(args, "digits-resnet9", ("digits-resnet18",),
                                           "fashion_mnist-resnet9", ("cifar10-resnet18",))
    baselines = ex.baseline_controllers(args.baselines or BASELINES)
    if ex.print_config(args, scale, train_task, eval_tasks, init_lrs=list(init_lrs), weight_decays=list(wds),
                       baselines=[b.name for b in baselines]):
        return {}
    policy = ex.prepare_out_and_agent(args, scale, train_task, eval_tasks)
    tables = {}
    for name in eval_tasks:
        task = ex.eval_task(name, scale, args)
        for wd in wds:
            _, tables[f"{name} wd={wd:g}"] = report.evaluate_task(
                [policy, *baselines], task, init_lrs, seeds, os.path.join(args.out, name), weight_decay=wd,
                seed=args.seed, **ex.run_options(args), name=f"results_wd{wd:g}", plot_lr=init_lrs[0])
    sections = [(f"{key}: final test accuracy (%)", table) for key, table in tables.items()]
    report.finish(args.out, f"Deeper networks: GANNO trained on {train_task} ({ex.scale_note(scale, seeds)})",
              sections, start)
    return tables


if __name__ == "__main__":
    ex.script_entry(main)
