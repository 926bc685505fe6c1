"""Inner optimisers (tasks/optimizers.py, tasks/update_rules.py) through the env's inner trainer against optax:
every registered optimiser with constant (no-op) LRs equals the plain optax optimiser step for step, a layer
at LR 0 stays put, a user's optimiser trains, and the optimiser baselines (baselines/optimizers.py) keep
their meaning."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ganno_jax as gj
from ganno_jax import evaluate
from ganno_jax.baselines.optimizers import UPDATE_RULES, make_update_rule
from ganno_jax.env.inner import InnerTrainer
from ganno_jax.evaluation import controllers
from ganno_jax.tasks import optimizers
from optax_reference import optax_run

TASK = gj.tasks.get("digits-mlp", tau=5, horizon=2, eval_batch=64)
DATA = gj.data.load_dataset(TASK.dataset)
STEPS, LR, WD = 6, 3e-3, 0.05
#: (optimizer, task weight_decay_mode, the plain optax optimiser the no-op run must equal)
REFERENCES = [
    ("adam", "decoupled", optax.adamw(LR, weight_decay=WD)),
    ("adam", "l2", optax.chain(optax.add_decayed_weights(WD), optax.adam(LR))),
    ("sgd", "l2", optax.chain(optax.add_decayed_weights(WD), optax.sgd(LR))),
    ("momentum", "l2", optax.chain(optax.add_decayed_weights(WD), optax.sgd(LR, momentum=0.9))),
    ("adamw", "l2", optax.adamw(LR, weight_decay=WD)),  # always decoupled
    ("lion", "l2", optax.lion(LR, weight_decay=WD)),
    ("lamb", "decoupled", optax.lamb(LR, weight_decay=WD)),  # decay inside the trust ratio, as the LAMB paper
    ("prodigy", "decoupled", optax.contrib.prodigy(learning_rate=1.0, estim_lr0=LR, weight_decay=WD)),
    ("schedule_free_adamw", "decoupled", optax.contrib.schedule_free_adamw(learning_rate=LR, weight_decay=WD)),
]


@pytest.fixture
def fresh_optimizers(monkeypatch):
    """The test's registrations vanish afterwards."""
    monkeypatch.setattr(optimizers.OPTIMIZERS, "_entries", dict(optimizers.OPTIMIZERS._entries))


def _train(task, layer_lrs=None):
    """(trainer, start, final state) after STEPS steps at per-layer LRs ``layer_lrs`` (default: LR everywhere)."""
    trainer = InnerTrainer(task)
    key = jax.random.key(3)
    start = trainer.init(key, LR)
    lrs = jnp.broadcast_to(jnp.full(trainer.num_agents, LR) if layer_lrs is None else layer_lrs,
                           (STEPS, trainer.num_agents))
    idx = trainer.sample_batch_indices(DATA, jax.random.key(4), STEPS)
    state, stats = jax.jit(trainer.train)(DATA, start, lrs, WD, key, idx)
    assert not bool(stats.diverged)
    return trainer, start, state, idx


def _assert_trees_close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-6), a, b)


def test_every_builtin_optimizer_has_a_reference():
    assert {name for name, *_ in REFERENCES} == set(gj.tasks.OPTIMIZERS)


@pytest.mark.parametrize("optimizer,mode,reference", REFERENCES, ids=[f"{o}-{m}" for o, m, _ in REFERENCES])
def test_noop_lrs_equal_the_plain_optax_optimizer(optimizer, mode, reference):
    trainer, start, state, idx = _train(TASK.replace(optimizer=optimizer, weight_decay_mode=mode))
    params, opt_state = optax_run(trainer, DATA, start.params, idx, reference)
    _assert_trees_close(state.params, params)
    if optimizer == "schedule_free_adamw":  # measured at its averaged iterate, not at y
        averaged = optax.contrib.schedule_free_eval_params(opt_state, params)
        _assert_trees_close(trainer.eval_params(state), averaged)
        assert not np.allclose(jax.tree.leaves(averaged)[0], jax.tree.leaves(params)[0])
    if optimizer == "prodigy":  # the reported step size is the adapted d (times the multiplier 1)
        lrs = jnp.full(trainer.num_agents, LR)
        np.testing.assert_allclose(trainer.rule.effective_lr(state.opt_state, lrs), opt_state.estim_lr, rtol=1e-6)
        assert float(opt_state.estim_lr) > LR  # d grew from d0 = LR


@pytest.mark.parametrize("optimizer", ["adam", "lion", "prodigy", "schedule_free_adamw"])
def test_the_per_layer_lr_scales_each_layers_step(optimizer):
    """A layer at LR 0 keeps its parameters (its decay included; schedule-free up to round-off in y = b1 x +
    (1 - b1) z) while the others move."""
    _, start, state, _ = _train(TASK.replace(optimizer=optimizer), jnp.array([LR, 0.0, LR]))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
                 state.params["L01_dense"], start.params["L01_dense"])
    assert not np.allclose(state.params["L00_dense"]["kernel"], start.params["L00_dense"]["kernel"])


def test_a_user_registered_optimizer_trains_in_the_env(fresh_optimizers):
    def rmsprop(learning_rate, weight_decay):
        return optax.chain(optax.add_decayed_weights(weight_decay), optax.rmsprop(learning_rate))

    gj.tasks.register_optimizer("my_rmsprop", rmsprop)
    task = TASK.replace(optimizer="my_rmsprop")
    trainer, start, state, idx = _train(task)
    _assert_trees_close(state.params, optax_run(trainer, DATA, start.params, idx, rmsprop(LR, WD))[0])
    env = gj.env.LayerwiseLREnv(task)
    params = env.default_params
    _, env_state = env.reset(jax.random.key(0), params)
    _, after, reward, *_ = env.step(jax.random.key(1), env_state, jnp.zeros(env.num_agents, jnp.int32), params)
    assert reward.shape == (env.num_agents,) and np.all(np.isfinite(np.asarray(reward)))
    assert not np.allclose(after.inner.params["L00_dense"]["kernel"], env_state.inner.params["L00_dense"]["kernel"])


def test_optimizer_names_and_factories_are_checked(fresh_optimizers):
    with pytest.raises(ValueError, match="optimizer='nope' is not valid; allowed: adam, sgd, momentum, adamw, lion"):
        TASK.replace(optimizer="nope")
    with pytest.raises(ValueError, match="unknown optimizer 'nope'; valid names: adam, sgd"):
        gj.tasks.optimizer_rule("nope")
    with pytest.raises(ValueError, match="optimizer 'lion' is already registered; pass overwrite=True"):
        gj.tasks.register_optimizer("lion", lambda lr, wd: optax.sgd(lr))
    gj.tasks.register_optimizer("lion", lambda lr, wd: optax.sgd(lr), overwrite=True)
    with pytest.raises(ValueError, match="must be callable as factory"):
        gj.tasks.register_optimizer("bad", lambda lr, wd: "not a transformation")
    with pytest.raises(ValueError, match="optimizer name='my-opt'"):
        gj.tasks.register_optimizer("my-opt", optax.sgd)


def test_owned_lr_baselines_run_through_the_evaluation_grid():
    res = evaluate.run_many([controllers.baseline("schedule_free_adamw"), controllers.baseline("prodigy")], TASK,
                            init_lrs=(1e-4, 1e-2), seeds=2)
    for r in res:
        assert r.curves["test_acc"].shape == (2, 2, TASK.horizon) and r.diverged_runs == 0
        assert np.all(np.isfinite(r.curves["test_loss"]))
    sf, prodigy = res
    # schedule-free AdamW follows its warm-up schedule: LR reached by the last step of each env step
    warmup = max(1, TASK.total_inner_steps // 10)
    np.testing.assert_allclose(sf.curves["lrs"][1, 0, :, 0], 1e-2 * min(1.0, (TASK.tau - 1) / warmup), rtol=1e-5)
    # Prodigy reports its adapted step size, which only grows from d0 = the initial LR
    assert np.all(prodigy.curves["lrs"][0] >= 1e-4 * (1 - 1e-6))
    assert prodigy.curves["lrs"][0].max() > 1e-4


def test_owned_lr_optimisers_are_named_and_checked():
    assert {"schedule_free_adamw", "prodigy"} <= set(controllers.baseline_names()) and "prodigy" in UPDATE_RULES
    with pytest.raises(ValueError, match="optimizer 'prodigy' needs initial LRs > 0"):
        evaluate.run(controllers.baseline("prodigy"), TASK, init_lrs=(0.0, 1e-3), seeds=1)
    with pytest.raises(ValueError, match="needs the run's init_lr"):
        InnerTrainer(TASK, rule=make_update_rule("prodigy")).init(jax.random.key(0))
    with pytest.raises(ValueError, match="direction or a rule, not both"):
        InnerTrainer(TASK, direction=optax.identity(), rule=make_update_rule("lion"))
