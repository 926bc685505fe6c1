"""The ``Dataset`` pytree and how every dataset is split and normalised.

``x`` float32 NHWC ``[n, H, W, C]`` and ``y`` int32 ``[n]`` for the train, validation and test splits.
Validation for every dataset but ``digits`` is ``VAL_FRACTION`` of the train split, chosen by a seeded
permutation (``SEED``); the test split keeps its order. Normalisation: per-channel mean / std of the train
split, applied to all three splits.
"""
from __future__ import annotations

import flax
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.model_selection import train_test_split

SEED = 0
VAL_FRACTION = 0.1
TEST_FRACTION = 0.2  # digits only; the other datasets ship their own test split
SPLITS = ("train", "validation", "test")


class DatasetError(FileNotFoundError):
    """A dataset's files are missing, unreadable or malformed."""


@flax.struct.dataclass
class Dataset:
    """Train / validation / test splits: ``x_*`` float32 ``[n, H, W, C]``, ``y_*`` int32 ``[n]``."""

    name: str = flax.struct.field(pytree_node=False)
    num_classes: int = flax.struct.field(pytree_node=False)
    x_train: jax.Array
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    x_test: jax.Array
    y_test: jax.Array

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """Shape of one example, ``(H, W, C)``."""
        return tuple(self.x_train.shape[1:])

    def split(self, name: str) -> tuple[jax.Array, jax.Array]:
        """``(x [n, H, W, C], y [n])`` of split ``"train"``, ``"validation"`` or ``"test"``."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
        suffix = {"train": "train", "validation": "val", "test": "test"}[name]
        return getattr(self, f"x_{suffix}"), getattr(self, f"y_{suffix}")

    def summary(self) -> str:
        """Human-readable name, input shape and per-split shapes and class counts."""
        lines = [f"{self.name}: {self.num_classes} classes, input shape {self.input_shape}"]
        for split in SPLITS:
            x, y = self.split(split)
            counts = np.bincount(np.asarray(y), minlength=self.num_classes).tolist()
            lines.append(f"  {split:<10} x{tuple(x.shape)} y{tuple(y.shape)} class counts {counts}")
        return "\n".join(lines)


def split_validation(x: np.ndarray, y: np.ndarray, stratify: bool = False):
    """``(train, val)`` pairs of ``(x, y)``: ``VAL_FRACTION`` of ``x [n, ...]``, ``y [n]`` held out (seed ``SEED``)."""
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=VAL_FRACTION, random_state=SEED, stratify=y if stratify else None)
    return (x_train, y_train), (x_val, y_val)


def normalised(name: str, num_classes: int, train, val, test) -> Dataset:
    """Dataset of ``(x [n, H, W, C], y [n])`` NumPy splits, normalised per channel by the train split's mean / std."""
    x_train = train[0]
    mean = x_train.mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
    std = x_train.std(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
    std = np.where(std > 0, std, np.float32(1.0))

    def prepare(x_split, y_split):
        x_norm = (x_split - mean) / std
        with jax.ensure_compile_time_eval():  # concrete device arrays even if first loaded inside a trace
            return jnp.asarray(x_norm, dtype=jnp.float32), jnp.asarray(y_split, dtype=jnp.int32)

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = prepare(*train), prepare(*val), prepare(*test)
    return Dataset(name=name, num_classes=num_classes, x_train=x_train, y_train=y_train,
                   x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test)
