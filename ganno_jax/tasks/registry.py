"""Task registry: ``get("<dataset>-<model>")`` for every built-in dataset x model pair, plus user tasks.

Built-in defaults per dataset (tau = 100 as in the GANNO paper everywhere):
- ``digits``, ``mnist1d`` (offline demo data, not the paper's): batch 64, horizon 10 env steps
  (1,000 Adam steps), width 16.
- ``mnist``, ``fashion_mnist``: batch 128, width 16; ``cifar10``, ``cifar100``: batch 128, width 32.
  Horizon 300 env steps = 30,000 Adam steps, the paper's episode: a whole training run
  (``scales.PAPER_HORIZON`` gives the derivation; at batch 128 that is ~71 epochs of Fashion-MNIST's
  54,000 training examples, ~85 of CIFAR-10's 45,000). The paper gives neither batch sizes nor widths.
- User datasets (``data.from_arrays``) and models (``register_model``) pair with every model / dataset as
  ``<dataset>-<model>`` with ``Task``'s defaults (batch 64, horizon 10, width 16, tau 100).
"""
from __future__ import annotations

from ganno_jax.data import dataset_names
from ganno_jax.tasks.config import Task
from ganno_jax.tasks.models import model_names

_DATASET_DEFAULTS = {
    "digits": dict(batch_size=64, horizon=10, width=16),
    "mnist1d": dict(batch_size=64, horizon=10, width=16),
    "mnist": dict(batch_size=128, horizon=300, width=16),
    "fashion_mnist": dict(batch_size=128, horizon=300, width=16),
    "cifar10": dict(batch_size=128, horizon=300, width=32),
    "cifar100": dict(batch_size=128, horizon=300, width=32),
}
_USER_TASKS: dict[str, Task] = {}


def names() -> list[str]:
    """All task names: ``<dataset>-<model>`` pairs of built-in and registered datasets and models, and
    registered user tasks."""
    pairs = [f"{d}-{m}" for d in dataset_names() for m in model_names()]
    return sorted(set(pairs) | set(_USER_TASKS))


def register(name: str, task: Task, overwrite: bool = False) -> None:
    """Registers ``task`` under ``name`` so ``get(name)`` returns it."""
    if not isinstance(task, Task):
        raise TypeError(f"task must be a ganno_jax.tasks.Task, got {type(task).__name__}")
    if name in _USER_TASKS and not overwrite:
        raise ValueError(f"task {name!r} is already registered; pass overwrite=True to replace it")
    _USER_TASKS[name] = task


def get(name: str, **overrides) -> Task:
    """The task called ``name`` (``<dataset>-<model>`` or a registered name), with field overrides."""
    if name in _USER_TASKS:
        return _USER_TASKS[name].replace(**overrides) if overrides else _USER_TASKS[name]
    dataset, _, model = name.rpartition("-")
    datasets = dataset_names(overrides.get("data_dir"))
    if dataset not in datasets:
        raise ValueError(f"unknown task {name!r}: dataset {dataset!r} is not one of {', '.join(datasets)} (tasks are "
                         f"<dataset>-<model> or registered: {', '.join(_USER_TASKS) or 'none'}; a user dataset comes "
                         "from data.from_arrays, or from <data_dir>/<dataset>.npz saved by it)")
    if model not in model_names():
        raise ValueError(f"unknown task {name!r}: model {model!r} is not one of {', '.join(model_names())} (a user "
                         "model comes from tasks.register_model; ganno --import FILE runs the file registering it)")
    return Task(dataset=dataset, model=model, **{**_DATASET_DEFAULTS.get(dataset, {}), **overrides})
