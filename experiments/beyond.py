"""Beyond the paper (issue 14): plain GANNO against each extension, the best handcrafted schedule and
Prodigy, zero-shot on held-out tasks (another dataset and a deeper architecture than trained on).

Options, each one change to plain GANNO's training (``OPTIONS``):
  plain        GANNO as in the paper (independent critics, shared difference reward)
  centralised  a centralised critic (MAPPO: every layer's observation pooled; ``IPPOConfig.critic``)
  per_agent    per-agent credit (``reward_mode="per_agent_difference"``: each layer against its own no-op)
  warm_start   behaviour cloning of warm-up cosine and cosine one-cycle before IPPO (``agents.warm_start``)
  family       one policy trained on a family of tasks: the training task plus an MLP and a CNN-3 on the
               same dataset (``RunConfig.tasks``; every task adds ``num_envs`` env copies per update)
  wd_control   joint LR + weight-decay control: every layer also sets its own weight decay
               (``EnvParams.control_wd``; a factorised (LR, WD) action per agent)
  combined     the options that train together in one run: centralised critic, per-agent credit, the
               family of tasks and LR & WD control (not the warm start)

Every method is evaluated at each weight decay of ``--weight-decays`` (default: the paper's 0.1, 0.01
and 1e-4; the agent with WD control starts every run there and may change it, the others keep it).

Learned agents are evaluated over the initial LRs of the grid and LR 0 (the paper's warm-up case);
handcrafted schedules and Prodigy over the grid only (a schedule scaled by 0 stays 0). The summary
table compares every method on the grid's average at each weight decay and over all of them (each
seed's accuracy averaged over LRs and WDs; mean ± std over seeds and trained agents), and gives the
agents' LR-0 accuracy (averaged over WDs) beside it; the best handcrafted schedule is the one with the
best overall average on each task.

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
from ganno_jax import flags, training
from ganno_jax.agents.warm_start import DEFAULT_SOURCES
from ganno_jax.evaluation import controllers, report
from ganno_jax.files import prepare_out

#: training options: keyword arguments of ``training.train_run`` on top of the scale's (``_train_kwargs``)
OPTIONS = {
    "plain": {},
    "centralised": {"critic": "centralised"},
    "per_agent": {"reward_mode": "per_agent_difference"},
    "warm_start": {"warm_start": DEFAULT_SOURCES},
    "family": {"family_models": ("mlp", "cnn3")},
    "wd_control": {"control_wd": True},
    "combined": {"critic": "centralised", "reward_mode": "per_agent_difference", "family_models": ("mlp", "cnn3"),
                 "control_wd": True},
}
OPTION_NAMES = {"plain": "GANNO", "centralised": "GANNO + centralised critic",
                "per_agent": "GANNO + per-agent credit", "warm_start": "GANNO + warm start",
                "family": "GANNO + family of tasks", "wd_control": "GANNO + LR & WD control",
                "combined": "GANNO + critic, credit, family, WD"}
SCHEDULES = ("constant", "step", "exponential", "linear", "quadratic", "cosine", "sgdr", "warmup_cosine",
             "onecycle_cosine")
SMOKE_SCHEDULES = ("constant", "cosine")
#: the paper's weight decays (GANNO Tables 1-3)
WEIGHT_DECAYS = (0.1, 0.01, 1e-4)


def build_parser():
    """Flags of this experiment (the shared ones plus --options, --schedules, --weight-decays)."""
    p = ex.parser("beyond.py", __doc__, "results/beyond", init_lrs_default="1e-4,3e-4,1e-3,3e-3,1e-2 (and 0 "
                  "for the learned agents)")
    p.add_argument("--options", type=flags.parse_names, metavar="NAME,NAME",
                   help=f"GANNO options to train and compare (default: {','.join(OPTIONS)})")
    flags.add(p, "--schedules", shown=",".join(SCHEDULES), note="; the best is reported")
    flags.add(p, "--weight-decays", shown=",".join(map(str, WEIGHT_DECAYS)))
    return p


def _train_kwargs(option: str, scale, args, train_task: str) -> dict:
    """``training.train_run`` keyword arguments of ``option`` at ``scale`` (``train_task``: the run's task;
    a family adds ``<its dataset>-<model>`` for each of ``family_models``)."""
    change = OPTIONS[option]
    kwargs = {"cfg": scale.ippo}
    if "critic" in change:
        kwargs["cfg"] = dataclasses.replace(scale.ippo, critic=change["critic"])
    kwargs["env_params"] = scale.env_params(**{k: change[k] for k in ("reward_mode", "control_wd") if k in change})
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
    print(f"[{scale.name}] training {OPTION_NAMES[option]} on {task.name}: {scale.members} member(s), "
          f"{scale.ippo.total_timesteps} env steps")
    training.train_run(folder, task, seed=args.seed, checkpoint_every=scale.checkpoint_every,
                       progress=not args.no_progress, members=scale.members, log_episodes=(),
                       **_train_kwargs(option, scale, args, train_task))
    return controllers.from_run(folder, actions=scale.eval_actions, name=OPTION_NAMES[option])


def _per_seed(results: list, lrs) -> np.ndarray:
    """Each seed's accuracy (%) averaged over the initial LRs ``lrs`` and over ``results`` (one method's
    ``EvalResult`` at each weight decay), [seeds]."""
    per_wd = []
    for result in results:
        rows = [i for i, lr in enumerate(result.init_lrs) if lr in lrs]
        per_wd.append(100.0 * np.asarray(result.final_acc, np.float64)[rows].mean(axis=0))
    return np.mean(per_wd, axis=0)


def _cell(per_seed: np.ndarray) -> str:
    return f"{per_seed.mean():.2f} ± {per_seed.std():.2f}"


def _at_zero(results: list) -> str:
    return _cell(_per_seed(results, (0.0,))) if 0.0 in results[0].init_lrs else "—"


def _by_method(results_by_wd: list, indices) -> list:
    """[method][weight decay] ``EvalResult``s of the methods at ``indices`` from [weight decay][method] lists."""
    return [[results[i] for results in results_by_wd] for i in indices]


def summary_table(agents: list, schedules: list, prodigy: list, grid, wds) -> tuple[str, list[str]]:
    """(Markdown table, names of agents that beat Prodigy's overall average). Every argument but ``grid`` /
    ``wds`` lists methods, each as its ``EvalResult``s at the weight decays ``wds``: the agents, the best
    schedule (by overall average) and Prodigy, by average over ``grid`` at each weight decay and over all
    (mean ± std over seeds), with the agents' LR-0 accuracy averaged over the weight decays."""
    def overall(results):
        return float(_per_seed(results, grid).mean())

    best = max(schedules, key=overall)
    rows = [(r[0].method, r) for r in agents] + [(f"best schedule: {best[0].method}", best)]
    rows += [(r[0].method, r) for r in prodigy]
    top = int(np.argmax([overall(r) for _, r in rows]))
    wd_columns = "".join(f" wd={wd:g} |" for wd in wds)
    lines = [f"| Method |{wd_columns} Average over LRs {', '.join(f'{lr:g}' for lr in grid)} and WDs | LR 0 |",
             "|---|" + "---|" * len(wds) + "---|---|"]
    for i, (name, results) in enumerate(rows):
        cells = "".join(f" {_cell(_per_seed([r], grid))} |" for r in results)
        average = _cell(_per_seed(results, grid))
        lines.append(f"| {name} |{cells} {f'**{average}**' if i == top else average} | {_at_zero(results)} |")
    beat = [] if not prodigy else [r[0].method for r in agents if overall(r) > overall(prodigy[0])]
    return "\n".join(lines) + "\n", beat


def main(argv=None) -> dict:
    """Runs the experiment; returns {eval task: summary Markdown table}."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    scale, grid, seeds = ex.grid_of(args)
    options = ex.check_names(args.options or tuple(OPTIONS), tuple(OPTIONS), "option")
    schedules = ex.baseline_controllers(args.schedules or (SMOKE_SCHEDULES if args.smoke else SCHEDULES))
    wds = ex.check_weight_decays(args.weight_decays if args.weight_decays is not None else WEIGHT_DECAYS)
    train_task, eval_tasks = ex.pick_tasks(args, "digits-cnn2", ("mnist1d-cnn5",), "fashion_mnist-cnn2",
                                           ("cifar10-cnn5",))
    if ex.print_config(args, scale, train_task, eval_tasks, init_lrs=list(grid), weight_decays=list(wds),
                       options=list(options),
                       option_changes={o: {k: list(v) if isinstance(v, tuple) else v for k, v in OPTIONS[o].items()}
                                       for o in options},
                       schedules=[s.name for s in schedules]):
        return {}
    ex.check_inputs(args, scale, train_task, eval_tasks, reused=[args.train_run], trains=not args.train_run)
    prepare_out(args.out, args.overwrite, protect=[args.train_run])
    agents = [train_option(args, scale, o, train_task, os.path.join(args.out, "agents", o)) for o in options]
    prodigy = ex.baseline_controllers(("prodigy",))
    tables, sections, winners = {}, [], {}
    for name in eval_tasks:
        task, folder = ex.eval_task(name, scale, args), os.path.join(args.out, name)
        agent_by_wd, baseline_by_wd, by_wd_sections = [], [], []  # [wd][method] EvalResults; their tables
        for wd in wds:
            agent_results, agent_table = report.evaluate_task(
                agents, task, (0.0, *grid), seeds, folder, weight_decay=wd, seed=args.seed, name=f"agents_wd{wd:g}",
                plot_lr=0.0, **ex.run_options(args))
            baseline_results, baseline_table = report.evaluate_task(
                [*schedules, *prodigy], task, grid, seeds, folder, weight_decay=wd, seed=args.seed,
                name=f"baselines_wd{wd:g}", **ex.run_options(args))
            agent_by_wd.append(agent_results)
            baseline_by_wd.append(baseline_results)
            by_wd_sections += [(f"{name}, weight decay {wd:g}: learned agents by initial LR", agent_table),
                               (f"{name}, weight decay {wd:g}: handcrafted schedules and Prodigy by initial LR",
                                baseline_table)]
        baseline_methods = _by_method(baseline_by_wd, range(len(schedules) + len(prodigy)))
        tables[name], winners[name] = summary_table(_by_method(agent_by_wd, range(len(agents))),
                                                    baseline_methods[:len(schedules)],
                                                    baseline_methods[len(schedules):], grid, wds)
        sections += [(f"{name}: final test accuracy (%), summary", tables[name]), *by_wd_sections]
    verdict = "; ".join(f"{n}: {', '.join(w) or 'none'}" for n, w in winners.items())
    report.finish(args.out, f"Beyond the paper: GANNO options trained on {train_task}, evaluated zero-shot "
                            f"({ex.scale_note(scale, seeds)}). Beat Prodigy on average: {verdict}",
                  sections, start, extra={"beat_prodigy": winners})
    return tables


if __name__ == "__main__":
    ex.script_entry(main)
