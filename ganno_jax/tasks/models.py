"""Models of the inner problem and the agent layer each parameterised layer maps to.

Every model keeps its parameters flat: one top-level entry per module, named ``L{i:02d}_<kind>``
for the i-th parameterised layer (``dense`` or ``conv``) and ``L{i:02d}_norm`` for the
normalisation that follows it. Layer ``i`` is agent ``i`` (GANNO: one agent per layer); a
normalisation's scale/bias belong to the agent of the layer it follows.

Decisions (not fixed by the papers):
- ``cnnN``: N 3x3 conv layers (ReLU; stride 2 on every second layer while the image is larger
  than 2 pixels), global average pooling, one linear classifier -> N+1 agents. Channels
  ``width * 2**min(i, 2)``.
- ``mlp``: two hidden layers of ``8 * width`` units (ReLU) and a linear classifier -> 3 agents.
- ResNets use GroupNorm (stateless) instead of BatchNorm so every model is a pure function of its
  parameters (no mutable batch statistics inside the vmapped inner loop). ``resnet9`` is the
  DAWNBench ResNet-9 layout, ``resnet18`` the CIFAR ResNet-18 (basic blocks [2, 2, 2, 2], 1x1
  shortcut convs where shape changes), both with base width ``width``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import linen as nn

from ganno_jax.tasks.conv import Conv

LAYER_KINDS = ("linear", "conv", "attention")
DEPTHS = ("first", "intermediate", "final")


class AgentLayer(NamedTuple):
    """One agent of GANNO: a parameterised layer of the inner network."""

    index: int
    name: str
    kind: str  # one of LAYER_KINDS
    depth: str  # one of DEPTHS


def _norm(channels: int, name: str) -> nn.Module:
    groups = 8 if channels % 8 == 0 else 1
    return nn.GroupNorm(num_groups=groups, name=name)


def _downsample(x: jax.Array) -> jax.Array:
    """2x2 max pooling on the spatial axes longer than one pixel."""
    window = tuple(2 if n > 1 else 1 for n in x.shape[1:3])
    return nn.max_pool(x, window, strides=window, padding="SAME")


class _LayerCounter:
    """Hands out flat layer names ``L{i:02d}_<kind>`` in call order."""

    def __init__(self):
        self.count = 0

    def conv(self, x, features, kernel_size=3, stride=1, norm=False):
        i = self.count
        self.count += 1
        y = Conv(features, kernel_size, stride, name=f"L{i:02d}_conv")(x)
        return _norm(features, f"L{i:02d}_norm")(y) if norm else y

    def dense(self, x, features):
        i = self.count
        self.count += 1
        return nn.Dense(features, name=f"L{i:02d}_dense")(x)


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
    """``depth`` 3x3 conv layers, global average pooling, linear classifier."""

    num_classes: int
    depth: int = 2
    width: int = 16

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        """x: [B, H, W, C] -> logits [B, num_classes]."""
        layers = _LayerCounter()
        for i in range(self.depth):
            stride = 2 if i % 2 == 1 and max(x.shape[1:3]) > 2 else 1
            x = nn.relu(layers.conv(x, self.width * 2 ** min(i, 2), stride=stride))
        return layers.dense(x.mean(axis=(1, 2)), self.num_classes)


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
            x = _downsample(block(x, self.width * mult))
            if residual:
                x = x + block(block(x, self.width * mult), self.width * mult)
        return layers.dense(x.max(axis=(1, 2)), self.num_classes)


class ResNet18(nn.Module):
    """CIFAR ResNet-18 (basic blocks [2, 2, 2, 2]) with GroupNorm."""

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
                channels = self.width * mult
                h = nn.relu(layers.conv(x, channels, stride=stride, norm=True))
                h = layers.conv(h, channels, norm=True)
                shortcut = layers.conv(x, channels, kernel_size=1, stride=stride, norm=True) if first else x
                x = nn.relu(h + shortcut)
        return layers.dense(x.mean(axis=(1, 2)), self.num_classes)


def build_model(model: str, num_classes: int, width: int) -> nn.Module:
    """Flax module for a model name in ``ganno_jax.tasks.MODELS``."""
    if model == "mlp":
        return MLP(num_classes, width)
    if model.startswith("cnn"):
        return CNN(num_classes, depth=int(model[3:]), width=width)
    if model == "resnet9":
        return ResNet9(num_classes, width)
    if model == "resnet18":
        return ResNet18(num_classes, width)
    raise ValueError(f"model={model!r} is not valid; allowed: mlp, cnn2, cnn3, cnn5, resnet9, resnet18")


def agent_layers(params) -> tuple[AgentLayer, ...]:
    """Agents of a flat parameter dict (keys ``L{i:02d}_<kind>``), in depth order."""
    kinds = {int(k[1:3]): k[4:] for k in params if not k.endswith("_norm")}
    last = max(kinds)
    return tuple(
        AgentLayer(
            index=i,
            name=f"L{i:02d}_{kind}",
            kind="conv" if kind == "conv" else "linear",
            depth="first" if i == 0 else "final" if i == last else "intermediate",
        )
        for i, kind in sorted(kinds.items())
    )


def leaf_agents(params):
    """Pytree like ``params`` whose leaves are the int agent index owning each parameter."""
    return {k: jax.tree.map(lambda _: int(k[1:3]), v) for k, v in params.items()}


def count_parameters(params) -> int:
    """Number of scalar parameters in a pytree."""
    return sum(math.prod(x.shape) for x in jax.tree.leaves(params))


def init_params(module: nn.Module, key: jax.Array, input_shape: tuple[int, ...]):
    """Initial parameters of ``module`` for one [1, *input_shape] input, as a flat dict."""
    return module.init(key, jnp.zeros((1, *input_shape), jnp.float32))["params"]
