"""Dataset files of the real shapes with random pixels, for memory and time benchmarks at real size.

    .venv/bin/python benchmarks/fake_data.py mnist DIR      # the four MNIST IDX .gz files (60k / 10k)
    .venv/bin/python benchmarks/fake_data.py cifar10 DIR    # CIFAR-10 python pickles (5 x 10k / 10k)

``load_dataset("mnist" | "fashion_mnist" | "cifar10", DIR)`` reads them like the downloaded files.
Accuracies on random pixels mean nothing; compute and memory are those of the real datasets.
"""
from __future__ import annotations

import argparse
import gzip
import os
import pickle

import numpy as np


def _idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding of a uint8 array (magic 0x0000 08 <ndim>, big-endian dims, raw bytes)."""
    header = b"\x00\x00\x08" + bytes([array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def write_mnist_like(directory: str, n_train: int = 60_000, n_test: int = 10_000, seed: int = 0) -> list[str]:
    """Writes the four MNIST IDX .gz files (images [n, 28, 28] uint8, labels [n] in 0..9); returns paths."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    arrays = {"train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
              "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
              "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8)}
    paths = []
    for name, array in arrays.items():
        paths.append(os.path.join(directory, name))
        with open(paths[-1], "wb") as f:
            f.write(gzip.compress(_idx_bytes(array), compresslevel=1))
    return paths


def write_cifar10_like(directory: str, per_batch: int = 10_000, seed: int = 0) -> list[str]:
    """Writes ``cifar-10-batches-py/data_batch_{1..5}`` and ``test_batch`` (data [n, 3072] uint8,
    labels [n]) under ``directory``; returns paths."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(directory, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    paths = []
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, per_batch).tolist()}
        paths.append(os.path.join(folder, name))
        with open(paths[-1], "wb") as f:
            pickle.dump(batch, f)
    return paths


def main(argv=None) -> None:
    """Command line: ``fake_data.py mnist|cifar10 DIR``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=("mnist", "cifar10"))
    p.add_argument("directory")
    args = p.parse_args(argv)
    paths = (write_mnist_like if args.kind == "mnist" else write_cifar10_like)(args.directory)
    print("\n".join(paths))


if __name__ == "__main__":
    main()
