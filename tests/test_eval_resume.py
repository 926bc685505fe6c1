"""``ganno evaluate`` killed for real (SIGKILL, subprocess) once its first chunk of runs is on disk and continued
with ``--resume`` writes the tables and curves of an uninterrupted run, reading back the finished chunks; the
refusals around ``--resume`` change nothing on disk.

The grid (a policy program and a schedule program, 12 runs each, one run per device at once, test metrics every
2nd env step) runs through the same command in every process (``python -m ganno_jax.cli``), so every run splits
over the same CPU devices; the processes share a persistent compilation cache (the first compiles, the others
load the executables).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ganno_jax import cli

FLAGS = ["evaluate", "--task", "digits-mlp", "--tau", "2", "--horizon", "3", "--batch-size", "16", "--width", "2",
         "--eval-batch", "64", "--methods", "constant,random", "--init-lrs", "1e-3,3e-3,1e-2", "--seeds", "4",
         "--max-parallel-runs", "1", "--test-every", "2", "--no-progress"]


def _env(cache_dir):
    return {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(cache_dir),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}


def _ganno(*args):
    return [sys.executable, "-m", "ganno_jax.cli", *FLAGS, *args]


def _run(cmd, env) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _chunks(out) -> list:
    folder = os.path.join(out, "partial")
    return sorted(n for n in os.listdir(folder) if n.endswith(".npz") and not n.startswith(".")) \
        if os.path.isdir(folder) else []


def _kill_after_first_chunk(out, env, log):
    with open(log, "w") as err:
        proc = subprocess.Popen(_ganno("--out", out), env=env, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 300
        while not _chunks(out) and proc.poll() is None:
            assert time.monotonic() < deadline, "no chunk of runs written within 300 s"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with open(log) as err:
        assert proc.returncode == -signal.SIGKILL, f"the evaluation ended before it was killed:\n{err.read()[-3000:]}"


def _listing(folder) -> dict:
    """{relative path: (size, mtime)} of every file under ``folder``."""
    return {os.path.relpath(os.path.join(d, f), folder): (os.path.getsize(os.path.join(d, f)),
                                                          os.path.getmtime(os.path.join(d, f)))
            for d, _, files in os.walk(folder) for f in files}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(uninterrupted evaluation, a copy of the killed one, the killed one resumed, chunks on disk at the kill)."""
    tmp = tmp_path_factory.mktemp("eval-resume")
    env = _env(tmp / "jax-cache")
    ref, run, killed = str(tmp / "ref"), str(tmp / "run"), str(tmp / "killed")
    _run(_ganno("--out", ref, "--resume"), env)  # --resume of a new folder starts afresh
    _kill_after_first_chunk(run, env, tmp / "killed.log")
    stored = _chunks(run)
    assert 1 <= len(stored) < 12 and not os.path.exists(os.path.join(run, "results.json"))  # killed mid-grid
    shutil.copytree(run, killed)
    out = _run(_ganno("--out", run, "--resume"), env)
    assert f"{len(stored)} finished chunk(s) of runs read back" in out
    return ref, killed, run


def _results(folder) -> dict:
    with open(os.path.join(folder, "results.json")) as f:
        results = json.load(f)
    for r in results["results"]:
        r.pop("plan")  # the memory budget read at start-up differs between processes
    return results


def test_sigkilled_evaluation_resumes_to_the_uninterrupted_results(folders):
    ref, _, run = folders
    for name in ("results.csv", "results.md"):
        with open(os.path.join(ref, name)) as a, open(os.path.join(run, name)) as b:
            assert a.read() == b.read(), name
    expected, resumed = _results(ref), _results(run)
    assert resumed == expected
    curve = resumed["results"][0]["curves"]["test_acc"][0][0]
    assert curve[0] is None and None not in curve[1:]  # --test-every 2: steps 2 and 3 (the last) measured
    assert not os.path.exists(os.path.join(ref, "partial")) and not os.path.exists(os.path.join(run, "partial"))


@pytest.mark.parametrize("extra,message", [
    ([], "holds an unfinished evaluation: repeat its command with --resume to continue it"),
    (["--resume", "--seeds", "3"], "holds another evaluation grid (seeds differ from this command's)"),
    (["--resume", "--overwrite"], "give --resume (continue an unfinished evaluation) or --overwrite"),
])
def test_refusals_leave_a_killed_evaluation_as_it_was(folders, tmp_path, capsys, extra, message):
    killed = str(tmp_path / "killed")
    shutil.copytree(folders[1], killed)
    before = _listing(killed)
    assert cli.main([*FLAGS, "--out", killed, *extra]) == 2
    assert message in capsys.readouterr().err
    assert _listing(killed) == before


def test_resume_of_a_finished_evaluation_is_refused(folders, capsys):
    ref = folders[0]
    before = _listing(ref)
    assert cli.main([*FLAGS, "--out", ref, "--resume"]) == 2
    assert "holds no unfinished evaluation to resume (its evaluation finished: results.json)" in capsys.readouterr().err
    assert _listing(ref) == before
