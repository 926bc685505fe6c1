"""Env axis split over devices: 4 fake CPU devices (in a subprocess: XLA reads the flag at start-up)."""
import os
import subprocess
import sys
import textwrap

import pytest

from ganno_jax.agents.sharding import env_mesh, mesh_for

SCRIPT = textwrap.dedent("""
    import os, sys
    import jax, numpy as np
    import ganno_jax as gj
    from ganno_jax import training
    from ganno_jax.agents import IPPOConfig, make_train, env_mesh
    from ganno_jax.agents.sharding import ENV_AXIS
    assert jax.device_count() == 4, jax.devices()
    task = gj.tasks.get("digits-mlp", tau=2, horizon=3, eval_batch=64)
    env = gj.env.LayerwiseLREnv(task)
    params = env.default_params
    cfg = IPPOConfig(num_envs=4, num_steps=8, total_timesteps=4 * 8 * 2, num_minibatches=2, actor_layers=(16,),
                     gru_size=8, actor_post_gru=8, critic_layers=(16,))
    close = lambda a, b: jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6), a, b)
    plain = jax.jit(make_train(cfg, env, params))(jax.random.key(0))
    split = jax.jit(make_train(cfg, env, params, mesh=env_mesh()))(jax.random.key(0))
    assert split.runner_state.env_state.lrs.sharding.spec == jax.sharding.PartitionSpec(ENV_AXIS)
    close(plain.runner_state.params, split.runner_state.params)
    close(plain.metrics["reward"], split.metrics["reward"])
    # several seeds (vmap) on a 2-device mesh
    seeds = jax.jit(jax.vmap(make_train(cfg, env, params, mesh=env_mesh(2))))(jax.random.split(jax.random.key(0), 2))
    assert seeds.metrics["reward"].shape[:2] == (2, cfg.num_updates)
    # a run folder trained on 4 devices, stopped after one chunk and resumed, ends as the unsplit run
    out = sys.argv[1]
    training.train_run(out, task, cfg, checkpoint_every=1, progress=False, max_checkpoints=1, devices=4)
    state = training.train_run(out, resume=True, checkpoint_every=1, progress=False, devices=4)
    close(plain.runner_state.params, state.params)
    try:
        make_train(cfg.__class__(**{**cfg.__dict__, "num_envs": 6, "total_timesteps": 6 * 8 * 2}), env, params,
                   mesh=env_mesh())
    except ValueError as err:
        assert "num_envs=6 must be a multiple of the 4 devices" in str(err), err
    else:
        raise AssertionError("num_envs=6 on 4 devices was accepted")
    print("SHARDING OK")
""")


def test_split_env_axis_matches_the_unsplit_run(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "run")], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0 and "SHARDING OK" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-4000:]


def test_mesh_sizes_are_checked():
    import jax

    count = jax.device_count()
    with pytest.raises(ValueError, match=rf"num_devices={count + 1} must be an integer in \[1, {count}\]"):
        env_mesh(count + 1)
    with pytest.raises(ValueError, match="num_devices=0"):
        mesh_for(4, 0)
    assert mesh_for(3, 1) is None  # one device: no mesh, the plain vmapped program


def test_several_processes_split_the_env_copies_over_every_device(monkeypatch):
    """With several processes the env mesh must hold every process's devices (a mesh of the first few
    devices could leave a process without any); a num_envs that does not split over all is refused."""
    import jax

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "device_count", lambda: 4)
    with pytest.raises(ValueError, match=r"num_envs=6 .*2 processes.*multiple of 4"):
        mesh_for(6)
    with pytest.raises(ValueError, match=r"num_envs=8 \(devices=2\).*multiple of 4"):
        mesh_for(8, 2)
