"""Fixtures shared by the test modules.

- ``reset`` / ``step`` / ``step_env``: the jitted functions of the requesting module's ``env`` fixture
  (module-scoped, so each module compiles them once; ``test_env.py`` and ``test_global_env.py`` define
  ``env``).
- ``experiment``: loads ``experiments/<name>.py`` as a module without running it
  (``experiment("warmup").main([...])``), the one way tests import the experiment scripts.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def reset(env):
    """``jax.jit(env.reset)``."""
    return jax.jit(env.reset)


@pytest.fixture(scope="module")
def step(env):
    """``jax.jit(env.step)`` (auto-reset)."""
    return jax.jit(env.step)


@pytest.fixture(scope="module")
def step_env(env):
    """``jax.jit(env.step_env)`` (no auto-reset)."""
    return jax.jit(env.step_env)


def load_experiment(name: str):
    """``experiments/<name>.py`` as a fresh module ``experiments.<name>`` (its ``main`` not run)."""
    spec = importlib.util.spec_from_file_location(f"experiments.{name}",
                                                  os.path.join(ROOT, "experiments", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling resolve the module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def experiment():
    """``load_experiment``: ``experiment("generalisation").main(argv)``."""
    return load_experiment
