"""Every refusal of bad input, through the command a user types, leaves no file or folder behind, and the
corrected command then runs (issue 23, item 3). ``ganno train``'s data-dir, device and ``--import`` refusals
are in ``test_cli.py``; here: the checkpoint flags, ``--resume`` of a missing run, and the experiment scripts,
whose every input is checked (``experiment.check_inputs``) before their results folder is made."""
from __future__ import annotations

import os

import pytest

from ganno_jax import cli

TINY = ["--task", "digits-mlp", "--tau", "2", "--horizon", "2", "--batch-size", "16", "--width", "2",
        "--num-envs", "2", "--num-steps", "2", "--total-timesteps", "4", "--update-epochs", "1",
        "--num-minibatches", "1", "--seq-len", "2", "--actor-layers", "4", "--gru-size", "4", "--actor-post-gru", "4",
        "--critic-layers", "4", "--log-episodes", "", "--devices", "1"]


def _files(folder) -> set:
    """Every path under ``folder``, relative to it."""
    return {os.path.relpath(os.path.join(d, n), folder) for d, dirs, files in os.walk(folder) for n in dirs + files}


def _one_line_error(capsys, command: str, message: str) -> None:
    err = capsys.readouterr().err
    assert err.startswith(f"ganno {command}: error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("flag, message", [("--max-checkpoints", "max_checkpoints=0"),
                                           ("--checkpoint-every", "checkpoint_every=0"),
                                           ("--max-chunks", "max_checkpoints=0"),
                                           ("--chunk-updates", "checkpoint_every=0")])
def test_train_refuses_zero_checkpoint_flags_before_writing(tmp_path, capsys, flag, message):
    assert cli.main(["train", *TINY, flag, "0", "--out", str(tmp_path / "R")]) == 2
    _one_line_error(capsys, "train", message)
    assert _files(tmp_path) == set()


def test_train_resume_of_a_missing_run_creates_nothing(tmp_path, capsys):
    run = tmp_path / "never_trained"
    assert cli.main(["train", "--resume", str(run)]) == 2
    _one_line_error(capsys, "train", "not a run folder")
    assert _files(tmp_path) == set()


def test_corrected_command_runs_after_a_refusal_without_a_progress_bar(tmp_path, capsys):
    """The issue's complaint: a refused command left R/config.json, so the corrected one was refused too."""
    out = str(tmp_path / "R")
    assert cli.main(["train", *TINY, "--max-checkpoints", "0", "--out", out]) == 2
    capsys.readouterr()
    assert cli.main(["train", *TINY, "--max-checkpoints", "1", "--no-progress", "--out", out]) == 0
    captured = capsys.readouterr()
    assert "trained; run folder" in captured.out
    assert "upd" not in captured.err and "train digits-mlp" not in captured.err  # no tqdm bar
    assert {"config.json", "metrics.csv", "checkpoints"} <= set(os.listdir(out))


# experiments/*.py: (script, flags) of a refusal each; all run at their smoke sizes
SCRIPT_REFUSALS = [
    ("generalisation", ["--data-dir", "{tmp}/nonexistent"]),  # the data files are loaded before --out is made
    ("generalisation", ["--tau", "0"]),  # a task-size flag: the training task is built first
    ("generalisation", ["--init-lrs", "1e-3,0"]),
    ("warmup", ["--max-parallel-runs", "0"]),
    ("weight_decay", ["--train-task", "digits-mlp", "--eval-tasks", "cifar10-mlp", "--data-dir", "{tmp}/none"]),
    ("resnet", ["--train-run", "{tmp}/not_a_run"]),
    ("ablations", ["--variant-runs", "lr_only={tmp}/not_a_run"]),
    ("ablations", ["--width", "0"]),
    ("sgd_scheduler", ["--devices", "0"]),
    ("sgd_scheduler", ["--max-parallel-runs", "0"]),
    ("sgd_scheduler", ["--data-dir", "{tmp}/nonexistent"]),
    ("schedule_shapes", ["--init-lr", "0"]),
    ("beyond", ["--tau", "0"]),
    ("held_out", ["--tasks", "digits-cnn2"]),  # trained on by the family: not held out
    ("held_out", ["--controllers", "no-such-controller"]),
    ("held_out", ["--tasks", "mnist-cnn5", "--data-dir", "{tmp}/nonexistent"]),
    ("pretrain", ["--tasks", "digits-mlp,mnist1d-cnn5"]),  # a held-out task
    ("pretrain", ["--updates", "0"]),
    ("pretrain", ["--task-family", "paper", "--data-dir", "{tmp}/nonexistent"]),
]
#: how each script is made small (default: --smoke --no-progress)
SMOKE_FLAGS = {"schedule_shapes": [], "pretrain": ["--scale", "smoke", "--no-progress"]}


@pytest.mark.parametrize("name, extra", SCRIPT_REFUSALS)
def test_script_refusals_leave_nothing_behind(tmp_path, experiment, name, extra):
    extra = [a.replace("{tmp}", str(tmp_path)) for a in extra]
    smoke = SMOKE_FLAGS.get(name, ["--smoke", "--no-progress"])
    with pytest.raises((ValueError, FileNotFoundError)):
        experiment(name).main(["--out", str(tmp_path / "R"), *smoke, *extra])
    assert _files(tmp_path) == set()


def test_script_refuses_an_existing_out_and_leaves_it_as_it_was(tmp_path, experiment):
    out = tmp_path / "R"
    out.mkdir()
    (out / "mine.txt").write_text("kept")
    with pytest.raises(FileExistsError, match="--overwrite"):
        experiment("warmup").main(["--out", str(out), "--smoke", "--no-progress"])
    assert _files(tmp_path) == {"R", os.path.join("R", "mine.txt")}
    assert (out / "mine.txt").read_text() == "kept"
