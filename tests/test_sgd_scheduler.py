"""Paper-000 baselines (ganno_jax.sgd_scheduler.baselines), their grids through evaluation's grid runner
(ganno_jax.evaluation.global_lr) and the experiments/sgd_scheduler.py smoke run."""
import dataclasses
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
from ganno_jax.evaluation import global_lr
from ganno_jax.sgd_scheduler import baselines as sgd
from ganno_jax.agents import IPPOConfig
from ganno_jax.sgd_scheduler import GlobalEnvParams, lr_to_action

TASK = gj.tasks.get("digits-mlp", width=2, batch_size=128, horizon=2, eval_batch=64, optimizer="sgd")


@pytest.fixture(scope="module")
def env():
    return sgd.optimizer_env(TASK, "sgd")


def test_grid_search_runs_one_episode_per_lr(env):
    """8 grid LRs through the grid runner, 3 runs at a time (the last chunk padded), with progress."""
    done = []
    res, plan = global_lr.grid_search(env, env.default_params, jax.random.key(0), num_lrs=8, max_parallel_runs=3,
                                      on_chunk=done.append)
    assert (plan.chunk, done) == (3, [3, 3, 2])
    np.testing.assert_allclose(res["lrs"], np.arange(1, 9) / 8, rtol=1e-6)  # the paper's linear [0, 1] grid
    np.testing.assert_array_equal(res["steps"], TASK.horizon * env.steps_per_epoch)  # one whole run per LR
    assert np.all(np.isfinite(res["final_loss"]) | res["diverged"])
    assert float(res["best_lr"]) == float(res["lrs"][np.argmin(res["final_loss"])])
    log = sgd.grid_lrs("log", 100, 1e-6, 1.0)
    np.testing.assert_allclose([log[0], log[-1]], [1e-6, 1.0], rtol=1e-5)
    np.testing.assert_allclose(np.diff(np.log10(log)), 6 / 99, rtol=1e-4)
    for bad, match in [(("cubic", 4), "spacing"), (("linear", 0), "num_lrs")]:
        with pytest.raises(ValueError, match=match):
            sgd.grid_lrs(*bad, 1e-6, 1.0)


def test_adagrad_matches_pytorch():
    """The Adagrad direction times the LR is torch.optim.Adagrad (defaults) step for step."""
    torch = pytest.importorskip("torch")
    grads = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    grads[:, 0] = 0.0  # a coordinate that never gets a gradient stays put, as in PyTorch
    w = torch.zeros(4, requires_grad=True)
    opt = torch.optim.Adagrad([w], lr=0.1)
    tx = sgd.BASELINE_OPTIMIZERS["adagrad"]()
    p, state = jnp.zeros(4), tx.init(jnp.zeros(4))
    for g in grads:
        w.grad = torch.tensor(g)
        opt.step()
        u, state = tx.update(jnp.asarray(g), state, p)
        p = p - 0.1 * u
        np.testing.assert_allclose(p, w.detach().numpy(), rtol=1e-5, atol=1e-7)
    assert p[0] == 0.0


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
    """A controller through ``step_env`` and the same constant schedule see the same minibatches, and
    policies and schedules run as grids with the dataset an argument (another dataset, other results)."""
    params, keys = env.default_params, jax.random.split(jax.random.key(3), 2)
    by_policy, _ = global_lr.map_policies(env, params, FixedLR(jnp.full(2, 1e-2)), keys)
    tables = global_lr.schedule_tables("fixed", [1e-2, 1e-2], TASK.horizon, env.steps_per_epoch)
    by_table, _ = global_lr.map_schedules(env, params, tables, keys)
    assert by_table["val_loss"].shape == (2, TASK.horizon)
    np.testing.assert_allclose(by_policy["val_loss"], by_table["val_loss"], rtol=1e-3)
    np.testing.assert_allclose(by_policy["lr"], 1e-2, rtol=1e-4)
    assert not np.any(by_table["diverged"]) and by_table["val_loss"][0, -1] != by_table["val_loss"][1, -1]
    data = params.data
    shuffled = params.replace(data=data.replace(y_val=data.y_val[::-1]))
    other, _ = global_lr.map_schedules(env, shuffled, tables, keys)
    assert np.all(other["val_loss"] != by_table["val_loss"])


def test_divergence_is_reported_not_raised(env):
    params = env.default_params.replace(lr_max=1e6)
    run = jax.jit(lambda k: sgd.run_schedule(env, params, jnp.full((2, env.steps_per_epoch), 1e6), k))
    curves = run(jax.random.key(0))
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
    # two agent LRs: agents trained with different PPO LRs are stacked into one evaluation
    result = exp.main(["--smoke", "--out", out, "--init-lrs", "1e-3,5e-3", "--optimizers", "sgd"])
    rows = result["rows"]
    assert {r["method"] for r in rows} == {"Agent (PPO)", "SGD grid search", "SGD grid-search best LR", "SGD-SLS",
                                           "SGD-ConstantLR", "SGD-OneCycleLR"}
    # equal budgets, counted from what ran: every row's runs train one whole run of 2 epochs x 10 steps, the
    # grid search trains 4 such runs and each agent as many epochs (8 env steps)
    assert {r["steps"] for r in rows} == {2 * 10}
    assert result["budgets"]["grid_search_steps"] == {"sgd": 4 * 2 * 10}
    assert result["budgets"]["agent_training_steps"] == 4 * 2 * 10
    assert result["config"]["budgets"]["grid_search_steps"] == result["config"]["budgets"]["agent_training_steps"]
    saved = json.load(open(os.path.join(out, "results.json")))
    assert [(r["method"], r["init_lr"], r["diverged_runs"], r["steps"]) for r in saved["rows"]] == \
        [(r["method"], r["init_lr"], r["diverged_runs"], r["steps"]) for r in rows]
    np.testing.assert_allclose([r["best"] for r in saved["rows"]], [r["best"] for r in rows])
    readme = open(os.path.join(out, "README.md")).read()
    csv_lines = open(os.path.join(out, "results.csv")).read().strip().splitlines()
    assert csv_lines[0].startswith("init_lr,method,best_final_loss") and len(csv_lines) == 1 + len(rows)
    for line, r in zip(csv_lines[1:], rows):  # every row in the CSV and in the README's table, with its numbers
        init_lr, method, best, _, diverged, runs, _, steps = line.split(",")
        assert (float(init_lr), method, int(diverged), int(runs), int(steps)) == (
            r["init_lr"], r["method"], r["diverged_runs"], r["runs"], r["steps"])
        np.testing.assert_allclose(float(best), r["best"], rtol=1e-5)
        assert any(row.startswith(f"| {method} | ") and f"| {diverged}/{runs} |" in row and row.endswith(f"| {steps} |")
                   for row in readme.splitlines())
    image = imread(os.path.join(out, "schedule.png"))  # a decodable figure that is not blank
    assert image.ndim == 3 and image.shape[1] > image.shape[0] and image[..., :3].std() > 0.01
    with pytest.raises(FileExistsError):
        exp.main(["--smoke", "--out", out])


def test_print_config_is_the_resolved_configuration(tmp_path, capsys, experiment):
    """``--print-config`` prints one JSON object with every field, trains nothing and writes nothing."""
    exp = experiment("sgd_scheduler")
    out = tmp_path / "never"
    config = exp.main(["--scale", "paper", "--print-config", "--out", str(out), "--reward", "val_loss"])
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(config)) and not out.exists()
    assert set(printed["task"]) == {f.name for f in dataclasses.fields(gj.tasks.Task)}
    assert set(printed["env_params"]) == {f.name for f in dataclasses.fields(GlobalEnvParams)} - {"data"}
    assert set(printed["ppo"]) == {f.name for f in dataclasses.fields(IPPOConfig)}
    task, grid, budgets = printed["task"], printed["grid"], printed["budgets"]
    assert ((task["model"], task["horizon"], task["batch_size"], task["weight_decay"])
            == ("torch_mnist_cnn", 100, 64, 0.0))
    assert printed["env_params"]["reward_mode"] == "val_loss" and printed["seeds"] == 5
    assert printed["ppo"]["lr"] == [5e-4, 1e-3, 5e-3, 1e-2] and "adagrad" in printed["optimizers"]
    np.testing.assert_allclose(grid["lrs"], np.arange(1, 101) / 100, rtol=1e-6)
    spe = budgets["steps_per_epoch"]
    assert grid["steps_per_point"] == budgets["steps_per_evaluation_run"] == 100 * spe
    assert budgets["grid_search_steps"] == budgets["agent_training_steps"] == 100 * 100 * spe
    assert printed["ppo"]["total_timesteps"] == 10_000  # "10K training iterations" (Fig. 3): epochs
    with pytest.raises(ValueError, match="multiple of num_envs"):
        exp.main(["--smoke", "--print-config", "--grid-lrs", "3"])
