"""ganno_jax: learn learning-rate schedules with reinforcement learning, in JAX.

Floors, top to bottom (every import points down): ``cli`` / ``demo`` / ``experiment`` (commands and
scripts); ``training`` (checkpointed training runs) and ``evaluation`` (grids, controllers, tables, plots,
reports); ``learned`` (a trained controller as an optax transformation, pretrained controllers by name);
``sgd_scheduler`` (the second paper); ``runs`` (run folders) and ``scales`` (sizes);
``baselines`` (optax schedules, update rules); ``agents`` (IPPO/PPO); ``env`` (LayerwiseLREnv and the
inner trainer); ``tasks``; ``data`` and ``checkpoint``. ``evaluate`` is the historical name of
``evaluation``'s harness and tables.
"""
from ganno_jax import (agents, baselines, checkpoint, data, env, evaluate, evaluation, learned, sgd_scheduler,
                       tasks)

__all__ = ["agents", "baselines", "checkpoint", "data", "env", "evaluate", "evaluation", "learned", "sgd_scheduler",
           "tasks"]
__version__ = "0.1.0"
