"""Env throughput: ``LayerwiseLREnv`` as ``jax.jit(jax.vmap(env.step_env))`` vs a sequential PyTorch port.

Run as a script it asks XLA for one host device per core (``--xla_force_host_platform_device_count``,
unless ``XLA_FLAGS`` already sets it) and splits the env axis over them when the number of env copies
divides evenly: one XLA:CPU device runs a program on about one core, so this is how the vmapped envs
use every core (training splits its env copies the same way: ``ganno_jax.agents.sharding``). For each
task and number of env copies, prints the JAX compile time and, over ``--repeats`` timed
calls after one warm-up call, the median env steps/s and inner optimiser steps/s (every optimiser
step run: difference rewards train two branches, so 2 * tau per env step). When torch is importable,
``torch_env.TorchLayerwiseEnv`` does the same env step one env copy after another, with
each of ``--torch-threads`` thread counts (default: 1 and all cores; the fastest is reported: on a
loaded machine torch's multi-threaded kernels can be 100x slower than one thread), and the JAX/PyTorch
ratio is printed.

    .venv/bin/python benchmarks/throughput.py [--tasks digits-mlp digits-cnn2] [--envs 1 8 32]
        [--tau 100] [--repeats 3] [--reward-mode accuracy|difference] [--no-torch] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import jax
from jax.sharding import NamedSharding, PartitionSpec

import ganno_jax as gj
from ganno_jax.agents.sharding import ENV_AXIS, env_mesh, use_cpu_cores

BRANCHES = {"accuracy": 1, "difference": 2}


def _median_seconds(call, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``call()`` after one untimed warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_jax(env, params, num_envs: int, repeats: int) -> dict:
    """Compile time and median seconds of one vmapped env step of ``num_envs`` copies."""
    keys = jax.random.split(jax.random.key(0), (repeats + 2, num_envs))
    actions = jax.random.randint(jax.random.key(1), (repeats + 2, num_envs, env.num_agents), 0, gj.env.NUM_ACTIONS)
    _, state = jax.vmap(env.reset, (0, None))(keys[-1], params)
    devices = jax.devices()
    if len(devices) > 1 and num_envs % len(devices) == 0:  # split the env axis over the host devices
        mesh = env_mesh()
        keys, actions = jax.device_put((keys, actions), NamedSharding(mesh, PartitionSpec(None, ENV_AXIS)))
        state = jax.device_put(state, NamedSharding(mesh, PartitionSpec(ENV_AXIS)))
    start = time.perf_counter()
    step = jax.jit(jax.vmap(env.step_env, (0, 0, 0, None))).lower(keys[0], state, actions[0], params).compile()
    compile_s = time.perf_counter() - start
    calls = iter(range(repeats + 1))

    def call():
        nonlocal state
        i = next(calls)
        out = step(keys[i], state, actions[i], params)
        jax.block_until_ready(out)
        state = out[1]

    return {"compile_s": compile_s, "step_s": _median_seconds(call, repeats),
            "devices": len(devices) if num_envs % len(devices) == 0 else 1}


def bench_torch(task, data, num_envs: int, reward_mode: str, repeats: int) -> float:
    """Median seconds to step ``num_envs`` PyTorch envs once each, one after another."""
    import torch
    from torch_env import TorchLayerwiseEnv

    envs = [TorchLayerwiseEnv(task, data, reward_mode, seed=i) for i in range(num_envs)]
    for env in envs:
        env.reset()
    actions = torch.randint(0, gj.env.NUM_ACTIONS, (num_envs, envs[0].num_agents))

    def call():
        for env, action in zip(envs, actions):
            env.step(action)

    return _median_seconds(call, repeats)


def bench_torch_best(task, data, num_envs: int, reward_mode: str, repeats: int,
                     threads: list[int]) -> tuple[float, int]:
    """(median seconds, thread count) of the fastest ``torch.set_num_threads`` setting in ``threads``."""
    import torch

    timings = []
    for n in threads:
        torch.set_num_threads(n)
        timings.append((bench_torch(task, data, num_envs, reward_mode, repeats), n))
    return min(timings)


def _torch_available() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _write_json(path: str, payload: dict) -> None:
    """Writes ``payload`` to ``path`` atomically (temp file in the same folder, then os.replace)."""
    folder = Path(path).resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)


def main(argv=None) -> list[dict]:
    """Runs the benchmark, prints the table, returns the rows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["digits-mlp", "digits-cnn2"])
    parser.add_argument("--envs", nargs="+", type=int, default=[1, 8, 32], help="numbers of env copies")
    parser.add_argument("--tau", type=int, default=None, help="optimiser steps per env step (default: the task's)")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls after the warm-up call")
    parser.add_argument("--reward-mode", choices=sorted(BRANCHES), default="accuracy")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch reference")
    parser.add_argument("--torch-threads", nargs="+", type=int, default=sorted({1, os.cpu_count()}),
                        help="torch.set_num_threads settings to try (the fastest is reported)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    use_torch = not args.no_torch and _torch_available()
    header = (f"jax {jax.__version__} on {jax.default_backend()} ({os.cpu_count()} cores, load "
              f"{os.getloadavg()[0]:.2f}; {len(jax.devices())} XLA devices); reward_mode={args.reward_mode}")
    if use_torch:
        import torch

        header += (f"; torch {torch.__version__}, envs stepped one by one, fastest of "
                   f"torch.set_num_threads({args.torch_threads})")
    print(header)
    print(f"{'task':<13}{'envs':>5}{'devs':>5}{'compile s':>10}{'jax env/s':>11}{'jax inner/s':>13}"
          + (f"{'torch env/s':>13}{'torch inner/s':>15}{'jax/torch':>11}" if use_torch else ""))
    rows = []
    for name in args.tasks:
        task = gj.tasks.get(name) if args.tau is None else gj.tasks.get(name, tau=args.tau)
        env = gj.env.LayerwiseLREnv(task)
        params = env.default_params.replace(reward_mode=args.reward_mode)
        inner_per_env_step = task.tau * BRANCHES[args.reward_mode]
        for num_envs in args.envs:
            row = {"task": name, "envs": num_envs, "tau": task.tau, **bench_jax(env, params, num_envs, args.repeats)}
            row["jax_env_steps_per_s"] = num_envs / row.pop("step_s")
            row["jax_inner_steps_per_s"] = row["jax_env_steps_per_s"] * inner_per_env_step
            line = (f"{name:<13}{num_envs:>5}{row['devices']:>5}{row['compile_s']:>10.1f}"
                    f"{row['jax_env_steps_per_s']:>11.1f}{row['jax_inner_steps_per_s']:>13.0f}")
            if use_torch:
                torch_s, row["torch_threads"] = bench_torch_best(task, env.trainer.data, num_envs, args.reward_mode,
                                                                 args.repeats, args.torch_threads)
                row["torch_env_steps_per_s"] = num_envs / torch_s
                row["torch_inner_steps_per_s"] = row["torch_env_steps_per_s"] * inner_per_env_step
                row["jax_over_torch"] = row["jax_env_steps_per_s"] / row["torch_env_steps_per_s"]
                line += (f"{row['torch_env_steps_per_s']:>13.1f}{row['torch_inner_steps_per_s']:>15.0f}"
                         f"{row['jax_over_torch']:>10.2f}x")
            print(line, flush=True)
            rows.append(row)
    if args.json:
        _write_json(args.json, {"header": header, "reward_mode": args.reward_mode, "rows": rows})
    return rows


if __name__ == "__main__":
    use_cpu_cores()  # before JAX runs anything: XLA reads the device count when its CPU backend starts
    main()
