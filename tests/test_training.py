"""Run folders, orbax checkpoints, resume, the ``ganno`` command and tiny end-to-end GANNO training."""
import csv
import dataclasses
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ganno_jax as gj
from ganno_jax import checkpoint, cli, evaluate, runs, training
from ganno_jax.evaluation import controllers
from ganno_jax.agents import IPPOConfig, make_train

TINY_TASK = gj.tasks.get("digits-mlp", tau=3, horizon=4, batch_size=16, width=2, eval_batch=64)
TINY_CFG = IPPOConfig(num_envs=2, num_steps=8, total_timesteps=2 * 8 * 4, update_epochs=1, num_minibatches=2,
                      actor_layers=(16,), gru_size=8, actor_post_gru=8, critic_layers=(16,))


def leaves_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ---------------------------------------------------------------- checkpoints


def test_checkpoint_round_trip_with_prng_keys(tmp_path):
    tree = {"w": jnp.arange(6.0).reshape(2, 3), "key": jax.random.key(3), "n": jnp.int32(7)}
    checkpoint.save(str(tmp_path), 5, tree)
    assert checkpoint.latest_step(str(tmp_path)) == 5
    step, restored = checkpoint.restore(str(tmp_path), tree)
    assert step == 5
    np.testing.assert_array_equal(restored["w"], tree["w"])
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]), jax.random.key_data(tree["key"]))


def test_checkpoint_errors_name_the_folder(tmp_path):
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.restore(str(tmp_path / "missing"), {"w": jnp.zeros(2)})
    checkpoint.save(str(tmp_path), 1, {"w": jnp.zeros(2)})
    with pytest.raises(checkpoint.CheckpointError, match=str(tmp_path)):
        checkpoint.restore(str(tmp_path), {"w": jnp.zeros(2), "extra": jnp.zeros(3)})
    for root, _, files in os.walk(tmp_path / "1"):  # corrupt every stored file
        for name in files:
            with open(os.path.join(root, name), "wb") as f:
                f.write(b"not a checkpoint")
    with pytest.raises(checkpoint.CheckpointError, match="corrupt"):
        checkpoint.restore(str(tmp_path), {"w": jnp.zeros(2)})


# ---------------------------------------------------------------- run folders


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("runs") / "full")
    state = training.train_run(out, TINY_TASK, TINY_CFG, seed=1, checkpoint_every=1, progress=False)
    return out, state


def test_run_folder_contents(full_run):
    out, _ = full_run
    with open(os.path.join(out, "config.json")) as f:
        conf = json.load(f)
    assert conf["task"]["model"] == "mlp" and conf["ippo"]["num_envs"] == 2 and conf["variant"] == "ganno"
    with open(os.path.join(out, "metrics.csv")) as f:
        rows = list(csv.DictReader(f))
    assert [int(float(r["update"])) for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(float(r["mean_reward"])) for r in rows)
    assert checkpoint.latest_step(os.path.join(out, "checkpoints")) == 4


def test_killed_run_resumes_to_the_same_result(full_run, tmp_path):
    _, uninterrupted = full_run
    out = str(tmp_path / "killed")
    training.train_run(out, TINY_TASK, TINY_CFG, seed=1, checkpoint_every=1, progress=False, max_checkpoints=2)
    assert checkpoint.latest_step(os.path.join(out, "checkpoints")) == 2
    resumed = training.train_run(out, resume=True, checkpoint_every=1, progress=False)
    leaves_equal(resumed.params, uninterrupted.params)
    leaves_equal(resumed.obs_stats, uninterrupted.obs_stats)
    with open(os.path.join(out, "metrics.csv")) as f:
        assert len(list(csv.DictReader(f))) == 4


def test_existing_run_folder_is_not_overwritten(full_run):
    out, _ = full_run
    with pytest.raises(FileExistsError, match="--overwrite"):
        training.train_run(out, TINY_TASK, TINY_CFG, progress=False)


def test_mismatched_checkpoint_is_a_clear_error(full_run, tmp_path):
    out, _ = full_run
    other = str(tmp_path / "other")
    os.makedirs(other)
    conf = json.load(open(os.path.join(out, "config.json")))
    conf["ippo"]["gru_size"] = 4  # the stored parameters no longer fit
    with open(os.path.join(other, "config.json"), "w") as f:
        json.dump(conf, f)
    os.symlink(os.path.join(out, "checkpoints"), os.path.join(other, "checkpoints"))
    with pytest.raises(checkpoint.CheckpointError, match="does not match"):
        controllers.from_run(other)


def test_trained_policy_evaluates(full_run):
    out, _ = full_run
    policy = controllers.from_run(out)
    res = evaluate.run(policy, TINY_TASK, init_lrs=(1e-3,), seeds=2)
    assert res.method == "GANNO"
    assert res.final_acc.shape == (1, 2) and np.all(np.isfinite(res.final_acc))


def test_run_config_checks_agents_and_episodes_and_reads_old_folders(full_run):
    with pytest.raises(ValueError, match="members=0 .* integer >= 1"):
        runs.RunConfig(TINY_TASK, TINY_CFG, members=0)
    with pytest.raises(ValueError, match="log_episodes=.*integers >= 0"):
        runs.RunConfig(TINY_TASK, TINY_CFG, log_episodes=(0, -1))
    conf = json.load(open(os.path.join(full_run[0], "config.json")))
    assert conf["members"] == 1 and conf["log_episodes"] == list(training.FIG1_EPISODES)
    old = runs.RunConfig.from_dict({k: v for k, v in conf.items() if k not in ("members", "log_episodes")})
    assert old.members == 1 and old.log_episodes == ()


def test_unknown_variant_lists_valid_ones():
    with pytest.raises(ValueError, match="lr_only"):
        runs.RunConfig(TINY_TASK, TINY_CFG, variant="bogus")


# ---------------------------------------------------------------- end to end


@pytest.mark.parametrize("variant", ["single_agent", "timestep_only"])
def test_variants_train(variant):
    config = runs.RunConfig(TINY_TASK, TINY_CFG, variant=variant)
    env, params = config.env(config.datasets()[0])
    cfg = IPPOConfig(num_envs=2, num_steps=8, total_timesteps=16, update_epochs=1, num_minibatches=1,
                     actor_layers=(8,), gru_size=4, actor_post_gru=4, critic_layers=(8,))
    out = jax.jit(make_train(cfg, env, params))(jax.random.key(0))
    assert np.all(np.isfinite(out.metrics["loss"]["total"]))


def test_tiny_ganno_training_on_cnn2_with_difference_reward():
    task = gj.tasks.get("digits-cnn2", tau=2, horizon=3, batch_size=16, width=2, eval_batch=64)
    env = gj.env.LayerwiseLREnv(task)
    params = env.default_params
    cfg = IPPOConfig(num_envs=2, num_steps=8, total_timesteps=32, update_epochs=1, num_minibatches=2,
                     actor_layers=(16,), gru_size=8, actor_post_gru=8, critic_layers=(16,))
    out = jax.jit(make_train(cfg, env, params))(jax.random.key(0))
    assert out.metrics["val_acc"].shape == (2, 8, 2)
    assert np.all(np.isfinite(out.metrics["reward"]))
    assert np.all(np.isfinite(out.metrics["loss"]["total"]))


# ---------------------------------------------------------------- the ganno command


def test_cli_train_help_shows_paper_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--total-timesteps" in text and "50000" in text and "--resume" in text and "--members" in text
    flat = " ".join(text.split())
    assert "(default: 1e-05)" in flat and "(default: 0)" in flat  # an explicit default and an added one
    assert flat.count("(default: digits-cnn2)") == 1 and "(default: None)" not in flat
    assert not re.search(r"\(default: [^)]*\) \(default:", flat) and "(default: )" not in flat  # once, never empty


def test_training_programs_take_the_datasets_as_arguments(tmp_path):
    """The jitted init/update get the tasks' datasets as arguments (closed over, the program would embed
    them as constants: ~2 characters of program text per byte, and a copy per cached executable)."""
    from ganno_jax import data
    from ganno_jax.evaluation import chunked

    rng = np.random.default_rng(0)
    data.from_arrays("trainmem", rng.normal(size=(6000, 32, 32, 1)), rng.integers(0, 10, 6000),
                     rng.normal(size=(1000, 32, 32, 1)), rng.integers(0, 10, 1000), register=False,
                     save_to=str(tmp_path))
    task = gj.tasks.get("trainmem-mlp", tau=2, horizon=2, batch_size=8, width=2, eval_batch=64, data_dir=str(tmp_path))
    config = runs.RunConfig(task, TINY_CFG, tasks=(TINY_TASK,))
    datasets = config.datasets()
    init, update = runs.run_programs(config, None)
    key = jax.random.key(0)
    state = init(datasets, key)
    data_bytes = chunked.tree_bytes(datasets[0])
    assert len(init.lower(datasets, key).as_text()) < data_bytes / 20
    assert len(update.lower(datasets, state, 1).as_text()) < data_bytes / 20


def test_cli_train_then_evaluate(tmp_path, capsys):
    run = str(tmp_path / "run")
    task_flags = ["--task", "digits-mlp", "--tau", "3", "--horizon", "4", "--batch-size", "16", "--width", "2",
                  "--weight-decay-mode", "l2"]
    small = ["--num-envs", "2", "--num-steps", "8", "--total-timesteps", "16", "--update-epochs", "1",
             "--num-minibatches", "1", "--actor-layers", "8", "--gru-size", "4", "--actor-post-gru", "4",
             "--critic-layers", "8"]
    env_flags = ["--init-lr-min", "1e-4", "--init-wd", "0.01", "--lr-max", "0.05", "--reward-mode", "accuracy",
                 "--actions", "wide"]
    assert cli.main(["train", *task_flags, *small, *env_flags, "--out", run]) == 0
    saved_params = json.load(open(os.path.join(run, "config.json")))["env_params"]  # every EnvParams field
    assert saved_params == {**saved_params, "init_lr_min": 1e-4, "init_lr_max": 1e-2, "init_lr": None, "init_wd": 0.01,
                            "lr_min": 0.0, "lr_max": 0.05, "reward_mode": "accuracy", "obs_mask": None,
                            "action_set": "wide"}
    assert set(saved_params) == {f.name for f in dataclasses.fields(gj.env.EnvParams)} - {"data"}
    assert runs.load_config(run).env_params == gj.env.EnvParams(init_lr_min=1e-4, init_wd=0.01, lr_max=0.05,
                                                                reward_mode="accuracy", action_set="wide")
    # `ganno evaluate` runs under the run's EnvParams whole (LR clip range included)
    assert controllers.from_run(run).env_params == runs.load_config(run).env_params
    rows = list(csv.DictReader(open(os.path.join(run, "metrics.csv"))))
    assert [r["update"] for r in rows] == ["1"] and int(rows[0]["env_steps"]) == 16  # 16 steps = one update
    assert cli.main(["train", *task_flags, *small, "--out", run]) == 2  # exists, no --overwrite
    assert "--overwrite" in capsys.readouterr().err
    res = str(tmp_path / "eval")
    # no size flags: the run's tau, horizon, width, batch size and weight-decay mode carry over (same dataset)
    assert cli.main(["evaluate", "--run", run, "--task", "digits-mlp", "--methods", "constant,random", "--init-lrs",
                     "1e-3", "--seeds", "1", "--out", res, "--no-progress"]) == 0
    assert {"results.md", "results.csv", "results.json", "accuracy_curves.png"} <= set(os.listdir(res))
    saved = json.load(open(os.path.join(res, "results.json")))
    assert saved["task"] == dataclasses.asdict(runs.load_config(run).task)
    assert (saved["task"]["tau"], saved["task"]["width"], saved["task"]["weight_decay_mode"]) == (3, 2, "l2")
    assert [r["method"] for r in saved["results"]] == ["GANNO", "constant", "random"]
    assert all(np.asarray(r["curves"]["test_acc"]).shape == (1, 1, 4) for r in saved["results"])
    out = capsys.readouterr().out
    assert "| GANNO |" in out and open(os.path.join(res, "results.md")).read() in out


def test_cli_bad_method_lists_valid_names(tmp_path, capsys):
    code = cli.main(["evaluate", "--methods", "bogus", "--out", str(tmp_path / "x")])
    assert code == 2 and "constant" in capsys.readouterr().err
