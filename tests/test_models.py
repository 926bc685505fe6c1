"""Models, the fast convolution and the task registry."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import ganno_jax as gj
from ganno_jax.env.inner import InnerTrainer
from ganno_jax.tasks.models import init_params


IMPLS = ("im2col", "lax")


def _reference_conv(x, w, stride, padding):
    """Direct sum over kernel offsets, one [C, O] matmul each (no patch matrix, no lax.conv)."""
    kh, kw, _, _ = w.shape
    if padding == "SAME":
        pads = [max((-(-n // stride) - 1) * stride + k - n, 0) for n, k in zip(x.shape[1:3], (kh, kw))]
        x = jnp.pad(x, ((0, 0), (pads[0] // 2, pads[0] - pads[0] // 2), (pads[1] // 2, pads[1] - pads[1] // 2), (0, 0)))
    out_h, out_w = (x.shape[1] - kh) // stride + 1, (x.shape[2] - kw) // stride + 1
    return sum(x[:, i : i + (out_h - 1) * stride + 1 : stride, j : j + (out_w - 1) * stride + 1 : stride] @ w[i, j]
               for i in range(kh) for j in range(kw))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape,kernel,stride,padding", [
    ((2, 8, 8, 3), 3, 1, "SAME"), ((2, 8, 8, 3), 3, 2, "SAME"), ((1, 7, 5, 2), 3, 2, "SAME"),
    ((2, 9, 9, 4), 1, 2, "SAME"), ((3, 40, 1, 1), 3, 2, "SAME"), ((1, 6, 6, 2), 5, 1, "SAME"),
    ((2, 8, 8, 3), 3, 1, "VALID"), ((1, 28, 28, 1), 3, 1, "VALID"), ((2, 6, 5, 2), 5, 1, "VALID"),
])
def test_conv_implementations_equal_reference_forward_and_gradient(impl, shape, kernel, stride, padding):
    kx, kw = jax.random.split(jax.random.key(0))
    x = jax.random.normal(kx, shape)
    w = jax.random.normal(kw, (kernel, kernel, shape[-1], 5))
    out = gj.tasks.conv2d(x, w, stride, padding, impl=impl)
    np.testing.assert_allclose(out, _reference_conv(x, w, stride, padding), rtol=1e-5, atol=1e-5)
    probe = jax.random.normal(jax.random.key(3), out.shape)  # a gradient that is not all ones
    grads = jax.grad(lambda x, w: jnp.vdot(probe, gj.tasks.conv2d(x, w, stride, padding, impl=impl)), (0, 1))(x, w)
    ref = jax.grad(lambda x, w: jnp.vdot(probe, _reference_conv(x, w, stride, padding)), (0, 1))(x, w)
    for got, want in zip(grads, ref):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv_impl_auto_follows_the_backend_and_bad_names_are_rejected():
    from ganno_jax.tasks.conv import resolve_impl

    assert (resolve_impl("auto", "cpu"), resolve_impl("auto", "gpu"), resolve_impl("auto", "tpu")) == (
        "im2col", "lax", "lax")
    assert resolve_impl("lax", "cpu") == "lax"
    with pytest.raises(ValueError, match="impl='cudnn' is not valid; allowed: auto, im2col, lax"):
        gj.tasks.conv2d(jnp.zeros((1, 4, 4, 1)), jnp.zeros((3, 3, 1, 2)), impl="cudnn")
    with pytest.raises(ValueError, match="at least the kernel's size"):
        gj.tasks.conv2d(jnp.zeros((1, 2, 2, 1)), jnp.zeros((3, 3, 1, 2)), padding="VALID", impl="lax")


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shape,padding", [((2, 7, 5, 3), "SAME"), ((2, 8, 1, 3), "SAME"), ((1, 9, 7, 2), "VALID")])
def test_max_pool_equals_flax_forward_and_gradient_ties_included(shape, padding, ties):
    from flax import linen as nn

    from ganno_jax.tasks.pooling import max_pool

    window = (2, 2 if shape[2] > 1 else 1)
    x = jax.random.normal(jax.random.key(0), shape)
    x = jnp.round(x) if ties else x  # rounded: many windows hold their maximum twice
    ref = lambda x: nn.max_pool(x, window, strides=window, padding=padding)  # noqa: E731
    np.testing.assert_array_equal(max_pool(x, window, padding), ref(x))
    probe = jax.random.normal(jax.random.key(1), ref(x).shape)
    np.testing.assert_array_equal(jax.grad(lambda x: jnp.vdot(probe, max_pool(x, window, padding)))(x),
                                  jax.grad(lambda x: jnp.vdot(probe, ref(x)))(x))


def test_max_pool_propagates_nan_and_refuses_huge_windows():
    from ganno_jax.tasks.pooling import max_first, max_pool

    x = jnp.array([[1.0, jnp.nan], [0.0, 2.0]])[None, :, :, None]
    assert np.isnan(max_pool(x, (2, 2))).all()
    with pytest.raises(ValueError, match="at most 127 elements per window, got 128"):
        max_first(jnp.zeros((128, 2)))


def _reference_conv_pool(x, w, window, padding, pool_padding):
    from flax import linen as nn

    conv = jax.lax.conv_general_dilated(x, w, (1, 1), padding, dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return nn.max_pool(conv, window, strides=window, padding=pool_padding)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape,window,padding,pool_padding", [
    ((2, 8, 8, 1), (2, 2), "SAME", "SAME"), ((2, 7, 5, 3), (2, 2), "SAME", "SAME"),
    ((2, 40, 1, 2), (2, 1), "SAME", "SAME"), ((2, 5, 1, 2), (2, 1), "SAME", "SAME"),
    ((1, 28, 28, 1), (2, 2), "VALID", "VALID"),
    ((1, 9, 9, 2), (2, 2), "VALID", "VALID"), ((1, 9, 9, 2), (2, 2), "VALID", "SAME"),
])
def test_pooled_conv_equals_conv_then_flax_max_pool_forward_and_gradient(impl, shape, window, padding, pool_padding):
    from ganno_jax.tasks.conv import conv2d_pool

    x = jax.random.normal(jax.random.key(0), shape)
    w = jax.random.normal(jax.random.key(1), (3, 3, shape[-1], 4))
    out = conv2d_pool(x, w, window, padding, pool_padding, impl=impl)
    np.testing.assert_allclose(out, _reference_conv_pool(x, w, window, padding, pool_padding), rtol=1e-5, atol=1e-5)
    probe = jax.random.normal(jax.random.key(2), out.shape)
    grads = jax.grad(lambda x, w: jnp.vdot(probe, conv2d_pool(x, w, window, padding, pool_padding, impl=impl)),
                     (0, 1))(x, w)
    ref = jax.grad(lambda x, w: jnp.vdot(probe, _reference_conv_pool(x, w, window, padding, pool_padding)),
                   (0, 1))(x, w)
    for got, want in zip(grads, ref):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # vmapped over kernels that share the input, as the env's reward branches share a minibatch
    kernels = jnp.stack([w, -0.5 * w])
    per_kernel = lambda f: jax.vmap(jax.grad(lambda w: jnp.vdot(probe, f(x, w))))(kernels)  # noqa: E731
    np.testing.assert_allclose(per_kernel(lambda x, w: conv2d_pool(x, w, window, padding, pool_padding, impl=impl)),
                               per_kernel(lambda x, w: _reference_conv_pool(x, w, window, padding, pool_padding)),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("features", [3, 12])  # narrower and wider than the input: both gradient orientations
def test_dense_equals_flax_dense_parameters_forward_and_gradient(features):
    from flax import linen as nn

    from ganno_jax.tasks.dense import Dense

    x = jax.random.normal(jax.random.key(0), (2, 5, 7))
    ours, flax_dense = Dense(features), nn.Dense(features)
    params = ours.init(jax.random.key(1), x)
    for ours_leaf, flax_leaf in zip(jax.tree.leaves(params), jax.tree.leaves(flax_dense.init(jax.random.key(1), x))):
        np.testing.assert_array_equal(ours_leaf, flax_leaf)
    params = jax.tree.map(lambda p: p + 0.1, params)  # a bias that is not zero
    np.testing.assert_allclose(ours.apply(params, x), flax_dense.apply(params, x), rtol=1e-6)
    probe = jax.random.normal(jax.random.key(2), (2, 5, features))
    loss = lambda module: lambda p, x: jnp.vdot(probe, module.apply(p, x))  # noqa: E731
    for got, want in zip(jax.tree.leaves(jax.grad(loss(ours), (0, 1))(params, x)),
                         jax.tree.leaves(jax.grad(loss(flax_dense), (0, 1))(params, x))):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    stacked = jax.tree.map(lambda p: jnp.stack([p, 2 * p]), params)  # shared input, vmapped parameters
    np.testing.assert_allclose(jax.vmap(jax.grad(loss(ours)), (0, None))(stacked, x)["params"]["kernel"],
                               jax.vmap(jax.grad(loss(flax_dense)), (0, None))(stacked, x)["params"]["kernel"],
                               rtol=1e-5, atol=1e-5)


def _reference_cnn(params, x):
    """The built-in ``cnnN`` written plainly: lax convolution + bias, ReLU, then Flax's max pooling while the
    image exceeds 4 pixels; flatten; Flax dense."""
    from flax import linen as nn

    names = sorted(params)
    for name in names[:-1]:
        kernel, bias = params[name]["kernel"], params[name]["bias"]
        conv = jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x = nn.relu(conv + bias)
        if max(x.shape[1:3]) > 4:
            window = tuple(2 if n > 1 else 1 for n in x.shape[1:3])
            x = nn.max_pool(x, window, strides=window, padding="SAME")
    head = params[names[-1]]
    return nn.Dense(head["kernel"].shape[-1]).apply({"params": head}, x.reshape(x.shape[0], -1))


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("model,input_shape", [("cnn2", (8, 8, 1)), ("cnn3", (40, 1, 1)), ("cnn3", (28, 28, 1)),
                                               ("cnn5", (32, 32, 3))])
def test_cnn_equals_its_plain_reference_forward_and_gradient(model, input_shape, impl, monkeypatch):
    """The CNNs pool inside the conv, before bias and ReLU (conv.Conv): the same function and gradient."""
    monkeypatch.setattr(gj.tasks.conv, "resolve_impl", lambda impl_=None, backend=None: impl)
    module = gj.tasks.build_model(model, 10, 4)
    params = jax.tree.map(lambda p: p + 0.05, init_params(module, jax.random.key(0), input_shape))
    x = jax.random.normal(jax.random.key(1), (3, *input_shape))
    labels = jnp.arange(3)
    loss = lambda f: lambda p: optax.softmax_cross_entropy_with_integer_labels(f(p, x), labels).mean()  # noqa: E731
    ours = lambda p, x: module.apply({"params": p}, x)  # noqa: E731
    np.testing.assert_allclose(ours(params, x), _reference_cnn(params, x), rtol=1e-4, atol=1e-5)
    for got, want in zip(jax.tree.leaves(jax.grad(loss(ours))(params)),
                         jax.tree.leaves(jax.grad(loss(_reference_cnn))(params))):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model,agents", [("mlp", 3), ("cnn2", 2), ("cnn3", 3), ("cnn5", 5), ("torch_mnist_cnn", 4),
                                          ("resnet9", 9), ("resnet18", 18)])
def test_models_agents_and_output(model, agents):
    module = gj.tasks.build_model(model, 10, 8)
    params = init_params(module, jax.random.key(0), (8, 8, 1))
    layers = gj.tasks.agent_layers(params)
    assert len(layers) == agents
    assert [layer.index for layer in layers] == list(range(agents))
    assert layers[0].depth == "first" and layers[-1].depth == "final"
    assert all(layer.depth == "intermediate" for layer in layers[1:-1])
    assert layers[-1].kind == "linear"
    assert layers[0].kind == ("linear" if model == "mlp" else "conv")
    owners = set(jax.tree.leaves(gj.tasks.leaf_agents(params)))
    assert owners == set(range(agents))
    logits = module.apply({"params": params}, jnp.ones((4, 8, 8, 1)))
    assert logits.shape == (4, 10)


@pytest.mark.parametrize("input_shape", [(8, 8, 1), (40, 1, 1), (28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("model", ["cnn2", "cnn3", "cnn5"])
def test_cnn_is_conv_pool_flatten_dense_on_every_dataset_shape(model, input_shape):
    depth = int(model[3:])
    module = gj.tasks.build_model(model, 10, 4)
    params = jax.eval_shape(lambda k: init_params(module, k, input_shape), jax.random.key(0))
    assert sorted(params) == [f"L{i:02d}_conv" for i in range(depth - 1)] + [f"L{depth - 1:02d}_dense"]
    h, w = input_shape[:2]  # 2x2 'SAME' max pooling (unit axes kept) while the larger side exceeds 4 pixels
    for _ in range(depth - 1):
        if max(h, w) > 4:
            h, w = -(-h // 2), -(-w // 2)
    channels = 4 * 2 ** min(depth - 2, 2)
    assert params[f"L{depth - 1:02d}_dense"]["kernel"].shape == (h * w * channels, 10)
    assert module.apply({"params": init_params(module, jax.random.key(0), input_shape)},
                        jnp.ones((2, *input_shape))).shape == (2, 10)


def test_torch_mnist_cnn_has_the_pytorch_example_layers_whatever_the_width():
    shapes = {w: jax.eval_shape(lambda k, w=w: init_params(gj.tasks.build_model("torch_mnist_cnn", 10, w), k,
                                                           (28, 28, 1)), jax.random.key(0)) for w in (4, 64)}
    assert shapes[4] == shapes[64]
    kernels = {k: v["kernel"].shape for k, v in shapes[4].items()}
    assert kernels == {"L00_conv": (3, 3, 1, 32), "L01_conv": (3, 3, 32, 64), "L02_dense": (9216, 128),
                       "L03_dense": (128, 10)}  # 28 -> 26 -> 24 -> pool 12: 12 * 12 * 64 = 9216
    assert [layer.kind for layer in gj.tasks.agent_layers(shapes[4])] == ["conv", "conv", "linear", "linear"]
    with pytest.raises(ValueError, match="at least 6x6 pixels, got 40x1"):
        init_params(gj.tasks.build_model("torch_mnist_cnn", 10, 4), jax.random.key(0), (40, 1, 1))


def test_registry_get_register_and_errors():
    task = gj.tasks.get("digits-cnn2")
    assert (task.dataset, task.model, task.tau) == ("digits", "cnn2", 100)
    assert gj.tasks.get("mnist1d-mlp", tau=7).tau == 7
    assert "cifar10-resnet18" in gj.tasks.names()
    with pytest.raises(ValueError, match="model 'cnn4' is not one of mlp, cnn2"):
        gj.tasks.get("digits-cnn4")
    with pytest.raises(ValueError, match="dataset 'imagenet' is not one of digits, mnist1d"):
        gj.tasks.get("imagenet-cnn2")
    custom = task.replace(tau=5, horizon=2)
    gj.tasks.register("tiny-user-task", custom, overwrite=True)
    assert gj.tasks.get("tiny-user-task") == custom
    gj.tasks.register("tiny-user-task", custom)  # the same entry again (an --import run twice) is accepted
    with pytest.raises(ValueError, match="already registered"):
        gj.tasks.register("tiny-user-task", custom.replace(tau=6))


@pytest.mark.parametrize("field,value,match", [
    ("tau", 0, r"tau=0 must be an integer in \[1,"), ("batch_size", 2.5, "batch_size=2.5"),
    ("optimizer", "rmsprop", "optimizer='rmsprop'.*adam, sgd"), ("dataset", "imagenet", "dataset='imagenet'"),
    ("model", "vit", "model='vit'.*cnn2"), ("weight_decay", -1.0, "weight_decay=-1.0"),
    ("weight_decay_mode", "adamw", "weight_decay_mode='adamw'.*l2, decoupled"),
])
def test_task_validation_names_field_value_and_range(field, value, match):
    with pytest.raises(ValueError, match=match):
        gj.tasks.Task(**{field: value})


def test_task_is_a_hashable_pytree_config():
    task = gj.tasks.get("digits-mlp")
    assert jax.tree.leaves(task) == []
    assert hash(task) == hash(task.replace())
    assert task.total_inner_steps == task.tau * task.horizon


def test_task_round_trips_through_a_dict_and_old_dicts_without_weight_decay_mode_load():
    task = gj.tasks.get("digits-cnn2", weight_decay_mode="l2")
    saved = dataclasses.asdict(task)  # what runs.RunConfig writes to config.json
    assert gj.tasks.Task(**saved) == task
    del saved["weight_decay_mode"]  # a config.json written before the field existed
    assert gj.tasks.Task(**saved).weight_decay_mode == "decoupled"


@pytest.mark.parametrize("model", ["cnn2", "cnn5"])
def test_standard_cnn_learns_digits_with_plain_adam(model):
    """4 seeds vmapped, 200 Adam steps at LR 3e-3, width 4: measured medians 92.4% (cnn2), 95.4% (cnn5)."""
    trainer, data = InnerTrainer(gj.tasks.get(f"digits-{model}", width=4)), gj.data.load_dataset("digits")

    def test_accuracy(key):
        state = trainer.init(key)
        state, _ = trainer.train(data, state, jnp.full((200, trainer.num_agents), 3e-3), 0.0,
                                 jax.random.fold_in(key, 1))
        return trainer.test_metrics(data, state.params)[1]

    accuracy = jax.jit(jax.vmap(test_accuracy))(jax.random.split(jax.random.key(0), 4))
    assert float(np.median(accuracy)) >= 0.8, accuracy
