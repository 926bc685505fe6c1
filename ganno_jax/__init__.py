"""ganno_jax: learn learning-rate schedules with reinforcement learning, in JAX.

Submodules: ``data`` (offline datasets), ``tasks`` (pytree task configs and models), ``env``
(functional LayerwiseLREnv / GlobalLREnv), ``agents`` (IPPO/PPO), ``baselines`` (optax schedules),
``evaluate`` (init-LR x seed grids and tables), ``plots``, ``checkpoint``.
"""
from ganno_jax import data, tasks, env

__version__ = "0.1.0"
