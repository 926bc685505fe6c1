"""The single-agent PPO learning-rate scheduler for SGD (paper ``000``): its environment and baselines.

- ``env``: ``GlobalLREnv`` (one agent sets one global LR once per epoch; reward eq. (1) with the
  divergence penalty), ``GlobalEnvParams``, the action <-> LR mapping;
- ``baselines``: SGD / Adam / Adadelta / Adagrad x PyTorch ConstantLR / OneCycleLR run through the env's
  own epochs (``GlobalLREnv.step_schedule``), a constant-LR grid search (linear or log grid, one whole run
  per LR) and its best LR on the evaluation seeds, SLS, loss summaries and step counts.

Both build on ``env.inner.InnerTrainer``, the inner training code GANNO uses. The experiment script
is ``experiments/sgd_scheduler.py``; its sizes are ``scales.SGD_SCHEDULER_SCALES``.
"""
from ganno_jax.sgd_scheduler import baselines
from ganno_jax.sgd_scheduler.env import (GLOBAL_OBS_DIM, GLOBAL_REWARD_MODES, MAX_LAYERS, GlobalEnvParams,
                                         GlobalEnvState, GlobalLREnv, action_to_lr, divergence_penalty,
                                         global_reward, lr_to_action)

__all__ = [
    "baselines", "GLOBAL_OBS_DIM", "GLOBAL_REWARD_MODES", "MAX_LAYERS", "GlobalEnvParams", "GlobalEnvState",
    "GlobalLREnv", "action_to_lr", "divergence_penalty", "global_reward", "lr_to_action",
]
