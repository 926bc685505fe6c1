"""Env-agnostic IPPO trainer in the purejaxrl style: one pure function from a key to trained parameters.

The env follows the gymnax-1.0 interface with an agent axis (see ``make_train``). ``num_envs`` copies
are vmapped and the agents are folded into the batch axis: actor ``i = env * num_agents + agent`` and
all actors share the network parameters. An update rolls out ``num_steps`` steps of every env copy, computes
GAE over the whole rollout, cuts it into ``num_sequences`` sequences of ``seq_len`` steps (one env copy,
all its agents: Mava's epoch batch) and trains ``update_epochs`` epochs of ``num_minibatches``
minibatches of whole sequences. ``train(key)`` is literally ``update(init(key), num_updates)``,
so a CLI can run the same loop a few updates at a time (``make_train_pieces``) and get bit-identical parameters.
With ``critic="centralised"`` (MAPPO) each agent's value sees every agent of its env copy: the rollout
and every minibatch hold whole env copies, so the critic regroups the actor axis ``[E * A] -> [E, A]``.
Given a ``mesh`` (``agents.env_mesh``), the env copies are split over its devices (``sharding.py``).

A family of tasks: pass a sequence of ``EnvGroup`` instead of one env. Every group is its own vmapped set
of env copies (its own dataset, depth, width: any ``num_agents``, the same observation size and action
space); all groups' actors are concatenated group after group into one actor batch for the one policy and
critic, and one PPO update trains on all of them: every minibatch holds ``1 / num_minibatches`` of every
group's whole-env sequences and the loss is the mean over all their actors (groups weighted by their actor
counts). The ``RunnerState``'s per-env fields then hold a tuple over groups. One env is the one-group case
computed exactly as before (same state layout, bit-identical results).
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
from ganno_jax.agents.groups import EnvGroup, check_groups, concat, starts
from ganno_jax.agents.networks import (ActorCritic, action_dtype_of, action_shape_of, init_hidden, make_network)
from ganno_jax.agents.normalize import RunningMeanStd, sanitize
from ganno_jax.agents.ppo import PPOBatch, Transition, gae, minibatches, ppo_loss
from ganno_jax.agents.sharding import split_envs


@flax.struct.dataclass
class RunnerState:
    """Everything the training loop carries; a pure pytree of arrays (orbax can save it).

    ``N = num_envs * num_agents``, ``H = gru_size`` (0 for an MLP policy), ``d = obs_dim``. Trained on
    several ``EnvGroup``s, ``env_state``, ``obs``, ``done`` and ``hidden`` are tuples over the groups
    (each with its own ``num_envs`` and ``num_agents``).
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
    entropy, approx_kl, clip_frac; means over epochs and minibatches). Trained on ``EnvGroup``s:
    ``{"loss": ..., "groups": (per-group dict of the env keys, reward and done, ...)}``. With
    ``jax.vmap(train)`` every leaf gains a leading seed axis.
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


def make_train_pieces(cfg: IPPOConfig, env, env_params=None, mesh: Optional[Mesh] = None) -> TrainPieces:
    """Builds ``init`` and ``update`` for ``env`` (gymnax-1.0 style with an agent axis), or for a family.

    Env contract: ``reset(key, params) -> (obs [A, d], state)``; ``step(key, state, action, params)``
    with ``action [A] int32`` for a ``Discrete`` action space (categorical head) or ``[A, D] float32``
    for a ``Box`` of size ``D`` per agent (Gaussian head, unclipped samples: the env clips), returning
    ``(obs, state, reward [A] or [], terminated [], truncated [], info)`` and auto-resetting at episode
    end, with ``info["final_obs"] [A, d]`` the pre-reset obs used to bootstrap truncated steps
    (if absent, truncation is treated as termination). ``env`` may instead be a sequence of
    ``EnvGroup`` (then ``env_params`` is None): one shared policy and critic trained on all groups (see
    the module docstring). With ``mesh`` (1-D, axis ``"envs"``) the env copies are split over its
    devices (see ``sharding.py``). Raises ``ValueError`` on a config that does not fit the envs or the mesh.
    """
    single = not isinstance(env, (list, tuple))
    if single:
        groups = (EnvGroup(env, env_params, cfg.num_envs),)
    elif env_params is not None:
        raise ValueError("env_params must be None when env is a sequence of EnvGroup (each group has its own)")
    groups = check_groups(cfg, groups if single else tuple(env), mesh)
    pack = (lambda xs: xs[0]) if single else tuple  # per-group values -> RunnerState field
    unpack = (lambda x: (x,)) if single else tuple  # RunnerState field -> per-group values
    first = groups[0]
    obs_dim = first.env.observation_space(first.env_params).shape[-1]
    action_space = first.env.action_space(first.env_params)
    network = make_network(cfg, action_space)
    action_dtype = action_dtype_of(action_space)
    action_shape = action_shape_of(action_space)
    tx = _optimizer(cfg)
    agents = tuple(int(g.env.num_agents) for g in groups)
    envs = tuple(g.num_envs for g in groups)
    actors = tuple(e * a for e, a in zip(envs, agents))
    env_starts, actor_starts = starts(envs), starts(actors)
    total_envs = sum(envs)
    # minibatches hold whole env copies (all their agents, env-major), as the centralised critic needs;
    # segments: (actors, num_agents) of each group along the actor axis of the batch at hand
    rollout_segments = tuple(zip(actors, agents))
    seqs_per_env = cfg.num_steps // cfg.seq_len  # sequences per env copy and update
    mb_segments = tuple((n * seqs_per_env // cfg.num_minibatches, a) for n, a in zip(actors, agents))

    def split_actors(x, segments, axis: int):  # [..., sum(sizes), ...] -> per-group parts along axis
        cuts = starts(tuple(n for n, _ in segments))[1:]
        return jnp.split(x, cuts, axis=axis) if cuts else [x]

    def values(params, obs, segments):  # network obs [..., N, d] -> critic output [..., N]
        parts = split_actors(obs, segments, obs.ndim - 2)
        return concat([network.apply(params, o, a, method=ActorCritic.actor_values)
                        for o, (_, a) in zip(parts, segments)], axis=-1)

    def forward(params, hidden, obs, dones, segments):  # -> (hidden, pi, value) as ActorCritic.__call__
        if len(segments) == 1:
            return network.apply(params, hidden, obs, dones, segments[0][1])
        hidden, pi = network.apply(params, hidden, obs, dones, method=ActorCritic.policy)
        return hidden, pi, values(params, obs, segments)

    apply_fn = functools.partial(forward, segments=mb_segments)

    def to_returns(stats: RunningMeanStd, v):  # critic output -> return units
        return stats.denormalize(v) if cfg.normalize_values else v

    def to_critic(stats: RunningMeanStd, v):  # return units -> critic output units
        return stats.normalize(v) if cfg.normalize_values else v

    def value_of(rs: RunnerState, obs, segments):  # sanitised obs [..., N, d] (whole env copies) -> [..., N]
        return to_returns(rs.ret_stats, values(rs.params, normalize_obs(cfg, rs.obs_stats, obs), segments))

    def init(key: jax.Array) -> RunnerState:
        """Fresh network, optimiser, normalisers and every group's reset env copies."""
        k_net, k_env, k_run = jax.random.split(key, 3)
        params = network.init(k_net, init_hidden(cfg, 1), jnp.zeros((1, 1, obs_dim)), jnp.zeros((1, 1), bool),
                              num_agents=1)  # no parameter depends on the number of agents
        all_keys = jax.random.split(k_env, total_envs)
        obs, env_state = [], []
        for g, start in zip(groups, env_starts):
            keys = split_envs(all_keys[start:start + g.num_envs], mesh)
            o, s = split_envs(jax.vmap(g.env.reset, in_axes=(0, None))(keys, g.env_params), mesh)
            obs.append(o)
            env_state.append(s)
        return RunnerState(
            params=params,
            opt_state=tx.init(params),
            obs_stats=RunningMeanStd.create((obs_dim,)),
            ret_stats=RunningMeanStd.create(()),
            env_state=pack(env_state),
            obs=pack(obs),
            done=pack([split_envs(jnp.zeros((n,), bool), mesh) for n in actors]),
            hidden=pack([split_envs(init_hidden(cfg, n), mesh) for n in actors]),
            key=k_run,
            update_step=jnp.zeros((), jnp.int32),
        )

    def group_step(rs: RunnerState, g: EnvGroup, num_agents: int, keys, env_state, action, value):
        """Steps one group's env copies with its slice of the actions -> (next obs, state, per-actor
        reward, done and bootstrap values, step metrics)."""
        n = g.num_envs
        actions = split_envs(action.reshape((n, num_agents) + action_shape), mesh)
        step = jax.vmap(g.env.step, in_axes=(0, 0, 0, None))
        next_obs, env_state, reward, terminated, truncated, info = step(split_envs(keys, mesh), env_state, actions,
                                                                        g.env_params)
        next_obs, env_state = split_envs((next_obs, env_state), mesh)
        reward = sanitize(jnp.broadcast_to(reward.reshape(n, -1), (n, num_agents)))
        info = dict(info)
        final_obs = info.pop("final_obs", None)
        bootstrap = jnp.zeros((n, num_agents)) if final_obs is None else jnp.where(
            (truncated & ~terminated)[:, None],
            value_of(rs, sanitize(final_obs), ((num_agents, num_agents),)), 0.0)  # [n, A, d]: one segment
        done = terminated | truncated
        metrics = {**info, "reward": reward.mean(axis=1), "done": done}
        return next_obs, env_state, reward.reshape(-1), jnp.repeat(done, num_agents), bootstrap.reshape(-1), metrics

    def env_step(rs: RunnerState, _):
        key, k_act, k_env = jax.random.split(rs.key, 3)
        obs = concat([sanitize(o).reshape(n, obs_dim) for o, n in zip(unpack(rs.obs), actors)])
        hidden_in, done_in = concat(unpack(rs.hidden)), concat(unpack(rs.done))
        hidden, pi, value = forward(rs.params, hidden_in, normalize_obs(cfg, rs.obs_stats, obs)[None],
                                    done_in[None], rollout_segments)
        action = pi.sample(seed=k_act)
        log_prob, action, value = pi.log_prob(action)[0], action[0].astype(action_dtype), value[0]

        env_keys = jax.random.split(k_env, total_envs)
        results = [group_step(rs, g, a, env_keys[e0:e0 + g.num_envs], s, action[a0:a0 + n], value[a0:a0 + n])
                   for g, a, n, e0, a0, s in zip(groups, agents, actors, env_starts, actor_starts,
                                                 unpack(rs.env_state))]
        next_obs, env_state, reward, done, bootstrap, step_metrics = zip(*results)
        transition = Transition(
            obs=obs, reset=done_in, hidden=hidden_in, action=action, log_prob=log_prob,
            value=to_returns(rs.ret_stats, value), reward=concat(reward), done=concat(done),
            bootstrap_value=concat(bootstrap))
        rs = rs.replace(env_state=pack(env_state), obs=pack(next_obs),
                        done=pack([split_envs(d, mesh) for d in done]),
                        hidden=pack([split_envs(h, mesh) for h in split_actors(hidden, rollout_segments, 0)]),
                        key=key)
        return rs, (transition, pack(step_metrics))

    def train_minibatch(carry, mb: PPOBatch):
        params, opt_state = carry
        grads, stats = jax.grad(ppo_loss, has_aux=True)(params, apply_fn, cfg, mb)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), stats

    def train_epoch(carry, key, batch: PPOBatch):
        keys = [key] + [jax.random.fold_in(key, i) for i in range(1, len(groups))]
        parts = [jax.tree.map(lambda x, a0=a0, n=n: x[:, a0:a0 + n], batch) for a0, n in zip(actor_starts, actors)]
        mbs = [minibatches(k, part, cfg.seq_len, cfg.num_minibatches, g.num_envs)
               for k, part, g in zip(keys, parts, groups)]
        # [M, L, B_g, ...] per group -> [M, L, sum B_g, ...]: every minibatch holds 1/M of every group
        mbs = mbs[0] if len(mbs) == 1 else jax.tree.map(lambda *xs: jnp.concatenate(xs, axis=2), *mbs)
        return jax.lax.scan(train_minibatch, carry, mbs)

    def update_step(rs: RunnerState, _):
        rs, (traj, step_metrics) = jax.lax.scan(env_step, rs, None, cfg.num_steps)
        last_obs = concat([sanitize(o).reshape(n, obs_dim) for o, n in zip(unpack(rs.obs), actors)])
        last_value = value_of(rs, last_obs, rollout_segments)  # unused where done
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
        return rs, ({**step_metrics, "loss": loss} if single else {"groups": step_metrics, "loss": loss})

    def update(runner_state: RunnerState, num_updates: int):
        """Runs ``num_updates`` (static) PPO updates; metrics leaves gain a leading ``[num_updates]`` axis."""
        return jax.lax.scan(update_step, runner_state, None, num_updates)

    return TrainPieces(init=init, update=update)


def make_train(cfg: IPPOConfig, env, env_params=None,
               mesh: Optional[Mesh] = None) -> Callable[[jax.Array], TrainOutput]:
    """Pure ``train(key) -> TrainOutput`` running ``cfg.num_updates`` updates; jit it, vmap it over keys.
    ``env``: one env (with ``env_params``) or a sequence of ``EnvGroup``; ``mesh``: split the env copies
    over its devices (see ``make_train_pieces``)."""
    pieces = make_train_pieces(cfg, env, env_params, mesh)

    def train(key: jax.Array) -> TrainOutput:
        runner_state, metrics = pieces.update(pieces.init(key), cfg.num_updates)
        return TrainOutput(runner_state=runner_state, metrics=metrics, cfg=cfg)

    return train
