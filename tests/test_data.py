"""Tests for ganno_jax.data: bundled datasets and the IDX / CIFAR file readers (no network)."""
import gzip
import pickle
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from ganno_jax.data import DATASETS, Dataset, DatasetError, load_dataset

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


@pytest.fixture
def no_tfds(monkeypatch):
    """Make ``import tensorflow_datasets`` fail even if it is installed."""
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)


def _sorted_rows(a):
    a = np.asarray(a).reshape(len(a), -1)
    return a[np.lexsort(a.T[::-1])]


def _affine_inverse(norm, raw):
    """Fit raw = norm * s + m per last-axis channel on one split; return (s, m)."""
    norm, raw = np.asarray(norm, np.float64), np.asarray(raw, np.float64)
    axes = tuple(range(norm.ndim - 1))
    s = raw.std(axis=axes) / norm.std(axis=axes)
    m = raw.mean(axis=axes) - s * norm.mean(axis=axes)
    np.testing.assert_allclose(norm * s + m, raw, atol=1e-5)
    return s, m


# ---------------------------------------------------------------- bundled datasets


def test_digits_shapes_dtypes_and_normalisation():
    ds = load_dataset("digits")
    assert isinstance(ds, Dataset) and ds.name == "digits" and ds.num_classes == 10
    assert ds.input_shape == (8, 8, 1)
    assert (len(ds.x_train), len(ds.x_val), len(ds.x_test)) == (1293, 144, 360)
    for split in ("train", "validation", "test"):
        x, y = ds.split(split)
        assert isinstance(x, jax.Array) and x.dtype == jnp.float32 and y.dtype == jnp.int32
        assert x.shape == (len(y), 8, 8, 1)
        assert int(y.min()) >= 0 and int(y.max()) == 9
    assert abs(float(ds.x_train.mean())) < 1e-5
    assert abs(float(ds.x_train.std()) - 1.0) < 1e-4
    # stratified: every class has 35-37 test examples
    counts = np.bincount(np.asarray(ds.y_test), minlength=10)
    assert counts.max() - counts.min() <= 2


def test_digits_splits_partition_the_dataset():
    ds = load_dataset("digits")
    x = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    assert len(x) == 1797
    # raw pixels span 0..16 exactly, which pins down the affine normalisation
    scale = 16.0 / (x.max() - x.min())
    raw = np.rint((x - x.min()) * scale).astype(int)
    rows = np.concatenate([raw.reshape(len(raw), -1), y[:, None]], axis=1)
    digits = load_digits()
    want = np.concatenate([digits.images.reshape(1797, -1).astype(int), digits.target[:, None]], 1)
    np.testing.assert_array_equal(_sorted_rows(rows), _sorted_rows(want))


def test_digits_cached_and_deterministic():
    first = load_dataset("digits")
    assert load_dataset("digits") is first
    load_dataset.cache_clear()
    again = load_dataset("digits")
    assert again is not first
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)


def test_dataset_is_a_pytree_with_static_metadata():
    ds = load_dataset("digits")
    assert len(jax.tree.leaves(ds)) == 6
    doubled = jax.jit(lambda d: jax.tree.map(lambda a: a * 2, d))(ds)
    assert doubled.name == "digits" and doubled.num_classes == 10
    np.testing.assert_allclose(doubled.x_val, 2 * ds.x_val)


def test_split_and_summary():
    ds = load_dataset("digits")
    x, y = ds.split("validation")
    assert x is ds.x_val and y is ds.y_val
    with pytest.raises(ValueError, match="validation"):
        ds.split("val")
    text = ds.summary()
    assert "digits" in text and "(1293, 8, 8, 1)" in text and "(360,)" in text
    counts = np.bincount(np.asarray(ds.y_train), minlength=10).tolist()
    assert str(counts) in text


def test_mnist1d_shapes_and_global_rng_untouched():
    load_dataset.cache_clear()
    np.random.seed(123)
    expected = np.random.RandomState(123).rand(3)
    ds = load_dataset("mnist1d")
    np.testing.assert_array_equal(np.random.rand(3), expected)
    assert ds.num_classes == 10 and ds.input_shape == (40, 1, 1)
    assert ds.x_train.shape == (3600, 40, 1, 1) and ds.x_val.shape == (400, 40, 1, 1)
    assert ds.x_test.shape == (1000, 40, 1, 1)
    assert ds.x_train.dtype == jnp.float32 and ds.y_test.dtype == jnp.int32
    assert abs(float(ds.x_train.mean())) < 1e-5
    assert set(np.unique(ds.y_train).tolist()) == set(range(10))


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    for name in DATASETS:
        assert name in str(info.value)


# ---------------------------------------------------------------- IDX (mnist / fashion_mnist)


def _idx_bytes(array, magic_prefix=b"\x00\x00\x08"):
    header = magic_prefix + bytes([array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def _write_idx(directory, n_train=20, n_test=10, seed=0, overrides=None):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for file, array in arrays.items():
        payload = (overrides or {}).get(file, _idx_bytes(array))
        (directory / file).write_bytes(gzip.compress(payload))
    return arrays


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_reader_round_trip(tmp_path, name):
    raw = _write_idx(tmp_path)
    ds = load_dataset(name, str(tmp_path))
    assert ds.name == name and ds.num_classes == 10 and ds.input_shape == (28, 28, 1)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (18, 2, 10)
    assert ds.x_train.dtype == jnp.float32 and ds.y_train.dtype == jnp.int32
    # the test split keeps its order; invert the normalisation on it
    test_images = raw["t10k-images-idx3-ubyte.gz"][..., None] / 255.0
    s, m = _affine_inverse(ds.x_test, test_images)
    np.testing.assert_array_equal(ds.y_test, raw["t10k-labels-idx1-ubyte.gz"])
    # train + validation are a permutation of the file's train split, images with their labels

    def undo(x):
        return np.rint((np.asarray(x, np.float64) * s + m) * 255).astype(int)

    got = np.concatenate([
        np.concatenate([undo(ds.x_train).reshape(18, -1), np.asarray(ds.y_train)[:, None]], 1),
        np.concatenate([undo(ds.x_val).reshape(2, -1), np.asarray(ds.y_val)[:, None]], 1)])
    want = np.concatenate([raw["train-images-idx3-ubyte.gz"].reshape(20, -1).astype(int),
                           raw["train-labels-idx1-ubyte.gz"][:, None].astype(int)], 1)
    np.testing.assert_array_equal(_sorted_rows(got), _sorted_rows(want))
    # normalisation statistics come from the train split only
    train_raw = undo(ds.x_train) / 255.0
    np.testing.assert_allclose(m, train_raw.mean(), atol=1e-5)
    np.testing.assert_allclose(s, train_raw.std(), atol=1e-5)


def test_idx_bad_magic(tmp_path):
    images = np.zeros((20, 28, 28), np.uint8)
    _write_idx(tmp_path, overrides={
        "train-images-idx3-ubyte.gz": _idx_bytes(images, magic_prefix=b"\x12\x34\x08")})
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte\.gz.*magic"):
        load_dataset("mnist", tmp_path)


def test_idx_truncated_payload(tmp_path):
    images = np.zeros((20, 28, 28), np.uint8)
    _write_idx(tmp_path, overrides={"t10k-images-idx3-ubyte.gz": _idx_bytes(images)[:-100]})
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz.*\(20, 28, 28\)"):
        load_dataset("mnist", tmp_path)


def test_idx_truncated_gzip_stream(tmp_path):
    _write_idx(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz.*gzip"):
        load_dataset("mnist", tmp_path)


def test_idx_label_count_mismatch(tmp_path):
    _write_idx(tmp_path, overrides={
        "train-labels-idx1-ubyte.gz": _idx_bytes(np.zeros(19, np.uint8))})
    with pytest.raises(DatasetError, match=r"train-labels-idx1-ubyte\.gz.*\[20\]"):
        load_dataset("mnist", tmp_path)


def test_missing_files_message(tmp_path, no_tfds):
    (tmp_path / IDX_FILES[0]).write_bytes(b"")  # partial download still counts as missing
    with pytest.raises(DatasetError) as info:
        load_dataset("fashion_mnist", tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert "fashion_mnist" in message and str(tmp_path) in message
    assert "t10k-labels-idx1-ubyte.gz" in message


def test_missing_data_dir_message(no_tfds):
    with pytest.raises(DatasetError, match=r"'cifar100'.*data_dir was None.*test"):
        load_dataset("cifar100")


def _tiny_tfds_mnist(tfds):
    """A tensorflow-datasets builder with ``mnist``'s name, version and features but 20 train and 8 test
    random images, written by the test itself (nothing downloaded); ``_generate_examples`` keeps its examples."""
    real = tfds.builder_cls("mnist")

    class TinyMnist(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        name, VERSION = "mnist", real.VERSION
        examples = {"train": (20, 0), "test": (8, 1)}  # split -> (count, seed)

        def _info(self):
            features = tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(28, 28, 1)),
                                                   "label": tfds.features.ClassLabel(num_classes=10)})
            return tfds.core.DatasetInfo(builder=self, features=features, supervised_keys=("image", "label"))

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(*args) for split, args in self.examples.items()}

        def _generate_examples(self, n, seed):
            images = np.random.default_rng(seed).integers(0, 256, (n, 28, 28, 1), dtype=np.uint8)
            for i, image in enumerate(images):
                yield i, {"image": image, "label": i % 10}

    return TinyMnist


@pytest.mark.tfds
def test_tfds_copy_prepared_in_data_dir_is_read_and_nothing_is_downloaded(tmp_path):
    """The fallback against the real library (the ``tfds`` extra): a copy prepared in ``data_dir`` is read
    from there; an empty ``data_dir`` is refused, naming the folder and the command that prepares it."""
    tfds = pytest.importorskip("tensorflow_datasets")
    pytest.importorskip("tensorflow")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"'mnist'.*no tensorflow-datasets copy in .*empty.*download_and_prepare"):
        load_dataset("mnist", empty)
    assert list(empty.iterdir()) == []  # nothing fetched or written
    builder = _tiny_tfds_mnist(tfds)(data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(try_download_gcs=False))
    ds = load_dataset("mnist", tmp_path / "tfds")
    assert ds.input_shape == (28, 28, 1) and ds.num_classes == 10
    assert len(ds.y_train) + len(ds.y_val) == 20 and ds.x_test.shape == (8, 28, 28, 1)
    images = np.random.default_rng(1).integers(0, 256, (8, 28, 28, 1), dtype=np.uint8) / 255.0
    order = np.argsort(np.asarray(ds.y_test), kind="stable")  # tfds shuffles; labels are 0..7 in generation order
    _affine_inverse(np.asarray(ds.x_test)[order], images)  # the same pixels, normalised
    np.testing.assert_array_equal(np.sort(np.asarray(ds.y_test)), np.arange(8))


# ---------------------------------------------------------------- CIFAR pickles


def _cifar_batch(rng, n, label_key, classes, bytes_keys):
    batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             label_key: rng.integers(0, classes, n).tolist()}
    if label_key == "fine_labels":
        batch["coarse_labels"] = [0] * n
    return {k.encode(): v for k, v in batch.items()} if bytes_keys else batch


def _check_cifar(ds, test_batch, label_key, n_train):
    assert ds.input_shape == (32, 32, 3) and ds.x_test.dtype == jnp.float32
    assert len(ds.y_train) + len(ds.y_val) == n_train
    planes = test_batch["data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1) / 255.0
    _affine_inverse(ds.x_test, planes)  # NHWC with channel planes in the right place
    np.testing.assert_array_equal(ds.y_test, test_batch[label_key])


@pytest.mark.parametrize("nested", [False, True])
def test_cifar10_reader(tmp_path, nested):
    rng = np.random.default_rng(1)
    directory = tmp_path / "cifar-10-batches-py" if nested else tmp_path
    directory.mkdir(exist_ok=True)
    for i in range(1, 6):
        batch = _cifar_batch(rng, 4, "labels", 10, bytes_keys=nested)
        (directory / f"data_batch_{i}").write_bytes(pickle.dumps(batch))
    test = _cifar_batch(rng, 6, "labels", 10, bytes_keys=False)
    (directory / "test_batch").write_bytes(pickle.dumps(test))
    ds = load_dataset("cifar10", tmp_path)
    assert ds.num_classes == 10 and ds.x_train.shape == (18, 32, 32, 3)
    _check_cifar(ds, test, "labels", 20)


@pytest.mark.parametrize("nested", [False, True])
def test_cifar100_reader(tmp_path, nested):
    rng = np.random.default_rng(2)
    directory = tmp_path / "cifar-100-python" if nested else tmp_path
    directory.mkdir(exist_ok=True)
    train = _cifar_batch(rng, 20, "fine_labels", 100, bytes_keys=True)
    train[b"fine_labels"][0] = 99
    (directory / "train").write_bytes(pickle.dumps(train))
    test = _cifar_batch(rng, 10, "fine_labels", 100, bytes_keys=False)
    (directory / "test").write_bytes(pickle.dumps(test))
    ds = load_dataset("cifar100", str(tmp_path))
    assert ds.num_classes == 100 and 99 in np.concatenate([ds.y_train, ds.y_val]).tolist()
    _check_cifar(ds, test, "fine_labels", 20)


def test_cifar_corrupt_pickle(tmp_path):
    rng = np.random.default_rng(3)
    (tmp_path / "train").write_bytes(pickle.dumps(_cifar_batch(rng, 4, "fine_labels", 100, True)))
    (tmp_path / "test").write_bytes(b"definitely not a pickle")
    with pytest.raises(DatasetError, match=r"test.*unpickle"):
        load_dataset("cifar100", tmp_path)


def test_cifar_wrong_shape_and_missing_key(tmp_path):
    rng = np.random.default_rng(4)
    good = _cifar_batch(rng, 4, "fine_labels", 100, False)
    (tmp_path / "train").write_bytes(pickle.dumps(dict(good, data=good["data"][:, :100])))
    (tmp_path / "test").write_bytes(pickle.dumps(good))
    with pytest.raises(DatasetError, match=r"train.*\[n, 3072\].*\(4, 100\)"):
        load_dataset("cifar100", tmp_path)
    (tmp_path / "train").write_bytes(pickle.dumps({"data": good["data"], "labels": [0] * 4}))
    with pytest.raises(DatasetError, match=r"train.*'fine_labels'"):
        load_dataset("cifar100", tmp_path)
