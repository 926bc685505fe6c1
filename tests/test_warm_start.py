"""Warm start (issue 14 item 4): schedules as actions, their demonstrations, behaviour cloning."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ganno_jax as gj
from ganno_jax.agents import IPPOConfig
from ganno_jax.agents import warm_start as ws
from ganno_jax.agents.networks import init_hidden, make_network

TASK = gj.tasks.get("digits-mlp", tau=4, horizon=16, batch_size=16, width=2, eval_batch=64)
CFG = IPPOConfig(activation="tanh")


@pytest.fixture(scope="module")
def demos():
    env = gj.env.LayerwiseLREnv(TASK)
    return env, ws.demonstrations(env, env.default_params, ("warmup_cosine", "onecycle_cosine"), (3e-4, 3e-3), 2,
                                  jax.random.key(0))


def test_constant_schedule_is_all_no_ops():
    start, targets = ws.schedule_targets("constant", 1e-3, horizon=10, tau=5)
    actions, lrs = ws.schedule_actions(start, targets)
    np.testing.assert_array_equal(actions, 0)
    np.testing.assert_allclose(lrs, 1e-3)


def test_cosine_is_tracked_downwards_and_warm_up_starts_from_zero():
    start, targets = ws.schedule_targets("cosine", 3e-3, horizon=40, tau=10)
    _, lrs = ws.schedule_actions(start, targets)
    assert np.all(np.diff(np.asarray(lrs)) <= 0)
    assert np.max(np.abs(lrs - targets)) < 0.2 * 3e-3
    start, targets = ws.schedule_targets("warmup_cosine", 1e-3, horizon=40, tau=10)
    actions, lrs = ws.schedule_actions(start, targets)
    assert float(start) == 0.0 and int(np.argmax(lrs)) > 0  # from 0 up to the peak, then down
    assert float(lrs.max()) == pytest.approx(1e-3, rel=0.05)
    assert int(actions[0]) in (0, 5, 7)  # only the additive actions leave 0


def test_demonstrations_have_one_trajectory_per_schedule_peak_and_seed(demos):
    env, d = demos
    assert d.obs.shape == (TASK.horizon, 8, env.num_agents, gj.env.OBS_DIM)
    assert d.actions.shape == (TASK.horizon, 8, env.num_agents)
    assert np.all(np.isfinite(d.obs))
    # every layer gets the schedule's action; the two seeds of a (schedule, peak) act alike
    np.testing.assert_array_equal(d.actions[..., 0], d.actions[..., -1])
    np.testing.assert_array_equal(d.actions[:, 0], d.actions[:, 1])
    # the observed LR feature follows the actions: observations differ between schedules
    assert not np.allclose(d.obs[:, 0], d.obs[:, 4])


def test_behaviour_cloning_reproduces_the_schedules_actions(demos):
    env, d = demos
    network = make_network(CFG, env.action_space())
    params = network.init(jax.random.key(1), init_hidden(CFG, 1), jnp.zeros((1, 1, d.obs.shape[-1])),
                          jnp.zeros((1, 1), bool))
    before = ws.imitation_accuracy(network, CFG, params, ws.RunningMeanStd.create((d.obs.shape[-1],)), d)
    cloned, obs_stats, losses = jax.jit(lambda p: ws.behaviour_clone(network, CFG, p, d, steps=300))(params)
    accuracy = float(ws.imitation_accuracy(network, CFG, cloned, obs_stats, d))
    assert losses[-1] < 0.25 * losses[0]
    assert accuracy >= 0.9 > float(before)
    np.testing.assert_array_equal(cloned["params"]["critic_out"]["kernel"], params["params"]["critic_out"]["kernel"])


@pytest.mark.parametrize("names, message", [((), "at least one"),
                                            (("cosine", "nope"), "warm_start='nope' is not valid; allowed: ")])
def test_bad_sources_name_the_problem(names, message):
    with pytest.raises(ValueError, match=message):
        ws.check_sources(names)


def test_bad_peaks_and_steps_are_refused(demos):
    env, d = demos
    with pytest.raises(ValueError, match="peak_lrs"):
        ws.demonstrations(env, env.default_params, ("cosine",), (0.0,), 1, jax.random.key(0))
    with pytest.raises(ValueError, match="steps=0"):
        ws.behaviour_clone(None, CFG, None, d, steps=0)


def test_warm_started_run_imitates_then_trains_and_resumes_alike(tmp_path):
    import json

    from ganno_jax import run_log, runs, training

    cfg = IPPOConfig(num_envs=2, num_steps=8, total_timesteps=2 * 8 * 3, update_epochs=1, num_minibatches=2,
                     seq_len=4, actor_layers=(16,), gru_size=8, actor_post_gru=8, critic_layers=(16,),
                     activation="tanh")
    common = dict(task=TASK, cfg=cfg, seed=3, checkpoint_every=1, progress=False, members=2, log_episodes=(),
                  warm_start=("warmup_cosine",), warm_start_steps=400)
    full = training.train_run(str(tmp_path / "full"), **common)
    report = json.loads((tmp_path / "full" / run_log.WARM_START_JSON).read_text())
    assert report["sources"] == ["warmup_cosine"] and report["demonstrations"] == 5 * 2
    assert min(report["accuracy"]) >= 0.9 and max(report["accuracy_before"]) < 0.9
    assert runs.load_config(str(tmp_path / "full")).warm_start == ("warmup_cosine",)
    # killed after one chunk and resumed: the warm start is not redone, the result is the same
    training.train_run(str(tmp_path / "cut"), max_checkpoints=1, **common)
    resumed = training.train_run(str(tmp_path / "cut"), resume=True, checkpoint_every=1, progress=False)
    for a, b in zip(jax.tree.leaves(full.params), jax.tree.leaves(resumed.params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_run_config_refuses_unknown_warm_start_schedules():
    from ganno_jax import runs

    with pytest.raises(ValueError, match="warm_start='nope' is not valid; allowed: "):
        runs.RunConfig(TASK, CFG, warm_start=("nope",))
    with pytest.raises(ValueError, match="warm_start_steps=0"):
        runs.RunConfig(TASK, CFG, warm_start=("cosine",), warm_start_steps=0)


def test_cli_warm_start_flags(tmp_path, capsys):
    from ganno_jax import cli
    from ganno_jax.experiment import parse_names

    args = cli.build_parser().parse_args(["train", "--warm-start", "warmup_cosine,onecycle_cosine", "--out", "x"])
    assert parse_names(args.warm_start) == ("warmup_cosine", "onecycle_cosine") and args.warm_start_steps == 300
    out = tmp_path / "run"
    assert cli.main(["train", "--task", "digits-mlp", "--warm-start", "warmup_cosine,nope", "--out", str(out)]) == 2
    assert "warm_start='nope' is not valid; allowed: " in capsys.readouterr().err
    assert not out.exists()  # refused before the run folder is made


def test_family_warm_start_demonstrates_on_every_task():
    """A family's warm start joins the demonstrations of all its tasks (depths 3 and 2) as one-agent
    trajectories and clones one actor on all of them."""
    tasks = [TASK.replace(horizon=4), gj.tasks.get("digits-cnn2", tau=4, horizon=4, batch_size=16, width=2,
                                                   eval_batch=64)]
    groups = [gj.agents.EnvGroup(env, env.default_params, 2, t.name) for t, env in
              ((t, gj.env.LayerwiseLREnv(t)) for t in tasks)]
    network = make_network(CFG, groups[0].env.action_space())
    params = network.init(jax.random.key(1), init_hidden(CFG, 1), jnp.zeros((1, 1, gj.env.OBS_DIM)),
                          jnp.zeros((1, 1), bool))
    _, obs_stats, report = ws.warm_start_params(CFG, groups, None, params, ("warmup_cosine",), 100,
                                                jax.random.key(0))
    per_task = len(ws.DEFAULT_PEAK_LRS) * ws.DEFAULT_DEMO_SEEDS
    assert report["tasks"] == 2 and report["demonstrations"] == per_task * 3 + per_task * 2
    assert report["accuracy"][0] > report["accuracy_before"][0]
    def empty(steps):
        return ws.Demonstrations(jnp.zeros((steps, 1, 2, 3)), jnp.zeros((steps, 1, 2)), jnp.zeros((steps, 1)),
                                 jnp.zeros((steps, 1)))

    with pytest.raises(ValueError, match="one horizon"):
        ws.join([empty(4), empty(5)])
