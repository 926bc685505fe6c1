"""Paper-000 baselines (ganno_jax.sgd_scheduler.baselines) and the experiments/sgd_scheduler.py smoke run."""
import json
import os

import flax.struct
import jax
import jax.numpy as jnp
from matplotlib.image import imread
import numpy as np
import pytest

import ganno_jax as gj
from ganno_jax.baselines import torch_constant_lr, torch_onecycle_lr
from ganno_jax.sgd_scheduler import baselines as sgd
from ganno_jax.sgd_scheduler import lr_to_action

TASK = gj.tasks.get("digits-mlp", width=2, batch_size=128, horizon=2, eval_batch=64, optimizer="sgd")


@pytest.fixture(scope="module")
def env():
    return sgd.optimizer_env(TASK, "sgd")


def test_grid_search_spends_exactly_the_budget(env):
    params = env.default_params
    res = jax.jit(lambda k: sgd.grid_search(env, params, k, budget=10_000, num_lrs=100))(jax.random.key(0))
    assert int(np.sum(res["steps"])) == 10_000 and res["steps"].shape == (100,)
    np.testing.assert_allclose([res["lrs"][0], res["lrs"][-1]], [1e-6, 1.0], rtol=1e-5)
    np.testing.assert_allclose(np.diff(np.log10(res["lrs"])), 6 / 99, rtol=1e-4)  # log-spaced
    assert np.all(np.isfinite(res["final_loss"]) | res["diverged"])
    assert np.nanmin(res["final_loss"]) < np.asarray(res["final_loss"])[0]  # some LR beats LR = 1e-6
    with pytest.raises(ValueError, match="multiple of num_lrs"):
        sgd.grid_search(env, params, jax.random.key(0), budget=10_000, num_lrs=3)


def test_schedule_tables_follow_pytorch_stepping():
    const = sgd.schedule_table("constant_lr", 0.1, epochs=7, steps_per_epoch=3)  # stepped per epoch
    np.testing.assert_allclose(const[:, 0], torch_constant_lr(0.1)(jnp.arange(7)), rtol=1e-6)
    assert np.all(const == const[:, :1])
    cycle = sgd.schedule_table("onecycle", 0.1, epochs=4, steps_per_epoch=5)  # stepped per batch
    np.testing.assert_allclose(cycle.reshape(-1), torch_onecycle_lr(0.1, 20)(jnp.arange(20)), rtol=1e-6)
    np.testing.assert_allclose(sgd.schedule_table("fixed", 0.1, 2, 3), 0.1)
    with pytest.raises(ValueError, match="schedule"):
        sgd.schedule_table("cosine", 0.1, 2, 3)
    with pytest.raises(ValueError, match="optimizer"):
        sgd.optimizer_env(TASK, "rmsprop")


@flax.struct.dataclass
class FixedLR:
    """Controller acting with the GlobalLREnv action of one LR."""

    lr: float

    def init(self, key, num_agents):
        return ()

    def act(self, key, obs, carry, done):
        return jnp.full((1, 1), lr_to_action(self.lr, 1e-6, 1.0)), carry


def test_policy_rollout_and_schedule_share_epochs(env):
    """A controller through ``step_env`` and the same constant schedule see the same minibatches."""
    params, key = env.default_params, jax.random.key(3)
    by_policy = jax.jit(lambda k: sgd.run_policy(env, params, FixedLR(1e-2), k))(key)
    by_table = jax.jit(lambda k: sgd.run_schedule(env, params, sgd.schedule_table("fixed", 1e-2, 2, env.steps_per_epoch), k))(key)
    np.testing.assert_allclose(by_policy["val_loss"], by_table["val_loss"], rtol=1e-3)
    np.testing.assert_allclose(by_policy["lr"], 1e-2, rtol=1e-4)
    assert not np.any(by_table["diverged"])


def test_divergence_is_reported_not_raised(env):
    params = env.default_params.replace(lr_max=1e6)
    curves = jax.jit(lambda k: sgd.run_schedule(env, params, jnp.full((2, env.steps_per_epoch), 1e6), k))(jax.random.key(0))
    assert bool(curves["diverged"][-1])
    assert np.isinf(sgd.final_losses(curves))
    summary = sgd.loss_summary(np.array([0.5, np.inf, 0.3]))
    assert summary == {"best": 0.3, "avg": pytest.approx(0.4), "diverged_runs": 1, "runs": 3, "divergent": True}
    assert sgd.loss_summary(np.array([np.inf]))["best"] == np.inf


def test_smoke_run_writes_tables(tmp_path, capsys, experiment):
    exp = experiment("sgd_scheduler")
    with pytest.raises(SystemExit) as info:
        exp.main(["--help"])
    assert info.value.code == 0
    out = str(tmp_path / "run")
    result = exp.main(["--smoke", "--out", out, "--init-lrs", "1e-3", "--optimizers", "sgd"])  # one compile each
    rows = result["rows"]
    assert {r["method"] for r in rows} == {"Agent (PPO)", "SGD grid search", "SGD-SLS", "SGD-ConstantLR",
                                           "SGD-OneCycleLR"}
    saved = json.load(open(os.path.join(out, "results.json")))
    assert [(r["method"], r["init_lr"], r["diverged_runs"]) for r in saved["rows"]] == \
        [(r["method"], r["init_lr"], r["diverged_runs"]) for r in rows]
    np.testing.assert_allclose([r["best"] for r in saved["rows"]], [r["best"] for r in rows])
    readme = open(os.path.join(out, "README.md")).read()
    csv_lines = open(os.path.join(out, "results.csv")).read().strip().splitlines()
    assert csv_lines[0].startswith("init_lr,method,best_final_loss") and len(csv_lines) == 1 + len(rows)
    for line, r in zip(csv_lines[1:], rows):  # every row in the CSV and in the README's table, with its numbers
        init_lr, method, best, _, diverged, runs, _ = line.split(",")
        assert (float(init_lr), method, int(diverged), int(runs)) == (r["init_lr"], r["method"], r["diverged_runs"],
                                                                      r["runs"])
        np.testing.assert_allclose(float(best), r["best"], rtol=1e-5)
        assert any(row.startswith(f"| {method} | ") and f"| {diverged}/{runs} |" in row for row in readme.splitlines())
    image = imread(os.path.join(out, "schedule.png"))  # a decodable figure that is not blank
    assert image.ndim == 3 and image.shape[1] > image.shape[0] and image[..., :3].std() > 0.01
    assert result["budgets"]["grid_steps_per_optimizer"] == {"sgd": 1_000}
    with pytest.raises(FileExistsError):
        exp.main(["--smoke", "--out", out])
