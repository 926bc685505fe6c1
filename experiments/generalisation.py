"""GANNO paper, Table 1 (and Tables 2-3): zero-shot generalisation of GANNO trained on a 2-layer CNN,
evaluated on a deeper CNN and on another dataset, against handcrafted schedules, random layerwise
agents, Lion and LAMB, over initial learning rates x seeds. GANNO is reported twice: acting by sampling
from its policy (as Mava's executors do; the paper-scale default) and greedily.

Offline default: train on digits-cnn2, evaluate on digits-cnn5 (deeper) and mnist1d-cnn5 (deeper, other
dataset). With --data-dir: train on fashion_mnist-cnn2, evaluate on cifar10-cnn5 (the paper's setting).
VeLO needs downloaded weights and is not included.

    python experiments/generalisation.py                # CPU default, minutes
    python experiments/generalisation.py --scale paper --data-dir ~/data
"""
from __future__ import annotations

import os
import time

from ganno_jax import experiment as ex
from ganno_jax import flags
from ganno_jax.evaluation import controllers, report

BASELINES = ("constant", "step", "exponential", "linear", "quadratic", "cosine", "sgdr", "random", "lion", "lamb",
             "schedule_free_adamw", "prodigy")
SMOKE_BASELINES = ("constant", "cosine", "random", "lion")


def build_parser():
    """Flags of this experiment (the shared ones plus --baselines)."""
    p = ex.parser("generalisation.py", __doc__, "results/generalisation")
    flags.add(p, "--baselines", shown=",".join(BASELINES))
    return p


def actions_first(scale) -> tuple:
    """Both evaluation action modes, the scale's own first (its row is the headline one)."""
    return (scale.eval_actions, *(a for a in controllers.EVAL_ACTIONS if a != scale.eval_actions))


def ganno_by_actions(args, scale, train_task: str, eval_tasks) -> list:
    """The GANNO agent (trained, or ``--train-run``) twice: acting by sampling and greedily, one row each
    (``--out`` prepared once every input is checked, ``ex.prepare_out_and_agent``)."""
    first, second = actions_first(scale)
    agent = ex.prepare_out_and_agent(args, scale, train_task, eval_tasks, actions=first, name=f"GANNO ({first})")
    other = agent.policy.replace(greedy=second == "greedy")  # the same restored agents, acting the other way
    return [agent, agent.replace(name=f"GANNO ({second})", policy=other)]


def main(argv=None) -> dict:
    """Runs the experiment; returns {eval task: Markdown table}."""
    args = build_parser().parse_args(argv)
    start = time.perf_counter()
    scale, init_lrs, seeds = ex.grid_of(args)
    train_task, eval_tasks = ex.pick_tasks(args, "digits-cnn2", ("digits-cnn5", "mnist1d-cnn5"),
                                           "fashion_mnist-cnn2", ("cifar10-cnn5",))
    baselines = ex.baseline_controllers(args.baselines or (SMOKE_BASELINES if args.smoke else BASELINES))
    if ex.print_config(args, scale, train_task, eval_tasks, init_lrs=list(init_lrs),
                       baselines=[b.name for b in baselines], eval_actions_reported=list(actions_first(scale))):
        return {}
    agents = ganno_by_actions(args, scale, train_task, eval_tasks)
    tables, sections = {}, []
    for name in eval_tasks:
        task = ex.eval_task(name, scale, args)
        _, tables[name] = report.evaluate_task([*agents, *baselines], task, init_lrs, seeds,
                                           os.path.join(args.out, name), seed=args.seed, **ex.run_options(args))
        sections.append((f"{name}: final test accuracy (%), weight decay {task.weight_decay:g}", tables[name]))
    report.finish(args.out, f"Generalisation: GANNO trained on {train_task} ({ex.scale_note(scale, seeds)})",
              sections, start)
    return tables


if __name__ == "__main__":
    ex.script_entry(main)
