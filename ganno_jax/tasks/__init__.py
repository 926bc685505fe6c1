"""Tasks: pytree configs of inner problems, their models and the registry."""
from ganno_jax.tasks.config import INNER_OPTIMIZERS, MODELS, Task
from ganno_jax.tasks.conv import Conv, conv2d
from ganno_jax.tasks.models import (AgentLayer, agent_layers, build_model, leaf_agents, model_names,
                                    register_model)
from ganno_jax.tasks.registry import get, names, register

__all__ = [
    "MODELS", "INNER_OPTIMIZERS", "Task", "Conv", "conv2d", "AgentLayer", "agent_layers", "build_model",
    "leaf_agents", "model_names", "register_model", "get", "names", "register",
]
