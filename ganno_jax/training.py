"""Chunked GANNO training runs with a run folder: progress bar, orbax checkpoints, resume.

A run folder (``runs.py``) holds ``config.json`` (``runs.RunConfig``: task, IPPO config, every
``EnvParams`` field, variant, seed, ``train_seeds``, ``log_episodes``), ``metrics.csv`` (one row per PPO
update), ``schedules.csv`` / ``schedules.png`` (paper Fig. 1, when episodes are logged) and
``checkpoints/<update>``, and ``warm_start.json`` when the run was warm-started (``RunConfig.warm_start``:
behaviour cloning of handcrafted schedules before IPPO, once, at the start);
``evaluation.controllers.from_run`` loads its policy for evaluation. Training runs ``chunk_updates`` PPO
updates per jitted call (``runs.run_pieces``, the datasets an argument of the program, never a constant
copied into it), then writes the CSV files and a checkpoint, so a run killed mid-way (even during a
save) resumes from its last complete checkpoint, drops the rows written after it, and ends exactly as
an uninterrupted run would (chunked and fused training give identical parameters for
the same key; ``tests/test_resume.py`` kills ``ganno train`` for real).

Several trained agents (``train_seeds = A``): the A agents train as one ``jax.vmap`` over their keys
(``runs.run_pieces``; each agent's env copies still split over the devices). ``metrics.csv`` keeps one
row per update: the columns of ``METRIC_FIELDS`` are means over the agents (``env_steps`` counts one
agent's steps, as ``total_timesteps`` does; ``env_steps_per_s`` all agents' together), and for ``A > 1``
every per-agent column ``<field>`` of ``AGENT_FIELDS`` is repeated as ``<field>_a<i>`` for agent ``i``.
``episodes`` counts the episodes env copy 0 of agent 0 has finished (its ``done`` flags; every copy
ends its episodes together, the horizon being fixed).

Schedules during training (paper Fig. 1: Fashion-MNIST CNN-2 at MARL episodes 0 and 40): for each
episode ``k`` in ``log_episodes`` (the k-th episode of env copy 0 of agent 0, counted from 0 across
updates and chunks) ``schedules.csv`` gets one row per env step with ``SCHEDULE_FIELDS`` (``update``: the
PPO update that collected the step; ``step``: env step in the episode, 1..horizon; ``opt_step`` =
``step * tau`` inner optimiser steps) then ``lr_<i>`` per layer (agent) ``i`` (and ``wd_<i>`` with
weight-decay control) and ``train_loss`` /
``val_acc`` measured after the step; ``schedules.png`` (``evaluation.plots.plot_training_schedules``)
is drawn from it at the end of every ``train_run`` call that has rows.

Several processes (``jax.distributed``, see ``ganno_jax.distributed``): every process runs ``train_run``
with the same arguments; the env copies split over all processes' devices, metrics are gathered from
all of them, every process takes part in the orbax checkpoint saves, and only process 0 writes
``config.json``, the CSV files and ``schedules.png`` (the run folder must be shared). A checkpoint
restores under any number of processes and devices.

A family of tasks (``RunConfig.tasks``, ``train_run(tasks=...)``): one policy trains on every task at once
(``agents.EnvGroup`` per task, ``cfg.num_envs`` env copies each; ``env_steps`` counts one group's steps,
``env_steps_per_s`` all groups' together). The ``METRIC_FIELDS`` columns pool every group's env copies, and
each task adds ``<field>@<task>`` columns of ``GROUP_FIELDS`` (means over the trained agents), e.g.
``val_acc@digits-cnn2``. ``episodes`` and ``schedules.csv`` follow env copy 0 of the first task.

Variants (the paper's ablations, ``env.wrappers.VARIANTS``): ``ganno`` (all observations), ``lr_only``,
``timestep_only`` (observation masks) and ``single_agent`` (one agent, global observations, one global LR).
"""
from __future__ import annotations

import csv
import io
import json
import os
import functools
import time
from typing import Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from ganno_jax import checkpoint, distributed
from ganno_jax.agents import IPPOConfig, RunnerState
from ganno_jax.agents.sharding import mesh_for
from ganno_jax.agents.warm_start import warm_runner_state, warm_start_params
from ganno_jax.env.layerwise import EnvParams
from ganno_jax.runs import RunConfig, load_config, prepare_out, run_pieces, save_config, write_atomic
from ganno_jax.tasks.config import Task

#: Per-agent columns of metrics.csv (means over the agents; ``<field>_a<i>`` per agent when several).
AGENT_FIELDS = ("mean_reward", "val_acc", "final_val_acc", "diverged_frac", "loss_total", "loss_value",
                "loss_actor", "entropy", "approx_kl")
METRIC_FIELDS = ("update", "env_steps", "episodes", *AGENT_FIELDS, "env_steps_per_s")
#: Per-task columns of a family's metrics.csv: ``<field>@<task>``.
GROUP_FIELDS = ("mean_reward", "val_acc", "final_val_acc", "diverged_frac")
_STEP_KEYS = ("reward", "val_acc", "done", "diverged")  # per-step metrics the columns are computed from
COUNT_FIELDS = ("update", "env_steps", "episodes")  # integer columns of metrics.csv
SCHEDULE_FIELDS = ("update", "episode", "step", "opt_step")  # integer columns of schedules.csv, then lr_<i>, ...
METRICS, SCHEDULES, WARM_START = "metrics.csv", "schedules.csv", "warm_start.json"
WARM_START_STREAM = 0x5741524D  # folded into the run key for the warm start's demonstrations ("WARM")
#: Episodes of the paper's Fig. 1 (MARL episodes 0 and 40).
FIG1_EPISODES = (0, 40)


def metric_fields(train_seeds: int, task_names: Sequence[str] = ()) -> tuple:
    """Columns of metrics.csv for a run of ``train_seeds`` agents on ``task_names`` (per-task columns
    only for several tasks)."""
    per_agent = [f"{f}_a{i}" for i in range(train_seeds) for f in AGENT_FIELDS] if train_seeds > 1 else []
    per_task = [f"{f}@{name}" for name in task_names for f in GROUP_FIELDS] if len(task_names) > 1 else []
    return (*METRIC_FIELDS, *per_agent, *per_task)


def _agent_stats(m: dict, u: int) -> dict:
    """Per-agent statistics of update ``u``: field -> ``[A]`` (``m``: metrics with leading axes [A, U])."""
    done = m["done"][:, u].astype(bool)  # [A, T, E]
    finals = [acc[d] for acc, d in zip(m["val_acc"][:, u], done)]
    return {"mean_reward": m["reward"][:, u].mean((1, 2)), "val_acc": m["val_acc"][:, u].mean((1, 2)),
            "final_val_acc": np.array([f.mean() if f.size else np.nan for f in finals]),
            "diverged_frac": m["diverged"][:, u].mean((1, 2)),
            **{f"loss_{k}": m["loss"][k][:, u] for k in ("total", "value", "actor")},
            "entropy": m["loss"]["entropy"][:, u], "approx_kl": m["loss"]["approx_kl"][:, u]}


def _pooled(groups: Sequence[dict], loss: dict) -> dict:
    """The per-step metrics ``_agent_stats`` reads, every group's env copies side by side ([A, U, T, sum E])."""
    return {**{k: np.concatenate([g[k] for g in groups], axis=3) for k in _STEP_KEYS}, "loss": loss}


def _metric_rows(groups: Sequence[dict], loss: dict, names: Sequence[str], first_update: int, episodes: np.ndarray,
                 cfg: IPPOConfig, seconds: float) -> list[dict]:
    """One dict per update from a chunk's host metrics: ``groups`` one dict per task ``names`` (leading
    axes [A agents, U updates]), ``loss`` (leaves [A, U]); ``episodes [U]``: episodes env copy 0 of agent 0
    of the first task has finished after each update."""
    m = _pooled(groups, loss)
    agents, n = m["reward"].shape[:2]
    rows = []
    for u in range(n):
        stats = _agent_stats(m, u)
        finals = m["val_acc"][:, u][m["done"][:, u].astype(bool)]
        row = {"update": first_update + u + 1, "env_steps": (first_update + u + 1) * cfg.num_steps * cfg.num_envs,
               "episodes": int(episodes[u]), **{f: float(v.mean()) for f, v in stats.items()},
               "final_val_acc": float(finals.mean()) if finals.size else float("nan"),
               "env_steps_per_s": agents * len(groups) * n * cfg.num_steps * cfg.num_envs / max(seconds, 1e-9)}
        if agents > 1:
            row.update({f"{f}_a{i}": float(v[i]) for f, v in stats.items() for i in range(agents)})
        if len(groups) > 1:
            for name, g in zip(names, groups):
                group_stats = _agent_stats(_pooled([g], loss), u)
                row.update({f"{f}@{name}": float(np.mean(group_stats[f])) for f in GROUP_FIELDS})
        rows.append(row)
    return rows


def _schedule_rows(m: dict, first_update: int, episodes_before: int, log_episodes: Sequence[int],
                   tau: int, control_wd: bool = False) -> tuple[list[dict], np.ndarray]:
    """(schedules.csv rows, episodes finished after each update ``[U]``) of env copy 0 of agent 0 in a
    chunk's host metrics ``m`` (leading axes [A, U, T, E]); ``episodes_before`` finished before it;
    ``control_wd``: add each layer's weight decay."""
    done = m["done"][0, :, :, 0].astype(bool)  # [U, T]
    ended = episodes_before + np.cumsum(done.reshape(-1)).reshape(done.shape)  # finished after each step
    episode = ended - done  # episode index each step belongs to
    rows = []
    for u, t in zip(*np.nonzero(np.isin(episode, log_episodes))):
        step = int(m["step"][0, u, t, 0])
        rows.append({"update": first_update + u + 1, "episode": int(episode[u, t]), "step": step,
                     "opt_step": step * tau,
                     **{f"lr_{i}": float(lr) for i, lr in enumerate(m["lrs"][0, u, t, 0])},
                     **({f"wd_{i}": float(wd) for i, wd in enumerate(m["wds"][0, u, t, 0])} if control_wd else {}),
                     "train_loss": float(m["train_loss"][0, u, t, 0]), "val_acc": float(m["val_acc"][0, u, t, 0])})
    return rows, ended[:, -1]


def _read_rows(path: str, upto: int, counts: Sequence[str] = COUNT_FIELDS) -> list[dict]:
    """Rows of a CSV file written by ``_write_rows`` up to update ``upto``, typed as they were written
    (``counts`` columns as ``int``, the others ``float``), so a resumed run rewrites its earlier rows
    exactly as they were."""
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        rows = [{k: int(v) if k in counts else float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    return [r for r in rows if r["update"] <= upto]


def _write_rows(path: str, rows: list[dict], fields: Sequence[str]) -> None:
    """Writes ``rows`` under the header ``fields`` to ``path`` atomically."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, out.getvalue())


def _plot_schedules(out_dir: str, config: RunConfig) -> None:
    """``schedules.png`` of the run's ``schedules.csv`` (matplotlib imported only when there are rows)."""
    from ganno_jax.evaluation.plots import plot_training_schedules

    plot_training_schedules(os.path.join(out_dir, SCHEDULES), os.path.join(out_dir, "schedules.png"),
                            title=f"{config.task.name} [{config.variant}], env copy 0 of agent 0")


def _warm_start(out_dir: str, config: RunConfig, runner_state: RunnerState, datasets: Sequence) -> RunnerState:
    """The fresh ``runner_state`` with behaviour-cloned parameters (``agents.warm_start``); writes
    ``warm_start.json`` (imitation accuracy before/after per agent, losses). A family imitates the
    demonstrations of every task."""
    env, env_params = (config.groups(datasets), None) if config.tasks else config.env(datasets[0])
    key = jax.random.fold_in(jax.random.key(config.seed), WARM_START_STREAM)
    stacked = config.train_seeds if config.train_seeds > 1 else 0
    params, obs_stats, report = warm_start_params(config.ippo, env, env_params, runner_state.params,
                                                  config.warm_start, config.warm_start_steps, key, stacked)
    write_atomic(os.path.join(out_dir, WARM_START), json.dumps(report, indent=2))
    return warm_runner_state(runner_state, params, obs_stats)


def train_run(out_dir: str, task: Optional[Task] = None, cfg: Optional[IPPOConfig] = None, variant: str = "ganno",
              env_params: Optional[EnvParams] = None, seed: int = 0, chunk_updates: int = 10, resume: bool = False,
              overwrite: bool = False, progress: bool = True, max_chunks: Optional[int] = None,
              devices: Optional[int] = None, train_seeds: int = 1,
              log_episodes: Sequence[int] = FIG1_EPISODES, warm_start: Sequence[str] = (),
              warm_start_steps: int = 300, tasks: Sequence[Task] = ()) -> RunnerState:
    """Trains (or, with ``resume``, continues) a run in ``out_dir``; returns the final ``RunnerState``
    (leaves with a leading ``[train_seeds]`` axis when ``train_seeds > 1``).

    ``env_params``: the ``EnvParams`` trained on (default: the paper's, difference reward); the
    variant sets its ``obs_mask``. With ``resume`` the configuration comes from ``out_dir/config.json``.
    ``max_chunks`` stops early (as if killed) after that many chunks; a later ``resume`` finishes the
    run. ``devices``: split the env copies over that many devices (None: as many as divide
    ``cfg.num_envs``; results are the same up to float rounding, see ``agents.sharding``).
    ``train_seeds``: agents trained at once (one vmap, see the module docstring). ``log_episodes``:
    episodes whose schedules go to ``schedules.csv`` (default: the paper's Fig. 1, 0 and 40; ``()``: none).
    ``warm_start``: schedule names the policy first imitates for ``warm_start_steps`` behaviour-cloning
    steps (``agents.warm_start``; ``warm_start.json`` reports how well), then IPPO fine-tunes it.
    ``tasks``: further tasks the one policy trains on alongside ``task`` (a family, see the module docstring).
    """
    if chunk_updates < 1:
        raise ValueError(f"chunk_updates={chunk_updates!r} must be an integer >= 1")
    if max_chunks is not None and max_chunks < 1:
        raise ValueError(f"max_chunks={max_chunks!r} must be an integer >= 1 (or None: until the end)")
    if resume:
        config = load_config(out_dir)
    else:
        config = RunConfig(task, cfg, EnvParams() if env_params is None else env_params, variant, seed, train_seeds,
                           tuple(log_episodes), tuple(warm_start), warm_start_steps, tuple(tasks))
    task, cfg, variant = config.task, config.ippo, config.variant
    names = [t.name for t in config.all_tasks]
    mesh = mesh_for(cfg.num_envs, devices)
    datasets = config.datasets()  # every input is checked (devices, data files) before the folder is made
    if not resume:
        prepare_out(out_dir, overwrite, what="run folder", hint="pass --resume to continue it or --overwrite to "
                                                                 "replace it")
        save_config(out_dir, config)
    init, update = _programs(config, mesh)
    if mesh is not None:  # replicated on every device of the mesh (every process's, with several)
        datasets = distributed.put(datasets, NamedSharding(mesh, PartitionSpec()))
    runner_state = init(datasets, jax.random.key(config.seed))
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    done_updates = 0
    if resume and checkpoint.latest_step(ckpt_dir) is not None:
        done_updates, runner_state = checkpoint.restore(ckpt_dir, runner_state)
    elif config.warm_start:
        runner_state = _warm_start(out_dir, config, runner_state, datasets)
    metrics_path, schedules_path = os.path.join(out_dir, METRICS), os.path.join(out_dir, SCHEDULES)
    rows = _read_rows(metrics_path, done_updates)
    schedule_rows = _read_rows(schedules_path, done_updates, SCHEDULE_FIELDS)
    for row in rows:  # folders written before the column: every episode lasts the (fixed) horizon
        row.setdefault("episodes", row["update"] * cfg.num_steps // task.horizon)
    episodes = rows[-1]["episodes"] if rows else 0
    bar = tqdm(total=cfg.num_updates, initial=done_updates, unit="upd",
               disable=not (progress and distributed.is_writer()),
               desc=f"train {'+'.join(names)} [{variant}]" + (f" x{config.train_seeds}" if config.train_seeds > 1
                                                             else ""))
    chunks = 0
    while done_updates < cfg.num_updates and (max_chunks is None or chunks < max_chunks):
        n = min(chunk_updates, cfg.num_updates - done_updates)
        start = time.perf_counter()
        runner_state, metrics = update(datasets, runner_state, n)
        jax.block_until_ready(runner_state)
        seconds = time.perf_counter() - start
        m = distributed.to_host(metrics if config.train_seeds > 1 else jax.tree.map(lambda x: x[None], metrics))
        loss = m.pop("loss")
        groups = m["groups"] if config.tasks else (m,)
        new_schedule, ended = _schedule_rows(groups[0], done_updates, episodes, config.log_episodes, task.tau,
                                             config.env_params.control_wd)
        new_rows = _metric_rows(groups, loss, names, done_updates, ended, cfg, seconds)
        rows += new_rows
        schedule_rows += new_schedule
        episodes = int(ended[-1])
        done_updates += n
        chunks += 1
        if schedule_rows:
            _write_rows(schedules_path, schedule_rows, tuple(schedule_rows[0]))
        _write_rows(metrics_path, rows, metric_fields(config.train_seeds, names))
        checkpoint.save(ckpt_dir, done_updates, runner_state)
        last = new_rows[-1]
        bar.update(n)
        bar.set_postfix(env_steps_s=f"{last['env_steps_per_s']:.1f}", reward=f"{last['mean_reward']:.4f}",
                        val_acc=f"{last['val_acc']:.3f}")
    bar.close()
    if schedule_rows:
        _plot_schedules(out_dir, config)
    return runner_state


@functools.lru_cache(maxsize=4)
def _programs(config: RunConfig, mesh: Optional[Mesh]):
    """Jitted ``(init(datasets, key), update(datasets, state, n))`` of ``runs.run_pieces``: the tasks'
    datasets are arguments, not constants embedded in (and copied into) the compiled programs. Cached, so a
    run resumed in the same process reuses the compiled programs."""
    init = jax.jit(lambda datasets, key: run_pieces(config, datasets, mesh).init(key))
    update = jax.jit(lambda datasets, state, n: run_pieces(config, datasets, mesh).update(state, n), static_argnums=2)
    return init, update


def final_metrics(run_dir: str) -> dict:
    """Last row of a run's metrics.csv (empty dict if none)."""
    rows = _read_rows(os.path.join(run_dir, METRICS), np.inf)
    return rows[-1] if rows else {}
