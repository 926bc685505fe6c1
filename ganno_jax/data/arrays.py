"""Checks of a user's NumPy arrays for ``from_arrays``: every error names the argument."""
from __future__ import annotations

import numpy as np

from ganno_jax.checks import check_int


def checked_arrays(x_train, y_train, x_test, y_test, num_classes, x_val, y_val):
    """``({split: (x float32 [n, H, W, C], y int64 [n])}, num_classes)`` for splits ``train``, ``test`` (and
    ``val`` when given); flat ``[n, D]`` inputs become ``[n, D, 1, 1]``. ValueError naming the argument for
    shapes that do not match, empty splits, non-finite pixels, non-integer or out-of-range labels."""
    if (x_val is None) != (y_val is None):
        raise ValueError("x_val and y_val must be given together (or neither, for 10% of the train split)")
    splits = {"train": (x_train, y_train), "test": (x_test, y_test)}
    if x_val is not None:
        splits["val"] = (x_val, y_val)
    arrays = {split: (_images(f"x_{split}", x), _labels(f"y_{split}", y)) for split, (x, y) in splits.items()}
    for split, (x, y) in arrays.items():
        if len(x) != len(y):
            raise ValueError(f"x_{split} holds {len(x)} examples but y_{split} holds {len(y)} labels")
        if x.shape[1:] != arrays["train"][0].shape[1:]:
            raise ValueError(f"x_{split} examples have shape {x.shape[1:]} but x_train's have "
                             f"{arrays['train'][0].shape[1:]}")
    if num_classes is None:
        num_classes = max(int(y.max()) for _, y in arrays.values()) + 1
    if isinstance(num_classes, np.integer):
        num_classes = int(num_classes)
    check_int("num_classes", num_classes)
    for split, (_, y) in arrays.items():
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"y_{split} holds labels in [{y.min()}, {y.max()}], outside [0, {num_classes}) "
                             f"(num_classes={num_classes})")
    if "val" not in arrays and len(arrays["train"][0]) < 2:
        raise ValueError(f"x_train holds {len(arrays['train'][0])} example(s); a validation split needs at "
                         "least 2 (or pass x_val and y_val)")
    return arrays, int(num_classes)


def _images(arg: str, x) -> np.ndarray:
    """``x`` as float32 ``[n, H, W, C]`` (flat ``[n, D]`` -> ``[n, D, 1, 1]``); ValueError naming ``arg``."""
    x = np.asarray(x)
    if x.ndim not in (2, 4):
        raise ValueError(f"{arg} has shape {x.shape}; expected images [n, H, W, C] or flat vectors [n, D]")
    if len(x) == 0:
        raise ValueError(f"{arg} is empty (shape {x.shape}); every split needs at least one example")
    if not (np.issubdtype(x.dtype, np.number) and not np.issubdtype(x.dtype, np.complexfloating)):
        raise ValueError(f"{arg} has dtype {x.dtype}; expected real numbers")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise ValueError(f"{arg} holds {int((~np.isfinite(x)).sum())} non-finite values (NaN or inf)")
    return x[:, :, None, None] if x.ndim == 2 else x


def _labels(arg: str, y) -> np.ndarray:
    """``y`` as an integer ``[n]`` array; ValueError naming ``arg``."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{arg} has shape {y.shape}; expected integer labels [n]")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{arg} has dtype {y.dtype}; expected integer labels")
    return y.astype(np.int64)
