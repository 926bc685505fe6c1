"""``benchmarks/gpu_check.sh`` in its dry mode (no GPU here): it checks the imports, prints every step with its
timeout, all inside the 8-minute budget, and writes nothing; it fails fast naming what is missing, and stops when JAX
sees no GPU."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import venv

import jax
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.sh")


def _run(*args, python=sys.executable):
    env = {**os.environ, "PYTHON": python}
    env.pop("OUT", None)
    return subprocess.run(["bash", SCRIPT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_dry_run_prints_every_step_within_the_budget_and_writes_nothing(tmp_path):
    out = tmp_path / "check"
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "distrax-0.1.9-py3-none-any.whl").write_bytes(b"")  # dry run: listed, never installed
    proc = _run(str(out), "--dry-run", "--wheels", str(wheels))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = proc.stdout
    assert f"--no-index --find-links {wheels}" in text and "distrax-0.1.9-py3-none-any.whl" in text
    steps = dict(re.findall(r"\[(\w+)\] timeout (\d+) ", text))
    assert list(steps) == ["tests", "bench", "paper_scale", "generalisation"]
    assert sum(map(int, steps.values())) <= 480
    for command in ("-m pytest", "ganno_jax.cli bench", "benchmarks/paper_scale.py --updates 1",
                    "experiments/generalisation.py --smoke", str(out / "summary.md")):
        assert command in text, command
    assert not out.exists()


def test_refuses_an_empty_wheel_folder_and_names_missing_packages(tmp_path):
    empty = tmp_path / "wheels"
    empty.mkdir()
    proc = _run("--dry-run", "--wheels", str(empty))
    assert proc.returncode == 2 and "no .whl file" in proc.stderr
    bare = tmp_path / "bare"  # an interpreter with no package installed
    venv.create(bare, with_pip=False)
    proc = _run(str(tmp_path / "out"), python=str(bare / "bin" / "python"))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "missing: jax flax optax chex distrax orbax-checkpoint scikit-learn" in proc.stderr
    assert "--wheels DIR" in proc.stderr and not (tmp_path / "out").exists()


@pytest.mark.skipif(jax.default_backend() == "gpu", reason="with a GPU the check would run for real")
def test_without_a_gpu_it_stops_before_writing(tmp_path):
    proc = _run(str(tmp_path / "out"))
    assert proc.returncode == 4 and "JAX sees no GPU" in proc.stderr and "backend" in proc.stderr
    assert not (tmp_path / "out").exists()
