"""experiments/*.py: each script runs end to end at --smoke size, writes tables and plots, refuses to
overwrite its results folder, and rejects bad input before any training.

Budget: one shared smoke training run (digits-mlp, through generalisation.py) is reused by every other
script through --train-run; evaluation uses the MLP task and one baseline to keep compilations few, and
a persistent compilation cache (this module only) lets scripts that evaluate the same program share it.
"""
from __future__ import annotations

import csv
import json
import os

import jax
import matplotlib.pyplot as plt
import numpy as np
import pytest

from ganno_jax import evaluate

SCRIPTS = ("generalisation", "resnet", "ablations", "warmup", "weight_decay")
FAST = ["--smoke", "--no-progress", "--eval-tasks", "digits-mlp", "--init-lrs", "1e-3"]


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    """Identical evaluation programs (same policy, task, weight decay) compile once across scripts."""
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    old = {n: getattr(jax.config, n) for n in names}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("xla_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield
    for n, v in old.items():
        jax.config.update(n, v)


@pytest.fixture(scope="module")
def gen_out(tmp_path_factory, experiment):
    out = str(tmp_path_factory.mktemp("exp") / "generalisation")
    tables = experiment("generalisation").main(["--out", out, "--train-task", "digits-mlp",
                                                "--baselines", "constant", *FAST])
    return out, tables


def assert_written(out: str, folder: str, names=("results",)):
    """The report and each results table agree with the curves in ``<name>.json``; plots are images."""
    summary = json.load(open(os.path.join(out, "summary.json")))
    report = open(os.path.join(out, "README.md")).read()
    assert summary["sections"] and all(s["table"] in report for s in summary["sections"])
    for name in names:
        saved = json.load(open(os.path.join(out, folder, f"{name}.json")))
        methods = [r["method"] for r in saved["results"]]
        for res in saved["results"]:  # every run's final accuracy is a finite fraction
            final = np.asarray(res["curves"]["test_acc"])[..., -1]
            assert np.all((final >= 0) & (final <= 1)), res["method"]
        assert [r["method"] for r in saved["summary"] if r["tuned"] is None] == methods  # then any tuned row
        md = open(os.path.join(out, folder, f"{name}.md")).read()
        assert md == evaluate.markdown_table(saved["summary"])
        rows = list(csv.DictReader(open(os.path.join(out, folder, f"{name}.csv"))))
        assert [r["method"] for r in rows] == [r["method"] for r in saved["summary"]]
        assert [float(r["avg_mean"]) for r in rows] == pytest.approx([r["avg_mean"] for r in saved["summary"]],
                                                                     abs=1e-4)
        image = plt.imread(os.path.join(out, folder, f"{name}_accuracy_curves.png"))
        assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0  # decodes, not blank


def test_generalisation_writes_tables_and_plots(gen_out):
    out, tables = gen_out
    assert list(tables) == ["digits-mlp"]
    table = tables["digits-mlp"]
    assert "| GANNO (greedy) |" in table and "| GANNO (sample) |" in table and "| constant |" in table
    assert table.index("GANNO (greedy)") < table.index("GANNO (sample)")  # the smoke scale's own mode first
    assert_written(out, "digits-mlp")
    assert os.path.isfile(os.path.join(out, "agent", "config.json"))
    assert "results_GANNO_greedy_schedule.png" in os.listdir(os.path.join(out, "digits-mlp"))  # a plain file name


def test_existing_results_folder_is_not_overwritten(gen_out, experiment):
    out, _ = gen_out
    with pytest.raises(FileExistsError, match="--overwrite"):
        experiment("generalisation").main(["--out", out, *FAST])


def test_overwrite_never_deletes_a_reused_run(gen_out, experiment):
    """--overwrite of a folder that holds the --train-run is refused, and the run survives."""
    out, _ = gen_out
    agent = os.path.join(out, "agent")
    before = sorted(os.listdir(agent))
    with pytest.raises(ValueError, match="lies inside --out"):
        experiment("warmup").main(["--out", out, "--overwrite", "--train-run", agent, *FAST])
    assert sorted(os.listdir(agent)) == before and os.path.isfile(os.path.join(out, "digits-mlp", "results.json"))


@pytest.mark.parametrize("name,extra", [
    ("generalisation", ["--init-lrs", "0,1e-3"]),
    ("generalisation", ["--init-lrs=-1e-3"]),
    ("weight_decay", ["--init-lrs", "1e-3,0"]),
    ("warmup", ["--init-lrs", "0"]),
    ("ablations", ["--init-lrs=-0.001,0"]),
    ("resnet", ["--init-lrs", "nan"]),
    ("resnet", ["--seeds", "0"]),
    ("weight_decay", ["--weight-decays=-1"]),
])
def test_bad_grid_is_a_value_error(tmp_path, name, extra, experiment):
    with pytest.raises(ValueError):
        experiment(name).main(["--smoke", "--out", str(tmp_path / "x"), *extra])
    assert not (tmp_path / "x").exists()  # rejected before anything was written


@pytest.mark.parametrize("name,extra,valid", [
    ("generalisation", ["--baselines", "constant,nope"], "sgdr"),
    ("warmup", ["--schedules", "warmup_cosine,nope"], "onecycle_cosine"),
    ("resnet", ["--eval-tasks", "digits-resnet99"], "model .resnet99. is not one of .*resnet18"),
    ("ablations", ["--variants", "nope"], "timestep_only"),
])
def test_unknown_names_list_the_valid_ones(tmp_path, name, extra, valid, experiment):
    with pytest.raises(ValueError, match=valid):
        experiment(name).main(["--smoke", "--out", str(tmp_path / "x"), *extra])


def test_resnet_evaluates_a_real_resnet18_reusing_the_trained_run(gen_out, tmp_path, experiment):
    """Smoke-sized ResNet-18 evaluation at both default weight decays (the second reuses the compiled
    programs); the GANNO agent trained on the MLP is reused, so nothing is trained here."""
    out = str(tmp_path / "resnet")
    tables = experiment("resnet").main(["--smoke", "--no-progress", "--out", out, "--train-run",
                               os.path.join(gen_out[0], "agent"), "--baselines", "constant"])
    assert list(tables) == ["digits-resnet18 wd=0.01", "digits-resnet18 wd=0.1"]
    assert "| GANNO |" in tables["digits-resnet18 wd=0.1"] and "| constant |" in tables["digits-resnet18 wd=0.1"]
    assert_written(out, "digits-resnet18", ("results_wd0.01", "results_wd0.1"))
    assert not os.path.exists(os.path.join(out, "agent"))  # nothing trained


def test_weight_decay_sensitivity_table(gen_out, tmp_path, experiment):
    out = str(tmp_path / "wd")
    tables = experiment("weight_decay").main(["--out", out, "--train-run", os.path.join(gen_out[0], "agent"),
                                     "--baselines", "constant", "--weight-decays", "0.0001,0.1", *FAST])
    sens = tables["digits-mlp sensitivity"]
    assert "wd=0.0001" in sens and "wd=0.1" in sens and "| GANNO |" in sens
    assert_written(out, "digits-mlp", ("results_wd0.0001", "results_wd0.1"))
    assert os.path.isfile(os.path.join(out, "digits-mlp", "sensitivity.md"))


def test_warmup_ganno_from_zero(gen_out, tmp_path, experiment):
    out = str(tmp_path / "warmup")
    tables = experiment("warmup").main(["--out", out, "--train-run", os.path.join(gen_out[0], "agent"),
                               "--schedules", "warmup_cosine", *FAST])
    assert "| warmup_cosine |" in tables["digits-mlp schedules"]
    assert "| 0 |" in tables["digits-mlp GANNO"]  # GANNO's column is initial LR 0
    assert_written(out, "digits-mlp", ("schedules", "ganno_from_zero"))


def test_ablations_train_a_variant_and_include_lr_zero(gen_out, tmp_path, experiment):
    out = str(tmp_path / "abl")
    tables = experiment("ablations").main(["--out", out, "--train-run", os.path.join(gen_out[0], "agent"),
                                  "--variants", "lr_only,ganno", "--train-task", "digits-mlp", *FAST[:4],
                                  "--init-lrs", "0"])
    table = tables["digits-mlp"]
    assert "| GANNO-lr-only |" in table and "| GANNO |" in table and "| 0 |" in table
    assert os.path.isfile(os.path.join(out, "agents", "lr_only", "config.json"))
    assert not os.path.exists(os.path.join(out, "agents", "ganno"))  # reused, not trained
    assert_written(out, "digits-mlp")


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_names_the_paper_result(name, capsys, experiment):
    with pytest.raises(SystemExit) as exit_info:
        experiment(name).main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "GANNO paper" in text and "--scale" in text and "--overwrite" in text


def test_train_run_that_is_not_a_run_folder_is_a_clear_error(tmp_path, experiment):
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        experiment("warmup").main(["--smoke", "--out", str(tmp_path / "x"), "--train-run", str(tmp_path)])
    assert not (tmp_path / "x").exists()


def test_print_config_at_paper_scale_shows_the_papers_setting(tmp_path, capsys, experiment):
    """--print-config resolves everything (the paper's values at --scale paper) and writes nothing."""
    out = tmp_path / "never"
    assert experiment("generalisation").main(["--scale", "paper", "--print-config", "--out", str(out)]) == {}
    assert not out.exists()
    conf = json.loads(capsys.readouterr().out)
    train = conf["train_task"]
    assert (train["tau"], train["horizon"], train["weight_decay_mode"]) == (100, 300, "l2")
    assert conf["inner_steps_per_episode"] == 30_000
    assert conf["members"] == 3 and conf["eval_actions"] == "sample" and conf["eval_seeds"] == 5
    ippo = conf["ippo"]
    assert (ippo["num_envs"], ippo["total_timesteps"], ippo["seq_len"]) == (4, 50_000, 8)
    assert conf["env_params"]["reward_mode"] == "difference"
    assert all(t["horizon"] == 300 and t["weight_decay_mode"] == "l2" for t in conf["eval_tasks"].values())
    assert conf["train_inner_steps"] == conf["train_decisions"] * 100 * 2  # difference reward: 2 branches


def test_print_config_follows_the_flags(capsys, experiment):
    experiment("warmup").main(["--smoke", "--print-config", "--members", "2", "--eval-actions", "sample",
                               "--eval-tasks", "digits-mlp"])
    conf = json.loads(capsys.readouterr().out)
    assert conf["members"] == 2 and conf["eval_actions"] == "sample" and list(conf["eval_tasks"]) == ["digits-mlp"]
    with pytest.raises(ValueError, match="--members=0"):
        experiment("warmup").main(["--smoke", "--print-config", "--members", "0"])


def test_train_run_sizes_carry_over_unless_a_scale_or_flag_is_given(tmp_path, capsys, experiment):
    """--train-run lends the evaluation tasks its tau / horizon / weight-decay mode (and on its dataset its
    width and batch size); --smoke or a task-size flag wins. Only config.json is read: nothing trains."""
    from ganno_jax import runs, scales, tasks

    run = str(tmp_path / "run")
    os.makedirs(run)
    task = tasks.get("digits-mlp", tau=3, horizon=4, width=2, batch_size=16, weight_decay_mode="l2")
    runs.create_run(run, runs.RunConfig(task, scales.ganno_scale("smoke").ippo))

    def evals(*argv):
        experiment("warmup").main(["--print-config", "--train-run", run, "--eval-tasks", "digits-cnn3,mnist1d-mlp",
                                   *argv])
        return json.loads(capsys.readouterr().out)["eval_tasks"]

    same, other = evals().values()
    assert (same["tau"], same["horizon"], same["width"], same["batch_size"], same["weight_decay_mode"]) == \
        (3, 4, 2, 16, "l2")
    cpu = scales.ganno_scale("cpu").task  # the default scale's sizes where the run lends none
    assert (other["tau"], other["width"], other["batch_size"]) == (3, cpu["width"], cpu["batch_size"])
    smoke = scales.ganno_scale("smoke").task
    assert evals("--smoke")["digits-cnn3"]["tau"] == smoke["tau"]
    assert evals("--tau", "5")["mnist1d-mlp"]["tau"] == 5

