"""What ``ganno bench`` times: the vmapped JAX env step, the sequential PyTorch env, a large matmul, and
the FLOPs of one inner optimiser step."""
from __future__ import annotations

import statistics
import time

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from ganno_jax.agents.sharding import ENV_AXIS, env_mesh
from ganno_jax.env import NUM_ACTIONS


def median_seconds(call, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``call()`` after one untimed warm-up call."""
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def jax_env_step(env, params, num_envs: int, repeats: int) -> dict:
    """Compile time, median seconds of one ``jax.jit(jax.vmap(env.step_env))`` call of ``num_envs`` copies,
    and the devices the env axis was split over (all of them when they divide ``num_envs``, else 1)."""
    keys = jax.random.split(jax.random.key(0), (repeats + 2, num_envs))
    actions = jax.random.randint(jax.random.key(1), (repeats + 2, num_envs, env.num_agents), 0, NUM_ACTIONS)
    _, state = jax.vmap(env.reset, (0, None))(keys[-1], params)
    devices = jax.device_count() if num_envs % jax.device_count() == 0 else 1
    if devices > 1:
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

    return {"compile_s": compile_s, "step_s": median_seconds(call, repeats), "devices": devices}


def torch_env_step(task, data, num_envs: int, reward_mode: str, repeats: int, threads: list[int]) -> tuple[float, int]:
    """(median seconds, thread count) to step ``num_envs`` PyTorch envs once each, one after another, with
    the fastest ``torch.set_num_threads`` setting in ``threads`` (restored afterwards)."""
    import torch

    from ganno_jax.bench.torch_env import TorchLayerwiseEnv

    envs = [TorchLayerwiseEnv(task, data, reward_mode, seed=i) for i in range(num_envs)]
    for env in envs:
        env.reset()
    actions = torch.randint(0, NUM_ACTIONS, (num_envs, envs[0].num_agents))

    def call():
        for env, action in zip(envs, actions):
            env.step(action)

    before, timings = torch.get_num_threads(), []
    for n in threads:
        torch.set_num_threads(n)
        timings.append((median_seconds(call, repeats), n))
    torch.set_num_threads(before)
    return min(timings)


def matmul_flops_per_s(size: int, repeats: int) -> float:
    """Measured f32 FLOP/s of one [size, size] @ [size, size] matmul per device, all devices at once
    (a batch of matmuls split over them): the machine's practical peak for dense math."""
    n_dev = jax.device_count()
    a = jax.random.normal(jax.random.key(0), (n_dev, size, size), jnp.float32)
    if n_dev > 1:
        a = jax.device_put(a, NamedSharding(env_mesh(), PartitionSpec(ENV_AXIS)))
    matmul = jax.jit(lambda a: a @ a)
    seconds = median_seconds(lambda: jax.block_until_ready(matmul(a)), repeats)
    return 2.0 * n_dev * size**3 / seconds


def inner_step_flops(trainer, data) -> float:
    """XLA's FLOP count (``cost_analysis``) of one inner optimiser step's loss and gradient on a minibatch
    of ``task.batch_size`` examples of ``data`` (the optimiser update and the env's measurements are not
    counted)."""
    batch = trainer.task.batch_size
    params = trainer.init(jax.random.key(0)).params
    x, y = data.x_train[:batch], data.y_train[:batch]
    grad = jax.jit(jax.grad(lambda p: trainer.loss_and_accuracy(p, x, y)[0]))
    cost = grad.lower(params).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost["flops"])
