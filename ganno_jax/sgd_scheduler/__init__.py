"""The single-agent PPO learning-rate scheduler for SGD (paper ``000``): its environment and baselines.

- ``env``: ``GlobalLREnv`` (one agent sets one global LR once per epoch; reward eq. (1) with the
  divergence penalty), ``GlobalEnvParams``, the action <-> LR mapping;
- ``baselines``: one run each, pure functions of ``GlobalEnvParams`` (its ``data`` included): SGD / Adam /
  Adadelta / Adagrad x PyTorch ConstantLR / OneCycleLR through the env's own epochs
  (``GlobalLREnv.step_schedule``), a trained policy, SLS; the grid search's LRs, loss summaries and step
  counts.

Both build on ``env.inner.InnerTrainer``, the inner training code GANNO uses. Grids of these runs
(schedules x initial LRs x seeds, the grid search and its best LR, SLS and agents over seeds) run through
the evaluation harness GANNO uses, ``ganno_jax.evaluation.global_lr`` (a floor above this package). The
experiment script is ``experiments/sgd_scheduler.py``; its sizes are ``scales.SGD_SCHEDULER_SCALES``.
"""
from ganno_jax.sgd_scheduler import baselines
from ganno_jax.sgd_scheduler.env import (GLOBAL_OBS_DIM, GLOBAL_REWARD_MODES, MAX_LAYERS, GlobalEnvParams,
                                         GlobalEnvState, GlobalLREnv, action_to_lr, divergence_penalty,
                                         global_reward, lr_to_action)

__all__ = [
    "baselines", "GLOBAL_OBS_DIM", "GLOBAL_REWARD_MODES", "MAX_LAYERS", "GlobalEnvParams", "GlobalEnvState",
    "GlobalLREnv", "action_to_lr", "divergence_penalty", "global_reward", "lr_to_action",
]
