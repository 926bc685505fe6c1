"""Room to act: how much a layerwise LR schedule can matter at a CPU budget, per decision count and action set.

For each setting (``tau`` x ``horizon`` decisions at a fixed budget of Adam steps, and an action set of
``env.actions.ACTION_SETS``) it rolls out, through ``LayerwiseLREnv`` itself, the simplest policies the action
set allows: from every initial LR of the paper's grid, every layer moves greedily towards a target LR
(``agents.warm_start.schedule_actions``: as fast as the set's steps allow) and holds it. It reports per setting:

- ``no-op``: the joint no-op policy (a constant LR at the initial LR), mean test accuracy over the grid;
- ``ceiling``: for each initial LR the best target's accuracy, averaged over the grid (what a policy that
  only picks one LR to head for could reach; a learned schedule can do better, but a setting whose ceiling
  is near the no-op leaves a policy little to learn);
- ``reach``: the geometric mean over the grid of the best target's LR / the initial LR (how far the good
  LR lay);
- ``s/episode``: wall seconds of one vmapped episode per run (decisions cost a validation pass each).

    .venv/bin/python benchmarks/room_to_act.py                     # mnist1d-cnn2, CPU-scale sizes
    .venv/bin/python benchmarks/room_to_act.py --task digits-cnn3 --settings 20x10,10x20,5x40 --seeds 3

The measurement and the choice it led to are in docs/decisions.md ("Room to act").
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from ganno_jax import tasks
from ganno_jax.agents.sharding import use_cpu_cores
from ganno_jax.agents.warm_start import schedule_actions
from ganno_jax.env.actions import ACTION_SETS
from ganno_jax.env.base import rollout
from ganno_jax.env.layerwise import LayerwiseLREnv
from ganno_jax.scales import PAPER_INIT_LRS

#: target LRs a greedy policy heads for (a decade-and-a-half sweep around Adam's useful range)
TARGETS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1)


def _settings(text: str) -> list[tuple[int, int]]:
    """``"20x10,10x20"`` -> [(20, 10), (10, 20)] (tau x horizon)."""
    return [tuple(int(v) for v in item.split("x")) for item in text.split(",")]


def final_test_acc(task, action_set: str, init_lrs, targets, seeds: int, weight_decay: float) -> np.ndarray:
    """Final test accuracy [init LR, target, seed] of greedy target-tracking policies on ``task``; a target
    equal to the initial LR is the no-op. Every run is one lane of one jitted ``vmap``."""
    env = LayerwiseLREnv(task)
    base = env.default_params.replace(reward_mode="accuracy", track_test=True, action_set=action_set)
    horizon = task.horizon

    def one_run(init_lr, target, key):
        actions, _ = schedule_actions(init_lr, jnp.full(horizon, target), base.lr_min, base.lr_max, action_set)
        params = base.fixed_start(init_lr, weight_decay)

        def act(t, k, obs, state, carry, params):
            agent_actions = jnp.full(env.num_agents, actions[t], jnp.int32)
            obs, state, _, _, _, info = env.step_env(k, state, agent_actions, params)
            return obs, state, carry, info

        return rollout(env, params, act, (), key)["test_acc"][-1]

    grid = [(lr, tg, s) for lr in init_lrs for tg in targets for s in range(seeds)]
    lrs, tgs, ss = (jnp.asarray(v) for v in zip(*grid))
    keys = jax.vmap(jax.random.key)(ss.astype(jnp.uint32))
    acc = jax.jit(jax.vmap(one_run))(lrs.astype(jnp.float32), tgs.astype(jnp.float32), keys)
    return np.asarray(acc).reshape(len(init_lrs), len(targets), seeds)


def measure(task_name: str, settings, action_sets, seeds: int, **sizes) -> list[dict]:
    """One row per (tau x horizon, action set): no-op, ceiling, reach and seconds per episode (module docs)."""
    rows = []
    for tau, horizon in settings:
        task = tasks.get(task_name, tau=tau, horizon=horizon, **sizes)
        for action_set in action_sets:
            targets = tuple(sorted(set(TARGETS) | set(PAPER_INIT_LRS)))
            start = time.perf_counter()
            acc = final_test_acc(task, action_set, PAPER_INIT_LRS, targets, seeds, task.weight_decay)
            seconds = (time.perf_counter() - start) / acc.size
            mean = acc.mean(axis=2)  # [init LR, target]
            noop = np.array([mean[i, targets.index(lr)] for i, lr in enumerate(PAPER_INIT_LRS)])
            best = mean.argmax(axis=1)
            ratios = [targets[b] / lr for b, lr in zip(best, PAPER_INIT_LRS)]
            rows.append(dict(tau=tau, horizon=horizon, action_set=action_set, noop=100 * noop.mean(),
                             ceiling=100 * mean.max(axis=1).mean(),
                             reach=float(np.exp(np.mean(np.log(ratios)))),
                             seconds=seconds))
            print(f"{task_name} tau={tau} horizon={horizon} {action_set}: no-op {rows[-1]['noop']:.1f} "
                  f"ceiling {rows[-1]['ceiling']:.1f} reach x{rows[-1]['reach']:.1f} ({seconds:.2f} s/run)",
                  flush=True)
    return rows


def main(argv=None) -> None:
    """Prints the room-to-act table (markdown) for the settings given."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="mnist1d-cnn2")
    parser.add_argument("--settings", type=_settings, default=_settings("20x10,10x20,5x40"),
                        help="tau x horizon pairs (default: 200 Adam steps cut three ways)")
    parser.add_argument("--action-sets", default=",".join(ACTION_SETS))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args(argv)
    use_cpu_cores()
    rows = measure(args.task, args.settings, args.action_sets.split(","), args.seeds, width=args.width,
                   batch_size=args.batch_size, eval_batch=256)
    print(f"\n{args.task}, width {args.width}, batch {args.batch_size}, {args.seeds} seeds, initial LRs "
          f"{', '.join(f'{lr:g}' for lr in PAPER_INIT_LRS)}: mean final test accuracy (%)\n")
    print("| tau x decisions | actions | no-op | ceiling | gain | best LR / initial | s per run |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['tau']} x {r['horizon']} | {r['action_set']} | {r['noop']:.1f} | {r['ceiling']:.1f} | "
              f"{r['ceiling'] - r['noop']:+.1f} | x{r['reach']:.1f} | {r['seconds']:.3f} |")


if __name__ == "__main__":
    main()
