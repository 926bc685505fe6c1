"""Wall time of GANNO training at the paper's scale, measured on a few PPO updates and extrapolated.

The paper trains on Fashion-MNIST with a two-layer CNN for 50,000 timesteps (τ = 100 Adam steps per
timestep, difference reward: two inner runs per timestep) "in just under six hours on a single NVIDIA
A100". This script builds exactly ``experiments/generalisation.py --scale paper``'s training run
(``scales.GANNO_SCALES["paper"]``, task ``fashion_mnist-cnn2`` on Fashion-MNIST-shaped IDX files with
random pixels written to a temporary folder, or ``--data-dir`` with real ones), compiles one PPO update
(timed on its own), runs ``--updates`` of them, and projects the full run:

    projected = compile + num_updates x (seconds per update) x members / (agents run at once)

where ``--members`` agents are vmapped in the measured updates (default 1: on a CPU, agents run
one after another, so the projection multiplies by the scale's 3 trained agents). The projection is
labelled as such; the compute per update does not depend on what the agent has learned (every episode
has the same length and a diverged step costs what any step costs).

    .venv/bin/python benchmarks/paper_scale.py [--updates 1] [--members 1] [--data-dir DIR] [--json PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_data import write_mnist_like  # noqa: E402

from ganno_jax.agents.sharding import use_cpu_cores  # noqa: E402


def measure(data_dir: str, updates: int, members: int) -> dict:
    """Compiles and runs ``updates`` paper-scale PPO updates of ``members`` vmapped agents; returns the
    timings and the projection of the whole paper-scale run (seconds)."""
    import jax

    from ganno_jax import tasks
    from ganno_jax.agents import make_train_pieces
    from ganno_jax.agents.sharding import mesh_for
    from ganno_jax.runs import RunConfig
    from ganno_jax.scales import ganno_scale

    scale = ganno_scale("paper")
    task = tasks.get("fashion_mnist-cnn2", **scale.task, data_dir=data_dir)
    config = RunConfig(task, scale.ippo)
    env, params = config.env(config.datasets()[0])
    pieces = make_train_pieces(config.ippo, env, params, mesh_for(config.ippo.num_envs, None))
    keys = jax.random.split(jax.random.key(0), members)
    init = jax.jit(jax.vmap(pieces.init))
    update = jax.jit(jax.vmap(lambda s: pieces.update(s, 1)))
    state = jax.block_until_ready(init(keys))
    start = time.perf_counter()
    compiled = update.lower(state).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(updates):
        state, _ = compiled(state)
    jax.block_until_ready(state)
    per_update = (time.perf_counter() - start) / updates
    cfg = config.ippo
    decisions = cfg.num_steps * cfg.num_envs  # per update and agent
    return {
        "device": f"{jax.devices()[0].platform}: {jax.device_count()} x {jax.devices()[0].device_kind} "
                  f"({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "task": task.name, "tau": task.tau, "horizon": task.horizon, "batch_size": task.batch_size,
        "num_updates": cfg.num_updates, "decisions_per_update": decisions,
        "inner_steps_per_update": decisions * task.tau * 2, "measured_updates": updates,
        "measured_members": members, "scale_members": scale.members,
        "compile_s": compile_s, "seconds_per_update": per_update,
        "inner_steps_per_s": decisions * task.tau * 2 * members / per_update,
        "projected_hours": (compile_s + cfg.num_updates * per_update * scale.members / members) / 3600,
    }


def main(argv=None) -> dict:
    """Command line; prints and returns the measurement (also written to ``--json``)."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--updates", type=int, default=1, help="PPO updates measured after compiling (default 1)")
    p.add_argument("--members", type=int, default=1, help="agents vmapped in the measurement (default 1)")
    p.add_argument("--data-dir", help="real Fashion-MNIST IDX files (default: random ones of that shape)")
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)
    if args.updates < 1 or args.members < 1:
        raise SystemExit("error: --updates and --members must be integers >= 1")
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir
        if data_dir is None:
            write_mnist_like(tmp)
            data_dir = tmp
        result = measure(data_dir, args.updates, args.members)
    print(json.dumps(result, indent=2))
    print(f"paper-scale GANNO training on {result['device']}: compile {result['compile_s']:.0f} s, "
          f"{result['seconds_per_update']:.1f} s per PPO update ({result['inner_steps_per_s']:.0f} Adam steps/s); "
          f"{result['num_updates']} updates x {result['scale_members']} agents -> projected "
          f"{result['projected_hours']:.1f} h (extrapolated from {result['measured_updates']} update(s)); "
          f"the paper: just under 6 h on one A100")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    use_cpu_cores()
    main()
