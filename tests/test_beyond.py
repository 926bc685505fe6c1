"""experiments/beyond.py (issue 14): options of GANNO's training against the best schedule and Prodigy."""
from __future__ import annotations

import json
import os

import pytest

from ganno_jax import runs, scales

FAST = ["--smoke", "--no-progress", "--train-task", "digits-mlp", "--eval-tasks", "digits-mlp", "--init-lrs", "1e-3"]


def test_each_option_changes_one_thing(experiment):
    beyond = experiment("beyond")
    scale = scales.ganno_scale("smoke")
    args = beyond.build_parser().parse_args(["--smoke"])
    kwargs = {o: beyond._train_kwargs(o, scale, args, "digits-cnn2") for o in beyond.OPTIONS}
    assert kwargs["plain"]["cfg"] == scale.ippo and kwargs["plain"]["env_params"].reward_mode == "difference"
    assert kwargs["centralised"]["cfg"].critic == "centralised"
    assert kwargs["per_agent"]["env_params"].reward_mode == "per_agent_difference"
    assert kwargs["warm_start"]["warm_start"] == ("warmup_cosine", "onecycle_cosine")
    assert [t.name for t in kwargs["family"]["tasks"]] == ["digits-mlp", "digits-cnn3"]
    assert all("warm_start" not in k for o, k in kwargs.items() if o != "warm_start")
    assert all("tasks" not in k for o, k in kwargs.items() if o not in ("family", "combined"))
    assert kwargs["wd_control"]["env_params"].control_wd
    assert not any(k["env_params"].control_wd for o, k in kwargs.items() if o not in ("wd_control", "combined"))
    combined = kwargs["combined"]
    assert combined["cfg"].critic == "centralised" and combined["env_params"].control_wd
    assert combined["env_params"].reward_mode == "per_agent_difference" and len(combined["tasks"]) == 2


def test_smoke_run_compares_options_with_the_best_schedule_and_prodigy(tmp_path, experiment):
    out = str(tmp_path / "beyond")
    tables = experiment("beyond").main(["--out", out, "--options", "per_agent,warm_start,wd_control",
                                        "--schedules", "constant,cosine", "--weight-decays", "0.1,1e-4", *FAST])
    table = tables["digits-mlp"]
    for row in ("| GANNO + per-agent credit |", "| GANNO + warm start |", "| GANNO + LR & WD control |",
                "| best schedule: ", "| prodigy |", "| wd=0.1 | wd=0.0001 |"):
        assert row in table
    assert "LR 0" in table and table.count("| — |") == 2  # schedules and Prodigy do not start from 0
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert set(summary["beat_prodigy"]) == {"digits-mlp"}
    report = json.load(open(os.path.join(out, "agents", "warm_start", "warm_start.json")))
    assert min(report["accuracy"]) > 0.5  # imitation of the schedules' actions (smoke size: few steps)
    assert runs.load_config(os.path.join(out, "agents", "per_agent")).env_params.reward_mode == "per_agent_difference"
    assert runs.load_config(os.path.join(out, "agents", "wd_control")).env_params.control_wd
    for wd in ("0.1", "0.0001"):
        agents = json.load(open(os.path.join(out, "digits-mlp", f"agents_wd{wd}.json")))
        assert agents["summary"][0]["init_lrs"] == [0.0, 1e-3]
        assert agents["summary"][0]["weight_decay"] == pytest.approx(float(wd))


def test_unknown_option_lists_the_valid_ones(tmp_path, experiment):
    with pytest.raises(ValueError, match="centralised"):
        experiment("beyond").main(["--smoke", "--out", str(tmp_path / "x"), "--options", "plain,nope"])
    assert not (tmp_path / "x").exists()
