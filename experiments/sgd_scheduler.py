"""Single-agent PPO learning-rate scheduler for SGD (paper ``000``, Tables 1-10, Figures 1 and 3-9).

A PPO agent (feed-forward, Gaussian head) sets SGD's global LR once per epoch on ``GlobalLREnv``
(reward eq. (1) or, ``--reward val_loss``, the appendix A.8 ablation; divergence penalty). The paper's
initial LRs (5e-4, 1e-3, 5e-3, 1e-2) are the agent's own PPO learning rate ("Agent LR") and the
initial LR of the baselines: SGD, Adam, Adadelta and Adagrad with PyTorch's ConstantLR and OneCycleLR
(max_lr = initial LR), a constant-LR grid search per optimiser (``--grid linear``: the paper's [0, 1]
range, or ``log``) with its best LR rerun on the evaluation seeds, and SGD with a stochastic Armijo
line search (SLS). Every method trains the same network on the same minibatches per seed (5 seeds).
Every grid of runs (schedules x initial LRs x seeds, the grid search, SLS, the trained agents' evaluation)
runs through evaluation's grid runner (``ganno_jax.evaluation.global_lr`` on ``chunked.RunMapper``, as
GANNO's evaluation): vmapped in chunks sized to the free memory (``--max-parallel-runs`` overrides),
split over ``--devices`` devices (default all), with a progress bar (``--no-progress``); the dataset is
an argument of every compiled program (``GlobalEnvParams.data``).

Equal budgets (docs/decisions_sgd_scheduler.md): every run of every row trains for one episode of
``--epochs`` epochs; the grid search trains ``--grid-lrs`` such runs, and each agent trains on the same
number of epochs (``--grid-lrs`` x ``--epochs`` env steps), so both spend the same optimiser steps. The
paper's 100 LRs x 100 epochs = 10,000 ("total optimizer steps = 10000", one per epoch) and the agents
after "10K training iterations" (Fig. 3); ``--agent-epochs 20000`` / ``50000`` train the agents of Figs. 4 / 5
(no longer an equal budget; the tables say how many steps each side ran). The steps each row and each
budget actually ran are counted from the runs and written with the results. The agent is evaluated greedily
(its mean action).

Outputs in ``--out``: ``README.md`` (one paper-style table per initial LR: best final loss, average
final loss over the non-diverged runs, diverged runs, "divergent case exists", optimiser steps per run;
plus the budgets), ``results.csv`` / ``results.json`` (with the resolved configuration), ``schedule.png``
(the learned LR schedules against the validation loss, with SLS's step sizes), and the elapsed time.
``--print-config`` prints the resolved configuration as JSON and exits without training.

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
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from ganno_jax import experiment as ex
from ganno_jax import flags, tasks
from ganno_jax.agents import IPPOConfig, make_train, policy_from
from ganno_jax.checks import check_int
from ganno_jax.evaluation import global_lr
from ganno_jax.evaluation.chunked import grid_mesh
from ganno_jax.evaluation.plots import save_figure
from ganno_jax.files import prepare_out, write_atomic
from ganno_jax.scales import PAPER_AGENT_LRS, check_init_lrs, check_seeds, sgd_scheduler_scale
from ganno_jax.sgd_scheduler import baselines as sgd
from ganno_jax.sgd_scheduler import env as sgd_env

OPT_NAMES = {"sgd": "SGD", "adam": "Adam", "adadelta": "Adadelta", "adagrad": "Adagrad"}
SCHED_NAMES = {"constant_lr": "ConstantLR", "onecycle": "OneCycleLR"}


def build_parser() -> argparse.ArgumentParser:
    """Command-line flags."""
    p = ex.base_parser("sgd_scheduler.py", __doc__, "results/sgd_scheduler",
                       "cpu: minutes on 2 CPU cores (digits MLP, 10 epochs, 48 grid LRs); paper: PyTorch's MNIST "
                       "example CNN, 100 epochs, 100 grid LRs, agents trained on 10,000 epochs (an accelerator)")
    p.add_argument("--dataset", default=None, help="dataset (default: digits; mnist with --data-dir)")
    p.add_argument("--data-dir", help="folder with the MNIST IDX files or the cifar-100-python pickles")
    p.add_argument("--init-lrs", default=None, help="comma-separated initial LRs (default: 5e-4,1e-3,5e-3,1e-2)")
    p.add_argument("--seeds", type=int, help="evaluation seeds (default: 5; smoke 2)")
    p.add_argument("--epochs", type=int, help="epochs of every run (default: the scale's; paper 100)")
    p.add_argument("--grid-lrs", type=int, help="grid-search LRs; the agent trains on as many runs' epochs "
                                                "(default: the scale's; paper 100)")
    p.add_argument("--agent-epochs", type=int, help="epochs (env steps) each agent trains on, e.g. 20000 / 50000 for "
                                                    "the paper's Figs. 4 / 5 (default: --grid-lrs x --epochs, the "
                                                    "equal budget; paper 10,000, Fig. 3)")
    p.add_argument("--grid", choices=sgd.GRID_SPACINGS, help="grid-search LRs: linear = k/N for k=1..N (the "
                                                             "paper's [0, 1]), log = log-spaced in [1e-6, 1] "
                                                             "(default: linear)")
    p.add_argument("--reward", choices=sgd_env.GLOBAL_REWARD_MODES, default="eq1",
                   help="agent reward: eq1 = the paper's eq. (1), val_loss = appendix A.8's ablation (default: eq1)")
    p.add_argument("--optimizers", default=",".join(sgd.BASELINE_OPTIMIZERS),
                   help="baseline optimisers (default: sgd,adam,adadelta,adagrad)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default: 0)")
    flags.add(p, "--max-parallel-runs")
    flags.add(p, "--devices", shown="all")
    flags.add(p, "--no-progress")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved configuration as one JSON object and exit without training")
    return p


def agent_config(base: IPPOConfig, agent_lr: float, env_steps: int) -> IPPOConfig:
    """PPO config at ``agent_lr`` training on exactly ``env_steps`` env steps (epochs); ``ValueError``
    unless they are a whole number of PPO updates (``num_envs * num_steps`` env steps each)."""
    per_update = base.num_envs * base.num_steps
    if env_steps % per_update:
        raise ValueError(f"the agent's budget of {env_steps} epochs (--agent-epochs, default grid LRs x epochs) is "
                         f"not a multiple of num_envs * num_steps = {per_update} env steps per PPO update; pick "
                         f"--agent-epochs (or --grid-lrs/--epochs) to be one")
    return dataclasses.replace(base, lr=agent_lr, total_timesteps=env_steps)


@dataclasses.dataclass(frozen=True)
class Setup:
    """Everything a run is made of, resolved from the flags and the scale (no training)."""

    scale: str
    task: tasks.Task
    params: sgd_env.GlobalEnvParams
    envs: dict  # optimiser -> GlobalLREnv
    ppo: IPPOConfig  # the agents' config (``lr`` set per agent LR)
    seeds: int
    init_lrs: tuple
    optimizers: tuple
    grid_lrs: int
    grid: str
    mesh: Optional[Mesh]  # what every grid of runs is split over (``--devices``)
    options: dict  # ``ex.run_options``: ``max_parallel_runs``, ``progress``

    @property
    def env(self) -> sgd_env.GlobalLREnv:
        """The SGD env (the agent's)."""
        return self.envs["sgd"]

    @property
    def episode_steps(self) -> int:
        """Optimiser steps of one run (every row of every table)."""
        return self.task.horizon * self.env.steps_per_epoch


def setup(args) -> Setup:
    """The resolved configuration of ``args`` (checks every input before any training)."""
    scale = sgd_scheduler_scale("smoke" if args.smoke else args.scale)
    seeds = check_seeds(scale.seeds if args.seeds is None else args.seeds)
    init_lrs = check_init_lrs(ex.parse_floats(args.init_lrs) if args.init_lrs
                              else PAPER_AGENT_LRS[::3] if args.smoke else PAPER_AGENT_LRS)
    optimizers = ex.check_names(ex.parse_names(args.optimizers.replace(" ", "")), tuple(sgd.BASELINE_OPTIMIZERS),
                                "optimizer")
    if not optimizers:
        raise ValueError(f"--optimizers {args.optimizers!r}: give at least one of {', '.join(sgd.BASELINE_OPTIMIZERS)}")
    grid_lrs = check_int("--grid-lrs", scale.grid_lrs if args.grid_lrs is None else args.grid_lrs)
    dataset = args.dataset or ("mnist" if args.data_dir else "digits")
    overrides = dict(scale.task, **({} if args.epochs is None else {"horizon": args.epochs}))
    task = tasks.Task(dataset=dataset, data_dir=args.data_dir, optimizer="sgd", **overrides)
    envs = {name: sgd.optimizer_env(task, name) for name in sorted(set(optimizers) | {"sgd"})}
    params = envs["sgd"].default_params.replace(reward_mode=args.reward)
    agent_epochs = grid_lrs * task.horizon if args.agent_epochs is None else check_int("--agent-epochs",
                                                                                        args.agent_epochs)
    ppo = agent_config(scale.ppo, scale.ppo.lr, agent_epochs)
    return Setup(scale.name, task, params, envs, ppo, seeds, init_lrs, optimizers, grid_lrs,
                 args.grid or scale.grid, grid_mesh(args.devices), ex.run_options(args))


def resolved_config(s: Setup) -> dict:
    """The configuration as JSON-ready data: ``task``, ``env_params`` (every field but ``data``),
    ``divergence_penalty``, ``ppo`` (``lr``: one agent per initial LR), ``seeds``, ``init_lrs``, ``optimizers``,
    ``grid`` (LRs, steps per point) and the planned ``budgets`` (optimiser steps)."""
    lrs = [float(f"{x:.6g}") for x in np.asarray(sgd.grid_lrs(s.grid, s.grid_lrs, s.params.lr_min, s.params.lr_max))]
    return {
        "scale": s.scale, "task": dataclasses.asdict(s.task),
        "env_params": {f.name: getattr(s.params, f.name) for f in dataclasses.fields(s.params) if f.name != "data"},
        "divergence_penalty": {"reward": f"-({sgd_env.PENALTY_BASE:g} + {sgd_env.PENALTY_BASE:g} u), u ~ U(0, 1)",
                               "ends_episode": True},
        "ppo": {**dataclasses.asdict(s.ppo), "lr": list(s.init_lrs)}, "seeds": s.seeds, "init_lrs": list(s.init_lrs),
        "optimizers": list(s.optimizers), "schedules": list(SCHED_NAMES),
        "grid": {"spacing": s.grid, "lrs": lrs, "steps_per_point": s.episode_steps},
        "budgets": {"steps_per_epoch": s.env.steps_per_epoch, "epochs_per_run": s.task.horizon,
                    "steps_per_evaluation_run": s.episode_steps, "grid_search_steps": s.grid_lrs * s.episode_steps,
                    "agent_training_env_steps": s.ppo.total_timesteps, "agent_ppo_updates": s.ppo.num_updates,
                    "agent_training_steps": s.ppo.total_timesteps * s.env.steps_per_epoch},
    }


def row(init_lr, method: str, final_loss, steps) -> dict:
    """One table row: best/avg final loss (finite runs), diverged runs, whether a divergent case exists,
    and the optimiser steps every run of the row trained for (``steps``: per run, all equal)."""
    steps = np.asarray(steps).ravel()
    if steps.min() != steps.max():
        raise RuntimeError(f"the runs of {method!r} trained for different numbers of steps: {sorted(set(steps))}")
    return {"init_lr": float(init_lr), "method": method, **sgd.loss_summary(final_loss), "steps": int(steps[0])}


def _fmt(x: float) -> str:
    return "diverged" if not math.isfinite(x) else f"{x:.4f}"


def markdown(rows: list[dict]) -> str:
    """Paper-style table (Tables 2-9) of ``rows``, plus each row's optimiser steps per run."""
    lines = ["| Method | Best final loss | Avg final loss | Diverged runs | Divergent case exists | Steps/run |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['method']} | {_fmt(r['best'])} | {_fmt(r['avg'])} | {r['diverged_runs']}/{r['runs']} | "
              f"{'yes' if r['divergent'] else 'no'} | {r['steps']} |" for r in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict]) -> str:
    """All rows as CSV."""
    head = "init_lr,method,best_final_loss,avg_final_loss,diverged_runs,runs,divergent_case_exists,steps"
    body = [f"{r['init_lr']:g},{r['method']},{r['best']:.6g},{r['avg']:.6g},{r['diverged_runs']},{r['runs']},"
            f"{'yes' if r['divergent'] else 'no'},{r['steps']}" for r in rows]
    return "\n".join([head, *body]) + "\n"


def plot_schedules(path: str, init_lrs, agent_curves: dict, sls_curves: dict) -> None:
    """Learned LR schedules (log scale) and validation losses of every trained agent (one per seed, as the
    paper's Figs. 8/9 show five), with SLS's on seed 0, one panel per agent LR."""
    import matplotlib.pyplot as plt  # backend chosen by ganno_jax.evaluation.plots (Agg)

    fig, axes = plt.subplots(1, len(init_lrs), figsize=(4 * len(init_lrs), 3.4), squeeze=False)
    seeds, epochs = agent_curves["lr"].shape[1], np.arange(1, agent_curves["lr"].shape[-1] + 1)
    for i, (ax, lr) in enumerate(zip(axes[0], init_lrs)):
        twin = ax.twinx()
        for k in range(seeds):
            ax.semilogy(epochs, agent_curves["lr"][i, k], f"C{k % 10}-", lw=1, label=f"agent LR, seed {k}")
            twin.plot(epochs, agent_curves["val_loss"][i, k], f"C{k % 10}--", lw=1, alpha=0.7)
        ax.semilogy(epochs, sls_curves["lr"][0], "k:", label="SLS mean step (seed 0)")
        twin.plot(epochs, sls_curves["val_loss"][0], "k-.", alpha=0.6, label="SLS val loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("learning rate (solid)")
        twin.set_ylabel("validation loss (dashed)")
        ax.set_title(f"agent LR {lr:g}, {seeds} seeds")
        if i == 0:
            ax.legend(loc="upper left", fontsize=7)
            twin.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


def train_agents(s: Setup, key: jax.Array):
    """One agent per initial LR (its PPO LR) x ``s.seeds`` training seeds (vmapped); returns the stacked
    greedy policies (leaves ``[L, S, ...]``) and the optimiser steps every trained agent ran (counted from its
    training metrics; all agents train equally long, else ``RuntimeError``)."""
    policies, steps = [], []
    for lr in s.init_lrs:
        cfg = dataclasses.replace(s.ppo, lr=lr)
        train = jax.jit(lambda params, keys: jax.vmap(make_train(cfg, s.env, params))(keys))  # data: an argument
        out = jax.block_until_ready(train(s.params, jax.random.split(key, s.seeds)))
        policies.append(policy_from(out).replace(cfg=s.ppo))  # one static config, so the policies stack
        steps.append(np.asarray(out.metrics["steps"]).reshape(s.seeds, -1).sum(axis=1))
    steps = np.stack(steps)
    if steps.min() != steps.max():
        raise RuntimeError(f"the agents trained for different numbers of optimiser steps: {sorted(set(steps.ravel()))}")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *policies), int(steps.max())


def main(argv=None) -> dict:
    """Runs the experiment; returns ``{"rows", "budgets", "config", "elapsed_s", ...}`` (``--print-config``:
    prints the configuration and returns it)."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    s = setup(args)
    config = resolved_config(s)
    if args.print_config:
        print(json.dumps(config, indent=1))
        return config
    prepare_out(args.out, args.overwrite)
    env, params, spe, horizon = s.env, s.params, s.env.steps_per_epoch, s.task.horizon
    k_train, k_eval, k_grid = jax.random.split(jax.random.key(args.seed), 3)
    print(f"[sgd_scheduler] {s.task.name}: {spe} steps/epoch x {horizon} epochs, {s.seeds} seeds, "
          f"init LRs {s.init_lrs}")

    # every grid below runs through evaluation's grid runner: memory-planned chunks, split over devices
    num_lrs = len(s.init_lrs)
    runs = len(s.optimizers) * (s.grid_lrs + (len(SCHED_NAMES) * num_lrs + 1) * s.seeds) + s.seeds + num_lrs * s.seeds
    bar = tqdm(total=runs, unit="run", desc="evaluate", disable=not s.options["progress"], dynamic_ncols=True)
    grid = dict(mesh=s.mesh, max_parallel_runs=s.options["max_parallel_runs"], on_chunk=bar.update)

    # handcrafted optimiser x scheduler baselines (schedules x init LRs x seeds), grid search and its best LR
    # on the evaluation seeds
    finals, grids = {}, {}
    for opt in s.optimizers:
        res, plan = global_lr.run_baselines(s.envs[opt], params, s.init_lrs, s.seeds, k_eval, k_grid,
                                            tuple(SCHED_NAMES), s.grid_lrs, s.grid, **grid)
        grids[opt] = res["grid"]
        best = (sgd.final_losses(res["grid_best"]), sgd.run_steps(res["grid_best"]))  # [S]: the same for every LR
        finals[f"{OPT_NAMES[opt]} grid-search best LR"] = tuple(np.broadcast_to(x, (num_lrs,) + x.shape)
                                                                 for x in best)
        for sched, name in SCHED_NAMES.items():
            finals[f"{OPT_NAMES[opt]}-{name}"] = (sgd.final_losses(res[sched]), sgd.run_steps(res[sched]))
        bar.write(f"[sgd_scheduler] {OPT_NAMES[opt]}: schedules and grid search done, {plan.describe()} "
                  f"({time.perf_counter() - start:.0f}s)")
    sls, _ = global_lr.map_sls(env, params, jax.random.split(k_eval, s.seeds), **grid)
    bar.write(f"[sgd_scheduler] SLS done ({time.perf_counter() - start:.0f}s)")

    # PPO agents: one per agent LR, `seeds` training seeds vmapped; agent (l, s) evaluated greedily on eval seed s
    stacked, agent_steps = train_agents(s, k_train)
    bar.write(f"[sgd_scheduler] agents trained ({s.ppo.num_updates} PPO updates each; "
              f"{time.perf_counter() - start:.0f}s)")
    flat = jax.tree.map(lambda x: x.reshape(num_lrs * s.seeds, *x.shape[2:]), stacked)
    eval_keys = jax.random.split(k_eval, s.seeds)[np.tile(np.arange(s.seeds), num_lrs)]
    agent_curves, _ = global_lr.map_policies(env, params, flat, eval_keys, **grid)
    agent_curves = jax.tree.map(lambda x: x.reshape(num_lrs, s.seeds, *x.shape[1:]), agent_curves)
    bar.close()

    rows = []
    for i, lr in enumerate(s.init_lrs):
        rows.append(row(lr, "Agent (PPO)", sgd.final_losses(agent_curves)[i], sgd.run_steps(agent_curves)[i]))
        rows += [row(lr, f"{OPT_NAMES[o]} grid search", g["final_loss"], g["steps"]) for o, g in grids.items()]
        rows += [row(lr, m, final[i], steps[i]) for m, (final, steps) in finals.items()]
        rows.append(row(lr, "SGD-SLS", sgd.final_losses(sls), sgd.run_steps(sls)))

    plot_schedules(os.path.join(args.out, "schedule.png"), s.init_lrs, agent_curves, sls)
    budgets = {"grid_search_steps": {o: int(np.sum(g["steps"])) for o, g in grids.items()},
               "agent_training_steps": agent_steps,
               "steps_per_evaluation_run": s.episode_steps, "grid_lrs": s.grid_lrs}
    elapsed = time.perf_counter() - start
    command = "python experiments/sgd_scheduler.py " + " ".join(argv if argv is not None else sys.argv[1:])
    text = [f"# PPO LR scheduler vs SGD/Adam/Adadelta/Adagrad baselines ({s.task.name})\n",
            f"Command: `{command.strip()}`  \nElapsed: {elapsed:.0f} s  \n"
            f"Every run: {horizon} epochs x {spe} steps = {s.episode_steps} optimiser steps; {s.seeds} seeds; "
            f"reward {args.reward}. Grid search: {s.grid_lrs} constant LRs ({s.grid} grid), one run each = "
            f"{', '.join(f'{n} ({OPT_NAMES[o]})' for o, n in budgets['grid_search_steps'].items())} optimiser "
            f"steps; each agent trained on "
            f"{budgets['agent_training_steps']} optimiser steps ({s.ppo.total_timesteps} epochs). Final loss = "
            f"validation loss after the last epoch; averages exclude diverged runs (non-finite loss or update). "
            f"Grid-search rows summarise the grid's LRs (one seed); \"best LR\" rows rerun its best LR on the "
            f"evaluation seeds.\n"]
    for lr in s.init_lrs:
        text.append(f"\n## Agent LR = initial LR = {lr:g}\n\n" + markdown([r for r in rows if r["init_lr"] == lr]))
    report = "".join(text)
    write_atomic(os.path.join(args.out, "README.md"), report)
    write_atomic(os.path.join(args.out, "results.csv"), csv_text(rows))
    result = {"rows": rows, "budgets": budgets, "config": config, "elapsed_s": elapsed, "command": command.strip(),
              "agent_lr_curves": agent_curves["lr"].tolist(), "agent_val_loss": agent_curves["val_loss"].tolist()}
    write_atomic(os.path.join(args.out, "results.json"), json.dumps(result, indent=1))
    print(report)
    print(f"[sgd_scheduler] wrote {args.out}/ in {elapsed:.0f}s")
    return result


if __name__ == "__main__":
    ex.script_entry(main)
