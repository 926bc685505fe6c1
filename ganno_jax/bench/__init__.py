"""``ganno bench``: env and inner-optimiser throughput as env copies and models grow, against a sequential
PyTorch env and the machine's measured matmul throughput.

For each task and number of env copies: the compile time and, over ``--repeats`` timed calls after one
warm-up, the median env steps/s of ``jax.jit(jax.vmap(env.step_env))`` (the env axis split over all
devices when they divide it: on CPU one XLA device per core) and the inner optimiser steps/s (every
step run: difference rewards train two branches, 2 x tau per env step). Where torch is installed, the
PyTorch port (``torch_env.py``) steps ``--torch-envs`` copies one after another (per-env cost of a
sequential loop does not depend on the number of copies; the fastest of ``--torch-threads``) and each
row gets ``jax_over_torch``. ``fraction_of_matmul``: inner steps/s x XLA's FLOPs of one step's loss and
gradient / the FLOP/s of a large f32 matmul measured on the same devices.

Defaults per backend: CPU 1..64 env copies and digits-mlp, digits-cnn2, digits-cnn5; GPU/TPU 1..256 and
also ResNet-9 on a CIFAR-shaped in-memory dataset (``cifar_shaped-resnet9``, random pixels; name it in
``--tasks`` to run it on CPU too). Writes ``bench.csv``, ``bench.png`` and ``bench.json`` into ``--out``.

    ganno bench --out results/bench [--quick] [--tasks digits-mlp ...] [--envs 1 8 32] [--tau 100]
"""
from __future__ import annotations

import argparse
import json
import os

CIFAR_SHAPED = "cifar_shaped"
BRANCHES = {"accuracy": 1, "difference": 2}


def _default_envs(backend: str) -> list[int]:
    return [2**i for i in range(7 if backend == "cpu" else 9)]


def _default_tasks(backend: str) -> list[str]:
    tasks = ["digits-mlp", "digits-cnn2", "digits-cnn5"]
    return tasks if backend == "cpu" else [*tasks, f"{CIFAR_SHAPED}-resnet9"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Adds the ``bench`` subcommand to the ``ganno`` parser's ``subparsers``; returns it."""
    bench = subparsers.add_parser("bench", help="env / inner-optimiser throughput vs env copies and models (CSV, PNG)",
                                  description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("--out", default="results/bench", help="folder for bench.csv, bench.png, bench.json")
    bench.add_argument("--quick", action="store_true", help="tiny run: digits-mlp, 1 and 2 envs, tau 2, 1 repeat")
    bench.add_argument("--tasks", nargs="+", help="task names (default: per backend, see above)")
    bench.add_argument("--envs", nargs="+", type=int, help="numbers of env copies (default: 1..64 CPU, 1..256 GPU)")
    bench.add_argument("--tau", type=int, help="optimiser steps per env step (default: the task's, 100)")
    bench.add_argument("--repeats", type=int, default=3, help="timed calls after the warm-up call (default: 3)")
    bench.add_argument("--reward-mode", choices=sorted(BRANCHES), default="difference",
                       help="difference (training, 2 branches) or accuracy (default: difference)")
    bench.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    bench.add_argument("--torch-envs", type=int, default=2, help="PyTorch envs stepped one by one (default: 2)")
    bench.add_argument("--torch-threads", nargs="+", type=int, default=sorted({1, os.cpu_count() or 1}),
                       help="torch.set_num_threads settings to try, the fastest is reported (default: 1 and all)")
    bench.add_argument("--matmul-size", type=int, help="side of the reference matmul (default: 2048 CPU, 8192 GPU)")
    bench.set_defaults(func=_command)
    return bench


def _command(args) -> int:
    run(args)
    return 0


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _task(name: str, tau):
    """The task ``name``; ``cifar_shaped-<model>`` registers a CIFAR-10-shaped random dataset first."""
    import numpy as np

    import ganno_jax as gj

    if name.startswith(CIFAR_SHAPED + "-") and CIFAR_SHAPED not in gj.data.dataset_names():
        rng = np.random.default_rng(0)
        images = lambda n: rng.integers(0, 256, (n, 32, 32, 3)).astype(np.float32)  # noqa: E731
        labels = lambda n: rng.integers(0, 10, n)  # noqa: E731
        gj.data.from_arrays(CIFAR_SHAPED, images(5000), labels(5000), images(1000), labels(1000), num_classes=10)
    overrides = dict(batch_size=128, width=32) if name.startswith(CIFAR_SHAPED + "-") else {}
    return gj.tasks.get(name, **overrides, **({} if tau is None else {"tau": tau}))


def run(args) -> list[dict]:
    """Runs the benchmark of parsed ``args``, prints the table, writes the files; returns the rows."""
    import jax

    import ganno_jax as gj
    from ganno_jax.bench import measure, report
    from ganno_jax.files import write_atomic

    backend = jax.default_backend()
    if args.quick:
        args.tasks, args.envs, args.tau, args.repeats = args.tasks or ["digits-mlp"], args.envs or [1, 2], 2, 1
    tasks, envs = args.tasks or _default_tasks(backend), args.envs or _default_envs(backend)
    use_torch = not args.no_torch and _torch_available()
    matmul = measure.matmul_flops_per_s(args.matmul_size or (2048 if backend == "cpu" else 8192), args.repeats)
    header = (f"jax {jax.__version__} on {backend} ({jax.device_count()} devices: {jax.devices()[0].device_kind}; "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}); reward_mode={args.reward_mode}; "
              f"matmul {matmul / 1e9:.1f} GFLOP/s")
    if use_torch:
        import torch

        header += f"; torch {torch.__version__}, {args.torch_envs} envs one by one, threads {args.torch_threads}"
    print(header)
    print(report.TABLE_HEADER)
    rows = []
    for name in tasks:
        task = _task(name, args.tau)
        env = gj.env.LayerwiseLREnv(task)
        params = env.default_params.replace(reward_mode=args.reward_mode)
        branches = BRANCHES[args.reward_mode]
        flops = measure.inner_step_flops(env.trainer, params.data)
        torch_env_s = None
        if use_torch and (task.model == "mlp" or task.model.startswith("cnn")):
            seconds, threads = measure.torch_env_step(task, params.data, args.torch_envs, args.reward_mode,
                                                      args.repeats, args.torch_threads)
            torch_env_s = args.torch_envs / seconds
        for num_envs in envs:
            timing = measure.jax_env_step(env, params, num_envs, args.repeats)
            row = {"task": name, "envs": num_envs, "devices": timing["devices"], "tau": task.tau,
                   "branches": branches, "compile_s": timing["compile_s"],
                   "jax_env_steps_per_s": num_envs / timing["step_s"]}
            row["jax_inner_steps_per_s"] = row["jax_env_steps_per_s"] * task.tau * branches
            row.update(flops_per_inner_step=flops, matmul_flops_per_s=matmul,
                       fraction_of_matmul=row["jax_inner_steps_per_s"] * flops / matmul)
            if torch_env_s is not None:
                row.update(torch_env_steps_per_s=torch_env_s, torch_inner_steps_per_s=torch_env_s * task.tau * branches,
                           torch_threads=threads, jax_over_torch=row["jax_env_steps_per_s"] / torch_env_s)
            print(report.table_line(row), flush=True)
            rows.append(row)
    report.write_csv(os.path.join(args.out, "bench.csv"), rows)
    report.write_plot(os.path.join(args.out, "bench.png"), rows, header)
    write_atomic(os.path.join(args.out, "bench.json"), json.dumps({"header": header, "rows": rows}, indent=2))
    print(f"wrote {args.out}/ (bench.csv, bench.png, bench.json)")
    return rows
