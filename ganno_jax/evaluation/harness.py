"""Evaluation harness: run any controller over an initial-LR x seed grid, vmapped in chunks that fit memory.

``run`` / ``run_many`` return ``EvalResult`` curves; ``tables`` turns them into the paper's tables,
``plots`` into figures, ``report`` writes a task's results folder.

Every method is trained by the same inner code (``LayerwiseLREnv``) with the same keys: seed ``s``
gives the same network initialisation and the same minibatches to every method (common random
numbers), so differences between methods are not sampling noise. Test metrics are measured on
the whole test split after every env step (``tau`` optimiser steps), ``task.test_batch`` examples
at a time; with ``test_every=K`` only after every K-th step and the last (``lax.cond`` on the step index: the
skipped passes are not computed), NaN after the others (``null`` in JSON); final accuracies, and so the tables,
are unchanged. The grid is a flat axis of runs executed by ``evaluation.chunked.RunMapper``: as many runs at once
as the free memory allows (or ``max_parallel_runs``), split over all devices; a grid that cannot fit
one run is refused before it starts (``evaluation.chunked.InsufficientMemoryError``). The task's dataset
is an argument of every compiled program (``EnvParams.data``), never a constant embedded in it, so the
cached programs hold no copy of it. A policy runs under the ``EnvParams`` it was trained with, changed
only by ``EnvParams.for_evaluation`` (the accuracy reward, test metrics, the grid's initial LR and weight
decay, the task's data); schedules run under the paper's defaults changed the same way.

Given a ``partial`` folder, each finished chunk of runs is written there as it completes, and ``resume`` reads
back the chunks of a killed evaluation of the same grid instead of running them (``evaluation.partial``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import lru_cache
from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from ganno_jax.baselines.optimizers import check_optimizer_init_lrs, make_update_rule
from ganno_jax.baselines.schedules import make_schedule
from ganno_jax.checks import check_int
from ganno_jax.data import load_dataset
from ganno_jax.env.base import rollout
from ganno_jax.env.inner import InnerTrainer
from ganno_jax.env.layerwise import EnvParams, LayerwiseLREnv
from ganno_jax.env.wrappers import variant_env
from ganno_jax.evaluation.chunked import ChunkPlan, RunMapper, grid_mesh
from ganno_jax.evaluation.controllers import PolicyController, ScheduleController
from ganno_jax.evaluation.partial import PartialGrid, describe_grid, file_stem
from ganno_jax.scales import PAPER_INIT_LRS, check_init_lrs, check_seeds
from ganno_jax.tasks.config import Task

CURVE_KEYS = ("test_acc", "test_loss", "val_acc", "train_loss", "lrs", "wds", "diverged")


@dataclass
class EvalResult:
    """Curves of one method over the grid: arrays [L init LRs, S seeds, T env steps (, N layers)]; for a
    controller of M trained members the seed axis holds M * S runs (member-major), so every statistic over
    it covers trained members x evaluation seeds."""

    method: str
    task_name: str  # the evaluation task's name (``Task.name``)
    init_lrs: tuple
    weight_decay: float
    curves: dict = field(repr=False)
    plan: Optional[ChunkPlan] = None  # how the grid was run (runs at once, devices, memory estimate)
    weight_decay_mode: str = "decoupled"  # how the decay entered each step: "l2" (in the gradient) or "decoupled"
    test_every: int = 1  # test metrics after every test_every-th env step and the last (NaN after the others)

    @property
    def final_acc(self) -> np.ndarray:
        """Final test accuracy, [L, S]."""
        return self.curves["test_acc"][..., -1]

    @property
    def diverged_runs(self) -> int:
        """Number of runs (of L*S) in which some optimiser step diverged."""
        return int(np.any(self.curves["diverged"], axis=-1).sum())

    def to_dict(self) -> dict:
        """JSON-ready dict (curves as nested lists; ``null`` where not measured)."""
        return {"method": self.method, "task_name": self.task_name, "init_lrs": list(self.init_lrs),
                "weight_decay": self.weight_decay, "weight_decay_mode": self.weight_decay_mode,
                "diverged_runs": self.diverged_runs, "test_every": self.test_every,
                "plan": None if self.plan is None else dataclasses.asdict(self.plan),
                "curves": {k: _listed(v) for k, v in self.curves.items()}}


def _listed(values) -> list:
    """``values`` as nested lists, NaN (not measured) as None."""
    a = np.asarray(values)
    return np.where(np.isnan(a), None, a).tolist() if a.dtype.kind == "f" and np.isnan(a).any() else a.tolist()


@lru_cache(maxsize=32)
def _env_for(task: Task, optimizer: Optional[str]) -> LayerwiseLREnv:
    return LayerwiseLREnv(task, trainer=InnerTrainer(task, rule=make_update_rule(optimizer)))


class _Runs(NamedTuple):
    """A cached grid program (``chunked.RunMapper``) and how its runs apply weight decay (``l2``/``decoupled``)."""

    mapper: RunMapper
    weight_decay_mode: str


def _measured(base: LayerwiseLREnv, step, test_every: int):
    """A rollout ``step`` that measures the test split (``base.test_info``) after env steps K, 2K, ... and the
    last only (K = ``test_every``), NaN after the others. The condition reads the step index alone, the same in
    every run, so under ``vmap`` the ``lax.cond`` stays a branch and a skipped pass is not computed.
    ``test_every=1``: ``step`` itself, whose env measures after every step (``EnvParams.track_test``)."""
    if test_every == 1:
        return step
    last = base.task.horizon - 1

    def measured(t, k, obs, state, carry, params):
        obs, state, carry, info = step(t, k, obs, state, carry, params.replace(track_test=False))

        def test():
            return base.test_info(state, params)

        def skipped():
            return jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), jax.eval_shape(test))

        due = ((t + 1) % test_every == 0) | (t == last)
        return obs, state, carry, {**info, **jax.lax.cond(due, test, skipped)}

    return measured


@lru_cache(maxsize=32)
def _schedule_runs(task: Task, optimizer: str, schedules: tuple, test_every: int = 1) -> _Runs:
    """Runs of schedules sharing one optimiser: ``fn((dataset, wd), (index, init_lr, key)) -> infos [T, ...]``
    (one program for all of them, ``lax.switch`` over the schedule index); cached with its compiled
    programs, so another weight decay or grid of the same shape reuses them."""
    base = _env_for(task, optimizer)
    layers = base.num_agents

    def run(shared, inputs):
        data, weight_decay = shared
        index, init_lr, key = inputs
        fns = [make_schedule(name, init_lr, task.total_inner_steps) for name in schedules]

        def step(t, k, obs, state, carry, params):
            lrs = jax.lax.switch(index, fns, t * task.tau + jnp.arange(task.tau))
            per_step = jnp.broadcast_to(lrs[:, None], (task.tau, layers)).astype(jnp.float32)
            obs, state, _, info = base.step_schedule(jax.random.split(k)[1], state, per_step, params)
            return obs, state, carry, info

        params = EnvParams().for_evaluation(data, init_lr, weight_decay)
        return rollout(base, params, _measured(base, step, test_every), (), key)

    return _Runs(RunMapper(run, f"{task.name}: {', '.join(schedules)}", _memory_hint(task)),
                 base.trainer.rule.weight_decay_mode)


@lru_cache(maxsize=32)
def _policy_runs(task: Task, variant: str, test_every: int = 1, optimizer: Optional[str] = None) -> _Runs:
    """Runs of a policy: ``fn((env_params, policies, wd), (init_lr, member, key)) -> infos [T, ...]``, where
    ``env_params`` are the policy's training params on the task's data, ``policies`` stacks trained policies
    on a leading axis and ``member`` picks one; params and policies are inputs, so the compiled programs are
    reused for every policy and params of the same structure (cached). ``optimizer``: the inner optimiser the
    policy scales per layer (None: the task's)."""
    base = _env_for(task, optimizer)
    env = variant_env(base, variant)

    def run(shared, inputs):
        trained_params, policies, weight_decay = shared
        init_lr, member, key = inputs
        policy = jax.tree.map(lambda x: x[member], policies)

        def step(t, k, obs, state, carry, params):
            k_act, k_env = jax.random.split(k)
            action, carry = policy.act(k_act, obs, carry, jnp.bool_(False))
            obs, state, _, _, _, info = env.step_env(k_env, state, action, params)
            return obs, state, carry, info

        params = trained_params.for_evaluation(trained_params.data, init_lr, weight_decay)
        # the rollout key is the schedules' one: same network init and minibatches for every method
        carry = policy.init(jax.random.fold_in(key, 1), env.num_agents)
        return rollout(env, params, _measured(base, step, test_every), carry, key)

    return _Runs(RunMapper(run, f"{task.name}: learned/random policy", _memory_hint(task)),
                 base.trainer.rule.weight_decay_mode)


def _memory_hint(task: Task) -> str:
    return (f"One run's memory grows with the task's test_batch (now {task.test_batch}; e.g. "
            f"task.replace(test_batch={max(1, task.test_batch // 4)})), eval_batch (now {task.eval_batch}) "
            f"and batch_size (now {task.batch_size}).")


def _result(name: str, task: Task, init_lrs, wd: float, infos, plan: ChunkPlan, mode: str,
            test_every: int) -> EvalResult:
    curves = {k: np.asarray(infos[k]) for k in CURVE_KEYS}
    return EvalResult(name, task.name, init_lrs, wd, curves, plan, mode, test_every)


def run_many(controllers: Sequence, task: Task, init_lrs: Sequence[float] = PAPER_INIT_LRS, seeds: int = 5,
             weight_decay: Optional[float] = None, seed: int = 0, max_parallel_runs: Optional[int] = None,
             devices: Optional[int] = None, progress: bool = False, test_every: int = 1,
             partial: Optional[str] = None, resume: bool = False) -> list[EvalResult]:
    """Evaluate several controllers on ``task`` over ``init_lrs`` x ``seeds`` (see ``run``).

    Schedules sharing an optimiser run as one program (vmapped over a schedule index with
    ``lax.switch``), so adding a handcrafted baseline costs no extra compilation. Every program runs
    its grid in chunks of runs that fit memory (``chunked.RunMapper``), split over ``devices``
    devices (default: all). Results keep the order of ``controllers``. ``partial``: a folder each finished chunk
    is written to (``<program>-<chunk>.npz``, ``evaluation.partial``); ``resume``: read back the chunks found there
    (a ``ValueError`` before any run if the folder holds another grid).
    """
    init_lrs = check_init_lrs(init_lrs, allow_zero=True, what="init_lrs")
    check_seeds(seeds)
    check_int("test_every", test_every, note=" (test metrics after every test_every-th env step and the last)")
    wd = jnp.float32(task.weight_decay if weight_decay is None else weight_decay)
    num_lrs = len(init_lrs)
    lrs, keys = jnp.asarray(init_lrs, jnp.float32), jax.random.split(jax.random.key(seed), seeds)
    lr_of, seed_of = np.repeat(np.arange(num_lrs), seeds), np.tile(np.arange(seeds), num_lrs)  # run r = (l, s)
    groups: dict[str, list[int]] = {}
    policies = []
    for i, c in enumerate(controllers):
        if isinstance(c, ScheduleController):
            check_optimizer_init_lrs(c.optimizer, init_lrs)
            groups.setdefault(c.optimizer, []).append(i)
        elif isinstance(c, PolicyController):
            policies.append(i)
        else:
            raise TypeError(f"controller {c!r} is neither a ScheduleController nor a PolicyController")
    grid = None if partial is None else PartialGrid(
        partial, describe_grid(controllers, task, init_lrs, seeds, seed, float(wd), test_every), resume)
    mesh = grid_mesh(devices)
    data = load_dataset(task.dataset, task.data_dir)  # the envs' (cached): an argument of every program
    runs_per_cell = sum(getattr(c, "members", 1) for c in controllers)
    bar = tqdm(total=runs_per_cell * num_lrs * seeds, unit="run", desc=f"evaluate {task.name}",
               disable=not progress, dynamic_ncols=True)
    grid_shape = (num_lrs, seeds)
    results = {}
    with bar:
        for i in policies:
            c = controllers[i]
            bar.set_postfix_str(f"{c.name}: compiling/running")
            stacked = c.policy if c.members > 1 else jax.tree.map(lambda x: x[None], c.policy)
            # run r = (l, m, s): every member m on every cell, seed s's key shared by all members
            l_of, m_of, s_of = np.unravel_index(np.arange(num_lrs * c.members * seeds), (num_lrs, c.members, seeds))
            runs = (lrs[l_of], jnp.asarray(m_of, jnp.int32), keys[s_of])
            program = _policy_runs(task, c.variant, test_every, c.optimizer)
            infos, plan = program.mapper((jax.tree.map(jnp.asarray, c.env_params.replace(data=data)), stacked, wd),
                                         runs, mesh, max_parallel_runs, bar.update, store=_store(grid, i, c.name))
            infos = jax.tree.map(lambda x: x.reshape(num_lrs, c.members * seeds, *x.shape[1:]), infos)
            results[i] = _result(c.name, task, init_lrs, float(wd), infos, plan, program.weight_decay_mode, test_every)
        for optimizer, members in groups.items():
            group = [controllers[i] for i in members]
            bar.set_postfix_str(f"{', '.join(c.name for c in group)}: compiling/running")
            index = np.repeat(np.arange(len(group)), num_lrs * seeds)
            runs = (jnp.asarray(index, jnp.int32), lrs[np.tile(lr_of, len(group))], keys[np.tile(seed_of, len(group))])
            program = _schedule_runs(task, optimizer, tuple(c.schedule for c in group), test_every)
            infos, plan = program.mapper((data, wd), runs, mesh, max_parallel_runs, bar.update,
                                         store=_store(grid, members[0], group[0].name))
            infos = jax.tree.map(lambda x: x.reshape(len(group), *grid_shape, *x.shape[1:]), infos)
            for j, i in enumerate(members):
                member = jax.tree.map(lambda x: x[j], infos)
                results[i] = _result(group[j].name, task, init_lrs, float(wd), member, plan, program.weight_decay_mode,
                                     test_every)
    if grid is not None and grid.loaded:
        print(f"[evaluate] {task.name}: {grid.loaded} finished chunk(s) of runs read back from {partial}")
    return [results[i] for i in range(len(controllers))]


def _store(grid: Optional[PartialGrid], index: int, method: str):
    """Chunks of the program of controller ``index`` (a schedule group's first) in ``grid``: ``NN-<method>``."""
    return None if grid is None else grid.program(f"{index:02d}-{file_stem(method)}")


def run(controller, task: Task, init_lrs: Sequence[float] = PAPER_INIT_LRS, seeds: int = 5,
        weight_decay: Optional[float] = None, seed: int = 0, max_parallel_runs: Optional[int] = None,
        devices: Optional[int] = None, progress: bool = False, test_every: int = 1) -> EvalResult:
    """Evaluate ``controller`` on ``task`` over ``init_lrs`` x ``seeds``, vmapped in memory-sized chunks.

    Args:
      controller: ``ScheduleController`` or ``PolicyController`` (see ``evaluation.controllers``).
      task: the evaluation task (its ``horizon`` x ``tau`` optimiser steps per run; ``test_batch``
        test examples measured at once).
      init_lrs: initial learning rates, each >= 0.
      seeds: runs per initial LR; seed ``s`` uses the same network init and minibatches for every method.
      weight_decay: decoupled weight decay (default ``task.weight_decay``).
      seed: master seed of the grid.
      max_parallel_runs: runs vmapped at once (None: the most that fit the free memory, see ``evaluation.chunked``);
        results do not depend on it beyond float round-off.
      devices: devices the runs are split over (None: all).
      progress: a tqdm bar over runs.
      test_every: test metrics after every ``test_every``-th env step and the last (NaN after the others; the
        final accuracy, and so every table, is unchanged); the skipped test passes are not computed.
    Returns:
      ``EvalResult`` with curves [L, S, T] (``lrs``, ``wds``: [L, S, T, num_layers]); [L, M * S, ...] for a
      ``PolicyController`` of ``M = members`` trained policies.
    Raises:
      ``evaluation.chunked.InsufficientMemoryError`` before running if one run cannot fit.
    """
    return run_many([controller], task, init_lrs, seeds, weight_decay, seed, max_parallel_runs, devices,
                    progress, test_every)[0]
