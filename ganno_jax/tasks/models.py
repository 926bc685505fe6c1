"""Models of the inner problem and the agent layer each parameterised layer maps to.

Every built-in model keeps its parameters flat: one top-level entry per module, named ``L{i:02d}_<kind>``
for the i-th parameterised layer (``dense`` or ``conv``) and ``L{i:02d}_norm`` for the
normalisation that follows it. Layer ``i`` is agent ``i`` (GANNO: one agent per layer); a
normalisation's scale/bias belong to the agent of the layer it follows, a ResNet block's 1x1 shortcut
(``L{i:02d}_shortcut``, ``L{i:02d}_shortcut_norm``) to the agent of the block's first conv ``i``.

Decisions (not fixed by the papers):
- ``cnnN``: a standard CNN of N parameterised layers, as GANNO counts them ("two-layered CNN", "both
  layers"): N-1 3x3 'SAME' conv layers (ReLU), each followed by 2x2 max pooling ('SAME', so odd sizes
  round up; axes of one pixel are not pooled) while the larger spatial side of its output exceeds
  ``POOL_ABOVE`` = 4 pixels, then flatten and one linear classifier -> N agents. Channels
  ``width * 2**min(i, 2)``. Spatial sizes after the convs: digits 8x8 -> 4x4; MNIST 28 -> 14 -> 7 -> 4;
  CIFAR 32 -> 16 -> 8 -> 4; mnist1d 40x1 -> 20 -> 10 -> 5 -> 3 (x1).
- ``torch_mnist_cnn``: PyTorch's MNIST example network (github.com/pytorch/examples, mnist/main.py),
  the single-agent scheduler paper's: Conv(32, 3x3, 'VALID') -> ReLU -> Conv(64, 3x3, 'VALID') ->
  ReLU -> 2x2 max pool -> flatten -> Dense(128) -> ReLU -> Dense(classes) -> 4 agents. Its two dropout
  layers are omitted, so the network stays a pure deterministic function of its parameters (the
  vmapped inner loop has no dropout RNG); ``width`` is ignored (the layer sizes are the example's);
  Flax's default initialisation (LeCun normal, zero bias) replaces PyTorch's uniform one. Needs images
  of at least 6x6 pixels (not mnist1d).
- ``mlp``: two hidden layers of ``8 * width`` units (ReLU) and a linear classifier -> 3 agents.
- Registered models (``register_model``): any Flax module; every submodule owning a ``kernel`` is one
  agent (kind from the kernel's rank or given, depth by position), see ``agent_layers``.
- ResNets use GroupNorm (stateless) instead of BatchNorm so every model is a pure function of its
  parameters (no mutable batch statistics inside the vmapped inner loop). ``resnet9`` is the
  DAWNBench ResNet-9 layout (channels ``width`` x 1, 2, 4, 8: 64-128-256-512 at the registry's width 64),
  9 agents; ``resnet18`` the CIFAR ResNet-18 (basic blocks [2, 2, 2, 2], 1x1 shortcut convs where shape
  changes; He et al.'s base width 64 in the registry): 18 agents as GANNO counts "18 layers" (stem, 16
  block convs, classifier); a shortcut belongs to its block's first conv (same input, same stride).
"""
from __future__ import annotations

import math
import re
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax.traverse_util import flatten_dict, unflatten_dict

from ganno_jax.checks import check_choice, require
from ganno_jax.registry import Registry
from ganno_jax.tasks.conv import Conv
from ganno_jax.tasks.dense import Dense
from ganno_jax.tasks.pooling import max_pool

LAYER_KINDS = ("linear", "conv", "attention")
DEPTHS = ("first", "intermediate", "final")
#: ``cnnN`` max-pools after a conv while the larger spatial side of its output exceeds this many pixels.
POOL_ABOVE = 4
_FLAT_NAME = re.compile(r"L\d{2}_(conv|dense|norm|shortcut|shortcut_norm)")


class AgentLayer(NamedTuple):
    """One agent of GANNO: a parameterised layer of the inner network."""

    index: int
    name: str
    kind: str  # one of LAYER_KINDS
    depth: str  # one of DEPTHS


def _norm(channels: int, name: str) -> nn.Module:
    groups = 8 if channels % 8 == 0 else 1
    return nn.GroupNorm(num_groups=groups, name=name)


def _halving_window(x: jax.Array) -> tuple[int, int]:
    """2x2 pooling window of x [B, H, W, C], 1 on a spatial axis of one pixel (not pooled)."""
    return tuple(2 if n > 1 else 1 for n in x.shape[1:3])


class _LayerCounter:
    """Hands out flat layer names ``L{i:02d}_<kind>`` in call order."""

    def __init__(self):
        self.count = 0

    def conv(self, x, features, kernel_size=3, stride=1, norm=False, padding="SAME", pool=None, pool_padding="SAME"):
        i = self.count
        self.count += 1
        y = Conv(features, kernel_size, stride, padding, pool=pool, pool_padding=pool_padding, name=f"L{i:02d}_conv")(x)
        return _norm(features, f"L{i:02d}_norm")(y) if norm else y

    def shortcut(self, x, features, stride, owner):
        """A 1x1 conv + norm on a residual path, owned by layer ``owner`` (no agent of its own)."""
        y = Conv(features, 1, stride, "SAME", name=f"L{owner:02d}_shortcut")(x)
        return _norm(features, f"L{owner:02d}_shortcut_norm")(y)

    def dense(self, x, features):
        i = self.count
        self.count += 1
        return Dense(features, name=f"L{i:02d}_dense")(x)


class MLP(nn.Module):
    """Flatten -> [8*width]*2 ReLU -> classes."""

    num_classes: int
    width: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> logits [B, num_classes]."""
        layers = _LayerCounter()
        h = x.reshape(x.shape[0], -1)
        for _ in range(2):
            h = nn.relu(layers.dense(h, 8 * self.width))
        return layers.dense(h, self.num_classes)


class CNN(nn.Module):
    """``depth - 1`` 3x3 conv layers (ReLU, 2x2 max pooling while the image exceeds ``POOL_ABOVE`` pixels),
    flatten, linear classifier: ``depth`` parameterised layers."""

    num_classes: int
    depth: int = 2
    width: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> logits [B, num_classes]."""
        layers = _LayerCounter()
        for i in range(self.depth - 1):  # pooled inside the conv, before bias and ReLU: the same values (Conv)
            pool = _halving_window(x) if max(x.shape[1:3]) > POOL_ABOVE else None  # 'SAME' conv: output size = x's
            x = nn.relu(layers.conv(x, self.width * 2 ** min(i, 2), pool=pool))
        return layers.dense(x.reshape(x.shape[0], -1), self.num_classes)


class TorchMnistCNN(nn.Module):
    """PyTorch's MNIST example CNN without dropout: conv32, conv64 ('VALID' 3x3), max pool, dense 128, classes."""

    num_classes: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] with H, W >= 6 -> logits [B, num_classes]."""
        if min(x.shape[1:3]) < 6:
            raise ValueError(f"model='torch_mnist_cnn' needs images of at least 6x6 pixels, got "
                             f"{x.shape[1]}x{x.shape[2]}; use cnnN or mlp for this dataset")
        layers = _LayerCounter()
        x = nn.relu(layers.conv(x, 32, padding="VALID"))
        x = nn.relu(layers.conv(x, 64, padding="VALID", pool=(2, 2), pool_padding="VALID"))  # = relu, then pool
        x = nn.relu(layers.dense(x.reshape(x.shape[0], -1), 128))
        return layers.dense(x, self.num_classes)


class ResNet9(nn.Module):
    """DAWNBench ResNet-9 with GroupNorm: prep, (conv+pool+res), (conv+pool), (conv+pool+res)."""

    num_classes: int
    width: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> logits [B, num_classes]."""
        layers = _LayerCounter()
        block = lambda h, c: nn.relu(layers.conv(h, c, norm=True))  # noqa: E731
        x = block(x, self.width)
        for mult, residual in ((2, True), (4, False), (8, True)):
            x = block(x, self.width * mult)
            x = max_pool(x, _halving_window(x))
            if residual:
                x = x + block(block(x, self.width * mult), self.width * mult)
        return layers.dense(x.max(axis=(1, 2)), self.num_classes)


class ResNet18(nn.Module):
    """CIFAR ResNet-18 (basic blocks [2, 2, 2, 2]) with GroupNorm: 18 agents, each 1x1 shortcut conv in its
    block's first agent."""

    num_classes: int
    width: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> logits [B, num_classes]."""
        layers = _LayerCounter()
        x = nn.relu(layers.conv(x, self.width, norm=True))
        for stage, mult in enumerate((1, 2, 4, 8)):
            for block in range(2):
                first = stage > 0 and block == 0
                stride = 2 if first and max(x.shape[1:3]) > 1 else 1
                channels, owner = self.width * mult, layers.count
                h = nn.relu(layers.conv(x, channels, stride=stride, norm=True))
                h = layers.conv(h, channels, norm=True)
                shortcut = layers.shortcut(x, channels, stride, owner) if first else x
                x = nn.relu(h + shortcut)
        return layers.dense(x.mean(axis=(1, 2)), self.num_classes)


class ModelEntry(NamedTuple):
    """A registered model: ``build(num_classes, width) -> flax module`` and optional agent kinds."""

    build: Callable[[int, int], nn.Module]
    layer_kinds: Optional[tuple[str, ...]]


MODELS: Registry[ModelEntry] = Registry("model")


def model_names() -> tuple[str, ...]:
    """Names ``build_model`` accepts: the built-in models, then those registered by :func:`register_model`."""
    return MODELS.names()


def register_model(name: str, build_fn: Callable[[int, int], nn.Module],
                   layer_kinds: Optional[Sequence[str]] = None, overwrite: bool = False) -> None:
    """Makes ``Task(model=name)`` build ``build_fn(num_classes, width)``, any Flax module mapping
    ``[B, H, W, C]`` inputs to ``[B, num_classes]`` logits (``overwrite=True`` replaces a registered name).

    Its agents are the submodules that own a ``kernel`` parameter (see :func:`agent_layers`), their kind
    inferred from the kernel's rank (4-D ``conv``, 2-D ``linear``) unless ``layer_kinds`` gives one of
    ``LAYER_KINDS`` per agent, in agent order. The registration lives in this process: a new process
    (``ganno train --resume``, ``ganno evaluate``) must register the model again before naming it.
    """
    require("build_fn", build_fn, callable(build_fn), "callable as build_fn(num_classes, width) -> flax module")
    if layer_kinds is not None:
        layer_kinds = tuple(layer_kinds)
        for i, kind in enumerate(layer_kinds):
            check_choice(f"layer_kinds[{i}]", kind, LAYER_KINDS)
    MODELS.register(name, ModelEntry(build_fn, layer_kinds), overwrite)


def build_model(model: str, num_classes: int, width: int) -> nn.Module:
    """Flax module for a model name in ``model_names()`` (``width`` is ignored by ``torch_mnist_cnn``)."""
    module = MODELS.get(model).build(num_classes, width)
    if not isinstance(module, nn.Module):
        raise ValueError(f"model={model!r}: build_fn returned {type(module).__name__}, not a flax.linen.Module")
    return module


register_model("mlp", MLP)
register_model("cnn2", lambda num_classes, width: CNN(num_classes, 2, width))
register_model("cnn3", lambda num_classes, width: CNN(num_classes, 3, width))
register_model("cnn5", lambda num_classes, width: CNN(num_classes, 5, width))
register_model("torch_mnist_cnn", lambda num_classes, width: TorchMnistCNN(num_classes))
register_model("resnet9", ResNet9)
register_model("resnet18", ResNet18)


def _is_flat(params) -> bool:
    """Whether ``params`` uses the built-in models' flat ``L{i:02d}_<kind>`` names."""
    return bool(params) and all(_FLAT_NAME.fullmatch(k) for k in params)


def _natural(path: tuple[str, ...]) -> tuple:
    """Sort key of a parameter path reading digit runs as numbers (``Dense_2`` before ``Dense_10``)."""
    return tuple(tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", part)) for part in path)


def _layer_paths(params) -> list[tuple[str, ...]]:
    """Paths of the submodules owning a ``kernel`` in agent order: flat names by index, others naturally sorted."""
    if _is_flat(params):
        return sorted(((k,) for k in params if k.endswith(("_conv", "_dense"))), key=lambda p: int(p[0][1:3]))
    paths = {path[:-1] for path in flatten_dict(params) if path[-1] == "kernel"}
    if not paths:
        raise ValueError("the model has no parameter named 'kernel'; its layers (agents) cannot be inferred")
    return sorted(paths, key=_natural)


def agent_layers(params, model: Optional[str] = None) -> tuple[AgentLayer, ...]:
    """Agents of a model's parameter tree, in depth order.

    Built-in models keep flat keys ``L{i:02d}_<kind>``: layer ``i`` is agent ``i``. Any other tree (a
    registered model): each submodule owning a ``kernel`` is one agent, ordered by its parameter path with
    digit runs read as numbers (Flax's automatic names ``Conv_0``, ``Conv_1``, ``Dense_0`` ... count call
    order per layer type; name the submodules to fix another order); kind ``conv`` for a 4-D kernel,
    ``linear`` for a 2-D one, or ``layer_kinds`` of ``register_model(model, ...)``; depth first /
    intermediate / final by position. Names are the paths joined by ``/``.
    """
    paths = _layer_paths(params)
    kinds = MODELS.get(model).layer_kinds if model in MODELS else None
    if kinds is not None and len(kinds) != len(paths):
        raise ValueError(f"model={model!r}: layer_kinds gives {len(kinds)} kinds but the model has {len(paths)} "
                         f"layers with a kernel: {', '.join('/'.join(p) for p in paths)}")
    if kinds is None:
        kinds = tuple(_kind(params, path) for path in paths)
    last = len(paths) - 1
    return tuple(
        AgentLayer(index=i, name="/".join(path), kind=kind,
                   depth="first" if i == 0 else "final" if i == last else "intermediate")
        for i, (path, kind) in enumerate(zip(paths, kinds))
    )


def _kind(params, path: tuple[str, ...]) -> str:
    """``conv`` / ``linear`` from a flat name's suffix or the rank of the kernel at ``path``."""
    if _is_flat(params):
        return "conv" if path[0].endswith("_conv") else "linear"
    node = params
    for key in path:
        node = node[key]
    ndim = len(node["kernel"].shape)
    if ndim not in (2, 4):
        raise ValueError(f"layer {'/'.join(path)!r} has a {ndim}-D kernel; its kind cannot be inferred "
                         f"(4-D: conv, 2-D: linear): pass layer_kinds to register_model")
    return "conv" if ndim == 4 else "linear"


def leaf_agents(params):
    """Pytree like ``params`` whose leaves are the int agent index owning each parameter.

    Flat built-in trees: every ``L{i:02d}_*`` entry (norm, shortcut) belongs to layer ``i``. Other trees: a
    parameter belongs to the agent whose submodule path is its longest prefix; one outside every agent's
    submodule (a norm's scale, a free parameter) to the last agent before it in the same path order (the first
    agent if none is).
    """
    if _is_flat(params):
        return {k: jax.tree.map(lambda _: int(k[1:3]), v) for k, v in params.items()}
    paths = _layer_paths(params)
    owners = {}
    for leaf_path in flatten_dict(params):
        inside = [i for i, p in enumerate(paths) if leaf_path[:len(p)] == p]
        if inside:
            owners[leaf_path] = max(inside, key=lambda i: len(paths[i]))
        else:
            before = [i for i, p in enumerate(paths) if _natural(p) < _natural(leaf_path)]
            owners[leaf_path] = before[-1] if before else 0
    return unflatten_dict(owners)


def count_parameters(params) -> int:
    """Number of scalar parameters in a pytree."""
    return sum(math.prod(x.shape) for x in jax.tree.leaves(params))


def init_params(module: nn.Module, key: jax.Array, input_shape: tuple[int, ...]):
    """Initial parameters of ``module`` for one [1, *input_shape] input, as a flat dict."""
    return module.init(key, jnp.zeros((1, *input_shape), jnp.float32))["params"]
