"""``env.blocked.blocked_vmap``: the same results as ``jax.vmap`` (blocks, nested vmaps, unbatched args)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganno_jax.env.blocked import blocked_vmap, default_block


def _fn(x, tree):
    return {"y": jnp.tanh(x @ tree["w"]) + tree["b"], "s": jnp.sum(x)}


@pytest.mark.parametrize("block", [1, 2, 3, 6, None])
def test_blocked_vmap_equals_vmap_with_unbatched_args_and_nested_vmaps(block):
    x = jax.random.normal(jax.random.key(0), (5, 6, 3))  # [outer 5, inner 6, 3]
    tree = {"w": jax.random.normal(jax.random.key(1), (3, 4)), "b": jax.random.normal(jax.random.key(2), (6, 4))}
    in_axes = (0, {"w": None, "b": 0})  # w shared by every copy, b per copy
    want = jax.vmap(jax.vmap(_fn, in_axes))(x, jax.tree.map(lambda a: jnp.broadcast_to(a, (5, *a.shape)), tree))
    got = jax.jit(jax.vmap(jax.vmap(blocked_vmap(_fn, block), in_axes), (0, None)))(x, tree)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), got, want)
    np.testing.assert_allclose(blocked_vmap(_fn, block)(x[0, 0], {"w": tree["w"], "b": tree["b"][0]})["y"],
                               want["y"][0, 0], rtol=1e-6)  # unbatched: fn itself


def test_default_block_and_bad_block():
    assert default_block(256, backend="gpu") == 256
    assert default_block(4 * jax.local_device_count(), backend="cpu") == jax.local_device_count()
    with pytest.raises(ValueError, match="block=0 must be an integer >= 1"):
        blocked_vmap(_fn, 0)



def test_env_steps_take_the_dataset_as_a_jit_argument():
    """A custom-vmapped function cannot close over a traced array (lowering fails: "No constant handler
    for type: DynamicJaxprTracer"), so the blocked inner segment takes the dataset as an argument: with
    the dataset a jit argument (``EnvParams.data``), env steps in a scan vmapped over runs (the evaluation
    harness) and vmapped steps (training) compile, and equal the steps on the dataset as a constant."""
    import ganno_jax as gj
    from ganno_jax.env import LayerwiseLREnv

    env = LayerwiseLREnv(gj.tasks.get("digits-mlp", tau=2, horizon=2, eval_batch=32))
    params, n = env.default_params, 4
    keys = jax.random.split(jax.random.key(0), n)
    _, state = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    actions = jnp.tile(jnp.arange(env.num_agents, dtype=jnp.int32), (n, 1))
    lrs = jnp.full((n, env.task.tau, env.num_agents), 3e-3)

    def steps(p):
        def run(k, s, a, lr):
            def body(carry, _):
                acted = env.step_env(k, carry, a, p)
                return acted[1], (acted, env.step_schedule(k, carry, lr, p))
            return jax.lax.scan(body, s, length=2)[1]

        training = jax.vmap(env.step_env, (0, 0, 0, None))(keys, state, actions, p)
        return jax.vmap(run)(keys, state, actions, lrs), training

    got = jax.jit(steps)(params)
    want = jax.jit(lambda: steps(params))()
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got, want)
