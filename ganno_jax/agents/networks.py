"""Actor-critic networks (Flax linen) with parameters shared by all agents.

Actor: MLP ``actor_layers`` -> GRU ``gru_size`` (scanned over time, reset where ``done``) -> Dense
``actor_post_gru`` -> head. With ``recurrent=False`` the GRU is skipped and the hidden state has width 0,
so the training code is the same for both. The head maps features to a distrax distribution; it is an
attribute of ``ActorCritic`` so another action space only needs another head module: ``CategoricalHead``
for ``Discrete(n)`` action spaces, ``FactorisedCategoricalHead`` for ``MultiDiscrete`` ones (one
categorical per factor, e.g. the LR and weight-decay actions, sampled independently given the
features), ``GaussianHead`` for ``Box`` action spaces (``head_for``).
``GaussianHead`` is a plain diagonal Gaussian (mean Dense with init scale 0.01, learned
state-independent log-std): samples are *not* squashed, the env clips them to its box, and PPO uses the
log-prob of the unclipped sample (standard practice, as purejaxrl's continuous PPO). A tanh squash would
need a log-det-Jacobian correction and has no closed-form entropy.
Critic (``critic``): ``"independent"`` (IPPO, the paper's) is a separate feed-forward torso
``critic_layers`` on the agent's own (normalised) observation -> scalar. ``"centralised"`` (MAPPO) is a
``CentralisedCritic``: it sees every agent of the env copy through mean and max pooling over the agent
axis, so no parameter depends on the number of agents (one critic for any depth). Actors are the same.
Initialisation follows purejaxrl's scales (hidden layers sqrt 2, policy output 0.01, value output 1,
biases zero) with variance-scaling normal weights of variance ``scale**2 / fan_in`` instead of
orthogonal matrices (same per-weight variance): orthogonal init needs a QR per layer, and a dozen
batched QRs in one program (``jax.vmap(train)`` over seeds) deadlock XLA:CPU in jaxlib 0.10 on
2-core machines. The GRU's recurrent kernel uses the same init with scale 1.
"""
from __future__ import annotations

import functools

import distrax
import flax.linen as nn
import jax.numpy as jnp
import numpy as np
from flax.linen.initializers import constant, variance_scaling

from ganno_jax.agents.config import IPPOConfig
from ganno_jax.env.spaces import Box, MultiDiscrete

_ACTIVATION_FNS = {"tanh": nn.tanh, "relu": nn.relu}
_PAD_LOGIT = -1e9  # logit of the padding choices of a factorised head: probability 0, finite entropy terms


def _scaled_init(scale: float):
    """Normal weights with variance ``scale**2 / fan_in`` (QR-free stand-in for ``orthogonal(scale)``)."""
    return variance_scaling(scale**2, "fan_in", "normal")


def _dense(features: int, scale: float = np.sqrt(2), name: str | None = None) -> nn.Dense:
    return nn.Dense(features, kernel_init=_scaled_init(scale), bias_init=constant(0.0), name=name)


class MLP(nn.Module):
    """Dense + activation for each width in ``features``: ``[..., d] -> [..., features[-1]]``."""

    features: tuple[int, ...]
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x):
        for width in self.features:
            x = _ACTIVATION_FNS[self.activation](_dense(width)(x))
        return x


class ScannedGRU(nn.Module):
    """GRU scanned over the leading time axis; the carry is zeroed before step t where ``resets[t]``.

    ``carry: [B, H]``, ``x = (inputs [T, B, d], resets [T, B] bool)`` -> ``(carry [B, H], outputs [T, B, H])``.
    """

    hidden_size: int

    @functools.partial(nn.scan, variable_broadcast="params", in_axes=0, out_axes=0,
                       split_rngs={"params": False})
    @nn.compact
    def __call__(self, carry, x):
        inputs, resets = x
        carry = jnp.where(resets[:, None], jnp.zeros_like(carry), carry)
        return nn.GRUCell(features=self.hidden_size, recurrent_kernel_init=_scaled_init(1.0))(carry, inputs)


class CategoricalHead(nn.Module):
    """Features ``[..., F]`` -> ``distrax.Categorical`` over ``num_actions`` (logits layer ``logits``)."""

    num_actions: int

    @nn.compact
    def __call__(self, x) -> distrax.Categorical:
        return distrax.Categorical(logits=_dense(self.num_actions, 0.01, name="logits")(x))


class FactorisedCategoricalHead(nn.Module):
    """Features ``[..., F]`` -> independent categoricals over the factors ``nvec`` (logits layers ``factor_i``),
    one ``distrax`` distribution with event shape ``[len(nvec)]``: log-prob and entropy are sums over the
    factors. The factors' logits are padded to ``max(nvec)`` with ``_PAD_LOGIT`` (probability 0)."""

    nvec: tuple[int, ...]

    @nn.compact
    def __call__(self, x) -> distrax.Independent:
        width = max(self.nvec)
        pad = [(0, 0)] * (x.ndim - 1)
        logits = [jnp.pad(_dense(n, 0.01, name=f"factor_{i}")(x), pad + [(0, width - n)], constant_values=_PAD_LOGIT)
                  for i, n in enumerate(self.nvec)]
        return distrax.Independent(distrax.Categorical(logits=jnp.stack(logits, -2)), reinterpreted_batch_ndims=1)


class GaussianHead(nn.Module):
    """Features ``[..., F]`` -> ``distrax.MultivariateNormalDiag`` with event shape ``[action_dim]``.

    Mean: Dense ``mean`` (init scale 0.01, so the initial mean is ~0, the centre of the box); log-std:
    a learned vector ``log_std [action_dim]`` shared by all states, initialised to ``init_log_std``.
    """

    action_dim: int
    init_log_std: float = 0.0

    @nn.compact
    def __call__(self, x) -> distrax.MultivariateNormalDiag:
        mean = _dense(self.action_dim, 0.01, name="mean")(x)
        log_std = self.param("log_std", constant(self.init_log_std), (self.action_dim,))
        return distrax.MultivariateNormalDiag(loc=mean, scale_diag=jnp.broadcast_to(jnp.exp(log_std), mean.shape))


class CentralisedCritic(nn.Module):
    """MAPPO critic over the agents of one env copy, independent of their number (deep-sets pooling).

    Every agent's observation is embedded by one shared layer (width ``layers[0]``); the embeddings are
    pooled over the agent axis (mean and max, concatenated) and agent i's value is an MLP
    (``layers[1:]``, then a scalar) of ``[embedding_i, mean, max]``. ``obs [..., A, d]``,
    ``agent_mask [..., A]`` bool (None: all real) -> ``value [..., A]``. Padded agents (mask False) are
    left out of both pools, so they change no real agent's value; their own values are meaningless.
    """

    layers: tuple[int, ...]
    activation: str

    @nn.compact
    def __call__(self, obs, agent_mask=None):
        embedding = MLP(self.layers[:1], self.activation, name="embed")(obs)  # [..., A, F]
        if agent_mask is None:
            mean, peak = embedding.mean(axis=-2), embedding.max(axis=-2)
        else:
            mask = agent_mask[..., None]
            count = mask.sum(axis=-2)
            mean = jnp.where(mask, embedding, 0.0).sum(axis=-2) / jnp.maximum(count, 1)
            peak = jnp.where(count > 0, jnp.where(mask, embedding, -jnp.inf).max(axis=-2), 0.0)
        pooled = jnp.broadcast_to(jnp.concatenate([mean, peak], -1)[..., None, :],
                                  embedding.shape[:-1] + (2 * embedding.shape[-1],))
        x = MLP(self.layers[1:], self.activation, name="torso")(jnp.concatenate([embedding, pooled], -1))
        return _dense(1, 1.0, name="out")(x)[..., 0]


class ActorCritic(nn.Module):
    """Shared-parameter actor-critic; every row of the batch axis is one (env copy, agent) actor."""

    head: nn.Module
    actor_layers: tuple[int, ...]
    gru_size: int
    actor_post_gru: int
    critic_layers: tuple[int, ...]
    recurrent: bool
    activation: str
    critic: str = "independent"

    def setup(self):
        self.actor_torso = MLP(self.actor_layers, self.activation)
        self.rnn = ScannedGRU(self.gru_size) if self.recurrent else None
        self.actor_post = MLP((self.actor_post_gru,), self.activation)
        if self.critic == "centralised":
            self.central_critic = CentralisedCritic(self.critic_layers, self.activation)
        else:
            self.critic_torso = MLP(self.critic_layers, self.activation)
            self.critic_out = _dense(1, 1.0)

    def __call__(self, hidden, obs, dones, num_agents: int | None = None):
        """``hidden [B, H]``, ``obs [T, B, d]``, ``dones [T, B]`` (reset before step t) ->
        ``(hidden [B, H], pi with batch shape [T, B], value [T, B])``. ``num_agents`` (static): the
        batch holds whole env copies of that many agents each, env-major (needed by the centralised critic)."""
        hidden, pi = self.policy(hidden, obs, dones)
        return hidden, pi, self.actor_values(obs, num_agents)

    def policy(self, hidden, obs, dones):
        """Actor only: as ``__call__`` without the value -> ``(hidden [B, H], pi [T, B])``."""
        x = self.actor_torso(obs)
        if self.recurrent:
            hidden, x = self.rnn(hidden, (x, dones))
        return hidden, self.head(self.actor_post(x))

    def value(self, obs, agent_mask=None):
        """Critic only: ``obs [..., A, d]`` (the agents of one env copy on axis -2), ``agent_mask [..., A]``
        (centralised critic only; None: all agents real) -> ``value [..., A]``. The independent critic is
        per row, so any ``obs [..., d] -> [...]`` works for it."""
        if self.critic == "centralised":
            return self.central_critic(obs, agent_mask)
        return self.critic_out(self.critic_torso(obs))[..., 0]

    def actor_values(self, obs, num_agents: int | None = None):
        """Critic on the folded actor axis: ``obs [..., B, d]`` with ``B = envs * num_agents`` (env-major)
        -> ``value [..., B]``; ``num_agents`` is required by the centralised critic only."""
        if self.critic != "centralised":
            return self.value(obs)
        if num_agents is None or obs.shape[-2] % num_agents:
            raise ValueError(f"num_agents={num_agents!r} must divide the actor axis ({obs.shape[-2]}) "
                             "for the centralised critic")
        grouped = obs.reshape(obs.shape[:-2] + (obs.shape[-2] // num_agents, num_agents, obs.shape[-1]))
        return self.value(grouped).reshape(obs.shape[:-1])


def is_discrete(action_space) -> bool:
    """Whether an action space is discrete (has ``.n``) rather than a box (has ``.shape``)."""
    return hasattr(action_space, "n")


def is_factorised(action_space) -> bool:
    """Whether an action space is a factorised discrete one (``MultiDiscrete``, has ``.nvec``)."""
    return hasattr(action_space, "nvec")


def action_dtype_of(action_space):
    """dtype of actions: int32 for (factorised) discrete spaces or an int ``n``, float32 for a box."""
    discrete = isinstance(action_space, int) or is_discrete(action_space) or is_factorised(action_space)
    return jnp.int32 if discrete else jnp.float32


def action_shape_of(action_space) -> tuple[int, ...]:
    """Per-agent shape of one action: ``()`` for ``Discrete``, ``(F,)`` for ``MultiDiscrete`` of F factors,
    ``(D,)`` for a ``Box`` (its size, flattened)."""
    if is_factorised(action_space):
        return (len(action_space.nvec),)
    return () if is_discrete(action_space) else (int(np.prod(action_space.shape)),)


def head_for(cfg: IPPOConfig, action_space) -> nn.Module:
    """``CategoricalHead(n)`` for a ``Discrete`` space (or an int ``n``), ``FactorisedCategoricalHead`` for a
    ``MultiDiscrete`` one, else ``GaussianHead`` of the box's size."""
    if isinstance(action_space, int):
        return CategoricalHead(action_space)
    if is_discrete(action_space):
        return CategoricalHead(int(action_space.n))
    if is_factorised(action_space):
        return FactorisedCategoricalHead(tuple(int(n) for n in action_space.nvec))
    return GaussianHead(action_shape_of(action_space)[0], cfg.init_log_std)


def make_network(cfg: IPPOConfig, action_space) -> ActorCritic:
    """The actor-critic described by ``cfg`` with the head for ``action_space`` (see ``head_for``)."""
    return ActorCritic(
        head=head_for(cfg, action_space),
        actor_layers=cfg.actor_layers,
        gru_size=cfg.gru_size,
        actor_post_gru=cfg.actor_post_gru,
        critic_layers=cfg.critic_layers,
        recurrent=cfg.recurrent,
        activation=cfg.activation,
        critic=cfg.critic,
    )


def init_hidden(cfg: IPPOConfig, batch: int) -> jnp.ndarray:
    """Zero hidden state ``[batch, gru_size]`` (``[batch, 0]`` for an MLP policy)."""
    return jnp.zeros((batch, cfg.gru_size if cfg.recurrent else 0), jnp.float32)


def num_actions_of(params) -> int:
    """Number of discrete actions of a categorical actor-critic, read from its parameters."""
    return params["params"]["head"]["logits"]["kernel"].shape[-1]


def action_space_of(params):
    """Action space implied by trained parameters: ``n`` (an int) for a categorical head, ``MultiDiscrete``
    for a factorised one, else a ``Box(-inf, inf, (D,))`` for a Gaussian head (``make_network`` accepts all)."""
    head = params["params"]["head"]
    if "logits" in head:
        return int(head["logits"]["kernel"].shape[-1])
    if "factor_0" in head:
        return MultiDiscrete(tuple(int(head[f"factor_{i}"]["kernel"].shape[-1]) for i in range(len(head))))
    return Box(-np.inf, np.inf, (int(head["log_std"].shape[-1]),))
