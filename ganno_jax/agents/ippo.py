"""Env-agnostic IPPO trainer in the purejaxrl style: one pure function from a key to trained parameters.

The env follows the gymnax-1.0 interface with an agent axis (see ``make_train``). ``num_envs`` copies
are vmapped and the agents are folded into the batch axis: actor ``i = env * num_agents + agent`` and
all actors share the network parameters. An update rolls out ``num_steps`` steps of every env copy, computes
GAE over the whole rollout, cuts it into ``num_sequences`` sequences of ``seq_len`` steps (one env copy,
all its agents: Mava's epoch batch) and trains ``update_epochs`` epochs of ``num_minibatches``
minibatches of whole sequences. ``train(key)`` is literally ``update(init(key), num_updates)``,
so a CLI can run the same loop in chunks (``make_train_pieces``) and get bit-identical parameters.
With ``critic="centralised"`` (MAPPO) each agent's value sees every agent of its env copy: the rollout
and every minibatch hold whole env copies, so the critic regroups the actor axis ``[E * A] -> [E, A]``.
Given a ``mesh`` (``agents.env_mesh``), the env copies are split over its devices (``sharding.py``).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple, Optional

import flax.struct
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from ganno_jax.agents.config import IPPOConfig
from ganno_jax.agents.networks import ActorCritic, action_shape_of, init_hidden, is_discrete, make_network
from ganno_jax.agents.normalize import RunningMeanStd, sanitize
from ganno_jax.agents.ppo import PPOBatch, Transition, gae, minibatches, ppo_loss
from ganno_jax.agents.sharding import check_divisible, split_envs


@flax.struct.dataclass
class RunnerState:
    """Everything the training loop carries; a pure pytree of arrays (orbax can save it).

    ``N = num_envs * num_agents``, ``H = gru_size`` (0 for an MLP policy), ``d = obs_dim``.
    """

    params: Any  # network parameters (shared by all agents)
    opt_state: Any
    obs_stats: RunningMeanStd  # per-feature [d]
    ret_stats: RunningMeanStd  # scalar, statistics of the value targets
    env_state: Any  # [num_envs, ...]
    obs: jnp.ndarray  # [num_envs, num_agents, d] as returned by the env
    done: jnp.ndarray  # [N] bool: the last step ended an episode
    hidden: jnp.ndarray  # [N, H]
    key: jax.Array
    update_step: jnp.ndarray  # [] int32: updates done so far


@flax.struct.dataclass
class TrainOutput:
    """Result of ``train(key)``: final ``runner_state`` and ``metrics``; ``cfg`` is static.

    ``metrics`` (leading axes ``U`` updates, ``T`` steps, ``E`` env copies): every key of the env's
    ``info`` except ``final_obs`` as ``[U, T, E, ...]``; ``reward`` ``[U, T, E]`` (mean over agents);
    ``done`` ``[U, T, E]`` (terminated or truncated); ``loss``: dict of ``[U]`` (total, value, actor,
    entropy, approx_kl, clip_frac; means over epochs and minibatches). With ``jax.vmap(train)`` every
    leaf gains a leading seed axis.
    """

    runner_state: RunnerState
    metrics: dict
    cfg: IPPOConfig = flax.struct.field(pytree_node=False)


class TrainPieces(NamedTuple):
    """``init(key) -> RunnerState``; ``update(runner_state, num_updates: static int) -> (runner_state,
    metrics)`` (metrics as in ``TrainOutput`` with ``U = num_updates``). Both pure and jit-able."""

    init: Callable[[jax.Array], RunnerState]
    update: Callable[[RunnerState, int], tuple[RunnerState, dict]]


def normalize_obs(cfg: IPPOConfig, stats: RunningMeanStd, obs: jnp.ndarray) -> jnp.ndarray:
    """Network input: ``obs [..., d]`` normalised by ``stats`` and clipped to +-obs_clip if enabled."""
    return stats.normalize(obs, cfg.obs_clip) if cfg.normalize_obs else obs


def _optimizer(cfg: IPPOConfig) -> optax.GradientTransformation:
    steps_per_update = cfg.num_minibatches * cfg.update_epochs

    def annealed(count):
        return cfg.lr * (1.0 - (count // steps_per_update) / cfg.num_updates)

    return optax.chain(
        optax.clip_by_global_norm(cfg.max_grad_norm),
        optax.adam(annealed if cfg.anneal_lr else cfg.lr, eps=1e-5),
    )


def make_train_pieces(cfg: IPPOConfig, env, env_params, mesh: Optional[Mesh] = None) -> TrainPieces:
    """Builds ``init`` and ``update`` for ``env`` (gymnax-1.0 style with an agent axis).

    Env contract: ``reset(key, params) -> (obs [A, d], state)``; ``step(key, state, action, params)``
    with ``action [A] int32`` for a ``Discrete`` action space (categorical head) or ``[A, D] float32``
    for a ``Box`` of size ``D`` per agent (Gaussian head, unclipped samples: the env clips), returning
    ``(obs, state, reward [A] or [], terminated [], truncated [], info)`` and auto-resetting at episode
    end, with ``info["final_obs"] [A, d]`` the pre-reset obs used to bootstrap truncated steps
    (if absent, truncation is treated as termination). With ``mesh`` (1-D, axis ``"envs"``) the env
    copies are split over its devices (see ``sharding.py``). Raises ``ValueError`` on a config that
    does not fit the env or the mesh.
    """
    num_agents = int(env.num_agents)
    cfg.validate_for(num_agents)
    check_divisible(cfg.num_envs, mesh)
    obs_dim = env.observation_space(env_params).shape[-1]
    action_space = env.action_space(env_params)
    network = make_network(cfg, action_space)
    action_dtype = jnp.int32 if is_discrete(action_space) else jnp.float32
    action_shape = action_shape_of(action_space)
    tx = _optimizer(cfg)
    num_envs, num_actors = cfg.num_envs, cfg.num_envs * num_agents
    # minibatches hold whole env copies (all their agents, env-major), as the centralised critic needs
    apply_fn = functools.partial(network.apply, num_agents=num_agents)

    def to_returns(stats: RunningMeanStd, v):  # critic output -> return units
        return stats.denormalize(v) if cfg.normalize_values else v

    def to_critic(stats: RunningMeanStd, v):  # return units -> critic output units
        return stats.normalize(v) if cfg.normalize_values else v

    def value_of(rs: RunnerState, obs):  # sanitised obs [..., k * A, d] (whole env copies) -> [..., k * A]
        return to_returns(rs.ret_stats, network.apply(rs.params, normalize_obs(cfg, rs.obs_stats, obs), num_agents,
                                                       method=ActorCritic.actor_values))

    def init(key: jax.Array) -> RunnerState:
        """Fresh network, optimiser, normalisers and ``num_envs`` reset env copies."""
        k_net, k_env, k_run = jax.random.split(key, 3)
        params = network.init(k_net, init_hidden(cfg, 1), jnp.zeros((1, 1, obs_dim)), jnp.zeros((1, 1), bool),
                              num_agents=1)  # no parameter depends on the number of agents
        keys = split_envs(jax.random.split(k_env, num_envs), mesh)
        obs, env_state = split_envs(jax.vmap(env.reset, in_axes=(0, None))(keys, env_params), mesh)
        return RunnerState(
            params=params,
            opt_state=tx.init(params),
            obs_stats=RunningMeanStd.create((obs_dim,)),
            ret_stats=RunningMeanStd.create(()),
            env_state=env_state,
            obs=obs,
            done=split_envs(jnp.zeros((num_actors,), bool), mesh),
            hidden=split_envs(init_hidden(cfg, num_actors), mesh),
            key=k_run,
            update_step=jnp.zeros((), jnp.int32),
        )

    def env_step(rs: RunnerState, _):
        key, k_act, k_env = jax.random.split(rs.key, 3)
        obs = sanitize(rs.obs).reshape(num_actors, obs_dim)
        hidden, pi, value = network.apply(rs.params, rs.hidden, normalize_obs(cfg, rs.obs_stats, obs)[None],
                                          rs.done[None], num_agents)
        action = pi.sample(seed=k_act)
        log_prob, action, value = pi.log_prob(action)[0], action[0].astype(action_dtype), value[0]

        step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
        env_keys = split_envs(jax.random.split(k_env, num_envs), mesh)
        actions = split_envs(action.reshape((num_envs, num_agents) + action_shape), mesh)
        next_obs, env_state, reward, terminated, truncated, info = step(env_keys, rs.env_state, actions, env_params)
        next_obs, env_state = split_envs((next_obs, env_state), mesh)
        reward = sanitize(jnp.broadcast_to(reward.reshape(num_envs, -1), (num_envs, num_agents)))
        info = dict(info)
        final_obs = info.pop("final_obs", None)
        bootstrap = jnp.zeros((num_envs, num_agents)) if final_obs is None else jnp.where(
            (truncated & ~terminated)[:, None], value_of(rs, sanitize(final_obs)), 0.0)
        done = terminated | truncated

        transition = Transition(
            obs=obs, reset=rs.done, hidden=rs.hidden, action=action, log_prob=log_prob,
            value=to_returns(rs.ret_stats, value), reward=reward.reshape(-1),
            done=jnp.repeat(done, num_agents), bootstrap_value=bootstrap.reshape(-1))
        step_metrics = {**info, "reward": reward.mean(axis=1), "done": done}
        rs = rs.replace(env_state=env_state, obs=next_obs, done=split_envs(transition.done, mesh),
                        hidden=split_envs(hidden, mesh), key=key)
        return rs, (transition, step_metrics)

    def train_minibatch(carry, mb: PPOBatch):
        params, opt_state = carry
        grads, stats = jax.grad(ppo_loss, has_aux=True)(params, apply_fn, cfg, mb)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), stats

    def train_epoch(carry, key, batch: PPOBatch):
        mbs = minibatches(key, batch, cfg.seq_len, cfg.num_minibatches, num_envs)
        return jax.lax.scan(train_minibatch, carry, mbs)

    def update_step(rs: RunnerState, _):
        rs, (traj, step_metrics) = jax.lax.scan(env_step, rs, None, cfg.num_steps)
        last_value = value_of(rs, sanitize(rs.obs).reshape(num_actors, obs_dim))  # unused where rs.done
        advantages, returns = gae(traj, last_value, cfg.gamma, cfg.gae_lambda)
        ret_stats = rs.ret_stats.update(returns) if cfg.normalize_values else rs.ret_stats

        batch = PPOBatch(
            obs=normalize_obs(cfg, rs.obs_stats, traj.obs), reset=traj.reset, hidden=traj.hidden, action=traj.action,
            log_prob=traj.log_prob, value=to_critic(ret_stats, traj.value), advantage=advantages,
            target=to_critic(ret_stats, returns))
        key, k_epochs = jax.random.split(rs.key)
        (params, opt_state), loss_stats = jax.lax.scan(
            lambda carry, k: train_epoch(carry, k, batch),
            (rs.params, rs.opt_state), jax.random.split(k_epochs, cfg.update_epochs))

        rs = rs.replace(
            params=params, opt_state=opt_state, ret_stats=ret_stats, key=key, update_step=rs.update_step + 1,
            obs_stats=rs.obs_stats.update(traj.obs) if cfg.normalize_obs else rs.obs_stats)
        loss = jax.tree.map(jnp.mean, loss_stats)
        return rs, {**step_metrics, "loss": loss}

    def update(runner_state: RunnerState, num_updates: int):
        """Runs ``num_updates`` (static) PPO updates; metrics leaves gain a leading ``[num_updates]`` axis."""
        return jax.lax.scan(update_step, runner_state, None, num_updates)

    return TrainPieces(init=init, update=update)


def make_train(cfg: IPPOConfig, env, env_params, mesh: Optional[Mesh] = None) -> Callable[[jax.Array], TrainOutput]:
    """Pure ``train(key) -> TrainOutput`` running ``cfg.num_updates`` updates; jit it, vmap it over keys.
    ``mesh``: split the env copies over its devices (see ``make_train_pieces``)."""
    pieces = make_train_pieces(cfg, env, env_params, mesh)

    def train(key: jax.Array) -> TrainOutput:
        runner_state, metrics = pieces.update(pieces.init(key), cfg.num_updates)
        return TrainOutput(runner_state=runner_state, metrics=metrics, cfg=cfg)

    return train
