"""Offline datasets as immutable pytrees of device arrays.

Every dataset comes back as a :class:`Dataset` with ``x`` float32 NHWC ``[n, H, W, C]`` and ``y``
int32 ``[n]`` for the train, validation and test splits.

Decisions:

* ``digits``: scikit-learn's bundled 8x8 digits, pixels / 16. Stratified split with a fixed seed:
  20% test, then 10% of the remainder validation (1293 / 144 / 360).
* ``mnist1d``: generated in memory by ``mnist1d.data.make_dataset`` with the package's default
  arguments (seed 42, 4000 train / 1000 test); nothing is downloaded or written. Signals are
  ``[n, 40, 1, 1]``. The global NumPy / ``random`` state the package reseeds is restored afterwards.
* ``mnist``, ``fashion_mnist`` (IDX gz files, pixels / 255), ``cifar10`` and ``cifar100``
  (python pickles, pixels / 255, CIFAR-100 uses ``fine_labels``) are read from ``data_dir``. When
  the files are missing and ``tensorflow_datasets`` is importable, ``tfds.load`` is used instead.
  CIFAR pickles are trusted input, as with the official loader.
* Validation for every dataset but ``digits`` is 10% of the official train split, chosen by a
  seeded permutation (seed 0); the official test split keeps its order.
* Normalisation: per-channel mean / std of the train split, applied to all three splits.
"""
from __future__ import annotations

import functools
import gzip
import pickle
import random
from pathlib import Path

import flax
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.model_selection import train_test_split

DATASETS = ("digits", "mnist1d", "mnist", "fashion_mnist", "cifar10", "cifar100")
SEED = 0
VAL_FRACTION = 0.1
TEST_FRACTION = 0.2  # digits only; the other datasets ship their own test split

_IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
              "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CIFAR = {  # name -> (sub-directory, train files, test files, label key, classes)
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
                ("test_batch",), "labels", 10),
    "cifar100": ("cifar-100-python", ("train",), ("test",), "fine_labels", 100),
}
_SPLITS = ("train", "validation", "test")


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
        if name not in _SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {_SPLITS}")
        suffix = {"train": "train", "validation": "val", "test": "test"}[name]
        return getattr(self, f"x_{suffix}"), getattr(self, f"y_{suffix}")

    def summary(self) -> str:
        """Human-readable name, input shape and per-split shapes and class counts."""
        lines = [f"{self.name}: {self.num_classes} classes, input shape {self.input_shape}"]
        for split in _SPLITS:
            x, y = self.split(split)
            counts = np.bincount(np.asarray(y), minlength=self.num_classes).tolist()
            lines.append(f"  {split:<10} x{tuple(x.shape)} y{tuple(y.shape)} class counts {counts}")
        return "\n".join(lines)


@functools.lru_cache(maxsize=None)
def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """Load dataset ``name`` (one of :data:`DATASETS`), normalised and on device; cached.

    ``data_dir`` is only used by the file datasets (mnist, fashion_mnist, cifar10, cifar100).
    Raises ``ValueError`` for an unknown name and :class:`DatasetError` for missing or bad files.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    if name == "digits":
        x, y, x_test, y_test, num_classes = _digits()
    elif name == "mnist1d":
        x, y, x_test, y_test, num_classes = _mnist1d()
    else:
        x, y, x_test, y_test, num_classes = _from_files(name, data_dir)
    if y.min() < 0 or y.max() >= num_classes or y_test.min() < 0 or y_test.max() >= num_classes:
        raise DatasetError(f"dataset {name!r}: labels outside [0, {num_classes})")
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=VAL_FRACTION, random_state=SEED, stratify=y if name == "digits" else None)
    mean = x_train.mean(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
    std = x_train.std(axis=(0, 1, 2), dtype=np.float64).astype(np.float32)
    std = np.where(std > 0, std, np.float32(1.0))

    def prepare(x_split, y_split):
        x_norm = (x_split - mean) / std
        with jax.ensure_compile_time_eval():  # concrete device arrays even if first loaded inside a trace
            return jnp.asarray(x_norm, dtype=jnp.float32), jnp.asarray(y_split, dtype=jnp.int32)

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (
        prepare(x_train, y_train), prepare(x_val, y_val), prepare(x_test, y_test))
    return Dataset(name=name, num_classes=num_classes, x_train=x_train, y_train=y_train,
                   x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test)


def _digits():
    """scikit-learn digits: train+val ``[1437, 8, 8, 1]``, test ``[360, 8, 8, 1]``, in [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    x, x_test, y, y_test = train_test_split(
        x, digits.target, test_size=TEST_FRACTION, random_state=SEED, stratify=digits.target)
    return x, y, x_test, y_test, 10


def _mnist1d():
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

    return as_image(data["x"]), data["y"], as_image(data["x_test"]), data["y_test"], 10


def _from_files(name: str, data_dir: str | Path | None):
    """Read a file dataset from ``data_dir``, else fall back to tfds, else raise DatasetError."""
    if name in _CIFAR:
        subdir, train_files, test_files = _CIFAR[name][:3]
        expected = train_files + test_files
        candidates = [] if data_dir is None else [Path(data_dir), Path(data_dir) / subdir]
    else:
        expected = _IDX_FILES
        candidates = [] if data_dir is None else [Path(data_dir)]
    for directory in candidates:
        if all((directory / f).is_file() for f in expected):
            return _read_cifar(name, directory) if name in _CIFAR else _read_mnist(directory)
    tfds = _import_tfds()
    if tfds is not None:
        return _tfds(tfds, name)
    where = ("data_dir was None" if data_dir is None
             else "looked in " + " and ".join(str(c) for c in candidates))
    raise DatasetError(
        f"dataset {name!r}: files not found ({where}); expected {', '.join(expected)}. "
        "Pass data_dir=<directory with these files> or install tensorflow_datasets.")


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        return None
    return tfds


def _tfds(tfds, name: str):
    """tfds fallback: uint8 NHWC images scaled to [0, 1], labels as given."""
    splits = tfds.as_numpy(tfds.load(name, batch_size=-1, as_supervised=True))
    (x, y), (x_test, y_test) = splits["train"], splits["test"]
    classes = 100 if name == "cifar100" else 10
    return x.astype(np.float32) / 255.0, y, x_test.astype(np.float32) / 255.0, y_test, classes


def _read_idx(path: Path) -> np.ndarray:
    """Parse one gzipped IDX file into an array of the shape its header declares."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetError(f"{path}: not a readable gzip file ({e})") from e
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path}: bad IDX magic number {raw[:4].hex() or '(empty)'}")
    ndim, header = raw[3], 4 + 4 * raw[3]
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DatasetError(f"{path}: header declares shape {dims} ({expected} bytes of data) "
                           f"but the file holds {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def _read_mnist(directory: Path):
    """IDX images ``[n, 28, 28]`` and labels ``[n]`` -> float ``[n, 28, 28, 1]`` in [0, 1]."""
    arrays = [_read_idx(directory / f) for f in _IDX_FILES]
    for images_file, labels_file, images, labels in zip(
            _IDX_FILES[::2], _IDX_FILES[1::2], arrays[::2], arrays[1::2]):
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DatasetError(f"{directory / images_file}: expected images [n, 28, 28], "
                               f"got {images.shape}")
        if labels.shape != images.shape[:1]:
            raise DatasetError(f"{directory / labels_file}: expected labels [{len(images)}] "
                               f"to match {images_file}, got {labels.shape}")
    x, y, x_test, y_test = arrays

    def scale(a):
        return (a.astype(np.float32) / 255.0)[..., None]

    return scale(x), y, scale(x_test), y_test, 10


def _read_cifar(name: str, directory: Path):
    """CIFAR pickles (``data`` uint8 ``[n, 3072]``) -> float ``[n, 32, 32, 3]`` in [0, 1]."""
    _, train_files, test_files, label_key, classes = _CIFAR[name]

    def read(files):
        xs, ys = [], []
        for file in files:
            path = directory / file
            try:
                with open(path, "rb") as f:
                    batch = pickle.load(f, encoding="bytes")
            except Exception as e:  # unpickling raises many types on corrupt input
                raise DatasetError(f"{path}: cannot unpickle CIFAR batch ({e!r})") from e
            if not isinstance(batch, dict):
                raise DatasetError(f"{path}: expected a dict, unpickled {type(batch).__name__}")
            batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
            if "data" not in batch or label_key not in batch:
                raise DatasetError(f"{path}: expected keys 'data' and {label_key!r}, "
                                   f"found {sorted(map(str, batch))}")
            data, labels = np.asarray(batch["data"]), np.asarray(batch[label_key])
            if data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),):
                raise DatasetError(f"{path}: expected data [n, 3072] and {label_key} [n], "
                                   f"got {data.shape} and {labels.shape}")
            xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(labels)
        return np.concatenate(xs).astype(np.float32) / 255.0, np.concatenate(ys)

    (x, y), (x_test, y_test) = read(train_files), read(test_files)
    return x, y, x_test, y_test, classes
