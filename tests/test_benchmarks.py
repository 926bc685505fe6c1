"""The throughput benchmark runs (no timing is asserted) and its PyTorch port steps like the env."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import throughput  # noqa: E402


def test_benchmark_reports_rows(tmp_path):
    rows = throughput.main(["--tasks", "digits-mlp", "--envs", "1", "--tau", "2", "--repeats", "1", "--no-torch",
                            "--json", str(tmp_path / "bench.json")])
    assert [r["envs"] for r in rows] == [1]
    assert all(r["jax_env_steps_per_s"] > 0 and r["jax_inner_steps_per_s"] == 2 * r["jax_env_steps_per_s"] for r in rows)
    assert (tmp_path / "bench.json").is_file()


@pytest.mark.parametrize("model", ["mlp", "cnn2"])
def test_torch_port_steps(model):
    pytest.importorskip("torch")
    import ganno_jax as gj
    from torch_env import TorchLayerwiseEnv

    task = gj.tasks.get(f"digits-{model}", tau=2, horizon=2, width=2, batch_size=8, eval_batch=32)
    env = TorchLayerwiseEnv(task, gj.data.load_dataset("digits"), "difference")
    obs = env.reset()
    assert tuple(obs.shape) == (env.num_agents, gj.env.features.OBS_DIM)
    obs, reward, done = env.step([0] * env.num_agents)
    assert np.all(np.isfinite(obs.numpy())) and float(reward[0]) == 0.0 and not done  # joint no-op: 0
    _, _, done = env.step([2] * env.num_agents)
    assert done
