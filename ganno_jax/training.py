"""Training runs with a run folder: progress bar, orbax checkpoints, resume.

A run folder holds ``config.json`` (``runs.RunConfig``: task, IPPO config, every ``EnvParams`` field but the
data, variant, seed, ``members``, ``log_episodes``), ``metrics.csv`` and ``schedules.csv`` / ``schedules.png``
(``run_log``: one row per PPO update; the paper's Fig. 1), ``checkpoints/<update>`` and, when the run was
warm-started (``RunConfig.warm_start``: behaviour cloning of handcrafted schedules before IPPO, once, at the
start), ``warm_start.json``; ``evaluation.controllers.from_run`` loads its policy for evaluation.

A run trains ``checkpoint_every`` PPO updates per jitted call (``runs.run_programs``, the datasets an
argument of the program, never a constant copied into it), then writes the CSV files and a checkpoint, so a
run killed mid-way (even during a save) resumes from its last complete checkpoint, drops the rows written
after it, and ends exactly as an uninterrupted run would (the fused and the checkpointed loop give identical
parameters for the same key; ``tests/test_resume.py`` kills ``ganno train`` for real).

Members (``members = M``): M policies train as one ``jax.vmap`` over their keys (``runs.run_pieces``; each
member's env copies still split over the devices). A family of tasks (``tasks=``): one policy trains on
every task at once (``agents.EnvGroup`` per task, ``cfg.num_envs`` env copies each). Variants (the paper's
ablations, ``env.wrappers.VARIANTS``): ``ganno`` (all observations), ``lr_only``, ``timestep_only``
(observation masks) and ``single_agent`` (one agent, global observations, one global LR).

Several processes (``jax.distributed``, see ``ganno_jax.distributed``): every process runs ``train_run``
with the same arguments; the env copies split over all processes' devices, metrics are gathered from
all of them, every process takes part in the orbax checkpoint saves, and only process 0 writes
``config.json``, the CSV files and ``schedules.png`` (the run folder must be shared). A checkpoint
restores under any number of processes and devices.

Tracking (``track=("tensorboard", "wandb")``, ``ganno train --log``): each chunk's metrics.csv rows stream to
TensorBoard / W&B (``ganno_jax.tracking``) once its checkpoint is saved, one point per PPO update.
"""
from __future__ import annotations

import os
import time
from typing import Optional, Sequence

import jax
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from ganno_jax import checkpoint, distributed, tracking
from ganno_jax.agents import IPPOConfig, RunnerState
from ganno_jax.agents.sharding import mesh_for
from ganno_jax.checks import check_int
from ganno_jax.env.layerwise import EnvParams
from ganno_jax.evaluation.plots import plot_training_schedules
from ganno_jax.run_log import SCHEDULES_CSV, RunLog
from ganno_jax.runs import RunConfig, create_run, load_config, run_programs, warm_started
from ganno_jax.tasks.config import Task

#: Episodes of the paper's Fig. 1 (MARL episodes 0 and 40).
FIG1_EPISODES = (0, 40)


def train_run(out_dir: str, task: Optional[Task] = None, cfg: Optional[IPPOConfig] = None, variant: str = "ganno",
              env_params: Optional[EnvParams] = None, seed: int = 0, checkpoint_every: int = 10,
              resume: bool = False, overwrite: bool = False, progress: bool = True,
              max_checkpoints: Optional[int] = None, devices: Optional[int] = None, members: int = 1,
              log_episodes: Sequence[int] = FIG1_EPISODES, warm_start: Sequence[str] = (),
              warm_start_steps: int = 300, tasks: Sequence[Task] = (), track: Sequence[str] = ()) -> RunnerState:
    """Trains (or, with ``resume``, continues) a run in ``out_dir``; returns the final ``RunnerState``
    (leaves with a leading ``[members]`` axis when ``members > 1``).

    ``env_params``: the ``EnvParams`` trained on (default: the paper's, difference reward); the
    variant sets its ``obs_mask``. With ``resume`` the configuration comes from ``out_dir/config.json``.
    ``checkpoint_every``: PPO updates between checkpoints (one jitted call). ``max_checkpoints`` stops early
    (as if killed) after that many checkpoints; a later ``resume`` finishes the run. ``devices``: split the env
    copies over that many devices (None: as many as divide ``cfg.num_envs``; results are the same up to float
    rounding, see ``agents.sharding``). ``members``: policies trained at once (one vmap, see the module
    docstring). ``log_episodes``: episodes whose schedules go to ``schedules.csv`` (default: the paper's
    Fig. 1, 0 and 40; ``()``: none). ``warm_start``: schedule names the policy first imitates for
    ``warm_start_steps`` behaviour-cloning steps (``agents.warm_start``; ``warm_start.json`` reports how
    well), then IPPO fine-tunes it. ``tasks``: further tasks the one policy trains on alongside ``task``.
    ``track``: trackers the metrics stream to (``tracking.TRACKERS``; a resumed run also continues those it
    was written with). Every input (the devices, the data files, the trackers' packages) is checked before the
    folder is made.
    """
    check_int("checkpoint_every", checkpoint_every)
    if max_checkpoints is not None:
        check_int("max_checkpoints", max_checkpoints, note=" (or None: until the end)")
    track = tracking.check_names(tuple(track) + (tracking.used_in(out_dir) if resume else ()))
    config = load_config(out_dir) if resume else RunConfig(
        task, cfg, EnvParams() if env_params is None else env_params, variant, seed, members, tuple(log_episodes),
        tuple(warm_start), warm_start_steps, tuple(tasks))
    cfg = config.ippo
    mesh = mesh_for(cfg.num_envs, devices)
    datasets = config.datasets()
    if not resume:
        create_run(out_dir, config, overwrite)
    init, update = run_programs(config, mesh)
    if mesh is not None:  # replicated on every device of the mesh (every process's, with several)
        datasets = distributed.put(datasets, NamedSharding(mesh, PartitionSpec()))
    runner_state = init(datasets, jax.random.key(config.seed))
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    done_updates, report = 0, None
    if resume and checkpoint.latest_step(ckpt_dir) is not None:
        done_updates, runner_state = checkpoint.restore(ckpt_dir, runner_state)
    elif config.warm_start:
        runner_state, report = warm_started(config, runner_state, datasets)
    log = RunLog(out_dir, config, done_updates, warm_start=report)
    bar = tqdm(total=cfg.num_updates, initial=done_updates, unit="upd",
               disable=not (progress and distributed.is_writer()),
               desc=f"train {'+'.join(log.names)} [{config.variant}]"
                    + (f" x{config.members}" if config.members > 1 else ""))
    saved = 0
    with tracking.make_trackers(track, out_dir, config.to_dict()) as trackers:
        while done_updates < cfg.num_updates and (max_checkpoints is None or saved < max_checkpoints):
            n = min(checkpoint_every, cfg.num_updates - done_updates)
            start = time.perf_counter()
            runner_state, metrics = update(datasets, runner_state, n)
            jax.block_until_ready(runner_state)
            seconds = time.perf_counter() - start
            metrics = distributed.to_host(metrics if config.members > 1 else jax.tree.map(lambda x: x[None], metrics))
            rows = log.add(metrics, done_updates, seconds)
            done_updates += n
            checkpoint.save(ckpt_dir, done_updates, runner_state)
            for row in rows:  # after the save: a resumed run never logs a step twice
                trackers.log(row["update"], tracking.row_scalars(row))
            saved += 1
            bar.update(n)
            bar.set_postfix(env_steps_s=f"{rows[-1]['env_steps_per_s']:.1f}", reward=f"{rows[-1]['mean_reward']:.4f}",
                            val_acc=f"{rows[-1]['val_acc']:.3f}")
    bar.close()
    if log.schedule_rows:
        plot_training_schedules(os.path.join(out_dir, SCHEDULES_CSV), os.path.join(out_dir, "schedules.png"),
                                title=f"{config.task.name} [{config.variant}], env copy 0 of member 0")
    return runner_state
