"""Models, the fast convolution and the task registry."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ganno_jax as gj
from ganno_jax.tasks.models import init_params


@pytest.mark.parametrize("shape,kernel,stride", [
    ((2, 8, 8, 3), 3, 1), ((2, 8, 8, 3), 3, 2), ((1, 7, 5, 2), 3, 2), ((2, 9, 9, 4), 1, 2),
    ((3, 40, 1, 1), 3, 2), ((1, 6, 6, 2), 5, 1),
])
def test_fast_conv_equals_reference(shape, kernel, stride):
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, shape)
    w = jax.random.normal(kw, (kernel, kernel, shape[-1], 5))
    ref = jax.lax.conv_general_dilated(x, w, (stride, stride), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(gj.tasks.conv2d(x, w, stride), ref, rtol=1e-5, atol=1e-5)


def test_fast_conv_gradient_equals_reference():
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 3))
    w = jax.random.normal(jax.random.key(2), (3, 3, 3, 4))
    ref_fn = lambda w: jax.lax.conv_general_dilated(x, w, (2, 2), "SAME",  # noqa: E731
                                                    dimension_numbers=("NHWC", "HWIO", "NHWC")).sum()
    np.testing.assert_allclose(jax.grad(lambda w: gj.tasks.conv2d(x, w, 2).sum())(w), jax.grad(ref_fn)(w),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model,agents", [("mlp", 3), ("cnn2", 3), ("cnn3", 4), ("cnn5", 6), ("resnet9", 9),
                                          ("resnet18", 21)])
def test_models_agents_and_output(model, agents):
    module = gj.tasks.build_model(model, 10, 8)
    params = init_params(module, jax.random.key(0), (8, 8, 1))
    layers = gj.tasks.agent_layers(params)
    assert len(layers) == agents
    assert [l.index for l in layers] == list(range(agents))
    assert layers[0].depth == "first" and layers[-1].depth == "final"
    assert all(l.depth == "intermediate" for l in layers[1:-1])
    assert layers[-1].kind == "linear"
    assert layers[0].kind == ("linear" if model == "mlp" else "conv")
    owners = set(jax.tree.leaves(gj.tasks.leaf_agents(params)))
    assert owners == set(range(agents))
    logits = module.apply({"params": params}, jnp.ones((4, 8, 8, 1)))
    assert logits.shape == (4, 10)


def test_registry_get_register_and_errors():
    task = gj.tasks.get("digits-cnn2")
    assert (task.dataset, task.model, task.tau) == ("digits", "cnn2", 100)
    assert gj.tasks.get("mnist1d-mlp", tau=7).tau == 7
    assert "cifar10-resnet18" in gj.tasks.names()
    with pytest.raises(ValueError, match="digits-cnn2"):
        gj.tasks.get("digits-cnn4")
    custom = task.replace(tau=5, horizon=2)
    gj.tasks.register("tiny-user-task", custom, overwrite=True)
    assert gj.tasks.get("tiny-user-task") == custom
    with pytest.raises(ValueError, match="already registered"):
        gj.tasks.register("tiny-user-task", custom)


@pytest.mark.parametrize("field,value,match", [
    ("tau", 0, r"tau=0 must be an integer in \[1,"), ("batch_size", 2.5, "batch_size=2.5"),
    ("optimizer", "rmsprop", "optimizer='rmsprop'.*adam, sgd"), ("dataset", "imagenet", "dataset='imagenet'"),
    ("model", "vit", "model='vit'.*cnn2"), ("weight_decay", -1.0, "weight_decay=-1.0"),
])
def test_task_validation_names_field_value_and_range(field, value, match):
    with pytest.raises(ValueError, match=match):
        gj.tasks.Task(**{field: value})


def test_task_is_a_hashable_pytree_config():
    task = gj.tasks.get("digits-mlp")
    assert jax.tree.leaves(task) == []
    assert hash(task) == hash(task.replace())
    assert task.total_inner_steps == task.tau * task.horizon
