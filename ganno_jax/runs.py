"""Run folders: atomic writes, refuse-or-replace an output folder, and a run's ``config.json``.

Every command and script that writes a folder (``ganno train`` / ``evaluate`` / ``demo``, the
``experiments/*.py`` scripts) prepares it with ``prepare_out`` and writes files with ``write_atomic``
(temp file + ``os.replace``: a reader never sees half a file); with several processes
(``ganno_jax.distributed``) both act in process 0 only, as ``evaluation.plots.save_figure`` does.
A training run folder holds ``config.json`` (``RunConfig``: task, IPPO config, every ``EnvParams`` field,
variant, seed, number of trained agents, logged episodes), which ``save_config`` / ``load_config``
round-trip exactly, and ``checkpoints/`` (orbax), from which ``load_policy`` rebuilds the trained policy.

A run trains ``train_seeds`` independent agents (the paper's +- covers trained agents) as one
``jax.vmap`` of ``agents.make_train_pieces`` over PRNG keys (``run_pieces``, built from the tasks'
datasets it is given: inside ``jit`` they are the program's arguments): one agent gets
``jax.random.key(seed)`` exactly as before (no extra axis anywhere); ``A > 1`` agents get
``jax.random.split(jax.random.key(seed), A)`` and every leaf of the training state, the checkpoint and
the loaded policy gains a leading ``[A]`` axis. (Agent 0 of an ``A``-agent run is therefore not the
one-agent run of the same seed; agent ``i`` of runs with the same seed and ``A`` is always the same.)

A family of tasks (``RunConfig.tasks``: tasks trained alongside ``task``) trains one policy on every task
as ``agents.EnvGroup``s of ``ippo.num_envs`` env copies each; the runner state's per-env fields are then
tuples over ``all_tasks``. A one-task run keeps the one-env state (old checkpoints load unchanged).
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Optional, Sequence

import jax

from ganno_jax import checkpoint, distributed
from jax.sharding import Mesh

from ganno_jax.agents import EnvGroup, IPPOConfig, LearnedPolicy, TrainPieces, make_train_pieces, policy_from
from ganno_jax.agents.warm_start import check_sources
from ganno_jax.checks import check_int, is_int, require
from ganno_jax.data import Dataset, load_dataset
from ganno_jax.env.layerwise import EnvParams, LayerwiseLREnv
from ganno_jax.env.wrappers import check_variant, variant_env, variant_params
from ganno_jax.tasks.config import Task

CONFIG = "config.json"


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and ``os.replace`` (never half-written); with
    several processes (``distributed``) only process 0 writes, the others return at once."""
    if not distributed.is_writer():
        return
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _inside(path: str, folder: str) -> bool:
    return (os.path.abspath(path) + os.sep).startswith(os.path.abspath(folder) + os.sep)


def check_out(path: str, overwrite: bool, protect: Sequence[Optional[str]] = (), what: str = "results folder",
              hint: str = "pass --overwrite to replace it") -> None:
    """Checks, changing nothing, that ``prepare_out`` may use ``path``: an existing non-empty folder
    is a ``FileExistsError`` (naming ``what`` and ``hint``) unless ``overwrite``, and a ``ValueError``
    when one of the ``protect`` paths (folders the caller still reads, e.g. a reused training run)
    lies inside it. ``None`` entries of ``protect`` are ignored."""
    if os.path.exists(path) and os.listdir(path):
        if not overwrite:
            raise FileExistsError(f"{what} {path!r} exists; {hint}")
        for kept in protect:
            if kept and _inside(kept, path):
                raise ValueError(f"{kept!r} lies inside --out {path!r}, which --overwrite would delete; "
                                 f"copy it elsewhere first")


def prepare_out(path: str, overwrite: bool, protect: Sequence[Optional[str]] = (), what: str = "results folder",
                hint: str = "pass --overwrite to replace it") -> str:
    """Creates the folder ``path`` after ``check_out`` (same arguments), deleting an existing one first
    (only with ``overwrite``); returns ``path``. With several processes every process checks (all fail
    alike), process 0 creates, and all wait for it."""
    check_out(path, overwrite, protect, what, hint)
    if distributed.is_writer():
        if os.path.exists(path) and os.listdir(path):
            shutil.rmtree(path)
        os.makedirs(path, exist_ok=True)
    distributed.barrier(f"prepare_out {os.path.abspath(path)}")
    return path


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What a training run folder's ``config.json`` holds: enough to resume it or rebuild its policy.

    ``variant`` (``env.wrappers.VARIANTS``) is checked and sets ``env_params.obs_mask``; ``env_params`` is kept
    whole without its ``data`` (the run trains on each task's dataset, loaded by name: ``datasets``).
    ``train_seeds``: agents trained at once (>= 1). ``log_episodes``: episodes of env copy 0 (of agent 0)
    whose schedules training writes to ``schedules.csv`` (paper Fig. 1), sorted, each >= 0.
    ``warm_start``: handcrafted schedules (``baselines.schedule_names``) the policy imitates for
    ``warm_start_steps`` behaviour-cloning steps before IPPO (``agents.warm_start``); () for none.
    ``tasks``: further tasks the one policy trains on alongside ``task`` (a family; ``ippo.num_envs`` env
    copies each, ``ippo.total_timesteps`` env steps each); names distinct. ``task`` comes first in
    ``all_tasks``: its env copy 0 gives ``schedules.csv``; the warm start demonstrates on every task.
    """

    task: Task
    ippo: IPPOConfig
    env_params: EnvParams = EnvParams()
    variant: str = "ganno"
    seed: int = 0
    train_seeds: int = 1
    log_episodes: tuple = ()
    warm_start: tuple = ()
    warm_start_steps: int = 300
    tasks: tuple = ()

    def __post_init__(self):
        check_variant(self.variant)
        check_int("train_seeds", self.train_seeds)
        episodes = tuple(self.log_episodes)
        require("log_episodes", self.log_episodes, all(is_int(e) and e >= 0 for e in episodes),
                "a list of integers >= 0")
        object.__setattr__(self, "log_episodes", tuple(sorted(set(episodes))))
        if self.warm_start:
            object.__setattr__(self, "warm_start", check_sources(self.warm_start))
        check_int("warm_start_steps", self.warm_start_steps)
        object.__setattr__(self, "env_params", variant_params(self.env_params, self.variant).replace(data=None))
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if not all(isinstance(t, Task) for t in self.tasks):
            raise ValueError(f"tasks={self.tasks!r} is not valid; it must list ganno_jax.tasks.Task objects")
        names = [t.name for t in self.all_tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"tasks={names} is not valid; task names must be distinct")

    @property
    def all_tasks(self) -> tuple:
        """Every task trained on: ``(task, *tasks)``."""
        return (self.task, *self.tasks)

    def env(self, dataset: Dataset, task: Optional[Task] = None):
        """(env, env_params) of ``task`` (default: the run's first task): its ``LayerwiseLREnv`` as the
        variant sets it, and the run's ``env_params`` on ``dataset`` (e.g. a jit argument)."""
        return (variant_env(LayerwiseLREnv(self.task if task is None else task), self.variant),
                self.env_params.replace(data=dataset))

    def groups(self, datasets: Sequence[Dataset]) -> tuple:
        """One ``agents.EnvGroup`` (``ippo.num_envs`` copies, named by the task) per task of ``all_tasks``, on
        ``datasets`` (one per task, as ``datasets()`` gives them)."""
        return tuple(EnvGroup(*self.env(d, t), self.ippo.num_envs, t.name) for t, d in zip(self.all_tasks, datasets))

    def datasets(self) -> tuple:
        """The loaded ``Dataset`` of every task of ``all_tasks`` (``data.load_dataset``, cached)."""
        return tuple(load_dataset(t.dataset, t.data_dir) for t in self.all_tasks)

    def to_dict(self) -> dict:
        """JSON-ready dict (``env_params``: every field but ``data``, ``obs_mask`` as a list or null)."""
        params = {f.name: getattr(self.env_params, f.name) for f in dataclasses.fields(EnvParams) if f.name != "data"}
        return {"task": dataclasses.asdict(self.task), "ippo": dataclasses.asdict(self.ippo),
                "env_params": params, "variant": self.variant, "seed": self.seed, "train_seeds": self.train_seeds,
                "log_episodes": list(self.log_episodes), "warm_start": list(self.warm_start),
                "warm_start_steps": self.warm_start_steps, "tasks": [dataclasses.asdict(t) for t in self.tasks]}

    @classmethod
    def from_dict(cls, conf: dict) -> "RunConfig":
        """Inverse of ``to_dict``; folders written before ``env_params`` was saved give its defaults
        with their ``reward_mode``, before ``train_seeds`` / ``log_episodes`` / ``warm_start`` / ``tasks`` were:
        1 / none / none / none."""
        tuples = lambda d: {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}  # noqa: E731
        params = conf.get("env_params") or {"reward_mode": conf.get("reward_mode", "difference")}
        return cls(Task(**conf["task"]), IPPOConfig(**tuples(conf["ippo"])), EnvParams(**tuples(params)),
                   conf["variant"], conf["seed"], conf.get("train_seeds", 1), tuple(conf.get("log_episodes", ())),
                   tuple(conf.get("warm_start", ())), conf.get("warm_start_steps", 300),
                   tuple(Task(**t) for t in conf.get("tasks", ())))


def run_pieces(config: RunConfig, datasets: Sequence[Dataset], mesh: Optional[Mesh] = None) -> TrainPieces:
    """``agents.TrainPieces`` of the run's ``config.train_seeds`` agents on ``datasets`` (one ``Dataset`` per
    task of ``config.all_tasks``, as ``config.datasets()`` gives them): ``init(jax.random.key(config.seed))``
    and ``update(state, n)`` as ``make_train_pieces`` makes them for one agent, vmapped over the agent keys
    (see the module docstring) when there are several; ``mesh`` splits each agent's env copies. A family
    (``config.tasks``) trains on one ``EnvGroup`` per task. Built inside a jitted function from its dataset
    arguments (``training`` does so), the compiled program takes the data as inputs, never as constants."""
    if config.tasks:
        pieces = make_train_pieces(config.ippo, config.groups(datasets), mesh=mesh)
    else:
        pieces = make_train_pieces(config.ippo, *config.env(datasets[0]), mesh)
    if config.train_seeds == 1:
        return pieces
    agents = config.train_seeds
    return TrainPieces(init=lambda key: jax.vmap(pieces.init)(jax.random.split(key, agents)),
                       update=lambda state, n: jax.vmap(lambda s: pieces.update(s, n))(state))


def runner_state_like(config: RunConfig):
    """Shapes and dtypes (``jax.ShapeDtypeStruct`` leaves) of the run's training state: what its
    checkpoints restore into."""
    return jax.eval_shape(lambda datasets, key: run_pieces(config, datasets).init(key), config.datasets(),
                          jax.random.key(config.seed))


def save_config(run_dir: str, config: RunConfig) -> None:
    """Writes ``run_dir/config.json`` atomically."""
    write_atomic(os.path.join(run_dir, CONFIG), json.dumps(config.to_dict(), indent=2))


def load_config(run_dir: str) -> RunConfig:
    """The ``RunConfig`` of a run folder; ``FileNotFoundError`` naming the folder if it is not one."""
    path = os.path.join(run_dir, CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir!r} is not a run folder: {path} is missing")
    with open(path) as f:
        return RunConfig.from_dict(json.load(f))


def load_policy(run_dir: str, greedy: bool = True) -> tuple[LearnedPolicy, RunConfig]:
    """(policy, config) of a trained run folder: the actor restored from its last checkpoint (greedy by
    default); ``checkpoint.CheckpointError`` if the stored parameters do not fit ``config``. With
    ``config.train_seeds > 1`` the policy's ``params`` and ``obs_stats`` leaves carry a leading
    ``[train_seeds]`` axis (the stacked agents; ``jax.tree.map(lambda x: x[i], ...)`` picks agent i)."""
    config = load_config(run_dir)
    _, runner_state = checkpoint.restore(os.path.join(run_dir, "checkpoints"), runner_state_like(config))
    return policy_from(runner_state, config.ippo, greedy=greedy), config
