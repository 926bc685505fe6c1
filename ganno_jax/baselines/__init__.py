"""Baseline learning-rate schedules: named optax schedules and PyTorch-semantics schedulers."""
from ganno_jax.baselines.schedules import SCHEDULES, ScheduleSpec, make_schedule, schedule_names
from ganno_jax.baselines.torch_schedules import torch_constant_lr, torch_onecycle_lr

__all__ = [
    "SCHEDULES",
    "ScheduleSpec",
    "make_schedule",
    "schedule_names",
    "torch_constant_lr",
    "torch_onecycle_lr",
]
