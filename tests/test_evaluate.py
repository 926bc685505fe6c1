"""Evaluation harness: grid shapes, common random numbers, divergence counting, tables, errors."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ganno_jax as gj
from ganno_jax import cli, evaluate
from ganno_jax.evaluation import chunked, harness
from ganno_jax.agents import ConstantPolicy
from ganno_jax.evaluation import controllers
from ganno_jax.env.inner import InnerTrainer

TASK = gj.tasks.get("digits-mlp", tau=4, horizon=3, eval_batch=64)


@pytest.fixture(scope="module")
def constant_result():
    return evaluate.run(controllers.baseline("constant"), TASK, init_lrs=(1e-3, 1e30), seeds=2)


def test_grid_shapes_and_divergence_counting(constant_result):
    res = constant_result
    assert res.curves["test_acc"].shape == (2, 2, TASK.horizon)
    assert res.curves["lrs"].shape == (2, 2, TASK.horizon, 3)
    assert res.final_acc.shape == (2, 2)
    assert res.diverged_runs == 2  # both seeds at LR 1e30, none at 1e-3
    assert np.all(np.isfinite(res.curves["test_loss"]))
    np.testing.assert_allclose(res.curves["lrs"][0], 1e-3, rtol=1e-6)


def test_noop_policy_equals_constant_schedule(constant_result):
    """Same keys for every method: the always-no-op agent reproduces the constant schedule exactly."""
    noop = evaluate.run(controllers.learned("noop", ConstantPolicy(0)), TASK, init_lrs=(1e-3,), seeds=2)
    np.testing.assert_allclose(noop.curves["test_acc"][0], constant_result.curves["test_acc"][0], atol=1e-6)


def test_test_every_measures_every_kth_step_and_the_last_only(constant_result):
    """--test-every 2 over 3 env steps: test metrics after steps 2 and 3 (the last), equal to those measured
    after every step; NaN (JSON null) after step 1; every other curve and the tables unchanged. The skipped pass is
    a branch of the compiled program (the condition is the same for every run, so vmap keeps it a branch)."""
    sparse = evaluate.run(controllers.baseline("constant"), TASK, init_lrs=(1e-3, 1e30), seeds=2, test_every=2)
    for k in ("test_acc", "test_loss"):
        assert np.isnan(sparse.curves[k][..., 0]).all()
        np.testing.assert_array_equal(sparse.curves[k][..., 1:], constant_result.curves[k][..., 1:])
    for k in ("val_acc", "train_loss", "lrs", "diverged"):
        np.testing.assert_array_equal(sparse.curves[k], constant_result.curves[k])
    table = [evaluate.csv_table(evaluate.summary_rows([r])) for r in (sparse, constant_result)]
    assert table[0] == table[1]
    assert sparse.to_dict()["curves"]["test_acc"][0][0][0] is None and sparse.to_dict()["test_every"] == 2
    shared = (gj.data.load_dataset(TASK.dataset), jnp.float32(0.1))
    runs = (jnp.zeros(4, jnp.int32), jnp.ones(4), jax.random.split(jax.random.key(0), 4))
    branches = []
    for k, result in ((1, constant_result), (2, sparse)):  # the programs that ran (cached)
        mapper = harness._schedule_runs(TASK, None, ("constant",), k).mapper
        _, compiled = mapper.plan(shared, runs, chunked.grid_mesh(None), result.plan.chunk)
        branches.append(compiled.as_text().count(" conditional("))
    assert branches[1] == branches[0] + 1
    with pytest.raises(ValueError, match="test_every=0 must be an integer >= 1"):
        evaluate.run(controllers.baseline("constant"), TASK, init_lrs=(1e-3,), seeds=1, test_every=0)


def test_schedule_acts_every_optimiser_step():
    res = evaluate.run(controllers.baseline("linear"), TASK, init_lrs=(1e-3,), seeds=1)
    total = TASK.total_inner_steps
    expected_last = [1e-3 * (1 - ((t + 1) * TASK.tau - 1) / total) for t in range(TASK.horizon)]
    np.testing.assert_allclose(res.curves["lrs"][0, 0, :, 0], expected_last, rtol=1e-5)


def test_table_formatting_from_known_numbers(tmp_path):
    acc = np.array([[[0.7, 0.8], [0.8, 0.9]], [[0.9, 0.9], [0.9, 0.9]]])[..., None]  # [method, L=2, S=2, T=1]
    make = lambda name, a: evaluate.EvalResult(name, "t", (1e-3, 1e-2), 0.1, {  # noqa: E731
        "test_acc": a, "diverged": np.zeros(a.shape, bool), "lrs": np.zeros((*a.shape, 1))})
    rows = evaluate.summary_rows([make("a", acc[0]), make("b", acc[1])])
    assert rows[0]["mean"] == pytest.approx([75.0, 85.0]) and rows[0]["std"] == pytest.approx([5.0, 5.0])
    assert rows[0]["avg_mean"] == pytest.approx(80.0) and rows[0]["lr_std"] == pytest.approx(5.0)
    md = evaluate.markdown_table(rows)
    assert md.splitlines()[0] == "| Method | 0.001 | 0.01 | Average | IQM [95% CI] | Std across LRs | Diverged |"
    # IQM of 70, 80, 80, 90; its interval's ends: both resampled seeds at the low (high) value of each LR
    assert "| a | 75.00 ± 5.00 | 85.00 ± 5.00 | 80.00 ± 5.00 | 80.00 [75.00, 85.00] | 5.00 | 0/4 |" in md
    assert "**90.00 ± 0.00**" in md  # best in column bold
    csv_text = evaluate.csv_table(rows)
    assert csv_text.splitlines()[1].startswith("a,75.0000,5.0000,85.0000,5.0000,80.0000")
    paths = evaluate.save_results([make("a", acc[0])], str(tmp_path / "out"))
    assert json.load(open(paths["json"]))["summary"][0]["method"] == "a"
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".tmp-")]


@pytest.mark.parametrize("kwargs,match", [
    (dict(init_lrs=()), "init_lrs is empty"), (dict(init_lrs=(1e-3, -1e-3)), "init_lrs contains -0.001"),
    (dict(seeds=0), "seeds=0 must be an integer >= 1"),
])
def test_bad_grid_is_a_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate.run(controllers.baseline("constant"), TASK, **kwargs)


def test_unknown_controller_lists_valid_names():
    with pytest.raises(ValueError, match="controller=.adamw-magic. is not valid; allowed: constant, step"):
        controllers.baseline("adamw-magic")
    with pytest.raises(ValueError, match="optimizer='sophia'"):
        controllers.ScheduleController("x", optimizer="sophia")


def test_batched_grid_equals_all_at_once(capsys):
    """Runs in chunks of 3 (the last padded) give the curves of every program's runs at once."""
    methods = [controllers.baseline("constant"), controllers.baseline("cosine"), controllers.baseline("random")]
    grid = dict(init_lrs=(1e-3, 1e-2), seeds=2, devices=1)
    whole = evaluate.run_many(methods, TASK, max_parallel_runs=100, **grid)
    parts = evaluate.run_many(methods, TASK, max_parallel_runs=3, progress=True, **grid)
    assert "12/12" in capsys.readouterr().err  # the progress bar counted every run
    for a, b in zip(whole, parts):
        assert a.method == b.method and b.plan.chunk == 3 and a.plan.chunk in (4, 8)
        for k in evaluate.CURVE_KEYS:
            np.testing.assert_allclose(a.curves[k], b.curves[k], rtol=1e-5, atol=1e-6, err_msg=f"{a.method} {k}")
    # common random numbers survive chunking: cosine starts like constant (same init, same minibatches)
    np.testing.assert_array_equal(parts[0].curves["train_loss"][..., 0] > 0, True)
    np.testing.assert_allclose(parts[0].curves["test_acc"][..., 0], parts[1].curves["test_acc"][..., 0], atol=0.02)


def test_test_split_in_chunks_equals_the_whole_split():
    trainer, data = InnerTrainer(TASK), gj.data.load_dataset(TASK.dataset)
    params = trainer.init(jax.random.key(3)).params
    n = data.x_test.shape[0]
    whole = trainer.test_metrics(data, params, batch=n)
    for chunk in (37, n // 2, n - 1):  # a remainder, two equal pieces, a one-example remainder
        np.testing.assert_allclose(trainer.test_metrics(data, params, batch=chunk), whole, rtol=1e-5)
    logits = trainer.module.apply({"params": params}, data.x_test)
    assert float(whole[1]) == pytest.approx(float(np.mean(np.argmax(logits, -1) == data.y_test)), abs=1e-6)


def test_cli_refuses_a_grid_that_cannot_fit_before_running(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(chunked, "device_budget", lambda mesh: 1024)  # 1 KiB free
    out = tmp_path / "res"
    code = cli.main(["evaluate", "--task", "digits-mlp", "--tau", "2", "--horizon", "2", "--methods", "constant",
                     "--init-lrs", "1e-3", "--seeds", "1", "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "ganno evaluate: error: digits-mlp: constant: one run needs an estimated" in err
    assert "test_batch (now 500" in err and "Traceback" not in err
    assert not out.exists()  # nothing half-written


@pytest.fixture(scope="module")
def two_untrained_policies():
    """Two freshly initialised (different) GANNO policies for TASK, each greedy."""
    from ganno_jax.agents import make_train_pieces, policy_from
    from ganno_jax.env import LayerwiseLREnv
    from ganno_jax.scales import ganno_scale

    cfg = ganno_scale("smoke").ippo
    env = LayerwiseLREnv(TASK)
    init = jax.jit(make_train_pieces(cfg, env, env.default_params).init)
    return [policy_from(init(jax.random.key(k)), cfg) for k in (0, 1)]


def test_trained_agents_are_each_run_on_every_cell(two_untrained_policies):
    """A controller of 2 stacked agents = each agent alone, side by side on the seed axis (same keys)."""
    a, b = two_untrained_policies
    stacked = jax.tree.map(lambda x, y: np.stack([x, y]), a, b)
    both = evaluate.run(controllers.learned("GANNO", stacked, members=2), TASK, init_lrs=(1e-3, 3e-3), seeds=2)
    alone = [evaluate.run(controllers.learned("GANNO", p), TASK, init_lrs=(1e-3, 3e-3), seeds=2) for p in (a, b)]
    assert both.curves["test_acc"].shape == (2, 4, TASK.horizon)
    for key in ("lrs", "test_acc"):
        np.testing.assert_allclose(both.curves[key], np.concatenate([r.curves[key] for r in alone], axis=1),
                                   rtol=1e-5, atol=1e-6)
    assert evaluate.summary_rows([both])[0]["runs"] == 8  # mean +- std over agents x seeds


def test_sampled_actions_are_seeded_and_differ_from_greedy(two_untrained_policies):
    import dataclasses

    greedy = two_untrained_policies[0]
    sampled = controllers.learned("GANNO", dataclasses.replace(greedy, greedy=False))
    runs = [evaluate.run(c, TASK, init_lrs=(1e-3,), seeds=3) for c in (sampled, sampled)]
    np.testing.assert_array_equal(runs[0].curves["lrs"], runs[1].curves["lrs"])  # same seed, same actions
    lrs = runs[0].curves["lrs"][0]
    assert not np.allclose(lrs[0], lrs[1])  # seeds draw different actions
    by_greedy = evaluate.run(controllers.learned("GANNO", greedy), TASK, init_lrs=(1e-3,), seeds=3)
    assert not np.allclose(lrs, by_greedy.curves["lrs"][0])
    with pytest.raises(ValueError, match="sample, greedy"):
        controllers.check_eval_actions("mode")


@pytest.fixture(scope="module")
def large_dataset_task(tmp_path_factory):
    """A task on a saved 6000 x 32 x 32 random dataset (~28 MB as float32), and the dataset."""
    from ganno_jax import data

    folder = str(tmp_path_factory.mktemp("evalmem"))
    rng = np.random.default_rng(0)
    data.from_arrays("evalmem", rng.normal(size=(6000, 32, 32, 1)), rng.integers(0, 10, 6000),
                     rng.normal(size=(1000, 32, 32, 1)), rng.integers(0, 10, 1000), register=False, save_to=folder)
    task = gj.tasks.get("evalmem-mlp", tau=2, horizon=1, eval_batch=64, data_dir=folder)
    return task, data.load_dataset("evalmem", folder)


@pytest.mark.parametrize("program", ["schedules", "policy"])
def test_compiled_programs_take_the_dataset_as_an_argument(large_dataset_task, program):
    """No evaluation program embeds the dataset as a constant (closed over, it would: the program text
    grows by ~2 characters per byte and every cached executable keeps a copy); it is an argument,
    counted once in the program's footprint."""
    import jax.numpy as jnp

    from ganno_jax.evaluation import harness

    task, dataset = large_dataset_task
    data_bytes = chunked.tree_bytes(dataset)
    keys, wd = jax.random.split(jax.random.key(0), 2), jnp.float32(0.1)
    if program == "schedules":
        mapper = harness._schedule_runs(task, None, ("constant", "cosine")).mapper
        shared, runs = (dataset, wd), (jnp.array([0, 1], jnp.int32), jnp.full(2, 1e-3), keys)
    else:
        policies = jax.tree.map(lambda x: x[None], controllers.baseline("random").policy)
        mapper = harness._policy_runs(task, "ganno").mapper
        env_params = jax.tree.map(jnp.asarray, gj.env.EnvParams(data=dataset))
        shared, runs = (env_params, policies, wd), (jnp.full(2, 1e-3), jnp.zeros(2, jnp.int32), keys)
    assert len(mapper.lower(shared, runs, chunk=2).as_text()) < data_bytes / 20
    plan, _ = mapper.plan(shared, runs, max_parallel_runs=2)
    assert data_bytes <= plan.program_bytes < 2 * data_bytes
