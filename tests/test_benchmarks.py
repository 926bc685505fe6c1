"""The throughput benchmark (benchmarks/throughput.py) runs and reports what it measured (no timing is
asserted). Its PyTorch reference is tested against the JAX env in test_torch_env.py."""
import json
import os
import sys

import jax
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import throughput  # noqa: E402


def test_benchmark_rows_and_json_report_the_measured_run(tmp_path):
    path = tmp_path / "bench.json"
    sides = ("jax", "torch") if throughput._torch_available() else ("jax",)  # torch: the dev extra installs it
    if "torch" in sides:
        import torch
        threads = torch.get_num_threads()
    rows = throughput.main(["--tasks", "digits-mlp", "--envs", "1", "--tau", "2", "--repeats", "1",
                            "--reward-mode", "difference", "--torch-threads", "1", "--json", str(path)])
    if "torch" in sides:
        torch.set_num_threads(threads)
    report = json.loads(path.read_text())
    assert report["rows"] == rows and report["reward_mode"] == "difference"  # the file holds the printed rows
    assert f"jax {jax.__version__}" in report["header"]
    (row,) = rows
    assert (row["task"], row["envs"], row["tau"]) == ("digits-mlp", 1, 2)
    assert row["devices"] in (1, len(jax.devices())) and row["compile_s"] > 0
    # difference rewards train the acting and the no-op branch: 2 branches x tau=2 optimiser steps per env step
    for side in sides:
        assert row[f"{side}_env_steps_per_s"] > 0
        assert row[f"{side}_inner_steps_per_s"] == pytest.approx(4 * row[f"{side}_env_steps_per_s"])
    if "torch" in sides:
        assert row["torch_threads"] == 1 and f"torch {torch.__version__}" in report["header"]
        assert row["jax_over_torch"] == pytest.approx(row["jax_env_steps_per_s"] / row["torch_env_steps_per_s"])
