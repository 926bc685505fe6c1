"""The one registry pattern (ganno_jax/registry.py) and its four users: datasets, models, optimisers, tasks."""
import numpy as np
import pytest

import ganno_jax as gj
from ganno_jax import data
from ganno_jax.registry import Registry


def test_registry_registers_refuses_and_names_the_valid_names():
    reg = Registry("widget")
    reg.register("a", 1)
    reg.register("b", 2)
    assert reg.get("b") == 2 and reg.names() == ("a", "b") and list(reg) == ["a", "b"] and "a" in reg
    with pytest.raises(ValueError, match="widget 'a' is already registered; pass overwrite=True"):
        reg.register("a", 3)
    reg.register("a", 1)  # the same entry again: harmless
    reg.register("a", 3, overwrite=True)
    assert reg.get("a") == 3 and len(reg) == 2
    with pytest.raises(ValueError, match="unknown widget 'c'; valid names: a, b"):
        reg.get("c")
    with pytest.raises(ValueError, match="widget name='a-b'"):
        reg.register("a-b", 4)
    Registry("task", name_pattern=None).register("a-b", 4)  # task names may hold '-'


def test_builtins_are_registry_entries():
    assert gj.tasks.MODELS.names()[:2] == ("mlp", "cnn2") and "resnet18" in gj.tasks.MODELS
    assert data.DATASETS.names() == ("digits", "mnist1d", "digits28", "mnist", "fashion_mnist", "cifar10", "cifar100")
    assert set(gj.tasks.OPTIMIZERS) >= {"adam", "sgd", "momentum", "adamw", "lion", "lamb", "prodigy",
                                        "schedule_free_adamw"}
    # one entry per dataset holds its shape, classes and task defaults: no loading needed
    assert data.spec("cifar100") == ((32, 32, 3), 100) and data.spec("mnist1d") == ((40, 1, 1), 10)
    task = gj.tasks.get("cifar10-cnn3")
    assert (task.batch_size, task.horizon, task.width) == (128, 300, 32)
    assert gj.tasks.get("digits-mlp", width=4).width == 4


def test_a_user_dataset_loader_registers_like_a_builtin(monkeypatch):
    monkeypatch.setattr(data.DATASETS, "_entries", dict(data.DATASETS._entries))
    calls = []

    def load(data_dir):
        calls.append(data_dir)
        rng = np.random.default_rng(0)
        return data.from_arrays("noise", rng.normal(size=(20, 4, 4, 1)), np.arange(20) % 2,
                                rng.normal(size=(6, 4, 4, 1)), np.arange(6) % 2, register=False)

    data.register_dataset("noise", load, (4, 4, 1), 2, task_defaults=dict(batch_size=8, horizon=3))
    try:
        assert data.spec("noise") == ((4, 4, 1), 2) and not calls  # shape known without loading
        task = gj.tasks.get("noise-mlp")
        assert (task.batch_size, task.horizon) == (8, 3)
        assert data.load_dataset("noise").x_train.shape == (18, 4, 4, 1) and calls == [None]
    finally:
        data.load_dataset.cache_clear()
