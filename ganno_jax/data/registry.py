"""Datasets by name: one registered entry per dataset (loader, example shape, classes, task defaults).

Built-in datasets register themselves with :func:`register_dataset`, as a user's loader would, and
:func:`from_arrays` registers a user's arrays the same way. A name not registered may still be a
dataset saved by ``from_arrays(..., save_to=data_dir)`` as ``<data_dir>/<name>.npz``.

Built-in decisions:

* ``digits``: scikit-learn's bundled 8x8 digits, pixels / 16. Stratified split with a fixed seed:
  20% test, then 10% of the remainder validation (1293 / 144 / 360).
* ``digits28``: ``digits`` upsampled to 28 x 28 (bilinear): an offline, learnable stand-in of MNIST's size
  (the held-out evaluation's default real-image-size task; the same images as ``digits``, so it is held out
  in input size and architecture scale, not in content).
* ``mnist1d``: generated in memory by ``mnist1d.data.make_dataset`` with the package's default
  arguments (seed 42, 4000 train / 1000 test); nothing is downloaded or written. Signals are
  ``[n, 40, 1, 1]``. The global NumPy / ``random`` state the package reseeds is restored afterwards.
* ``mnist``, ``fashion_mnist``, ``cifar10``, ``cifar100``: read from ``data_dir`` (``data.files``).
* Task defaults (tau = 100 as in the GANNO paper everywhere): ``digits``, ``mnist1d`` (offline demo data,
  not the paper's): batch 64, horizon 10 env steps (1,000 Adam steps), width 16. ``mnist``,
  ``fashion_mnist``: batch 128, width 16; ``cifar10``, ``cifar100``: batch 128, width 32. Horizon 300 env
  steps = 30,000 Adam steps, the paper's episode: a whole training run (``scales.PAPER_HORIZON`` gives the
  derivation; at batch 128 that is ~71 epochs of Fashion-MNIST's 54,000 training examples, ~85 of
  CIFAR-10's 45,000). The paper gives neither batch sizes nor widths. User datasets: ``Task``'s defaults.
* User datasets (:func:`from_arrays`): NumPy arrays, NHWC or flat ``[n, D]`` (-> ``[n, D, 1, 1]``), the
  same validation split and normalisation; registered in-process, and saved as ``<dir>/<name>.npz``
  (unnormalised) with ``save_to=dir`` so a new process finds them by name with ``data_dir=dir``.
"""
from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
from sklearn.model_selection import train_test_split

from ganno_jax.data.arrays import checked_arrays
from ganno_jax.data.dataset import SEED, TEST_FRACTION, Dataset, DatasetError, normalised, split_validation
from ganno_jax.data.files import read_cifar, read_mnist
from ganno_jax.registry import NAME, Registry


class DatasetEntry(NamedTuple):
    """A registered dataset: ``load(data_dir) -> Dataset``, its example shape ``(H, W, C)``, its classes and
    the ``Task`` field defaults of its tasks (``tasks.get``)."""

    load: Callable[[str | Path | None], Dataset]
    input_shape: tuple[int, int, int]
    num_classes: int
    task_defaults: dict


DATASETS: Registry[DatasetEntry] = Registry("dataset")


def register_dataset(name: str, load: Callable, input_shape, num_classes: int, task_defaults: dict | None = None,
                     overwrite: bool = False) -> None:
    """Makes ``load_dataset(name, data_dir)`` return ``load(data_dir)``, a :class:`Dataset` whose examples have
    shape ``input_shape`` ``(H, W, C)`` and ``num_classes`` classes (known without loading); ``task_defaults``:
    ``Task`` fields of ``tasks.get("<name>-<model>")`` (batch_size, horizon, width, ...)."""
    if not callable(load):
        raise ValueError(f"load={load!r} must be callable as load(data_dir) -> Dataset")
    DATASETS.register(name, DatasetEntry(load, tuple(input_shape), int(num_classes), dict(task_defaults or {})),
                      overwrite)
    load_dataset.cache_clear()  # a name loaded earlier must not shadow the new entry


@functools.lru_cache(maxsize=None)
def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """Load dataset ``name``, normalised and on device; cached.

    ``name`` is a registered dataset (built-in, :func:`register_dataset`, :func:`from_arrays`) or one saved
    by ``from_arrays(..., save_to=data_dir)`` as ``<data_dir>/<name>.npz`` (how a user dataset reaches a new
    process: the run folder's config.json stores only the name and ``data_dir``). ``data_dir`` is also where
    the file datasets are read. ``ValueError`` for an unknown name, :class:`DatasetError` for bad files.
    """
    if name in DATASETS:
        return DATASETS.get(name).load(data_dir)
    saved = _saved_path(name, data_dir)
    if saved is None or not saved.is_file():
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(dataset_names(data_dir))}")
    return _read_saved(name, saved)


def spec(name: str, data_dir: str | Path | None = None) -> tuple[tuple[int, int, int], int]:
    """``(input_shape (H, W, C), num_classes)`` of dataset ``name``: what a model is built from. Registered
    datasets answer without loading (an env is built without reading files); a saved ``.npz`` is loaded.
    Errors as :func:`load_dataset`."""
    if name in DATASETS:
        entry = DATASETS.get(name)
        return entry.input_shape, entry.num_classes
    dataset = load_dataset(name, data_dir)
    return dataset.input_shape, dataset.num_classes


def task_defaults(name: str) -> dict:
    """``Task`` field defaults of dataset ``name``'s tasks (empty for unregistered, saved datasets)."""
    return dict(DATASETS.get(name).task_defaults) if name in DATASETS else {}


def num_train(name: str, data_dir: str | Path | None = None) -> int:
    """Examples in dataset ``name``'s train split (read from the loaded, cached dataset)."""
    return int(load_dataset(name, data_dir).x_train.shape[0])


def dataset_names(data_dir: str | Path | None = None) -> tuple[str, ...]:
    """Names :func:`load_dataset` accepts: registered (built-in first), and saved in ``data_dir``."""
    saved = () if data_dir is None else tuple(sorted(p.stem for p in Path(data_dir).glob("*.npz")))
    return tuple(dict.fromkeys((*DATASETS, *saved)))


def from_arrays(name: str, x_train, y_train, x_test, y_test, *, num_classes: int | None = None,
                x_val=None, y_val=None, register: bool = True, save_to: str | Path | None = None,
                overwrite: bool = False) -> Dataset:
    """A :class:`Dataset` from NumPy arrays, split and normalised as the built-in datasets are.

    Args:
      name: the dataset's name (letters, digits, ``_``; with ``register``, not a registered name unless
        ``overwrite``); task names are ``<name>-<model>``.
      x_train, x_test: images ``[n, H, W, C]`` (NHWC) or flat vectors ``[n, D]``, read as ``[n, D, 1, 1]``
        (a one-pixel-wide image of D rows, as ``mnist1d``: every built-in model accepts it except
        ``torch_mnist_cnn``, which needs 6x6 pixels). Finite numbers; cast to float32.
      y_train, y_test: integer labels ``[n]`` in ``[0, num_classes)``.
      num_classes: number of classes (default: largest label + 1).
      x_val, y_val: a validation split (both or neither); default: 10% of the train split, chosen by
        the seeded permutation the file datasets use (``SEED``), the rest stays train.
      register: register ``name`` (:func:`register_dataset`) so ``load_dataset`` and ``Task(dataset=name)``
        know it in this process.
      save_to: also write the arrays (unnormalised) to ``<save_to>/<name>.npz``, which ``load_dataset(name,
        save_to)`` and ``Task(dataset=name, data_dir=save_to)`` (CLI: ``--data-dir``) read back in any process.
      overwrite: replace a dataset already registered as ``name`` (e.g. when re-running a notebook cell).
    Returns:
      the dataset, normalised per channel by the train split's mean / std.
    Raises:
      ValueError naming the argument for a bad or taken name, shapes that do not match, empty splits,
      non-finite pixels, non-integer or out-of-range labels.
    """
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"name={name!r} must be a non-empty string of letters, digits and '_'")
    if register and name in DATASETS and not overwrite:
        raise ValueError(f"dataset {name!r} is already registered; choose another name or pass overwrite=True")
    arrays, num_classes = checked_arrays(x_train, y_train, x_test, y_test, num_classes, x_val, y_val)
    if save_to is not None:
        Path(save_to).mkdir(parents=True, exist_ok=True)
        np.savez(_saved_path(name, save_to), num_classes=num_classes,
                 **{f"{axis}_{split}": a for split, xy in arrays.items() for axis, a in zip("xy", xy)})
    train, val = (arrays["train"], arrays["val"]) if "val" in arrays else split_validation(*arrays["train"])
    dataset = normalised(name, num_classes, train, val, arrays["test"])
    if register:
        register_dataset(name, lambda data_dir: dataset, dataset.input_shape, num_classes, overwrite=overwrite)
    return dataset


def _saved_path(name: str, data_dir: str | Path | None) -> Path | None:
    """Where ``from_arrays(name, ..., save_to=data_dir)`` writes the dataset (None without a folder)."""
    return None if data_dir is None or not NAME.fullmatch(name) else Path(data_dir) / f"{name}.npz"


def _read_saved(name: str, path: Path) -> Dataset:
    """The dataset ``from_arrays(..., save_to=...)`` wrote to ``path``, split and normalised again."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError) as e:
        raise DatasetError(f"{path}: not a readable .npz file ({e})") from e
    missing = {"num_classes", "x_train", "y_train", "x_test", "y_test"} - set(arrays)
    if missing:
        raise DatasetError(f"{path}: missing arrays {sorted(missing)}; write it with from_arrays(..., save_to=...)")
    return from_arrays(name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                       num_classes=int(arrays["num_classes"]), x_val=arrays.get("x_val"), y_val=arrays.get("y_val"),
                       register=False)


def _builtin(name: str, read: Callable, input_shape, num_classes: int, stratify: bool = False, **defaults) -> None:
    """Registers a built-in dataset whose ``read(name, data_dir)`` gives NumPy ``(x, y, x_test, y_test)``; its
    validation split is stratified by class with ``stratify``; ``defaults``: its task defaults."""

    def load(data_dir):
        x, y, x_test, y_test = read(name, data_dir)
        if y.min() < 0 or y.max() >= num_classes or y_test.min() < 0 or y_test.max() >= num_classes:
            raise DatasetError(f"dataset {name!r}: labels outside [0, {num_classes})")
        train, val = split_validation(x, y, stratify)
        return normalised(name, num_classes, train, val, (x_test, y_test))

    register_dataset(name, load, input_shape, num_classes, defaults)


def _digits(name: str, data_dir):
    """scikit-learn digits: train+val ``[1437, 8, 8, 1]``, test ``[360, 8, 8, 1]``, in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    x, x_test, y, y_test = train_test_split(
        x, digits.target, test_size=TEST_FRACTION, random_state=SEED, stratify=digits.target)
    return x, y, x_test, y_test


def _digits28(name: str, data_dir):
    """``digits`` upsampled to MNIST's 28 x 28 (bilinear, ``scipy.ndimage.zoom``): same split, [0, 1]."""
    from scipy.ndimage import zoom

    def upsample(x):
        return np.clip(zoom(x, (1, 3.5, 3.5, 1), order=1), 0.0, 1.0).astype(np.float32)

    x, y, x_test, y_test = _digits(name, data_dir)
    return upsample(x), y, upsample(x_test), y_test


def _mnist1d(name: str, data_dir):
    """MNIST-1D generated in memory: train ``[4000, 40, 1, 1]``, test ``[1000, 40, 1, 1]``."""
    from mnist1d.data import get_dataset_args, make_dataset

    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)

    def as_image(a):
        return np.asarray(a, np.float32)[:, :, None, None]

    return as_image(data["x"]), data["y"], as_image(data["x_test"]), data["y_test"]


_OFFLINE, _PAPER = dict(batch_size=64, horizon=10, width=16), dict(batch_size=128, horizon=300)
_builtin("digits", _digits, (8, 8, 1), 10, stratify=True, **_OFFLINE)
_builtin("mnist1d", _mnist1d, (40, 1, 1), 10, **_OFFLINE)
_builtin("digits28", _digits28, (28, 28, 1), 10, stratify=True, **_OFFLINE)
_builtin("mnist", read_mnist, (28, 28, 1), 10, **_PAPER, width=16)
_builtin("fashion_mnist", read_mnist, (28, 28, 1), 10, **_PAPER, width=16)
_builtin("cifar10", read_cifar, (32, 32, 3), 10, **_PAPER, width=32)
_builtin("cifar100", read_cifar, (32, 32, 3), 100, **_PAPER, width=32)
