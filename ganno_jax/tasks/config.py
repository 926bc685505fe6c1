"""`Task`: the pytree config of one inner supervised-learning problem.

A task names a dataset and a model and fixes how the inner network is trained: minibatch size,
``tau`` optimiser steps per environment step, ``horizon`` environment steps per episode, the inner
optimiser (a name in ``tasks.OPTIMIZERS``), the default weight decay used by evaluation and baselines and how it
enters the step (``weight_decay_mode``), and the number of examples used to measure train/validation
metrics after each environment step.

Every field is static (hashable), so a task can be closed over by jitted functions and used as a
dict key; new tasks are made with ``task.replace(...)``, never by subclassing.
"""
from __future__ import annotations

from typing import Optional

from flax import struct

from ganno_jax.checks import check_choice, check_float_range, check_int
from ganno_jax.data import dataset_names
from ganno_jax.tasks.models import MODELS
from ganno_jax.tasks.optimizers import OPTIMIZERS
from ganno_jax.tasks.update_rules import WEIGHT_DECAY_MODES


@struct.dataclass
class Task:
    """Inner training problem. All fields static; validated at construction.

    Attributes:
      dataset: dataset name understood by ``ganno_jax.data.load_dataset``: built-in, registered by
        ``data.from_arrays`` in this process, or saved by it as ``<data_dir>/<dataset>.npz``.
      model: a name in ``MODELS``: built-in or registered by ``tasks.register_model``.
      width: base channel/hidden width of the model (CNN first layer, MLP hidden size / 8; ignored by
        ``torch_mnist_cnn``, whose sizes are fixed).
      batch_size: inner minibatch size (examples drawn with replacement, on device).
      tau: inner optimiser steps per environment step (paper: 100).
      horizon: environment steps per episode; one episode = ``tau * horizon`` optimiser steps.
      optimizer: a name in ``OPTIMIZERS`` (``tasks.optimizers``): ``adam`` (GANNO), ``sgd`` (single-agent
        scheduler paper), ``momentum``, ``adamw``, ``lion``, ``lamb``, ``prodigy``, ``schedule_free_adamw`` or
        one registered by ``tasks.register_optimizer``; the per-layer LR scales its step per layer.
      weight_decay: weight decay used by evaluation and baselines (paper: 0.1).
      weight_decay_mode: how the task's own optimiser (and the env's per-layer-LR rule) applies the
        decay, one of ``WEIGHT_DECAY_MODES``: ``l2`` (paper: added to the gradient) or ``decoupled``
        (AdamW-style, the default so older run folders keep their meaning). Only ``adam``, ``sgd`` and
        ``momentum`` follow it; the other optimisers keep the decay they define (decoupled).
      eval_batch: examples used to measure train and validation metrics after each env step
        (the whole split when it is smaller).
      test_batch: test-split examples measured at once when evaluation tracks the whole test split
        (memory per run grows with it; results do not depend on it beyond float round-off).
      data_dir: folder with dataset files for file-backed datasets and ``.npz`` user datasets (None: offline
        datasets).
    """

    dataset: str = struct.field(pytree_node=False, default="digits")
    model: str = struct.field(pytree_node=False, default="cnn2")
    width: int = struct.field(pytree_node=False, default=16)
    batch_size: int = struct.field(pytree_node=False, default=64)
    tau: int = struct.field(pytree_node=False, default=100)
    horizon: int = struct.field(pytree_node=False, default=10)
    optimizer: str = struct.field(pytree_node=False, default="adam")
    weight_decay: float = struct.field(pytree_node=False, default=0.1)
    weight_decay_mode: str = struct.field(pytree_node=False, default="decoupled")
    eval_batch: int = struct.field(pytree_node=False, default=512)
    test_batch: int = struct.field(pytree_node=False, default=500)
    data_dir: Optional[str] = struct.field(pytree_node=False, default=None)

    def __post_init__(self):
        check_choice("dataset", self.dataset, dataset_names(self.data_dir))
        check_choice("model", self.model, MODELS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("weight_decay_mode", self.weight_decay_mode, WEIGHT_DECAY_MODES)
        check_int("width", self.width, 1, 4096)
        check_int("batch_size", self.batch_size, 1, 1 << 16)
        check_int("tau", self.tau, 1, 1_000_000)
        check_int("horizon", self.horizon, 1, 1_000_000)
        check_float_range("weight_decay", self.weight_decay, 0.0, 10.0)
        check_int("eval_batch", self.eval_batch, 1, 1 << 20)
        check_int("test_batch", self.test_batch, 1, 1 << 20)

    @property
    def name(self) -> str:
        """Registry-style name ``<dataset>-<model>``."""
        return f"{self.dataset}-{self.model}"

    @property
    def total_inner_steps(self) -> int:
        """Optimiser steps in one episode (``tau * horizon``)."""
        return self.tau * self.horizon
