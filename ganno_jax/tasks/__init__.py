"""Tasks: pytree configs of inner problems, and the registries of their models, optimisers and tasks."""
from ganno_jax.tasks.config import Task
from ganno_jax.tasks.conv import Conv, conv2d, conv2d_pool
from ganno_jax.tasks.dense import Dense
from ganno_jax.tasks.pooling import max_pool
from ganno_jax.tasks.models import (MODELS, AgentLayer, agent_layers, build_model, leaf_agents, model_names,
                                    register_model)
from ganno_jax.tasks.optimizers import OPTIMIZERS, optimizer_rule, register_optimizer
from ganno_jax.tasks.registry import TASKS, get, names, register

__all__ = [
    "MODELS", "OPTIMIZERS", "TASKS", "Task", "Conv", "conv2d", "conv2d_pool", "Dense", "max_pool", "AgentLayer",
    "agent_layers", "build_model", "leaf_agents", "model_names", "register_model", "optimizer_rule",
    "register_optimizer", "get", "names", "register",
]
