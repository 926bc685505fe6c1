"""Offline datasets as immutable pytrees of device arrays, registered by name.

``load_dataset(name, data_dir)`` gives a :class:`Dataset` (``x`` float32 NHWC ``[n, H, W, C]``, ``y`` int32
``[n]`` per split); ``spec(name)`` its example shape and classes without loading. Built-in datasets and a
user's (``from_arrays``, ``register_dataset``) live in one registry, ``DATASETS`` (``data.registry``);
the file readers are in ``data.files``.
"""
from ganno_jax.data.dataset import SEED, TEST_FRACTION, VAL_FRACTION, Dataset, DatasetError
from ganno_jax.data.registry import (DATASETS, DatasetEntry, dataset_names, from_arrays, load_dataset, num_train,
                                     register_dataset, spec, task_defaults)

__all__ = [
    "SEED", "TEST_FRACTION", "VAL_FRACTION", "Dataset", "DatasetError", "DATASETS", "DatasetEntry", "dataset_names",
    "from_arrays", "load_dataset", "num_train", "register_dataset", "spec", "task_defaults",
]
