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
* User datasets (:func:`from_arrays`): NumPy arrays, NHWC or flat ``[n, D]`` (-> ``[n, D, 1, 1]``), the
  same validation split and normalisation; registered in-process, and saved as ``<dir>/<name>.npz``
  (unnormalised) with ``save_to=dir`` so a new process finds them by name with ``data_dir=dir``.
"""
from __future__ import annotations

import functools
import gzip
import pickle
import random
import re
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
_NAME = re.compile(r"[A-Za-z0-9_]+")
_USER_DATASETS: dict[str, "Dataset"] = {}  # registered by from_arrays


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
    """Load dataset ``name``, normalised and on device; cached.

    ``name`` is one of :data:`DATASETS`, a dataset registered by :func:`from_arrays`, or a dataset
    saved by ``from_arrays(..., save_to=data_dir)`` as ``<data_dir>/<name>.npz`` (how a user dataset
    reaches a new process: the run folder's config.json stores only the name and ``data_dir``).
    ``data_dir`` is also where the file datasets (mnist, fashion_mnist, cifar10, cifar100) are read.
    Raises ``ValueError`` for an unknown name and :class:`DatasetError` for missing or bad files.
    """
    if name in _USER_DATASETS:
        return _USER_DATASETS[name]
    if name not in DATASETS:
        saved = _saved_path(name, data_dir)
        if saved is None or not saved.is_file():
            raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(dataset_names(data_dir))}")
        return _read_saved(name, saved)
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
    return _normalised(name, num_classes, (x_train, y_train), (x_val, y_val), (x_test, y_test))


def _normalised(name: str, num_classes: int, train, val, test) -> Dataset:
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


def dataset_names(data_dir: str | Path | None = None) -> tuple[str, ...]:
    """Names :func:`load_dataset` accepts: built-in, registered by :func:`from_arrays`, saved in ``data_dir``."""
    saved = () if data_dir is None else tuple(sorted(p.stem for p in Path(data_dir).glob("*.npz")))
    return tuple(dict.fromkeys((*DATASETS, *_USER_DATASETS, *saved)))


def from_arrays(name: str, x_train, y_train, x_test, y_test, *, num_classes: int | None = None,
                x_val=None, y_val=None, register: bool = True, save_to: str | Path | None = None) -> Dataset:
    """A :class:`Dataset` from NumPy arrays, split and normalised as the built-in datasets are.

    Args:
      name: the dataset's name (letters, digits, ``_``; not a built-in name); task names are
        ``<name>-<model>``.
      x_train, x_test: images ``[n, H, W, C]`` (NHWC) or flat vectors ``[n, D]``, read as ``[n, D, 1, 1]``
        (a one-pixel-wide image of D rows, as ``mnist1d``: every built-in model accepts it except
        ``torch_mnist_cnn``, which needs 6x6 pixels). Finite numbers; cast to float32.
      y_train, y_test: integer labels ``[n]`` in ``[0, num_classes)``.
      num_classes: number of classes (default: largest label + 1).
      x_val, y_val: a validation split (both or neither); default: 10% of the train split, chosen by
        the seeded permutation the file datasets use (``SEED``), the rest stays train.
      register: make ``name`` loadable by :func:`load_dataset` and valid in ``Task(dataset=name)`` in this process.
      save_to: also write the arrays (unnormalised) to ``<save_to>/<name>.npz``, which ``load_dataset(name,
        save_to)`` and ``Task(dataset=name, data_dir=save_to)`` (CLI: ``--data-dir``) read back in any process.
    Returns:
      the dataset, normalised per channel by the train split's mean / std.
    Raises:
      ValueError naming the argument for a bad name, shapes that do not match, empty splits, non-finite
      pixels, non-integer or out-of-range labels.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"name={name!r} must be a non-empty string of letters, digits and '_'")
    if name in DATASETS:
        raise ValueError(f"name={name!r} is a built-in dataset; choose another name (built-in: {', '.join(DATASETS)})")
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
    largest = max(int(y.max()) for _, y in arrays.values())
    if num_classes is None:
        num_classes = largest + 1
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r} must be a positive integer")
    for split, (_, y) in arrays.items():
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"y_{split} holds labels in [{y.min()}, {y.max()}], outside [0, {num_classes}) "
                             f"(num_classes={num_classes})")
    if save_to is not None:
        Path(save_to).mkdir(parents=True, exist_ok=True)
        np.savez(_saved_path(name, save_to), num_classes=num_classes,
                 **{f"{axis}_{split}": a for split, xy in arrays.items() for axis, a in zip("xy", xy)})
    if "val" in arrays:
        train, val = arrays["train"], arrays["val"]
    else:
        x, y = arrays["train"]
        if len(x) < 2:
            raise ValueError(f"x_train holds {len(x)} example(s); a validation split needs at least 2 "
                             "(or pass x_val and y_val)")
        x, x_held, y, y_held = train_test_split(x, y, test_size=VAL_FRACTION, random_state=SEED)
        train, val = (x, y), (x_held, y_held)
    dataset = _normalised(name, int(num_classes), train, val, arrays["test"])
    if register:
        _USER_DATASETS[name] = dataset
        load_dataset.cache_clear()  # a name loaded earlier (e.g. from its .npz) must not shadow the new arrays
    return dataset


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


def _saved_path(name: str, data_dir: str | Path | None) -> Path | None:
    """Where ``from_arrays(name, ..., save_to=data_dir)`` writes the dataset (None without a folder)."""
    return None if data_dir is None or not _NAME.fullmatch(name) else Path(data_dir) / f"{name}.npz"


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
