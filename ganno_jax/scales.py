"""How big a run is: every named scale of both papers, their paper grids, and the checks of user sizes.

A *scale* names a set of sizes (``smoke``: seconds, for tests; ``cpu``: minutes on 2 CPU cores;
``paper``: the paper's sizes, for an accelerator). It is defined once here and read by the demo, the
``experiments/*.py`` scripts, the benchmarks and the tests.

- ``GANNO_SCALES`` (``GannoScale``): task overrides (train and eval), IPPO config, evaluation seeds,
  PPO updates between checkpoints. ``cpu`` is what ``ganno demo`` runs.
- ``SGD_SCHEDULER_SCALES`` (``SgdSchedulerScale``): the single-agent SGD-scheduler paper
  (``experiments/sgd_scheduler.py``): task overrides (epochs per run = ``horizon``), seeds, grid-search
  LRs and spacing, the agent's PPO config (its env steps = grid LRs x epochs: equal budgets).

Initial-LR grids and seed counts given by users are validated here, once (``check_init_lrs``,
``check_seeds``); the CLI, the scripts and the evaluation harness call these.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Sequence

from ganno_jax.agents.config import IPPOConfig
from ganno_jax.checks import check_choice, check_int, require
from ganno_jax.env.layerwise import EnvParams

SCALE_NAMES = ("smoke", "cpu", "paper")
#: GANNO paper's initial LRs of every evaluation grid.
PAPER_INIT_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
#: GANNO paper's episode in decisions of tau=100 Adam steps: a whole training run of 30,000 steps. Fig. 2 shows
#: jumps at ~14,000 and ~29,000 training steps inside one run (>= 290 decisions); Fig. 1 shows MARL episode 40
#: within 50,000 timesteps over 4 executors, 12,500 per executor (<= 12,500 / 41 = 304 decisions).
PAPER_HORIZON = 300
#: SGD-scheduler paper's initial LRs: the agent's PPO LR and the baselines' initial LR.
PAPER_AGENT_LRS = (5e-4, 1e-3, 5e-3, 1e-2)


@dataclasses.dataclass(frozen=True)
class GannoScale:
    """Sizes of a GANNO run: ``task`` overrides (``tasks.get(name, **task)``), ``ippo``, evaluation
    ``seeds`` per initial LR, ``checkpoint_every`` PPO updates between checkpoints, ``members`` policies
    trained as one ``jax.vmap`` over keys (the paper's ± covers trained members x evaluation seeds) and
    ``eval_actions``, how a learned policy acts in evaluation (``sample`` or ``greedy``), and ``env``:
    ``EnvParams`` overrides of its training runs (``env_params``; e.g. the action set)."""

    name: str
    task: dict
    ippo: IPPOConfig
    seeds: int
    checkpoint_every: int = 10
    members: int = 1
    eval_actions: str = "greedy"
    env: dict = dataclasses.field(default_factory=dict)

    def env_params(self, **overrides) -> EnvParams:
        """The ``EnvParams`` this scale trains with: the paper's defaults with ``env`` and ``overrides``."""
        return EnvParams(**{**self.env, **overrides})


@dataclasses.dataclass(frozen=True)
class SgdSchedulerScale:
    """Sizes of the SGD-scheduler paper's experiment: ``task`` overrides (``task["horizon"]`` = epochs per
    run), evaluation ``seeds``, ``grid_lrs`` constant LRs spaced ``grid`` (``linear``/``log``), the agent's
    PPO config ``ppo``.

    Budgets follow from these (``experiments/sgd_scheduler.py``): every run of every method trains one
    episode of ``horizon`` epochs; the grid search trains ``grid_lrs`` such runs; the agent trains on the
    same number of epochs, ``ppo.total_timesteps = grid_lrs * horizon`` env steps (checked here)."""

    name: str
    task: dict
    seeds: int
    grid_lrs: int
    grid: str
    ppo: IPPOConfig

    def __post_init__(self):
        agent_epochs = self.grid_lrs * self.task["horizon"]
        require(f"SgdSchedulerScale {self.name!r}: ppo.total_timesteps", self.ppo.total_timesteps,
                self.ppo.total_timesteps == agent_epochs, f"grid_lrs * horizon = {agent_epochs} (equal budgets)")


GANNO_SCALES = {
    "smoke": GannoScale("smoke", dict(tau=2, horizon=3, width=2, batch_size=16, eval_batch=64),
                        IPPOConfig(num_envs=2, num_steps=8, total_timesteps=2 * 8 * 2, lr=1e-3, num_minibatches=2,
                                   actor_layers=(16,), gru_size=8, actor_post_gru=8, critic_layers=(16,),
                                   activation="tanh"),
                        seeds=1, checkpoint_every=2),
    # tau = 5 optimiser steps per decision, 40 decisions per run (200 Adam steps, batch 32), the wide action set
    # (chosen by benchmarks/room_to_act.py, docs/decisions.md "Room to act"), width-8 CNNs, IPPO with 8 env
    # copies, 160 PPO updates (512 episodes, as many as the former 40 updates of 10-decision runs); 3 seeds
    "cpu": GannoScale("cpu", dict(tau=5, horizon=40, batch_size=32, width=8, eval_batch=256),
                      IPPOConfig(num_envs=8, num_steps=16, total_timesteps=8 * 16 * 160, lr=1e-3, activation="tanh"),
                      seeds=3, checkpoint_every=20, env=dict(action_set="wide")),
    # the papers': tau = 100, episodes of a whole 30,000-step training run, L2 weight decay (Appendix B), each
    # dataset's registry width/batch; IPPO as Appendix D (Mava); 3 trained members, sampled evaluation actions
    "paper": GannoScale("paper", dict(tau=100, horizon=PAPER_HORIZON, weight_decay_mode="l2"), IPPOConfig(),
                        seeds=5, members=3, eval_actions="sample"),
}

# feed-forward PPO as Stable-Baselines3's MlpPolicy ([64, 64] tanh); the paper names no PPO settings
_SGD_PPO = dict(recurrent=False, actor_layers=(64, 64), actor_post_gru=64, critic_layers=(64, 64), activation="tanh",
                init_log_std=-0.5)
# paper 000 uses no weight decay (PyTorch's default); were one set, PyTorch's optimisers add it to the gradient
_SGD_DECAY = dict(weight_decay=0.0, weight_decay_mode="l2")
SGD_SCHEDULER_SCALES = {
    # 2 epochs of 10 steps; grid 4 LRs x 2 epochs; agent 4 x 2 = 8 epochs = 1 PPO update of 2 envs x 4 steps
    "smoke": SgdSchedulerScale(
        "smoke", dict(model="mlp", width=2, batch_size=128, horizon=2, eval_batch=64, **_SGD_DECAY), seeds=2,
        grid_lrs=4, grid="linear",
        ppo=IPPOConfig(num_envs=2, num_steps=4, seq_len=4, total_timesteps=8, num_minibatches=2, update_epochs=1,
                       recurrent=False, actor_layers=(8,), actor_post_gru=8, critic_layers=(8,), activation="tanh")),
    # 10 epochs of 20 steps; grid 48 LRs x 200 steps = 9,600 steps; agent 480 epochs = 12 updates of 4 x 10
    "cpu": SgdSchedulerScale(
        "cpu", dict(model="mlp", width=16, batch_size=64, horizon=10, eval_batch=512, **_SGD_DECAY), seeds=5,
        grid_lrs=48, grid="linear",
        ppo=IPPOConfig(num_envs=4, num_steps=10, seq_len=10, total_timesteps=480, num_minibatches=2, update_epochs=4,
                       **_SGD_PPO)),
    # the paper: PyTorch's MNIST example CNN, batch 64, 100 epochs, 100 grid LRs in [0, 1] = 10,000 epochs;
    # agent 10,000 epochs = 20 updates of 10 envs x 50 steps; full validation split
    "paper": SgdSchedulerScale(
        "paper", dict(model="torch_mnist_cnn", batch_size=64, horizon=100, eval_batch=10_000, **_SGD_DECAY), seeds=5,
        grid_lrs=100, grid="linear",
        ppo=IPPOConfig(num_envs=10, num_steps=50, seq_len=50, total_timesteps=10_000, num_minibatches=5,
                       update_epochs=4, **_SGD_PPO)),
}


def _lookup(table: dict, name: str):
    return table[check_choice("scale", name, table)]


def ganno_scale(name: str) -> GannoScale:
    """The GANNO ``GannoScale`` called ``name`` (one of ``SCALE_NAMES``); else ``ValueError``."""
    return _lookup(GANNO_SCALES, name)


def sgd_scheduler_scale(name: str) -> SgdSchedulerScale:
    """The SGD-scheduler ``SgdSchedulerScale`` called ``name`` (one of ``SCALE_NAMES``); else ``ValueError``."""
    return _lookup(SGD_SCHEDULER_SCALES, name)


def check_init_lrs(init_lrs: Sequence[float], allow_zero: bool = False, what: str = "init-LR grid") -> tuple:
    """The grid as a tuple of floats if non-empty, finite and > 0 (``>= 0`` with ``allow_zero``); else
    ``ValueError``. An initial LR of 0 is meaningful only for learned (or random) layerwise agents, whose
    additive actions can leave 0 (the paper's warm-up-from-zero case); a schedule scaled by 0 stays 0."""
    try:
        lrs = tuple(float(x) for x in init_lrs)
    except (TypeError, ValueError):
        raise ValueError(f"the {what} {init_lrs!r} is not a list of numbers") from None
    if not lrs:
        raise ValueError(f"the {what} is empty; give at least one learning rate, e.g. --init-lrs 1e-3")
    for lr in lrs:
        if not math.isfinite(lr) or lr < 0 or (lr == 0 and not allow_zero):
            hint = ("; LR 0 is allowed only for learned agents (the paper's warm-up-from-zero case, see "
                    "warmup.py / ablations.py)" if lr == 0 else "")
            raise ValueError(f"the {what} contains {lr!r}; learning rates must be finite and > 0{hint}")
    return lrs


def check_seeds(seeds, what: str = "seeds") -> int:
    """``seeds`` if it is an integer >= 1, else ``ValueError`` naming ``what`` (``checks.check_int``)."""
    return check_int(what, seeds)
