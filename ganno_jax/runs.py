"""A training run's configuration (``config.json``), its training programs and its policy.

A training run folder (made by ``create_run``) holds ``config.json`` (``RunConfig``: task, IPPO config, every
``EnvParams`` field, variant, seed, number of trained members, logged episodes), which ``create_run`` /
``load_config`` round-trip exactly, and ``checkpoints/`` (orbax), from which ``load_policy`` rebuilds the
trained policy.

A run trains ``members`` independent policies (*members*; the paper's +- covers trained members) as one
``jax.vmap`` of ``agents.make_train_pieces`` over PRNG keys (``run_pieces``, built from the tasks'
datasets it is given: inside ``jit`` they are the program's arguments; ``run_programs`` jits them): one
member gets ``jax.random.key(seed)`` exactly as before (no extra axis anywhere); ``M > 1`` members get
``jax.random.split(jax.random.key(seed), M)`` and every leaf of the training state, the checkpoint and
the loaded policy gains a leading ``[M]`` axis. (Member 0 of an ``M``-member run is therefore not the
one-member run of the same seed; member ``i`` of runs with the same seed and ``M`` is always the same.)
The agents of a run are the layers of its inner network (``env.num_agents``), as everywhere.

A family of tasks (``RunConfig.tasks``: tasks trained alongside ``task``) trains one policy on every task
as ``agents.EnvGroup``s of ``ippo.num_envs`` env copies each; the runner state's per-env fields are then
tuples over ``all_tasks``. A one-task run keeps the one-env state (old checkpoints load unchanged).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Optional, Sequence

import jax
from jax.sharding import Mesh

from ganno_jax import checkpoint
from ganno_jax.agents import EnvGroup, IPPOConfig, LearnedPolicy, TrainPieces, make_train_pieces, policy_from
from ganno_jax.agents.warm_start import check_sources, warm_runner_state, warm_start_params
from ganno_jax.checks import check_int, is_int, require
from ganno_jax.data import Dataset, load_dataset
from ganno_jax.env.layerwise import EnvParams, LayerwiseLREnv
from ganno_jax.env.wrappers import check_variant, variant_env, variant_params
from ganno_jax.files import prepare_out, write_atomic
from ganno_jax.tasks.config import Task

CONFIG = "config.json"
WARM_START_STREAM = 0x5741524D  # folded into the run key for the warm start's demonstrations ("WARM")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """What a training run folder's ``config.json`` holds: enough to resume it or rebuild its policy.

    ``variant`` (``env.wrappers.VARIANTS``) is checked and sets ``env_params.obs_mask``; ``env_params`` is kept
    whole without its ``data`` (the run trains on each task's dataset, loaded by name: ``datasets``).
    ``members``: policies trained at once (>= 1). ``log_episodes``: episodes of env copy 0 (of member 0)
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
    members: int = 1
    log_episodes: tuple = ()
    warm_start: tuple = ()
    warm_start_steps: int = 300
    tasks: tuple = ()

    def __post_init__(self):
        check_variant(self.variant)
        check_int("members", self.members)
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
                "env_params": params, "variant": self.variant, "seed": self.seed, "members": self.members,
                "log_episodes": list(self.log_episodes), "warm_start": list(self.warm_start),
                "warm_start_steps": self.warm_start_steps, "tasks": [dataclasses.asdict(t) for t in self.tasks]}

    @classmethod
    def from_dict(cls, conf: dict) -> "RunConfig":
        """Inverse of ``to_dict``. Folders written before ``env_params`` was saved give its defaults with their
        ``reward_mode``; before ``members`` / ``log_episodes`` / ``warm_start`` / ``tasks`` were: 1 / none / none /
        none; names from before the renames of docs/decisions.md (``train_seeds``, ``test_chunk``) are read."""
        tuples = lambda d: {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}  # noqa: E731
        params = conf.get("env_params") or {"reward_mode": conf.get("reward_mode", "difference")}
        return cls(_task(conf["task"]), IPPOConfig(**tuples(conf["ippo"])), EnvParams(**tuples(params)),
                   conf["variant"], conf["seed"], conf.get("members", conf.get("train_seeds", 1)),
                   tuple(conf.get("log_episodes", ())), tuple(conf.get("warm_start", ())),
                   conf.get("warm_start_steps", 300), tuple(_task(t) for t in conf.get("tasks", ())))


def _task(fields: dict) -> Task:
    """The ``Task`` of a saved dict, its fields renamed since it was written (``test_chunk`` -> ``test_batch``)."""
    renamed = {TASK_RENAMES.get(k, k): v for k, v in fields.items()}
    return Task(**renamed)


#: Task fields renamed since run folders were first written: old name -> name today.
TASK_RENAMES = {"test_chunk": "test_batch"}


def run_pieces(config: RunConfig, datasets: Sequence[Dataset], mesh: Optional[Mesh] = None) -> TrainPieces:
    """``agents.TrainPieces`` of the run's ``config.members`` policies on ``datasets`` (one ``Dataset`` per
    task of ``config.all_tasks``, as ``config.datasets()`` gives them): ``init(jax.random.key(config.seed))``
    and ``update(state, n)`` as ``make_train_pieces`` makes them for one policy, vmapped over the members' keys
    (see the module docstring) when there are several; ``mesh`` splits each member's env copies. A family
    (``config.tasks``) trains on one ``EnvGroup`` per task. Built inside a jitted function from its dataset
    arguments (``training`` does so), the compiled program takes the data as inputs, never as constants."""
    if config.tasks:
        pieces = make_train_pieces(config.ippo, config.groups(datasets), mesh=mesh)
    else:
        pieces = make_train_pieces(config.ippo, *config.env(datasets[0]), mesh)
    if config.members == 1:
        return pieces
    return TrainPieces(init=lambda key: jax.vmap(pieces.init)(jax.random.split(key, config.members)),
                       update=lambda state, n: jax.vmap(lambda s: pieces.update(s, n))(state))


@functools.lru_cache(maxsize=4)
def run_programs(config: RunConfig, mesh: Optional[Mesh] = None):
    """Jitted ``(init(datasets, key), update(datasets, state, n))`` of ``run_pieces``: the tasks' datasets are
    arguments, not constants embedded in (and copied into) the compiled programs. Cached, so a run resumed in
    the same process reuses the compiled programs."""
    init = jax.jit(lambda datasets, key: run_pieces(config, datasets, mesh).init(key))
    update = jax.jit(lambda datasets, state, n: run_pieces(config, datasets, mesh).update(state, n), static_argnums=2)
    return init, update


def warm_started(config: RunConfig, runner_state, datasets: Sequence[Dataset]) -> tuple:
    """(the fresh ``runner_state`` with behaviour-cloned parameters (``agents.warm_start`` of
    ``config.warm_start``), its report: imitation accuracy before/after per member, losses). A family imitates
    the demonstrations of every task."""
    env, env_params = (config.groups(datasets), None) if config.tasks else config.env(datasets[0])
    key = jax.random.fold_in(jax.random.key(config.seed), WARM_START_STREAM)
    stacked = config.members if config.members > 1 else 0
    params, obs_stats, report = warm_start_params(config.ippo, env, env_params, runner_state.params,
                                                  config.warm_start, config.warm_start_steps, key, stacked)
    return warm_runner_state(runner_state, params, obs_stats), report


def runner_state_like(config: RunConfig):
    """Shapes and dtypes (``jax.ShapeDtypeStruct`` leaves) of the run's training state: what its
    checkpoints restore into."""
    return jax.eval_shape(lambda datasets, key: run_pieces(config, datasets).init(key), config.datasets(),
                          jax.random.key(config.seed))


def create_run(run_dir: str, config: RunConfig, overwrite: bool = False) -> None:
    """Makes the run folder ``run_dir`` (``files.prepare_out``: an existing non-empty one only with ``overwrite``)
    and writes its ``config.json``."""
    prepare_out(run_dir, overwrite, what="run folder", hint="pass --resume to continue it or --overwrite to replace it")
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
    ``config.members > 1`` the policy's ``params`` and ``obs_stats`` leaves carry a leading
    ``[members]`` axis (the stacked members; ``jax.tree.map(lambda x: x[i], ...)`` picks member i)."""
    config = load_config(run_dir)
    _, runner_state = checkpoint.restore(os.path.join(run_dir, "checkpoints"), runner_state_like(config))
    return policy_from(runner_state, config.ippo, greedy=greedy), config
