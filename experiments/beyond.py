"""Beyond the paper (issue 14): plain GANNO against each extension, the best handcrafted schedule and
Prodigy, zero-shot on held-out tasks (another dataset and a deeper architecture than trained on).

Options, each one change to plain GANNO's training (``OPTIONS``):
  plain        GANNO as in the paper (independent critics, shared difference reward)
  centralised  a centralised critic (MAPPO: every layer's observation pooled; ``IPPOConfig.critic``)
  per_agent    per-agent credit (``reward_mode="per_agent_difference"``: each layer against its own no-op)
  warm_start   behaviour cloning of warm-up cosine and cosine one-cycle before IPPO (``agents.warm_start``)
  family       one policy trained on a family of tasks: the training task plus an MLP and a CNN-3 on the
               same dataset (``RunConfig.tasks``; every task adds ``num_envs`` env copies per update)

Learned agents are evaluated over the initial LRs of the grid and LR 0 (the paper's warm-up case);
handcrafted schedules and Prodigy over the grid only (a schedule scaled by 0 stays 0). The summary
table compares every method on the grid's average and gives the agents' LR-0 accuracy beside it; the
best handcrafted schedule is the one with the best average on each task.

Offline default: train on digits-cnn2, evaluate on mnist1d-cnn5. With --data-dir: train on
fashion_mnist-cnn2, evaluate on cifar10-cnn5.

    python experiments/beyond.py                         # CPU default, minutes
    python experiments/beyond.py --options plain,warm_start --scale paper --data-dir ~/data
    python experiments/beyond.py --train-run results/generalisation/agent   # reuse a plain GANNO run
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from ganno_jax import experiment as ex
from ganno_jax import scales, training
from ganno_jax.agents.warm_start import DEFAULT_SOURCES
from ganno_jax.env.layerwise import EnvParams
from ganno_jax.evaluation import controllers, report
from ganno_jax.runs import prepare_out

#: training options: keyword arguments of ``training.train_run`` on top of the scale's (``_train_kwargs``)
OPTIONS = {
    "plain": {},
    "centralised": {"critic": "centralised"},
    "per_agent": {"reward_mode": "per_agent_difference"},
    "warm_start": {"warm_start": DEFAULT_SOURCES},
    "family": {"family_models": ("mlp", "cnn3")},
}
OPTION_NAMES = {"plain": "GANNO", "centralised": "GANNO + centralised critic",
                "per_agent": "GANNO + per-agent credit", "warm_start": "GANNO + warm start",
                "family": "GANNO + family of tasks"}
SCHEDULES = ("constant", "step", "exponential", "linear", "quadratic", "cosine", "sgdr", "warmup_cosine",
             "onecycle_cosine")
SMOKE_SCHEDULES = ("constant", "cosine")


def build_parser():
    """Flags of this experiment (the shared ones plus --options, --schedules)."""
    p = ex.parser("beyond.py", __doc__, "results/beyond", init_lrs_default="1e-4,3e-4,1e-3,3e-3,1e-2 (and 0 "
                  "for the learned agents)")
    p.add_argument("--options", type=ex.parse_names, metavar="NAME,NAME",
                   help=f"GANNO options to train and compare (default: {','.join(OPTIONS)})")
    p.add_argument("--schedules", type=ex.parse_names, metavar="NAME,NAME",
                   help=f"handcrafted schedules, the best is reported (default: {','.join(SCHEDULES)})")
    return p


def _train_kwargs(option: str, scale, args, train_task: str) -> dict:
    """``training.train_run`` keyword arguments of ``option`` at ``scale`` (``train_task``: the run's task;
    a family adds ``<its dataset>-<model>`` for each of ``family_models``)."""
    change = OPTIONS[option]
    kwargs = {"cfg": scale.ippo, "env_params": EnvParams()}
    if "critic" in change:
        kwargs["cfg"] = dataclasses.replace(scale.ippo, critic=change["critic"])
    if "reward_mode" in change:
        kwargs["env_params"] = EnvParams(reward_mode=change["reward_mode"])
    if "warm_start" in change:
        kwargs["warm_start"] = change["warm_start"]
    if "family_models" in change:
        dataset = train_task.rpartition("-")[0]
        kwargs["tasks"] = tuple(ex.make_task(f"{dataset}-{model}", scale, args) for model in change["family_models"])
    return kwargs


def train_option(args, scale, option: str, train_task: str, folder: str):
    """Trains ``option``'s agents into ``folder`` (``plain``: reuses ``--train-run`` when given); returns
    their evaluation controller named as in the table."""
    if option == "plain" and args.train_run:
        return controllers.from_run(args.train_run, actions=scale.eval_actions, name=OPTION_NAMES[option])
    task = ex.make_task(train_task, scale, args)
    print(f"[{scale.name}] training {OPTION_NAMES[option]} on {task.name}: {scale.train_seeds} agent(s), "
          f"{scale.ippo.total_timesteps} env steps")
    training.train_run(folder, task, seed=args.seed, chunk_updates=scale.chunk_updates, progress=not args.no_progress,
                       train_seeds=scale.train_seeds, log_episodes=(),
                       **_train_kwargs(option, scale, args, train_task))
    return controllers.from_run(folder, actions=scale.eval_actions, name=OPTION_NAMES[option])


def _grid_average(result, grid) -> tuple[float, float]:
    """(mean, std over seeds) of each seed's accuracy (%) averaged over the LRs of ``grid``."""
    rows = [i for i, lr in enumerate(result.init_lrs) if lr in grid]
    per_seed = 100.0 * np.asarray(result.final_acc, np.float64)[rows].mean(axis=0)
    return float(per_seed.mean()), float(per_seed.std())


def _at_zero(result) -> str:
    if 0.0 not in result.init_lrs:
        return "—"
    acc = 100.0 * np.asarray(result.final_acc, np.float64)[list(result.init_lrs).index(0.0)]
    return f"{acc.mean():.2f} ± {acc.std():.2f}"


def summary_table(agents: list, schedules: list, prodigy: list, grid) -> tuple[str, list[str]]:
    """(Markdown table, names of agents that beat Prodigy's average): the agents, the best schedule and
    Prodigy, by average over ``grid`` (mean ± std over seeds), with the agents' LR-0 accuracy."""
    best = max(schedules, key=lambda r: _grid_average(r, grid)[0])
    rows = [(r.method, r) for r in agents] + [(f"best schedule: {best.method}", best)]
    rows += [(r.method, r) for r in prodigy]
    averages = [_grid_average(r, grid) for _, r in rows]
    top = int(np.argmax([m for m, _ in averages]))
    lines = [f"| Method | Average over LRs {', '.join(f'{lr:g}' for lr in grid)} | LR 0 |", "|---|---|---|"]
    for i, ((name, result), (mean, std)) in enumerate(zip(rows, averages)):
        cell = f"{mean:.2f} ± {std:.2f}"
        lines.append(f"| {name} | {f'**{cell}**' if i == top else cell} | {_at_zero(result)} |")
    beat = [] if not prodigy else [r.method for r in agents
                                   if _grid_average(r, grid)[0] > _grid_average(prodigy[0], grid)[0]]
    return "\n".join(lines) + "\n", beat


def main(argv=None) -> dict:
    """Runs the experiment; returns {eval task: summary Markdown table}."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    scale = ex.scale_of(args)
    grid = scales.check_init_lrs(ex.default_init_lrs(args))
    seeds = ex.seeds_of(args, scale)
    options = ex.check_names(args.options or tuple(OPTIONS), tuple(OPTIONS), "option")
    schedules = ex.baseline_controllers(args.schedules or (SMOKE_SCHEDULES if args.smoke else SCHEDULES))
    train_task, eval_tasks = ex.pick_tasks(args, "digits-cnn2", ("mnist1d-cnn5",), "fashion_mnist-cnn2",
                                           ("cifar10-cnn5",))
    if ex.print_config(args, scale, train_task, eval_tasks, init_lrs=list(grid), options=list(options),
                       option_changes={o: {k: list(v) if isinstance(v, tuple) else v for k, v in OPTIONS[o].items()}
                                       for o in options},
                       schedules=[s.name for s in schedules]):
        return {}
    ex.check_runs([args.train_run])
    prepare_out(args.out, args.overwrite, protect=[args.train_run])
    agents = [train_option(args, scale, o, train_task, os.path.join(args.out, "agents", o)) for o in options]
    prodigy = ex.baseline_controllers(("prodigy",))
    tables, sections, winners = {}, [], {}
    for name in eval_tasks:
        task, folder = ex.make_task(name, scale, args), os.path.join(args.out, name)
        agent_results, agent_table = report.evaluate_task(agents, task, (0.0, *grid), seeds, folder, seed=args.seed,
                                                          name="agents", plot_lr=0.0, **ex.run_options(args))
        baseline_results, baseline_table = report.evaluate_task([*schedules, *prodigy], task, grid, seeds, folder,
                                                                seed=args.seed, name="baselines",
                                                                **ex.run_options(args))
        tables[name], winners[name] = summary_table(agent_results, baseline_results[:len(schedules)],
                                                    baseline_results[len(schedules):], grid)
        sections += [(f"{name}: final test accuracy (%), summary", tables[name]),
                     (f"{name}: learned agents by initial LR", agent_table),
                     (f"{name}: handcrafted schedules and Prodigy by initial LR", baseline_table)]
    verdict = "; ".join(f"{n}: {', '.join(w) or 'none'}" for n, w in winners.items())
    report.finish(args.out, f"Beyond the paper: GANNO options trained on {train_task}, evaluated zero-shot "
                            f"({ex.scale_note(scale, seeds)}). Beat Prodigy on average: {verdict}",
                  sections, start, extra={"beat_prodigy": winners})
    return tables


if __name__ == "__main__":
    ex.script_entry(main)
