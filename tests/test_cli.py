"""The ``ganno`` command and the scripts share their flags (``flags.py``); a run's sizes carry over into its
evaluation; refusals leave nothing behind. Nothing here compiles a training or evaluation program."""
from __future__ import annotations

import os

import pytest

import ganno_jax as gj
from ganno_jax import cli, experiment, flags
from ganno_jax.env.layerwise import REWARD_MODES
from ganno_jax.env.wrappers import VARIANTS
from ganno_jax.evaluation.controllers import EVAL_ACTIONS
from ganno_jax.scales import GANNO_SCALES, SCALE_NAMES
from ganno_jax.tasks.config import WEIGHT_DECAY_MODES


def _actions(parser) -> dict:
    """{flag: argparse action} of ``parser`` (a ``ganno`` subcommand's or a script's)."""
    return {s: a for a in parser._actions for s in a.option_strings}


def _sub(command: str):
    return cli.build_parser()._subparsers._group_actions[0].choices[command]


def test_shared_flags_have_one_definition_and_the_constants_choices():
    train, evaluate = _actions(_sub("train")), _actions(_sub("evaluate"))
    script = _actions(experiment.parser("x.py", "GANNO paper", "results/x"))
    for flag in ("--init-lrs", "--seeds", "--eval-actions", "--test-batch", "--seed", "--scale", "--tau", "--width",
                 "--weight-decay-mode", "--data-dir", "--max-parallel-runs", "--no-progress", "--out", "--overwrite"):
        assert evaluate[flag].type == script[flag].type and evaluate[flag].choices == script[flag].choices, flag
        assert evaluate[flag].help.split(" (default")[0].startswith(flags.FLAGS[flag]["help"]), flag
    assert tuple(evaluate["--eval-actions"].choices) == EVAL_ACTIONS
    assert tuple(script["--scale"].choices) == SCALE_NAMES
    assert tuple(train["--weight-decay-mode"].choices) == WEIGHT_DECAY_MODES
    assert tuple(train["--reward-mode"].choices) == REWARD_MODES
    assert tuple(train["--variant"].choices) == tuple(VARIANTS)
    # defaults that differ by front door are explicit and shown
    assert evaluate["--seeds"].default == 5 and "(default: 5)" in evaluate["--seeds"].help
    assert script["--seeds"].default is None and "the scale's" in script["--seeds"].help
    assert evaluate["--eval-actions"].default == "greedy" and script["--eval-actions"].default is None


def test_flags_parse_as_before():
    args = cli.build_parser().parse_args(["evaluate", "--out", "x", "--init-lrs", "1e-3,0.01", "--methods",
                                          "constant, cosine", "--weight-decay-mode", "l2"])
    assert args.init_lrs == (1e-3, 0.01) and args.methods == ("constant", "cosine") and args.seeds == 5
    assert flags.given_sizes(args) == {"weight_decay_mode": "l2"}
    args = cli.build_parser().parse_args(["train", "--out", "x"])
    assert args.members == 1 and args.seed == 0 and args.variant == "ganno" and flags.given_sizes(args) == {}


RUN_TASK = gj.tasks.get("digits-mlp", tau=3, horizon=4, width=2, batch_size=16, weight_decay_mode="l2")


def _evaluate_args(*argv):
    return cli.build_parser().parse_args(["evaluate", "--out", "x", *argv])


def test_a_runs_sizes_carry_over_on_its_dataset():
    task = flags.task_from("digits-cnn3", _evaluate_args(), run_task=RUN_TASK)
    assert (task.model, task.tau, task.horizon, task.width, task.batch_size) == ("cnn3", 3, 4, 2, 16)
    assert task.weight_decay_mode == "l2" and task.optimizer == RUN_TASK.optimizer
    assert flags.task_from("digits-cnn3", _evaluate_args()) == gj.tasks.get("digits-cnn3")  # no run: the registry's


def test_another_dataset_keeps_its_own_width_and_batch():
    task = flags.task_from("mnist1d-mlp", _evaluate_args(), run_task=RUN_TASK)
    target = gj.tasks.get("mnist1d-mlp")
    assert (task.tau, task.horizon, task.weight_decay_mode) == (3, 4, "l2")
    assert (task.width, task.batch_size) == (target.width, target.batch_size)


def test_an_explicit_flag_or_scale_wins_over_the_run():
    args = _evaluate_args("--tau", "7", "--width", "5", "--weight-decay-mode", "decoupled")
    task = flags.task_from("digits-mlp", args, run_task=RUN_TASK)
    assert (task.tau, task.horizon, task.width, task.weight_decay_mode) == (7, 4, 5, "decoupled")
    task = flags.task_from("digits-mlp", _evaluate_args(), explicit_sizes=flags.scale_sizes("cpu"), run_task=RUN_TASK)
    cpu = GANNO_SCALES["cpu"].task
    assert (task.tau, task.horizon, task.width, task.batch_size) == (cpu["tau"], cpu["horizon"], cpu["width"],
                                                                     cpu["batch_size"])
    assert task.weight_decay_mode == "l2"  # the cpu scale leaves the mode alone: the run's


def test_train_weight_decay_mode_flag():
    args = cli.build_parser().parse_args(["train", "--out", "x", "--task", "digits-mlp", "--weight-decay-mode", "l2"])
    assert cli._train_tasks(args)[0].weight_decay_mode == "l2"


@pytest.mark.parametrize("argv,message", [
    (["--task", "mnist-mlp", "--data-dir", "{tmp}/nonexistent"], "nonexistent"),
    (["--task", "digits-mlp", "--num-envs", "3", "--devices", "2"], "num_"),
])
def test_train_refusals_leave_no_folder(tmp_path, capsys, argv, message):
    out = tmp_path / "R"
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main(["train", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganno train: error: ") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_an_import_that_raises_is_one_line(tmp_path, capsys):
    plugin = tmp_path / "broken.py"
    plugin.write_text("raise RuntimeError('no such model here')\n")
    out = tmp_path / "R"
    assert cli.main(["train", "--import", str(plugin), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"ganno train: error: --import {plugin}: RuntimeError: no such model here"
    assert cli.main(["evaluate", "--import", "no_such_module_here", "--out", str(out)]) == 2
    assert "--import no_such_module_here: ModuleNotFoundError" in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_refuses_a_missing_run_before_writing(tmp_path, capsys):
    out = tmp_path / "res"
    assert cli.main(["evaluate", "--run", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "not a run folder" in capsys.readouterr().err and not os.path.exists(out)
