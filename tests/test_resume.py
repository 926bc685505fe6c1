"""``ganno train`` killed for real (SIGKILL, subprocess) and resumed with ``--resume`` ends bit for bit
as an uninterrupted run; a half-written checkpoint left by a kill during a save is never loaded.
The runs train two agents as one vmap (``--members 2``: stacked state, each agent's env copies split
over the CPU devices) and log the schedules of episodes 0, 1 and 5 (paper Fig. 1; episode 5 spans the
kill's chunk boundary); the uninterrupted run's folder also serves the tests of both features.

All runs go through the same command (``python -m ganno_jax.cli``), so they split the env copies over
the same CPU devices. They share a persistent compilation cache: the reference run compiles, the
others load the same executables (compilation dominates the test's time).
"""
import csv
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import matplotlib.image
import numpy as np
import pytest
from orbax.checkpoint.utils import TMP_DIR_SUFFIX

from ganno_jax import checkpoint, runs, run_log

CHUNK, UPDATES, AGENTS = 2, 12, 2  # 6 checkpoints: the kill after the first leaves most of the run to do
FLAGS = ["--task", "digits-mlp", "--tau", "2", "--horizon", "3", "--batch-size", "16", "--width", "2",
         "--num-envs", "2", "--num-steps", "8", "--total-timesteps", str(UPDATES * 2 * 8), "--update-epochs", "1",
         "--num-minibatches", "2", "--actor-layers", "8", "--gru-size", "4", "--actor-post-gru", "4",
         "--critic-layers", "8", "--seed", "3", "--checkpoint-every", str(CHUNK), "--members", str(AGENTS),
         "--log-episodes", "0,1,5"]  # episode 5 = env steps 15..17 of a copy: updates 2 and 3, chunks 1 and 2
TIMING_FIELDS = {"env_steps_per_s"}  # the only metrics column that may differ between runs


def _env(cache_dir):
    return {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


def _ganno(*args):
    return [sys.executable, "-m", "ganno_jax.cli", "train", *args]


def _run(cmd, env):
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _finalized_steps(ckpt_dir):
    """Step folders as orbax names them once a save is committed (temporary folders excluded)."""
    names = os.listdir(ckpt_dir) if os.path.isdir(ckpt_dir) else []
    return sorted(int(n) for n in names if re.fullmatch(r"\d+", n))


def _kill_after_first_checkpoint(run, env, log):
    """Starts a training run and SIGKILLs it as soon as its first checkpoint is committed (in practice
    while it runs the next chunk: its metrics rows are not written yet)."""
    with open(log, "w") as err:
        proc = subprocess.Popen(_ganno(*FLAGS, "--out", run), env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 300
        while not _finalized_steps(os.path.join(run, "checkpoints")) and proc.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with open(log) as err:
        assert proc.returncode == -signal.SIGKILL, f"the run ended before it was killed:\n{err.read()[-3000:]}"


def _fake_interrupted_save(run, ref):
    """What a kill during the save after the last committed checkpoint leaves: the next step's
    metrics rows already written (training writes them first) and its checkpoint folder complete but
    not yet renamed from orbax's temporary name. Its content is the last committed state, so loading
    it would skip a chunk; the rows carry nonsense rewards, so keeping them would show."""
    ckpt_dir = os.path.join(run, "checkpoints")
    last = checkpoint.latest_step(ckpt_dir)
    shutil.copytree(os.path.join(ckpt_dir, str(last)), os.path.join(ckpt_dir, f"{last + CHUNK}{TMP_DIR_SUFFIX}"))
    rows = _rows(run)[:last] + [{**r, "mean_reward": "999"} for r in _rows(ref)[last:last + CHUNK]]
    with open(os.path.join(run, "metrics.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=run_log.metric_fields(AGENTS))
        writer.writeheader()
        writer.writerows(rows)
    return last


def _rows(run, name="metrics.csv"):
    with open(os.path.join(run, name)) as f:
        return list(csv.DictReader(f))


def _final_state(run):
    config = runs.load_config(run)
    like = runs.runner_state_like(config)
    return checkpoint.restore(os.path.join(run, "checkpoints"), like)


def _assert_trees_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def ref_and_resumed(tmp_path_factory):
    """(uninterrupted run, run SIGKILLed after its first checkpoint, given a faked half-written save and
    resumed) folders, both from the same flags."""
    tmp_path = tmp_path_factory.mktemp("resume")
    env = _env(tmp_path / "jax-cache")
    ref, run = str(tmp_path / "ref"), str(tmp_path / "run")
    _run(_ganno(*FLAGS, "--out", ref), env)

    _kill_after_first_checkpoint(run, env, tmp_path / "killed.log")
    killed_at = checkpoint.latest_step(os.path.join(run, "checkpoints"))
    assert CHUNK <= killed_at < UPDATES  # killed mid-run, after a committed checkpoint

    last = _fake_interrupted_save(run, ref)
    assert checkpoint.latest_step(os.path.join(run, "checkpoints")) == last  # the temporary folder is no step
    _run(_ganno("--resume", run, "--checkpoint-every", str(CHUNK)), env)
    return ref, run


def test_sigkilled_train_resumes_bit_identical_and_skips_half_written_checkpoint(ref_and_resumed):
    ref, run = ref_and_resumed
    ref_step, ref_state = _final_state(ref)
    run_step, run_state = _final_state(run)
    assert run_step == ref_step == UPDATES
    assert jax.tree.leaves(run_state.params)[0].shape[0] == AGENTS  # stacked agents
    _assert_trees_equal(run_state, ref_state)  # params, optimiser state, normalisers, env states, keys
    ckpt_names = os.listdir(os.path.join(run, "checkpoints"))
    assert not [n for n in ckpt_names if TMP_DIR_SUFFIX in n], ckpt_names
    deterministic = [f for f in run_log.metric_fields(AGENTS) if f not in TIMING_FIELDS]
    assert [[r[f] for f in deterministic] for r in _rows(run)] == \
           [[r[f] for f in deterministic] for r in _rows(ref)]  # rows 1..UPDATES once each, same values
    schedules = _rows(run, "schedules.csv")
    assert schedules == _rows(ref, "schedules.csv")  # the rows before the kill kept once, the rest added
    assert [(r["episode"], r["step"], r["update"]) for r in schedules if r["episode"] == "5"] == \
           [("5", "1", "2"), ("5", "2", "3"), ("5", "3", "3")]


def test_agents_train_independently_and_load_as_a_stacked_policy(ref_and_resumed):
    ref, _ = ref_and_resumed
    policy, config = runs.load_policy(ref)
    assert config.members == AGENTS and config.log_episodes == (0, 1, 5)
    assert all(leaf.shape[0] == AGENTS for leaf in jax.tree.leaves((policy.params, policy.obs_stats)))
    kernel = np.asarray(jax.tree.leaves(policy.params)[0])
    assert not np.array_equal(kernel[0], kernel[1])  # own keys: different agents
    rows = _rows(ref)
    assert [int(r["episodes"]) for r in rows] == [8 * u // 3 for u in range(1, UPDATES + 1)]  # horizon 3
    for r in rows:  # the shared columns are means over the agents
        for field in ("mean_reward", "val_acc", "loss_total"):
            assert float(r[field]) == pytest.approx(np.mean([float(r[f"{field}_m{i}"]) for i in range(AGENTS)]))


def test_schedules_of_chosen_training_episodes(ref_and_resumed):
    ref, _ = ref_and_resumed
    config = runs.load_config(ref)
    horizon, tau, params = config.task.horizon, config.task.tau, config.env_params
    rows = _rows(ref, "schedules.csv")
    lr_cols = [k for k in rows[0] if k.startswith("lr_")]
    assert len(lr_cols) == config.env(config.datasets()[0])[0].num_agents
    for episode in (0, 1, 5):
        steps = [int(r["step"]) for r in rows if r["episode"] == str(episode)]
        assert steps == list(range(1, horizon + 1))
    assert [int(r["opt_step"]) for r in rows] == [tau * int(r["step"]) for r in rows]
    lrs = np.array([[float(r[c]) for c in lr_cols] for r in rows])
    assert np.all((lrs >= params.lr_min) & (lrs <= params.lr_max)) and np.ptp(lrs) > 0
    assert all(np.isfinite(float(r["train_loss"])) and 0 <= float(r["val_acc"]) <= 1 for r in rows)
    image = matplotlib.image.imread(os.path.join(ref, "schedules.png"))
    assert image.ndim == 3 and min(image.shape[:2]) > 100
