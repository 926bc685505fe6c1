"""ganno_jax: learn learning-rate schedules with reinforcement learning, in JAX.

Submodules: ``data`` (offline datasets), ``tasks`` (pytree task configs and models), ``env``
(functional LayerwiseLREnv / GlobalLREnv), ``agents`` (IPPO/PPO), ``baselines`` (optax schedules and
controllers), ``evaluate`` (init-LR x seed grids and tables), ``plots``, ``checkpoint``, ``training``
(run folders for the ``ganno train`` command).
"""
from ganno_jax import agents, baselines, checkpoint, data, env, evaluate, tasks

__version__ = "0.1.0"
