"""``ganno train`` over two local CPU processes (``jax.distributed``, gloo collectives, one CPU device each)
trains exactly as one process over two devices, and a run saved by two processes resumes in one.

The two-process run stops after its first checkpoint (``--max-checkpoints 1``); its checkpoint equals the
one-process run's at the same update, and after ``--resume`` in one process the whole run (parameters,
optimiser state, keys, metrics.csv) equals the uninterrupted one-process run. The one-process runs share a
persistent compilation cache (the resume loads the reference run's executables). Every subprocess has a
timeout, so a hang fails the test.
"""
import csv
import os
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

from ganno_jax import checkpoint, distributed, runs

CHUNK, UPDATES = 2, 4
FLAGS = ["--task", "digits-mlp", "--tau", "2", "--horizon", "3", "--batch-size", "16", "--width", "2",
         "--num-envs", "2", "--num-steps", "8", "--total-timesteps", str(UPDATES * 2 * 8), "--update-epochs", "1",
         "--num-minibatches", "2", "--actor-layers", "8", "--gru-size", "4", "--actor-post-gru", "4",
         "--critic-layers", "8", "--seed", "3", "--checkpoint-every", str(CHUNK), "--log-episodes", "0,1"]
TIMEOUT = 240  # seconds per launch: a hang (e.g. a process waiting for a peer) fails the test
TIMING_FIELDS = {"env_steps_per_s"}


def _has_cpu_collectives() -> bool:
    from jax._src.lib import _jax

    return hasattr(_jax, "make_gloo_tcp_collectives")


needs_gloo = pytest.mark.skipif(not _has_cpu_collectives(), reason="this jaxlib has no gloo CPU collectives")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int, cache_dir=None) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    if cache_dir is not None:
        env.update(JAX_COMPILATION_CACHE_DIR=str(cache_dir), JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return env


def _ganno(*args):
    return [sys.executable, "-m", "ganno_jax.cli", "train", *args]


def _check(proc, out: str, err: str) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-2000:]}\n{err[-3000:]}"


def _train_two_processes(run) -> list[str]:
    """Launches process 0 and 1 of a two-process run; returns their stdout."""
    launch = ["--coordinator", f"127.0.0.1:{_free_port()}", "--num-processes", "2"]
    procs = [subprocess.Popen(_ganno(*FLAGS, "--out", str(run), "--max-checkpoints", "1", *launch,
                                     "--process-id", str(i)),
                              env=_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in (0, 1)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=TIMEOUT)
            _check(p, out, err)
            outs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outs


def _run(cmd, env) -> None:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    _check(proc, proc.stdout, proc.stderr)


def _state(run, step):
    """Leaves of the run's training state at checkpoint ``step`` as NumPy arrays (keys as key data)."""
    config = runs.load_config(str(run))
    like = runs.runner_state_like(config)
    _, state = checkpoint.restore(os.path.join(run, "checkpoints"), like, step)
    return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)
            for x in jax.tree.leaves(state)]


def _rows(run):
    with open(os.path.join(run, "metrics.csv")) as f:
        return [{k: v for k, v in r.items() if k not in TIMING_FIELDS} for r in csv.DictReader(f)]


@needs_gloo
def test_two_processes_train_like_two_devices_and_resume_in_one(tmp_path):
    two, ref, cache = tmp_path / "two", tmp_path / "ref", tmp_path / "cache"
    outs = _train_two_processes(two)
    assert all(str(two) in out for out in outs)  # both processes finished the same run
    assert checkpoint.latest_step(str(two / "checkpoints")) == CHUNK  # stopped after one chunk
    assert len(_rows(two)) == CHUNK
    _run(_ganno(*FLAGS, "--out", str(ref)), _env(2, cache))  # one process, two devices, uninterrupted
    for a, b in zip(_state(two, CHUNK), _state(ref, CHUNK)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    _run(_ganno("--resume", str(two)), _env(2, cache))  # the two-process save resumes in one process
    assert checkpoint.latest_step(str(two / "checkpoints")) == UPDATES
    for a, b in zip(_state(two, UPDATES), _state(ref, UPDATES)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    rows_two, rows_ref = _rows(two), _rows(ref)  # the same metrics up to float reassociation
    assert [r.keys() for r in rows_two] == [r.keys() for r in rows_ref]
    for r_two, r_ref in zip(rows_two, rows_ref):
        assert [float(v) for v in r_two.values()] == pytest.approx([float(v) for v in r_ref.values()], rel=1e-5,
                                                                   abs=1e-7)
    assert os.path.isfile(two / "schedules.png")


@pytest.mark.parametrize("values, flag", [(("127.0.0.1:1234", None, 0), "--num-processes"),
                                          ((None, 2, None), "--coordinator"),
                                          (("127.0.0.1", 2, 0), "--coordinator"),
                                          (("127.0.0.1:70000", 2, 0), "--coordinator"),
                                          (("127.0.0.1:1234", 0, 0), "--num-processes"),
                                          (("127.0.0.1:1234", 2, 2), "--process-id")])
def test_bad_launch_flags_name_the_flag(values, flag):
    with pytest.raises(ValueError, match=flag):
        distributed.initialize(*values)


SBATCH = {"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8", "SLURM_NPROCS": "8"}  # an sbatch script's shell, no step
SRUN = {**SBATCH, "SLURM_STEP_ID": "0", "SLURM_PROCID": "0"}  # a task of an srun step


@pytest.mark.parametrize("environ, cluster", [
    ({}, None),
    (SBATCH, None),  # plain `python` in an sbatch script of 8 tasks: no peer will come
    ({**SBATCH, "SLURM_NTASKS": "1"}, None),
    ({**SRUN, "SLURM_STEP_NUM_TASKS": "1"}, None),  # `srun -n 1` in a job of 8 tasks
    ({**SRUN, "SLURM_STEP_NUM_TASKS": "4"}, "SLURM"),  # `srun -n 4`
    ({**SRUN, "SLURM_NTASKS": "2"}, "SLURM"),  # no SLURM_STEP_NUM_TASKS (older SLURM): the step's SLURM_NTASKS
    ({**SRUN, "SLURM_NTASKS": "1"}, None),
    ({"SLURM_STEP_ID": "0"}, None),  # no task count at all
    ({"OMPI_COMM_WORLD_SIZE": "1"}, None),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, "Open MPI"),
    ({**SRUN, "SLURM_STEP_NUM_TASKS": "2", "OMPI_COMM_WORLD_SIZE": "16"}, "Open MPI"),  # mpirun under SLURM
    ({"TPU_WORKER_HOSTNAMES": "host-a"}, None),
    ({"TPU_WORKER_HOSTNAMES": "host-a,host-b"}, "TPU"),
    ({"TPU_PROCESS_ADDRESSES": "10.0.0.1:8476,10.0.0.2:8476"}, "TPU"),
    ({"SLURM_STEP_ID": "0", "SLURM_STEP_NUM_TASKS": "many"}, None),  # not a number
])
def test_managed_cluster_joins_only_a_launch_of_several_tasks(environ, cluster):
    assert distributed.managed_cluster(environ) == cluster


def test_single_process_is_a_no_op_and_writes():
    distributed.initialize()  # no flags, no cluster: nothing happens
    assert jax.process_count() == 1 and distributed.is_writer()
    x = jax.numpy.arange(4.0)
    np.testing.assert_array_equal(distributed.to_host({"x": x})["x"], np.arange(4.0))
