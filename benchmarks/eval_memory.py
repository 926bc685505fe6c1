"""Peak memory and wall time of an evaluation grid at real size (``evaluate.run_many``).

Default: ``mnist-cnn3`` at the experiments' CPU scale, GANNO (an actor-critic of the CPU scale's
shape: its compute does not depend on training; ``--train-run`` evaluates a trained one) and every
baseline ``experiments/generalisation.py`` runs by default, x the paper's 5 initial LRs x 3 seeds,
on MNIST-shaped IDX files with random pixels written to a temporary folder (``--data-dir`` reads
real ones). Prints, per program, the chunk chosen (runs at once, devices, estimated footprint vs the
budget), then total wall time, seconds per run and the process's peak resident memory.

    .venv/bin/python benchmarks/eval_memory.py [--task mnist-cnn3] [--seeds 3] [--max-parallel-runs N]
        [--test-batch N] [--tau N] [--horizon N] [--data-dir DIR] [--train-run RUN] [--json PATH]

``--tau 2 --horizon 1`` keeps the dataset, the model and every program but runs almost nothing: a
minutes-long check of the memory held per compiled program (the programs take the dataset as an
argument, so it is held once, not once per program).

Like the experiment scripts it asks XLA for one CPU device per core and splits the grid over them.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import runpy
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_data import write_mnist_like  # noqa: E402

from ganno_jax.agents.sharding import use_cpu_cores  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_baselines() -> tuple:
    """The baselines ``experiments/generalisation.py`` evaluates by default."""
    return runpy.run_path(os.path.join(ROOT, "experiments", "generalisation.py"))["BASELINES"]


def untrained_ganno(scale):
    """GANNO controller with freshly initialised parameters of the scale's IPPO shape."""
    import jax

    from ganno_jax import tasks
    from ganno_jax.agents import make_train_pieces, policy_from
    from ganno_jax.evaluation import controllers
    from ganno_jax.env import LayerwiseLREnv

    env = LayerwiseLREnv(tasks.get("digits-cnn2", **scale.task))
    runner = make_train_pieces(scale.ippo, env, env.default_params).init(jax.random.key(0))
    return controllers.learned("GANNO", policy_from(runner, scale.ippo))


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far, GiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)


def main(argv=None) -> dict:
    """Runs the benchmark; returns the figures it prints."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="mnist-cnn3")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--baselines", help="comma-separated (default: generalisation.py's defaults)")
    p.add_argument("--max-parallel-runs", type=int, help="runs at once (default: chosen from free memory)")
    p.add_argument("--test-batch", type=int, help="test examples measured at once (default: the task's)")
    p.add_argument("--tau", type=int, help="optimiser steps per decision (default: the CPU scale's)")
    p.add_argument("--horizon", type=int, help="decisions per run (default: the CPU scale's)")
    p.add_argument("--data-dir", help="real dataset files (default: MNIST-shaped random files, written here)")
    p.add_argument("--train-run", help="evaluate this trained run instead of an untrained actor-critic")
    p.add_argument("--json", help="also write the figures to this JSON file")
    args = p.parse_args(argv)

    from ganno_jax import evaluate, scales, tasks
    from ganno_jax.evaluation import controllers

    scale = scales.ganno_scale("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir
        if data_dir is None:
            data_dir = tmp
            write_mnist_like(tmp)
            print(f"[eval_memory] wrote MNIST-shaped IDX files (60000 + 10000 random images) to {tmp}")
        overrides = dict(scale.task, data_dir=data_dir)
        for name in ("test_batch", "tau", "horizon"):
            if getattr(args, name) is not None:
                overrides[name] = getattr(args, name)
        task = tasks.get(args.task, **overrides)
        names = args.baselines.split(",") if args.baselines else default_baselines()
        ganno = controllers.from_run(args.train_run) if args.train_run else untrained_ganno(scale)
        methods = [ganno, *[controllers.baseline(n) for n in names]]
        print(f"[eval_memory] {task.name}: tau={task.tau}, horizon={task.horizon}, width={task.width}, "
              f"batch={task.batch_size}, test_batch={task.test_batch}; {len(methods)} methods x "
              f"{len(scales.PAPER_INIT_LRS)} init LRs x {args.seeds} seeds")
        start = time.perf_counter()
        results = evaluate.run_many(methods, task, seeds=args.seeds, max_parallel_runs=args.max_parallel_runs,
                                    progress=True)
        wall = time.perf_counter() - start
    plans = {}
    for res in results:
        plans.setdefault(res.plan.describe(), []).append(res.method)
    for plan, members in plans.items():
        print(f"[eval_memory] {', '.join(members)}: {plan}")
    runs = sum(int(r.final_acc.size) for r in results)
    figures = {"task": task.name, "runs": runs, "wall_s": wall, "s_per_run": wall / runs,
               "peak_rss_gib": peak_rss_gib(), "plans": plans, "max_parallel_runs": args.max_parallel_runs,
               "test_batch": task.test_batch}
    print(f"[eval_memory] {runs} runs in {wall:.0f} s ({wall / runs:.2f} s/run, compilation included); "
          f"peak resident memory {figures['peak_rss_gib']:.2f} GiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    return figures


if __name__ == "__main__":
    use_cpu_cores()
    main()
