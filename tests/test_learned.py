"""ganno_jax.learned.schedule: the same decisions, LRs and parameters as LayerwiseLREnv's inner run; jit, scan,
vmap over runs; missing metrics; label functions; LRs read from optax.inject_hyperparams."""
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ganno_jax as gj
from ganno_jax import learned
from ganno_jax.env import LayerwiseLREnv, features

TAU, HORIZON, LR, WD = 3, 3, 3e-3, 0.01
TASK = gj.tasks.get("digits-mlp", width=4, tau=TAU, horizon=HORIZON, batch_size=16, eval_batch=64,
                    weight_decay_mode="l2")
METRICS = dict(train_loss=1.0, train_acc=0.5, val_loss=1.2, val_acc=0.4, weight_decay=0.0)


@flax.struct.dataclass
class ObsPolicy:
    """Sampled actions that depend on every observation feature (a fixed random linear map plus Gumbel noise
    from the key); the carry is the last observation seen, [num_agents, OBS_DIM]."""

    weights: jax.Array  # [OBS_DIM, 9]

    def init(self, key, num_agents):
        return jnp.zeros((num_agents, features.OBS_DIM))

    def act(self, key, obs, carry, done):
        logits = obs @ self.weights + jax.random.gumbel(key, (obs.shape[0], self.weights.shape[1]))
        return jnp.argmax(logits, -1).astype(jnp.int32), obs


POLICY = ObsPolicy(jax.random.normal(jax.random.key(3), (features.OBS_DIM, 9)))


@pytest.fixture(scope="module")
def env_run():
    """LayerwiseLREnv's episode under POLICY: (reset state, per-decision [lrs], [params], [obs], step keys)."""
    env = LayerwiseLREnv(TASK)
    params = env.default_params.replace(reward_mode="accuracy").fixed_start(LR, WD)
    obs, state0 = env.reset(jax.random.key(0), params)
    step, key, carry, state = jax.jit(env.step_env), jax.random.key(7), POLICY.init(None, env.num_agents), state0
    step_keys = jax.random.split(jax.random.key(1), HORIZON)
    lrs, inner, seen = [], [], []
    for k in range(HORIZON):
        key, k_act = jax.random.split(key)
        action, carry = POLICY.act(k_act, obs, carry, False)
        seen.append(obs)
        obs, state, *_ = step(step_keys[k], state, action, params)
        lrs.append(state.lrs)
        inner.append(state.inner.params)
    return env, params, state0, lrs, inner, seen, step_keys


def test_plain_loop_gives_the_envs_lrs_params_and_observations(env_run):
    env, env_params, state0, env_lrs, env_inner, env_obs, step_keys = env_run
    trainer, data = env.trainer, env_params.data
    tx = learned.schedule(optax.chain(optax.add_decayed_weights(WD), optax.adam(LR)), POLICY, tau=TAU,
                          horizon=HORIZON, init_lr=LR, key=jax.random.key(7))
    params, metrics = state0.inner.params, state0.metrics

    @jax.jit
    def train_step(params, opt_state, x, y, metrics):
        grads = jax.grad(lambda p: trainer.loss_and_accuracy(p, x, y)[0])(params)
        updates, opt_state = tx.update(grads, opt_state, params, **vars(metrics), weight_decay=WD)
        return optax.apply_updates(params, updates), opt_state

    opt_state = tx.init(params)
    for k in range(HORIZON):
        k_train, k_eval = jax.random.split(step_keys[k])
        for idx in trainer.sample_batch_indices(data, k_train, TAU):
            params, opt_state = train_step(params, opt_state, data.x_train[idx], data.y_train[idx], metrics)
        metrics = trainer.measure(data, params, k_eval)
        np.testing.assert_allclose(opt_state.carry, env_obs[k], rtol=1e-4, atol=1e-4)  # what the policy saw
        np.testing.assert_allclose(learned.lrs(opt_state), env_lrs[k], rtol=1e-6)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), params, env_inner[k])
    assert not bool(learned.is_decision_step(opt_state))
    last = learned.lrs(opt_state)
    params, opt_state = train_step(params, opt_state, data.x_train[:16], data.y_train[:16], metrics)
    np.testing.assert_array_equal(learned.lrs(opt_state), last)  # after the horizon each layer keeps its LR


def _run(tx, params, steps):
    """``steps`` updates of a toy quadratic loss inside lax.scan; (params, state)."""
    def body(carry, _):
        p, s = carry
        grads = jax.tree.map(lambda x: 2 * x, p)
        updates, s = tx.update(grads, s, p, **METRICS)
        return (optax.apply_updates(p, updates), s), learned.lrs(s)
    (p, s), lrs = jax.lax.scan(body, (params, tx.init(params)), None, length=steps)
    return p, s, lrs


PARAMS = {"Dense_0": {"kernel": jnp.ones((3, 4)), "bias": jnp.zeros(4)}, "Dense_1": {"kernel": jnp.ones((4, 2))}}


def test_jit_scan_and_vmap_over_runs():
    tx = learned.schedule(optax.adam(1e-3), gj.agents.ConstantPolicy(2), tau=2, horizon=3, init_lr=1e-3)
    _, state, lrs = jax.jit(lambda p: _run(tx, p, 8))(PARAMS)
    np.testing.assert_allclose(lrs[-1], np.full(2, 1e-3 * 1.1**3), rtol=1e-6)  # three x1.10 decisions, then held
    np.testing.assert_allclose(lrs[:, 0], 1e-3 * 1.1 ** np.array([1, 1, 2, 2, 3, 3, 3, 3]), rtol=1e-6)
    runs = jax.tree.map(lambda x: jnp.stack([x, 2 * x]), PARAMS)
    p_runs, s_runs, lr_runs = jax.jit(jax.vmap(lambda p: _run(tx, p, 8)))(runs)
    assert lr_runs.shape == (2, 8, 2) and learned.lrs(s_runs).shape == (2, 2)
    p_one, _, _ = _run(tx, jax.tree.map(lambda x: 2 * x, PARAMS), 8)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[1], b, rtol=1e-6), p_runs, p_one)


def test_scaled_update_is_the_base_step_at_each_layers_lr():
    tx = learned.schedule(optax.sgd(0.1), gj.agents.ConstantPolicy(0), tau=1, horizon=1, init_lr=0.1)
    state = tx.init(PARAMS)
    state = state._replace(lrs=jnp.array([0.2, 0.05]), due=jnp.bool_(False))
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    updates, _ = tx.update(grads, state, PARAMS)
    np.testing.assert_allclose(updates["Dense_0"]["kernel"], -0.2)
    np.testing.assert_allclose(updates["Dense_1"]["kernel"], -0.05)


def test_missing_metric_raises_naming_it():
    tx = learned.schedule(optax.adam(1e-3), gj.agents.ConstantPolicy(0), tau=2, horizon=2, init_lr=1e-3)
    state = tx.init(PARAMS)
    grads = jax.tree.map(jnp.ones_like, PARAMS)
    partial = {k: v for k, v in METRICS.items() if k != "val_acc"}
    with pytest.raises(ValueError, match="missing val_acc="):
        tx.update(grads, state, PARAMS, **partial)
    with pytest.raises(ValueError, match="missing val_acc=.*under jit"):
        jax.jit(lambda s: tx.update(grads, s, PARAMS, **partial))(state)
    _, state = tx.update(grads, state, PARAMS, **METRICS, unknown_keyword=1)  # unknown keywords are ignored
    tx.update(grads, state, PARAMS)  # not a decision step: no metrics needed outside jit


def test_learning_rate_and_weight_decay_read_from_inject_hyperparams():
    base = optax.inject_hyperparams(optax.adamw)(learning_rate=2e-3, weight_decay=0.05)
    tx = learned.schedule(base, gj.agents.ConstantPolicy(0), tau=1, horizon=2)
    state = tx.init(PARAMS)
    np.testing.assert_allclose(learned.lrs(state), 2e-3)
    metrics = {k: v for k, v in METRICS.items() if k != "weight_decay"}
    _, state = tx.update(jax.tree.map(jnp.ones_like, PARAMS), state, PARAMS, **metrics)
    np.testing.assert_allclose(state.init_wd, 0.05)
    with pytest.raises(ValueError, match="init_lr="):
        learned.schedule(optax.adam(1e-3), gj.agents.ConstantPolicy(0), tau=1, horizon=1).init(PARAMS)


def test_label_function_and_state_inside_a_chain():
    label_fn = lambda p: {"Dense_0": {"kernel": 1, "bias": 0}, "Dense_1": {"kernel": 1}}  # noqa: E731
    tx = optax.chain(optax.clip_by_global_norm(1.0),
                     learned.schedule(optax.adam(1e-3), gj.agents.ConstantPolicy(0), tau=1, horizon=1, init_lr=1e-3,
                                      label_fn=label_fn))
    state = tx.init(PARAMS)
    assert learned.lrs(state).shape == (2,)
    layers = learned.layers_of(PARAMS, label_fn)
    assert layers.groups == ((0,), (1, 2))
