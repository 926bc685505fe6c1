"""User datasets (``data.from_arrays``) and models (``tasks.register_model``) as tasks, through the ``ganno`` CLI."""
import json
import os

import jax
import numpy as np
import pytest
from flax import linen as nn
from sklearn.model_selection import train_test_split

import ganno_jax as gj
from ganno_jax import cli, data
from ganno_jax.env.inner import InnerTrainer
from ganno_jax.tasks import models
from ganno_jax.tasks.models import init_params


@pytest.fixture(autouse=True)
def fresh_registries(monkeypatch):
    """Every test starts and ends with only the built-in datasets and models registered (no cached user data)."""
    for registry in (data.DATASETS, models.MODELS):
        monkeypatch.setattr(registry, "_entries", dict(registry._entries))
    yield
    data.load_dataset.cache_clear()


def _arrays(rng, n_train=50, n_test=20, shape=(6, 6, 2), classes=3):
    """Random ``x_train, y_train, x_test, y_test`` with a per-channel offset and scale to normalise away."""
    scale, offset = np.array([2.0, 0.5]), np.array([3.0, -1.0])
    x = rng.normal(size=(n_train + n_test, *shape)) * scale[: shape[-1]] + offset[: shape[-1]]
    y = rng.integers(0, classes, n_train + n_test)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


class Head(nn.Module):
    """A nested classifier: its kernel lives at ``Head_0/Dense_0``."""

    num_classes: int

    @nn.compact
    def __call__(self, x):
        return nn.Dense(self.num_classes)(x)


class UserNet(nn.Module):
    """Flax's own layers and default names: Conv_0 -> Dense_0 -> LayerNorm_0 -> Head_0/Dense_0."""

    num_classes: int
    width: int

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(self.width, (3, 3))(x))
        x = nn.relu(nn.Dense(self.width)(x.reshape(x.shape[0], -1)))
        return Head(self.num_classes)(nn.LayerNorm()(x))


# ---------------------------------------------------------------- from_arrays


def test_from_arrays_splits_and_normalises_like_file_datasets():
    x_train, y_train, x_test, y_test = _arrays(np.random.default_rng(0))
    ds = data.from_arrays("toy", x_train, y_train, x_test, y_test)
    assert ds.num_classes == 3 and ds.input_shape == (6, 6, 2)
    assert (ds.x_train.shape[0], ds.x_val.shape[0], ds.x_test.shape[0]) == (45, 5, 20)  # 10% of train held out
    np.testing.assert_allclose(np.asarray(ds.x_train).mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ds.x_train).std(axis=(0, 1, 2)), 1.0, atol=1e-4)
    # validation: the file datasets' seeded permutation; every split normalised with the train split's statistics
    x_in, x_held, _, y_held = train_test_split(x_train, y_train, test_size=data.VAL_FRACTION, random_state=data.SEED)
    mean, std = x_in.mean(axis=(0, 1, 2)), x_in.std(axis=(0, 1, 2))
    np.testing.assert_allclose(ds.x_val, (x_held - mean) / std, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(ds.y_val, y_held)
    np.testing.assert_allclose(ds.x_test, (x_test - mean) / std, rtol=1e-4, atol=1e-5)  # test keeps its order
    train_rows = np.asarray(ds.x_train)
    assert train_rows.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert data.load_dataset("toy") is ds
    assert gj.tasks.Task(dataset="toy").dataset == "toy"
    assert "toy" in data.dataset_names()


def test_from_arrays_replaces_a_name_only_with_overwrite():
    x_train, y_train, x_test, y_test = _arrays(np.random.default_rng(5))
    first = data.from_arrays("toy", x_train, y_train, x_test, y_test)
    assert data.load_dataset("toy") is first
    with pytest.raises(ValueError, match="dataset 'toy' is already registered"):
        data.from_arrays("toy", x_train, y_train, x_test, y_test)
    again = data.from_arrays("toy", x_train[:30], y_train[:30], x_test, y_test, overwrite=True)
    assert data.load_dataset("toy") is again and again.x_train.shape[0] == 27


def test_from_arrays_flat_inputs_and_given_validation_split():
    rng = np.random.default_rng(1)
    x_val, y_val = rng.normal(size=(7, 12)), np.arange(7) % 4
    ds = data.from_arrays("flat", rng.normal(size=(30, 12)), np.arange(30) % 4, rng.normal(size=(9, 12)),
                          np.arange(9) % 4, x_val=x_val, y_val=y_val, num_classes=5, register=False)
    assert ds.input_shape == (12, 1, 1) and ds.num_classes == 5
    assert (ds.x_train.shape[0], ds.x_val.shape[0], ds.x_test.shape[0]) == (30, 7, 9)
    np.testing.assert_array_equal(ds.y_val, y_val)
    assert "flat" not in data.dataset_names()  # register=False
    with pytest.raises(ValueError, match="unknown dataset 'flat'"):
        data.load_dataset("flat")


def _bad(rng):
    """(kwargs overrides, message) for every rejected input."""
    x = rng.normal(size=(10, 4, 4, 1))
    return [
        (dict(name="digits"), "dataset 'digits' is already registered"),
        (dict(name="my-data"), "name='my-data'"),
        (dict(x_train=x[:, :, :, 0]), "x_train has shape"),  # 3-D
        (dict(x_train=x[:0], y_train=np.zeros(0, int)), "x_train is empty"),
        (dict(x_test=x[:, :3]), "x_test examples have shape"),
        (dict(y_train=np.zeros(9, int)), "x_train holds 10 examples but y_train holds 9"),
        (dict(y_test=np.zeros(10)), "y_test has dtype float64"),
        (dict(y_train=np.zeros((10, 1), int)), "y_train has shape"),
        (dict(y_test=np.full(10, 3), num_classes=3), r"y_test holds labels in \[3, 3\], outside \[0, 3\)"),
        (dict(y_train=np.full(10, -1)), "y_train holds labels in"),
        (dict(x_train=np.where(np.arange(10)[:, None, None, None] == 2, np.nan, x)), "x_train holds 16 non-finite"),
        (dict(x_train=x.astype(str)), "x_train has dtype"),
        (dict(num_classes=0), "num_classes=0"),
        (dict(x_val=x), "x_val and y_val must be given together"),
        (dict(x_train=x[:1], y_train=np.zeros(1, int)), "a validation split needs at least 2"),
    ]


@pytest.mark.parametrize("case", range(15))
def test_from_arrays_errors_name_the_argument(case):
    rng = np.random.default_rng(2)
    cases = _bad(rng)
    assert len(cases) == 15
    overrides, message = cases[case]
    x = rng.normal(size=(10, 4, 4, 1))
    args = dict(name="user", x_train=x, y_train=np.arange(10) % 3, x_test=x, y_test=np.arange(10) % 3)
    args.update(overrides)
    with pytest.raises(ValueError, match=message):
        data.from_arrays(args.pop("name"), args.pop("x_train"), args.pop("y_train"), args.pop("x_test"),
                         args.pop("y_test"), **args)


def test_saved_dataset_loads_by_name_from_its_folder(tmp_path):
    x_train, y_train, x_test, y_test = _arrays(np.random.default_rng(3))
    ds = data.from_arrays("saved", x_train, y_train, x_test, y_test, register=False, save_to=tmp_path)
    assert os.path.isfile(tmp_path / "saved.npz")
    again = data.load_dataset("saved", str(tmp_path))  # what a new process does with config.json's data_dir
    for split in ("train", "validation", "test"):
        for a, b in zip(ds.split(split), again.split(split)):
            np.testing.assert_array_equal(a, b)
    assert gj.tasks.get("saved-cnn2", data_dir=str(tmp_path)).dataset == "saved"
    with pytest.raises(ValueError, match="dataset='saved' is not valid"):
        gj.tasks.Task(dataset="saved")  # without its folder the name is unknown
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    with pytest.raises(data.DatasetError, match="broken.npz: not a readable .npz"):
        data.load_dataset("broken", str(tmp_path))


# ---------------------------------------------------------------- register_model


def test_registered_model_agents_are_inferred():
    gj.tasks.register_model("user_net", UserNet)
    module = gj.tasks.build_model("user_net", 3, 4)
    params = init_params(module, jax.random.key(0), (6, 6, 1))
    layers = gj.tasks.agent_layers(params, "user_net")
    assert [(a.index, a.name, a.kind, a.depth) for a in layers] == [
        (0, "Conv_0", "conv", "first"), (1, "Dense_0", "linear", "intermediate"),
        (2, "Head_0/Dense_0", "linear", "final")]
    owners = gj.tasks.leaf_agents(params)
    assert jax.tree.structure(owners) == jax.tree.structure(params)
    assert owners["Head_0"]["Dense_0"] == {"kernel": 2, "bias": 2} and owners["Conv_0"]["bias"] == 0
    assert owners["LayerNorm_0"] == {"scale": 2, "bias": 2}  # no kernel: the agent before it in path order
    task = gj.tasks.Task(dataset="digits", model="user_net", width=4, tau=2, horizon=2, batch_size=8)
    assert InnerTrainer(task).num_agents == 3
    # built-in models keep their flat names and agents
    flat = init_params(gj.tasks.build_model("cnn3", 10, 4), jax.random.key(0), (8, 8, 1))
    assert [a.name for a in gj.tasks.agent_layers(flat)] == ["L00_conv", "L01_conv", "L02_dense"]


def test_layer_kinds_given_and_model_errors():
    class Attention(nn.Module):
        num_classes: int
        width: int

        @nn.compact
        def __call__(self, x):
            h = nn.DenseGeneral((2, self.width))(x.reshape(x.shape[0], -1))  # 3-D kernel
            return nn.Dense(self.num_classes)(h.reshape(h.shape[0], -1))

    params = init_params(Attention(3, 4), jax.random.key(0), (4, 1, 1))
    gj.tasks.register_model("attn", Attention)
    with pytest.raises(ValueError, match="3-D kernel; its kind cannot be inferred"):
        gj.tasks.agent_layers(params, "attn")
    with pytest.raises(ValueError, match="model 'attn' is already registered; pass overwrite=True"):
        gj.tasks.register_model("attn", Attention, layer_kinds=("attention", "linear"))
    gj.tasks.register_model("attn", Attention, layer_kinds=("attention", "linear"), overwrite=True)
    layers = gj.tasks.agent_layers(params, "attn")
    assert [a.name for a in layers] == ["DenseGeneral_0", "Dense_0"]  # natural path order ('G' < '_')
    assert [a.kind for a in layers] == ["attention", "linear"]  # given in that order
    gj.tasks.register_model("attn", Attention, layer_kinds=("linear",), overwrite=True)
    with pytest.raises(ValueError, match="layer_kinds gives 1 kinds but the model has 2 layers"):
        gj.tasks.agent_layers(params, "attn")
    with pytest.raises(ValueError, match=r"layer_kinds\[0\]='lstm' is not valid; allowed: "):
        gj.tasks.register_model("x", Attention, layer_kinds=("lstm",))
    with pytest.raises(ValueError, match="model 'cnn2' is already registered"):
        gj.tasks.register_model("cnn2", Attention)
    with pytest.raises(ValueError, match="no '-'"):
        gj.tasks.register_model("my-net", Attention)
    gj.tasks.register_model("not_flax", lambda classes, width: "nope")
    with pytest.raises(ValueError, match="build_fn returned str"):
        gj.tasks.build_model("not_flax", 3, 4)
    with pytest.raises(ValueError, match="unknown task 'digits-nobody': model 'nobody'"):
        gj.tasks.get("digits-nobody")


# ---------------------------------------------------------------- the ganno command


def test_cli_trains_and_evaluates_a_user_dataset_and_model(tmp_path, capsys):
    """As in a new process: the dataset comes from --data-dir, the model from an --import file."""
    x_train, y_train, x_test, y_test = _arrays(np.random.default_rng(4), n_train=60, shape=(6, 6, 1))
    data_dir = str(tmp_path / "data")
    data.from_arrays("toy", x_train, y_train, x_test, y_test, register=False, save_to=data_dir)
    plugin = tmp_path / "my_models.py"
    plugin.write_text(f"import sys\nsys.path.insert(0, {os.path.dirname(__file__)!r})\nimport ganno_jax as gj\n"
                      "from test_user_tasks import UserNet\ngj.tasks.register_model('user_net', UserNet)\n")
    task_flags = ["--task", "toy-user_net", "--data-dir", data_dir, "--tau", "2", "--horizon", "3",
                  "--batch-size", "8", "--width", "2"]
    small = ["--num-envs", "2", "--num-steps", "8", "--total-timesteps", "16", "--update-epochs", "1",
             "--num-minibatches", "1", "--actor-layers", "8", "--gru-size", "4", "--actor-post-gru", "4",
             "--critic-layers", "8", "--checkpoint-every", "1"]
    run = str(tmp_path / "run")
    assert cli.main(["train", *task_flags, *small, "--out", run]) == 2  # the model is not registered yet
    assert "model 'user_net' is not one of" in capsys.readouterr().err
    assert cli.main(["train", "--import", str(plugin), *task_flags, *small, "--out", run]) == 0
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["task"]["dataset"] == "toy" and config["task"]["model"] == "user_net"
    assert config["task"]["data_dir"] == data_dir
    assert os.listdir(os.path.join(run, "checkpoints"))
    res = str(tmp_path / "eval")
    assert cli.main(["evaluate", "--import", str(plugin), "--run", run, *task_flags, "--methods", "constant",
                     "--init-lrs", "1e-3", "--seeds", "1", "--out", res, "--no-progress"]) == 0
    saved = json.load(open(os.path.join(res, "results.json")))
    assert [r["method"] for r in saved["results"]] == ["GANNO", "constant"]
    assert all(np.asarray(r["curves"]["test_acc"]).shape == (1, 1, 3) for r in saved["results"])
    assert "| GANNO |" in capsys.readouterr().out
