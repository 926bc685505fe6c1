"""File datasets read from ``data_dir``, with a tensorflow-datasets fallback when the files are missing.

* ``mnist``, ``fashion_mnist``: the four IDX ``.gz`` files, pixels / 255.
* ``cifar10``, ``cifar100``: the python-pickle batches, pixels / 255 (CIFAR-100 uses ``fine_labels``).
  CIFAR pickles are trusted input, as with the official loader.
* Files missing and ``tensorflow_datasets`` importable (the ``tfds`` extra, TensorFlow included): the copy
  tensorflow-datasets prepared in ``data_dir`` (``<data_dir>/<name>/<version>/``; ``data_dir=None``: its own
  default folder), read as ``tfds.load(name, data_dir=data_dir, download=False)`` would. Nothing is ever
  downloaded: a copy not prepared there is a :class:`DatasetError` naming the folder and the one command that
  prepares it where the network is reachable (``docs/decisions.md``, "tensorflow-datasets").
* Files missing and no ``tensorflow_datasets``: one :class:`DatasetError` naming the files and the
  directories looked in.

Each reader returns NumPy ``(x [n, H, W, C] in [0, 1], y [n], x_test, y_test)``.
"""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np

from ganno_jax.data.dataset import DatasetError

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CIFAR = {  # name -> (sub-directory, train files, test files, label key)
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "labels"),
    "cifar100": ("cifar-100-python", ("train",), ("test",), "fine_labels"),
}


def read_mnist(name: str, data_dir: str | Path | None):
    """``mnist`` / ``fashion_mnist`` from the IDX files in ``data_dir``: x ``[n, 28, 28, 1]``."""
    candidates = [] if data_dir is None else [Path(data_dir)]
    return _from_files(name, data_dir, candidates, IDX_FILES, _read_mnist)


def read_cifar(name: str, data_dir: str | Path | None):
    """``cifar10`` / ``cifar100`` from the pickles in ``data_dir`` or its CIFAR sub-directory: x ``[n, 32, 32, 3]``."""
    subdir, train_files, test_files, _ = CIFAR[name]
    candidates = [] if data_dir is None else [Path(data_dir), Path(data_dir) / subdir]
    return _from_files(name, data_dir, candidates, train_files + test_files,
                       lambda directory: _read_cifar(name, directory))


def _from_files(name: str, data_dir, candidates: list[Path], expected: tuple[str, ...], read):
    """``read(directory)`` of the first candidate holding every ``expected`` file, else tfds, else DatasetError."""
    for directory in candidates:
        if all((directory / f).is_file() for f in expected):
            return read(directory)
    where = ("data_dir was None" if data_dir is None
             else "looked in " + " and ".join(str(c) for c in candidates))
    missing = f"dataset {name!r}: files not found ({where}); expected {', '.join(expected)}"
    tfds = _import_tfds()
    if tfds is not None:
        return _tfds(tfds, name, data_dir, missing)
    raise DatasetError(f"{missing}. Pass data_dir=<directory with these files>, or install the tfds extra "
                       f"(pip install 'ganno_jax[tfds]') to read a tensorflow-datasets copy.")


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        return None
    return tfds


def _tfds(tfds, name: str, data_dir, missing: str):
    """The copy of ``name`` tensorflow-datasets prepared in ``data_dir`` (None: its default folder), as
    ``(x [n, H, W, C] in [0, 1], y [n], x_test, y_test)`` from its uint8 images; never downloads (a copy not
    prepared: :class:`DatasetError` starting with ``missing`` and naming the command that prepares it)."""
    builder = tfds.builder(name, data_dir=None if data_dir is None else str(data_dir))
    if not builder.is_prepared():
        root = "None" if data_dir is None else repr(str(data_dir))
        raise DatasetError(
            f"{missing}; no tensorflow-datasets copy in {builder.data_dir} either (nothing is downloaded). Prepare "
            f"it once where the network is reachable: python -c \"import tensorflow_datasets as tfds; "
            f"tfds.builder({name!r}, data_dir={root}).download_and_prepare()\"")
    splits = tfds.as_numpy(builder.as_dataset(batch_size=-1, as_supervised=True))
    (x, y), (x_test, y_test) = splits["train"], splits["test"]
    return x.astype(np.float32) / 255.0, np.asarray(y), x_test.astype(np.float32) / 255.0, np.asarray(y_test)


def read_idx(path: Path) -> np.ndarray:
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
    arrays = [read_idx(directory / f) for f in IDX_FILES]
    for images_file, labels_file, images, labels in zip(
            IDX_FILES[::2], IDX_FILES[1::2], arrays[::2], arrays[1::2]):
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DatasetError(f"{directory / images_file}: expected images [n, 28, 28], "
                               f"got {images.shape}")
        if labels.shape != images.shape[:1]:
            raise DatasetError(f"{directory / labels_file}: expected labels [{len(images)}] "
                               f"to match {images_file}, got {labels.shape}")
    x, y, x_test, y_test = arrays

    def scale(a):
        return (a.astype(np.float32) / 255.0)[..., None]

    return scale(x), y, scale(x_test), y_test


def _read_cifar(name: str, directory: Path):
    """CIFAR pickles (``data`` uint8 ``[n, 3072]``) -> float ``[n, 32, 32, 3]`` in [0, 1]."""
    _, train_files, test_files, label_key = CIFAR[name]

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
    return x, y, x_test, y_test
