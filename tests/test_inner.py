"""InnerTrainer.train (env/inner.py) against optax: per-layer LRs, AdamW and L2 weight decay, divergence masking."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ganno_jax as gj
from ganno_jax.env.inner import InnerTrainer
from optax_reference import optax_run

TASK = gj.tasks.get("digits-mlp", width=4)
DATA = gj.data.load_dataset(TASK.dataset)
STEPS, WD = 3, 0.05


@pytest.fixture(scope="module")
def trainer():
    return InnerTrainer(TASK)


@pytest.fixture(scope="module")
def train(trainer):
    return jax.jit(trainer.train)


@pytest.fixture(scope="module")
def start(trainer):
    return trainer.init(jax.random.key(0))


@pytest.fixture(scope="module")
def batch_indices(trainer):
    return trainer.sample_batch_indices(DATA, jax.random.key(1), STEPS)


def _layer_names(params):
    """Top-level parameter entries in depth order: entry i (``L0i_...``) is agent i's layer."""
    return sorted(params)


def _per_layer_reference(params, layer_lrs, make):
    """optax.multi_transform giving layer ``name`` the optimiser ``make(lr)`` of its LR."""
    names = _layer_names(params)
    labels = {name: jax.tree.map(lambda _: name, params[name]) for name in names}
    return optax.multi_transform({name: make(float(lr)) for name, lr in zip(names, layer_lrs)}, labels)


def test_per_layer_lr_moves_only_its_layer(trainer, train, start, batch_indices):
    for agent in range(trainer.num_agents):
        lrs = jnp.zeros((STEPS, trainer.num_agents)).at[:, agent].set(1e-2)
        state, _ = train(DATA, start, lrs, WD, jax.random.key(2), batch_indices)
        for i, name in enumerate(_layer_names(start.params)):
            for leaf, before in start.params[name].items():
                after = state.params[name][leaf]
                if i == agent:
                    assert not np.allclose(after, before), (agent, name, leaf)
                else:  # LR 0: neither the direction nor the weight decay moves another layer
                    np.testing.assert_array_equal(after, before, err_msg=f"agent {agent} moved {name}/{leaf}")


def test_adam_with_decoupled_decay_equals_optax_adamw_per_layer(trainer, train, start, batch_indices):
    layer_lrs = np.array([1e-3, 3e-3, 1e-2], np.float32)
    state, stats = train(DATA, start, jnp.broadcast_to(layer_lrs, (STEPS, 3)), WD, jax.random.key(2), batch_indices)
    names = _layer_names(start.params)
    reference = _per_layer_reference(start.params, layer_lrs, lambda lr: optax.adamw(lr, weight_decay=WD))
    params, opt_state = optax_run(trainer, DATA, start.params, batch_indices, reference)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7), state.params, params)
    np.testing.assert_array_equal(state.opt_state.count, STEPS)
    for name in names:
        adam = opt_state.inner_states[name].inner_state[0]  # adamw = chain(scale_by_adam, decay, lr)
        for moment in ("mu", "nu"):
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * np.abs(b).max()),
                         getattr(state.opt_state, moment)[name], getattr(adam, moment)[name])
    assert not bool(stats.diverged)


@pytest.mark.parametrize("optimizer,direction", [("adam", optax.scale_by_adam), ("sgd", optax.identity)])
def test_l2_decay_equals_decayed_weights_before_the_direction_per_layer_and_vmapped_over_decays(
        optimizer, direction, batch_indices):
    task = TASK.replace(optimizer=optimizer, weight_decay_mode="l2")
    trainer = InnerTrainer(task)
    start = trainer.init(jax.random.key(0))
    layer_lrs = np.array([1e-3, 3e-3, 1e-2], np.float32)
    decays = jnp.array([0.0, WD, 0.5])
    states, _ = jax.jit(jax.vmap(trainer.train, in_axes=(None, None, None, 0, None, None)))(
        DATA, start, jnp.broadcast_to(layer_lrs, (STEPS, 3)), decays, jax.random.key(2), batch_indices)
    for i, wd in enumerate(decays.tolist()):
        reference = _per_layer_reference(start.params, layer_lrs, lambda lr: optax.chain(
            optax.add_decayed_weights(wd), direction(), optax.scale(-lr)))
        params, _ = optax_run(trainer, DATA, start.params, batch_indices, reference)
        got = jax.tree.map(lambda x: x[i], states.params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7), got, params)
    # the decay changes the run (the test could fail): wd 0 and wd 0.5 end apart
    first, last = (jax.tree.map(lambda x: x[j], states.params) for j in (0, 2))
    assert not np.allclose(first["L00_dense"]["kernel"], last["L00_dense"]["kernel"])


def test_l2_and_decoupled_decay_differ_for_adam(start, batch_indices):
    lrs = jnp.full((STEPS, 3), 1e-2)
    runs = [jax.jit(InnerTrainer(TASK.replace(weight_decay_mode=m)).train)(DATA, start, lrs, 0.5,
                                                                           jax.random.key(2), batch_indices)[0]
            for m in ("l2", "decoupled")]
    assert not np.allclose(runs[0].params["L00_dense"]["kernel"], runs[1].params["L00_dense"]["kernel"], atol=1e-6)


def test_diverging_step_leaves_params_and_optimizer_state_as_after_the_previous_step(trainer, train, start,
                                                                                        batch_indices):
    lr = 3e-3
    diverging = jnp.array([lr, lr, 1e38])[:, None] * jnp.ones(trainer.num_agents)
    state, stats = train(DATA, start, diverging, WD, jax.random.key(2), batch_indices)
    two, two_stats = jax.jit(trainer.train)(DATA, start, diverging[:2], WD, jax.random.key(2), batch_indices[:2])
    assert bool(stats.diverged) and not bool(two_stats.diverged)
    jax.tree.map(np.testing.assert_array_equal, state, two)  # params and Adam state (count included)
    np.testing.assert_allclose(stats.train_loss, two_stats.train_loss, rtol=1e-6)  # mean over the applied steps
