"""Single-agent PPO learning-rate scheduler for SGD (paper ``000``, Tables 1-9, Figures 3-6).

A PPO agent (feed-forward, Gaussian head) sets SGD's global LR once per epoch on ``GlobalLREnv``
(reward eq. (1), divergence penalty). The paper's initial LRs (5e-4, 1e-3, 5e-3, 1e-2) are the
agent's own PPO learning rate ("Agent LR") and the initial LR of the baselines: SGD, Adam and
Adadelta with PyTorch's ConstantLR and OneCycleLR (max_lr = initial LR), a constant-LR grid search
per optimiser over LRs log-spaced in [1e-6, 1] at a budget of 10,000 optimiser steps in total, and
SGD with a stochastic Armijo line search (SLS). Every method trains the same network on the same
minibatches per seed (5 seeds, all vmapped). The agent trains for the same 10,000 inner optimiser
steps (``--agent-budget``) and is evaluated greedily (its mean action) on the evaluation seeds.

Outputs in ``--out``: ``README.md`` (one paper-style table per initial LR: best final loss, average
final loss over the non-diverged runs, diverged runs, "divergent case exists"; plus an overview),
``results.csv`` / ``results.json``, ``schedule.png`` (the learned LR schedules against the validation
loss, with SLS's step sizes), and the elapsed time.

Datasets: offline ``digits`` by default; ``--data-dir DIR`` reads MNIST (IDX files) from DIR, or
CIFAR-100 (python pickles) with ``--dataset cifar100``.

    python experiments/sgd_scheduler.py               # minutes on 2 CPU cores
    python experiments/sgd_scheduler.py --smoke       # seconds (tests)
    python experiments/sgd_scheduler.py --scale paper --data-dir ~/data   # an accelerator
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from ganno_jax import experiment as ex
from ganno_jax import tasks
from ganno_jax.agents import IPPOConfig, make_train, policy_from
from ganno_jax.data import load_dataset
from ganno_jax.evaluation.plots import save_figure
from ganno_jax.runs import prepare_out, write_atomic
from ganno_jax.scales import PAPER_AGENT_LRS, check_init_lrs, check_seeds, sgd_scheduler_scale
from ganno_jax.sgd_scheduler import baselines as sgd

OPT_NAMES = {"sgd": "SGD", "adam": "Adam", "adadelta": "Adadelta"}
SCHED_NAMES = {"constant_lr": "ConstantLR", "onecycle": "OneCycleLR"}


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    p = ex.base_parser("sgd_scheduler.py", __doc__, "results/sgd_scheduler",
                       "cpu: minutes on 2 CPU cores (digits MLP, 10 epochs); paper: CNN, 20 epochs, 100 grid "
                       "LRs, agent trained on 500,000 inner steps (an accelerator)")
    p.add_argument("--dataset", default=None, help="dataset (default: digits; mnist with --data-dir)")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files or the cifar-100-python pickles")
    p.add_argument("--init-lrs", default=None, help="comma-separated initial LRs (default: 5e-4,1e-3,5e-3,1e-2)")
    p.add_argument("--seeds", type=int, help="evaluation seeds (default: 5; smoke 2)")
    p.add_argument("--budget", type=int, help="grid-search optimiser steps in total (default: 10000)")
    p.add_argument("--grid-lrs", type=int, help="grid-search LRs (default: 50; paper scale 100)")
    p.add_argument("--agent-budget", type=int, help="inner optimiser steps of the agent's PPO training")
    p.add_argument("--optimizers", default="sgd,adam,adadelta", help="baseline optimisers (default: all three)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default: 0)")
    return p


def agent_config(base: IPPOConfig, agent_lr: float, agent_budget: int, steps_per_epoch: int) -> IPPOConfig:
    """PPO config at ``agent_lr`` whose training spends at most ``agent_budget`` inner optimiser steps
    (at least one update)."""
    per_update = base.num_envs * base.num_steps
    env_steps = max(agent_budget // steps_per_epoch // per_update, 1) * per_update
    return dataclasses.replace(base, lr=agent_lr, total_timesteps=env_steps)


def row(init_lr, method: str, final_loss) -> dict:
    """One table row: best/avg final loss (finite runs), diverged runs, whether a divergent case exists."""
    return {"init_lr": float(init_lr), "method": method, **sgd.loss_summary(final_loss)}


def _fmt(x: float) -> str:
    return "diverged" if not math.isfinite(x) else f"{x:.4f}"


def markdown(rows: list[dict]) -> str:
    """Paper-style table (Tables 2-9) of ``rows``."""
    lines = ["| Method | Best final loss | Avg final loss | Diverged runs | Divergent case exists |", "|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {_fmt(r['best'])} | {_fmt(r['avg'])} | {r['diverged_runs']}/{r['runs']} | "
              f"{'yes' if r['divergent'] else 'no'} |" for r in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict]) -> str:
    """All rows as CSV."""
    head = "init_lr,method,best_final_loss,avg_final_loss,diverged_runs,runs,divergent_case_exists"
    body = [f"{r['init_lr']:g},{r['method']},{r['best']:.6g},{r['avg']:.6g},{r['diverged_runs']},{r['runs']},"
            f"{'yes' if r['divergent'] else 'no'}" for r in rows]
    return "\n".join([head, *body]) + "\n"


def plot_schedules(path: str, init_lrs, agent_curves: dict, sls_curves: dict) -> None:
    """Learned LR schedule (seed 0, log scale) against its validation loss, one panel per agent LR."""
    import matplotlib.pyplot as plt  # backend chosen by ganno_jax.evaluation.plots (Agg)

    fig, axes = plt.subplots(1, len(init_lrs), figsize=(4 * len(init_lrs), 3.4), squeeze=False)
    epochs = np.arange(1, agent_curves["lr"].shape[-1] + 1)
    for i, (ax, lr) in enumerate(zip(axes[0], init_lrs)):
        ax.semilogy(epochs, agent_curves["lr"][i, 0], "C0-o", ms=3, label="agent LR")
        ax.semilogy(epochs, sls_curves["lr"][0], "C2:", label="SLS mean step")
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate")
        twin = ax.twinx()
        twin.plot(epochs, agent_curves["val_loss"][i, 0], "k--", label="agent val loss")
        twin.plot(epochs, sls_curves["val_loss"][0], "C2--", alpha=0.6, label="SLS val loss")
        twin.set_ylabel("validation loss")
        ax.set_title(f"agent LR {lr:g}, seed 0")
        if i == 0:
            ax.legend(loc="upper left", fontsize=7)
            twin.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def main(argv=None) -> dict:
    """Runs the experiment; returns ``{"rows": [...], "budgets": {...}, "elapsed_s": float}``."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    scale = sgd_scheduler_scale("smoke" if args.smoke else args.scale)
    overrides, base_cfg = scale.task, scale.ppo
    seeds = check_seeds(scale.seeds if args.seeds is None else args.seeds)
    grid_lrs, budget = args.grid_lrs or scale.grid_lrs, args.budget or scale.budget
    agent_budget = args.agent_budget or scale.agent_budget
    init_lrs = check_init_lrs(ex.parse_floats(args.init_lrs) if args.init_lrs
                              else PAPER_AGENT_LRS[::3] if args.smoke else PAPER_AGENT_LRS)
    optimizers = tuple(x.strip() for x in args.optimizers.split(",") if x.strip())
    bad = [o for o in optimizers if o not in sgd.BASELINE_OPTIMIZERS]
    if bad or not optimizers:
        raise ValueError(f"--optimizers {args.optimizers!r}: allowed {', '.join(sgd.BASELINE_OPTIMIZERS)}")
    dataset = args.dataset or ("mnist" if args.data_dir else "digits")
    prepare_out(args.out, args.overwrite)

    data = load_dataset(dataset, args.data_dir)
    task = tasks.Task(dataset=dataset, data_dir=args.data_dir, optimizer="sgd", **overrides)
    envs = {name: sgd.optimizer_env(task, name, data) for name in sorted(set(optimizers) | {"sgd"})}
    env, params = envs["sgd"], envs["sgd"].default_params
    spe, horizon = env.steps_per_epoch, task.horizon
    k_train, k_eval, k_grid = jax.random.split(jax.random.key(args.seed), 3)
    print(f"[sgd_scheduler] {task.name}: {spe} steps/epoch x {horizon} epochs, {seeds} seeds, init LRs {init_lrs}")

    rows, finals = [], {}
    # handcrafted optimiser x scheduler baselines (vmapped over schedules x init LRs x seeds) + grid search
    grids = {}
    for opt in optimizers:
        res = jax.block_until_ready(jax.jit(lambda k, kg, e=envs[opt]: sgd.run_baselines(
            e, params, init_lrs, seeds, k, kg, tuple(SCHED_NAMES), budget, grid_lrs))(k_eval, k_grid))
        grids[opt] = res["grid"]
        for sched, name in SCHED_NAMES.items():
            finals[f"{OPT_NAMES[opt]}-{name}"] = np.asarray(sgd.final_losses(res[sched]))
        print(f"[sgd_scheduler] {OPT_NAMES[opt]}: schedules and grid search done ({time.perf_counter() - start:.0f}s)")
    sls = jax.block_until_ready(jax.jit(jax.vmap(lambda k: sgd.run_sls(env, params, k)))(jax.random.split(k_eval, seeds)))
    print(f"[sgd_scheduler] SLS done ({time.perf_counter() - start:.0f}s)")

    # PPO agents: one per agent LR, `seeds` training seeds vmapped; greedy evaluation on the eval seeds
    policies, agent_steps = [], 0
    for lr in init_lrs:
        cfg = agent_config(base_cfg, lr, agent_budget, spe)
        out = jax.block_until_ready(jax.jit(jax.vmap(make_train(cfg, env, params)))(jax.random.split(k_train, seeds)))
        policies.append(policy_from(out).replace(cfg=base_cfg))
        agent_steps = cfg.total_timesteps * spe
        print(f"[sgd_scheduler] agent LR {lr:g} trained ({cfg.num_updates} PPO updates, "
              f"{agent_steps} inner steps; {time.perf_counter() - start:.0f}s)")
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *policies)
    evaluate_agents = jax.jit(jax.vmap(jax.vmap(lambda pol, k: sgd.run_policy(env, params, pol, k)), in_axes=(0, None)))
    agent_curves = jax.tree.map(np.asarray, evaluate_agents(stacked, jax.random.split(k_eval, seeds)))
    agent_final = np.asarray(sgd.final_losses(agent_curves))

    for i, lr in enumerate(init_lrs):
        rows.append(row(lr, "Agent (PPO)", agent_final[i]))
        rows += [row(lr, f"{OPT_NAMES[o]} grid search", g["final_loss"]) for o, g in grids.items()]
        rows += [row(lr, m, f[i]) for m, f in finals.items()]
        rows.append(row(lr, "SGD-SLS", sgd.final_losses(sls)))

    sls_np = jax.tree.map(np.asarray, sls)
    plot_schedules(os.path.join(args.out, "schedule.png"), init_lrs, agent_curves, sls_np)
    budgets = {"grid_steps_per_optimizer": {o: int(np.sum(g["steps"])) for o, g in grids.items()},
               "grid_lrs": grid_lrs, "agent_training_inner_steps": agent_steps,
               "episode_steps": spe * horizon}
    elapsed = time.perf_counter() - start
    command = "python experiments/sgd_scheduler.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = [f"# PPO LR scheduler vs SGD/Adam/Adadelta baselines ({task.name})\n",
            f"Command: `{command.strip()}`  \nElapsed: {elapsed:.0f} s  \n"
            f"Episode: {horizon} epochs x {spe} steps; {seeds} seeds; grid search: {grid_lrs} LRs log-spaced in "
            f"[1e-6, 1], {budget // grid_lrs} steps each = {budget} steps per optimiser; agent trained on "
            f"{agent_steps} inner optimiser steps. Final loss = validation loss after the last epoch; averages "
            f"exclude diverged runs (non-finite loss or update).\n"]
    for lr in init_lrs:
        text.append(f"\n## Agent LR = initial LR = {lr:g}\n\n" + markdown([r for r in rows if r["init_lr"] == lr]))
    report = "".join(text)
    write_atomic(os.path.join(args.out, "README.md"), report)
    write_atomic(os.path.join(args.out, "results.csv"), csv_text(rows))
    result = {"rows": rows, "budgets": budgets, "elapsed_s": elapsed, "command": command.strip(),
              "agent_lr_curves": agent_curves["lr"].tolist(), "agent_val_loss": agent_curves["val_loss"].tolist()}
    write_atomic(os.path.join(args.out, "results.json"), json.dumps(result, indent=1))
    print(report)
    print(f"[sgd_scheduler] wrote {args.out}/ in {elapsed:.0f}s")
    return result


if __name__ == "__main__":
    ex.script_entry(main)
