"""Optimiser baselines (baselines/optimizers.py, env/update_rules.py) through the inner trainer against optax:
Lion and LAMB (per-layer LR directions), schedule-free AdamW and Prodigy (own their step size)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ganno_jax as gj
from ganno_jax import evaluate
from ganno_jax.evaluation import controllers
from ganno_jax.baselines.optimizers import UPDATE_RULES, make_update_rule
from ganno_jax.env.inner import InnerTrainer
from optax_reference import optax_run

TASK = gj.tasks.get("digits-mlp", tau=5, horizon=2, eval_batch=64)
STEPS, LR, WD = 6, 3e-3, 0.05


def _trainer_and_reference(optimizer: str, reference: optax.GradientTransformation):
    """Runs STEPS steps through InnerTrainer and through a plain optax loop on the same minibatches."""
    trainer = InnerTrainer(TASK, rule=make_update_rule(optimizer))
    key = jax.random.key(3)
    start = trainer.init(key, LR)
    idx = trainer.sample_batch_indices(jax.random.key(4), STEPS)
    state, stats = jax.jit(trainer.train)(start, jnp.full((STEPS, trainer.num_agents), LR), WD, key, idx)
    assert not bool(stats.diverged)
    return (trainer, state, *optax_run(trainer, start.params, idx, reference))


def _assert_trees_close(a, b):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-6), a, b)


@pytest.mark.parametrize("optimizer,reference", [
    ("lion", optax.lion(LR, weight_decay=WD)),
    ("lamb", optax.lamb(LR, weight_decay=WD)),  # decay inside the trust ratio, as the LAMB paper
])
def test_direction_optimizers_match_optax(optimizer, reference):
    _, state, params, _ = _trainer_and_reference(optimizer, reference)
    _assert_trees_close(state.params, params)


def test_schedule_free_adamw_matches_optax_and_is_measured_at_its_average():
    reference = optax.contrib.schedule_free_adamw(learning_rate=LR, weight_decay=WD)
    trainer, state, params, opt_state = _trainer_and_reference("schedule_free_adamw", reference)
    _assert_trees_close(state.params, params)
    averaged = optax.contrib.schedule_free_eval_params(opt_state, params)
    _assert_trees_close(trainer.eval_params(state), averaged)
    assert not np.allclose(jax.tree.leaves(averaged)[0], jax.tree.leaves(params)[0])


def test_prodigy_matches_optax_with_d0_at_the_initial_lr():
    reference = optax.contrib.prodigy(learning_rate=1.0, estim_lr0=LR, weight_decay=WD)
    trainer, state, params, opt_state = _trainer_and_reference("prodigy", reference)
    _assert_trees_close(state.params, params)
    lrs = jnp.full(trainer.num_agents, LR)
    np.testing.assert_allclose(trainer.rule.effective_lr(state.opt_state, lrs), opt_state.estim_lr, rtol=1e-6)
    assert float(opt_state.estim_lr) > LR  # d grew from d0 = LR


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
    env = gj.env.LayerwiseLREnv(TASK, trainer=InnerTrainer(TASK, rule=make_update_rule("prodigy")))
    params = env.default_params
    obs, state = env.reset(jax.random.key(0), params)
    with pytest.raises(ValueError, match="'prodigy' takes one global LR"):
        env.step(jax.random.key(1), state, jnp.zeros(env.num_agents, jnp.int32), params)
    with pytest.raises(ValueError, match="needs the run's init_lr"):
        InnerTrainer(TASK, rule=make_update_rule("prodigy")).init(jax.random.key(0))
    with pytest.raises(ValueError, match="direction or a rule, not both"):
        InnerTrainer(TASK, direction=optax.identity(), rule=make_update_rule("lion"))
