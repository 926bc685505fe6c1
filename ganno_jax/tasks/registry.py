"""Task registry: ``get("<dataset>-<model>")`` for every registered dataset x model pair, plus user tasks.

A pair's fields are ``Task``'s defaults overridden by its dataset's registered task defaults
(``data.register_dataset``: batch size, horizon, width; see ``data.registry`` for the built-ins'), then by
the model's own base width where the literature fixes one (``MODEL_WIDTHS``: the ResNets' 64, on every
dataset), then by the caller's overrides. Tasks registered by :func:`register` (any name, ``-`` allowed) come
back as given.
"""
from __future__ import annotations

from ganno_jax.data import dataset_names, task_defaults
from ganno_jax.registry import Registry
from ganno_jax.tasks.config import Task
from ganno_jax.tasks.models import model_names

#: Base widths of the models taken from the literature, which replace the dataset's width: GANNO's ResNet-18 is
#: He et al.'s (64 channels in the first stage), its ResNet-9 DAWNBench's (64-128-256-512).
MODEL_WIDTHS = {"resnet9": 64, "resnet18": 64}

#: Tasks registered by name (``register``); the ``<dataset>-<model>`` pairs need no entry.
TASKS: Registry[Task] = Registry("task", name_pattern=None)


def names() -> list[str]:
    """All task names: ``<dataset>-<model>`` pairs of registered datasets and models, and registered tasks."""
    pairs = [f"{d}-{m}" for d in dataset_names() for m in model_names()]
    return sorted(set(pairs) | set(TASKS))


def register(name: str, task: Task, overwrite: bool = False) -> None:
    """Registers ``task`` under ``name`` so ``get(name)`` returns it."""
    if not isinstance(task, Task):
        raise TypeError(f"task must be a ganno_jax.tasks.Task, got {type(task).__name__}")
    TASKS.register(name, task, overwrite)


def get(name: str, **overrides) -> Task:
    """The task called ``name`` (``<dataset>-<model>`` or a registered name), with field overrides."""
    if name in TASKS:
        return TASKS.get(name).replace(**overrides) if overrides else TASKS.get(name)
    dataset, _, model = name.rpartition("-")
    datasets = dataset_names(overrides.get("data_dir"))
    if dataset not in datasets:
        raise ValueError(f"unknown task {name!r}: dataset {dataset!r} is not one of {', '.join(datasets)} (tasks are "
                         f"<dataset>-<model> or registered: {', '.join(TASKS) or 'none'}; a user dataset comes "
                         "from data.from_arrays, or from <data_dir>/<dataset>.npz saved by it)")
    if model not in model_names():
        raise ValueError(f"unknown task {name!r}: model {model!r} is not one of {', '.join(model_names())} (a user "
                         "model comes from tasks.register_model; ganno --import FILE runs the file registering it)")
    widths = {"width": MODEL_WIDTHS[model]} if model in MODEL_WIDTHS else {}
    return Task(dataset=dataset, model=model, **{**task_defaults(dataset), **widths, **overrides})
