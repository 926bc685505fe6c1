"""``ganno bench`` runs at a tiny size and writes what it measured (no timing is asserted). Its PyTorch
reference is tested against the JAX env in test_torch_env.py."""
import csv
import json

import jax
import pytest

from ganno_jax import bench, cli
from ganno_jax.bench.report import COLUMNS


def test_bench_writes_csv_png_json_with_ratios_when_torch_is_installed(tmp_path):
    has_torch = bench._torch_available()  # the dev extra installs it
    assert cli.main(["bench", "--quick", "--envs", "1", "2", "--reward-mode", "difference", "--torch-threads", "1",
                     "--torch-envs", "1", "--matmul-size", "64", "--out", str(tmp_path)]) == 0
    with open(tmp_path / "bench.csv") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == COLUMNS
        rows = list(reader)
    assert (tmp_path / "bench.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads((tmp_path / "bench.json").read_text())
    assert f"jax {jax.__version__}" in report["header"] and len(report["rows"]) == len(rows) == 2
    for row, envs in zip(rows, (1, 2)):
        assert (row["task"], int(row["envs"]), int(row["tau"]), int(row["branches"])) == ("digits-mlp", envs, 2, 2)
        assert int(row["devices"]) in (1, jax.device_count()) and float(row["compile_s"]) > 0
        # difference rewards train the acting and the no-op branch: 2 branches x tau=2 optimiser steps per env step
        assert float(row["jax_inner_steps_per_s"]) == pytest.approx(4 * float(row["jax_env_steps_per_s"]))
        flops, matmul = float(row["flops_per_inner_step"]), float(row["matmul_flops_per_s"])
        assert flops > 2 * 64 * 64 * 128 and matmul > 0  # at least the first layer's forward matmul
        assert float(row["fraction_of_matmul"]) == pytest.approx(float(row["jax_inner_steps_per_s"]) * flops / matmul)
        if has_torch:
            assert float(row["jax_over_torch"]) == pytest.approx(
                float(row["jax_env_steps_per_s"]) / float(row["torch_env_steps_per_s"]))
            assert int(row["torch_threads"]) == 1
        else:
            assert row["jax_over_torch"] == ""
