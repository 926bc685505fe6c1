"""Warm start: handcrafted schedules expressed as GANNO's nine actions, imitated by the actor (BC).

GANNO cannot discover a warm-up from LR 0 by itself (paper, Appendix H.1). A warm start shows it the
best handcrafted schedules first (issue 14, item 4):

1. ``schedule_actions``: a schedule (``baselines.make_schedule``) over the task's ``horizon * tau``
   optimiser steps becomes, decision by decision, the action whose new LR is closest (log scale) to
   the schedule's mean LR over the coming ``tau`` steps (ties: the lower action index, no-op first).
   Every layer gets the same actions. The env starts at the schedule's LR at step 0 (0 for a warm-up).
   In an env with weight-decay control (``EnvParams.control_wd``) every demonstrated WD action is the
   no-op: a handcrafted schedule keeps its weight decay.
2. ``demonstrations``: those actions rolled out through the env (one vmapped ``lax.scan`` over
   schedules x peak LRs x seeds, accuracy reward so there is one inner run per env step), giving the
   observations the agents would see: ``obs [T, K, A, d]``, ``actions [T, K, A]``.
   A family of tasks (``warm_start_params`` given ``EnvGroup``s) demonstrates on every task and ``join``s
   them as one-agent trajectories (the actor is per agent, so depths may differ).
3. ``behaviour_clone``: full-batch Adam (``BC_LR``) on the actor's negative log-likelihood of the demonstrated
   actions, sequences fed through the recurrent policy from a reset, observations normalised by the
   demonstrations' own statistics (which IPPO then keeps updating). The critic is left at its
   initialisation: the demonstrations carry accuracy rewards, not the difference rewards IPPO trains
   the critic on.
4. ``warm_runner_state``: IPPO's fresh runner state with the cloned parameters and the
   demonstrations' observation statistics; IPPO then fine-tunes as usual.
"""
from __future__ import annotations

import functools

from typing import NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import optax

from ganno_jax.agents.config import IPPOConfig
from ganno_jax.agents.ippo import RunnerState, normalize_obs
from ganno_jax.agents.networks import ActorCritic, init_hidden, make_network
from ganno_jax.agents.normalize import RunningMeanStd, sanitize
from ganno_jax.baselines.schedules import make_schedule, schedule_names
from ganno_jax.checks import check_choice, check_int, require
from ganno_jax.env.actions import apply_actions, num_actions, with_wd_noop

#: the warm-up schedules of the paper's Appendix H.1 that GANNO could not match from LR 0
DEFAULT_SOURCES = ("warmup_cosine", "onecycle_cosine")
#: Adam step size of behaviour cloning (full batch; 3x PPO's 1e-3: the targets are fixed, not noisy)
BC_LR = 3e-3
#: LR floor of the tracking distance, as a fraction of the schedule's largest LR (see ``schedule_actions``)
TRACKING_FLOOR = 0.01


class Demonstrations(NamedTuple):
    """Schedules rolled out through the env: ``K`` trajectories of ``T`` decisions, ``A`` agents."""

    obs: jnp.ndarray  # [T, K, A, d] observation each action was taken on (sanitised, not normalised)
    actions: jnp.ndarray  # [T, K, A] int32 ([T, K, A, 2] with control_wd: the WD no-op beside each LR action)
    lrs: jnp.ndarray  # [T, K] LR the actions set for each segment (every layer the same)
    targets: jnp.ndarray  # [T, K] schedule's mean LR over each segment


def check_sources(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or ``ValueError`` naming an unknown schedule and the allowed ones."""
    names = tuple(names)
    if not names:
        raise ValueError("warm_start needs at least one schedule name")
    for name in names:
        check_choice("warm_start", name, schedule_names())
    return names


def schedule_targets(name: str, peak_lr, horizon: int, tau: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(LR at step 0 [], mean LR over each of the ``horizon`` segments of ``tau`` steps [horizon])."""
    schedule = make_schedule(name, peak_lr, horizon * tau)
    per_step = schedule(jnp.arange(horizon * tau)).reshape(horizon, tau)
    return schedule(jnp.asarray(0)), per_step.mean(axis=1)


def schedule_actions(start_lr, targets: jnp.ndarray, lr_min: float = 0.0, lr_max: float = 0.1,
                     action_set: str = "paper"):
    """Greedy action sequence of ``action_set`` tracking ``targets [T]`` from ``start_lr``: (actions [T] int32,
    lrs [T]).

    Each decision takes the action whose new LR is closest to the target in log scale, with a floor of
    ``TRACKING_FLOOR`` times the schedule's largest LR added to both sides (so 0 is reachable). A
    linear distance would be myopic: near the end of a decay it prefers jumping to 0 (-0.0005) over
    dividing, and then has to climb back.
    """
    candidates = jnp.arange(num_actions(action_set))
    floor = TRACKING_FLOOR * jnp.maximum(jnp.max(targets), start_lr)

    def decide(lr, target):
        options = apply_actions(jnp.full(candidates.shape, lr), candidates, lr_min, lr_max)
        action = jnp.argmin(jnp.abs(jnp.log(options + floor) - jnp.log(target + floor)))  # ties: the lower index
        return options[action], (action.astype(jnp.int32), options[action])

    _, (actions, lrs) = jax.lax.scan(decide, jnp.asarray(start_lr, jnp.float32), targets)
    return actions, lrs


def demonstrations(env, env_params, names: Sequence[str], peak_lrs: Sequence[float], seeds: int,
                   key: jax.Array) -> Demonstrations:
    """Rolls every schedule of ``names`` at every peak LR out through ``env`` for ``seeds`` seeds.

    Trajectory ``k`` is schedule ``k // (P * seeds)``, peak ``(k // seeds) % P``; each starts from a
    fresh inner run (weight decay sampled from ``env_params``' range) and lasts ``task.horizon`` steps.
    """
    names = check_sources(names)
    check_int("seeds", seeds)
    peaks = jnp.asarray(peak_lrs, jnp.float32)
    require("peak_lrs", tuple(peak_lrs), peaks.ndim == 1 and peaks.size > 0 and bool(jnp.all(peaks > 0)),
            "a non-empty list of LRs > 0")
    horizon, tau, num_agents = env.task.horizon, env.task.tau, env.num_agents
    starts, targets = [], []
    for name in names:
        start, target = jax.vmap(lambda p, n=name: schedule_targets(n, p, horizon, tau))(peaks)
        starts.append(jnp.repeat(start, seeds))
        targets.append(jnp.repeat(target, seeds, axis=0))
    starts, targets = jnp.concatenate(starts), jnp.concatenate(targets)  # [K], [K, T]
    track = functools.partial(schedule_actions, action_set=env_params.action_set)
    actions, lrs = jax.vmap(track, (0, 0, None, None))(starts, targets, env_params.lr_min, env_params.lr_max)
    params = env_params.replace(reward_mode="accuracy", track_test=False)

    def rollout(key, start, actions):
        obs, state = env.reset_env(key, params.replace(init_lr=start))

        def step(carry, inputs):
            obs, state = carry
            k, action = inputs
            env_action = with_wd_noop(jnp.broadcast_to(action, (num_agents,)), params.control_wd)
            next_obs, state, *_ = env.step_env(k, state, env_action, params)
            return (next_obs, state), obs

        keys = jax.random.split(key, horizon)
        _, seen = jax.lax.scan(step, (obs, state), (keys, actions))
        return sanitize(seen)

    keys = jax.random.split(key, starts.shape[0])
    obs = jax.jit(jax.vmap(rollout))(keys, starts, actions)  # [K, T, A, d]
    agent_actions = with_wd_noop(jnp.broadcast_to(actions[..., None], actions.shape + (num_agents,)),
                                 params.control_wd)
    return Demonstrations(obs=obs.swapaxes(0, 1), actions=agent_actions.swapaxes(0, 1), lrs=lrs.T,
                         targets=targets.T)


def one_agent_trajectories(demos: Demonstrations) -> Demonstrations:
    """``demos`` with every (trajectory, agent) pair as its own one-agent trajectory: ``[T, K*A, 1, ...]``
    (the actor is per agent, so nothing else changes; demonstrations of envs of different depths can then
    be joined along the trajectory axis)."""
    steps, trajectories, agents = demos.obs.shape[:3]
    return Demonstrations(obs=demos.obs.reshape(steps, trajectories * agents, 1, demos.obs.shape[-1]),
                          actions=demos.actions.reshape(steps, trajectories * agents, 1, *demos.actions.shape[3:]),
                          lrs=jnp.repeat(demos.lrs, agents, axis=1), targets=jnp.repeat(demos.targets, agents, axis=1))


def join(parts: Sequence[Demonstrations]) -> Demonstrations:
    """Demonstrations of several envs (same horizon, any depths) as one set of one-agent trajectories; one
    set is returned as it is."""
    if len(parts) == 1:
        return parts[0]
    horizons = {int(d.obs.shape[0]) for d in parts}
    if len(horizons) > 1:
        raise ValueError(f"demonstrations to join must share one horizon; got {sorted(horizons)}")
    singles = [one_agent_trajectories(d) for d in parts]
    return Demonstrations(*(jnp.concatenate(fields, axis=1) for fields in zip(*singles)))


def _sequences(demos: Demonstrations):
    """Demonstrations as the network's sequence batch: obs [T, K*A, d], actions [T, K*A (, 2)], resets [T, K*A]."""
    steps, trajectories, agents, dim = demos.obs.shape
    obs = demos.obs.reshape(steps, trajectories * agents, dim)
    actions = demos.actions.reshape(steps, trajectories * agents, *demos.actions.shape[3:])
    resets = jnp.zeros(actions.shape[:2], bool).at[0].set(True)
    return obs, actions, resets


def _policy(network: ActorCritic, cfg: IPPOConfig, params, obs_stats: RunningMeanStd, obs, resets):
    hidden = init_hidden(cfg, obs.shape[1])
    return network.apply(params, hidden, normalize_obs(cfg, obs_stats, obs), resets, method=ActorCritic.policy)[1]


def behaviour_clone(network: ActorCritic, cfg: IPPOConfig, params, demos: Demonstrations, steps: int,
                    lr: Optional[float] = None):
    """Actor parameters trained ``steps`` full-batch Adam steps to imitate ``demos``.

    Returns ``(params, obs_stats, losses [steps])``: the parameters (critic untouched), the observation
    statistics of the demonstrations, and the negative log-likelihood before each step. ``lr``: Adam's
    step size (default ``BC_LR``).
    """
    check_int("steps", steps)
    obs, actions, resets = _sequences(demos)
    obs_stats = RunningMeanStd.create((obs.shape[-1],)).update(obs)
    tx = optax.adam(BC_LR if lr is None else lr)

    def nll(p):
        return -_policy(network, cfg, p, obs_stats, obs, resets).log_prob(actions).mean()

    def train_step(carry, _):
        p, opt_state = carry
        loss, grads = jax.value_and_grad(nll)(p)
        updates, opt_state = tx.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), loss

    (params, _), losses = jax.lax.scan(train_step, (params, tx.init(params)), None, steps)
    return params, obs_stats, losses


def imitation_accuracy(network: ActorCritic, cfg: IPPOConfig, params, obs_stats: RunningMeanStd,
                       demos: Demonstrations) -> jnp.ndarray:
    """Fraction [] of demonstrated action choices (every factor's, with control_wd) that the policy's most
    likely action reproduces."""
    obs, actions, resets = _sequences(demos)
    greedy = _policy(network, cfg, params, obs_stats, obs, resets).mode()
    return jnp.mean(greedy == actions)


def warm_runner_state(runner_state: RunnerState, params, obs_stats: RunningMeanStd) -> RunnerState:
    """IPPO's fresh ``runner_state`` (from ``init``) starting from cloned ``params`` and ``obs_stats``.

    The fresh optimiser state is kept: IPPO's optimiser (gradient clipping + Adam) starts from zero
    moments and a zero count whatever the parameters' values, so it is the state for ``params`` too.
    """
    return runner_state.replace(params=params, obs_stats=obs_stats)


#: peak LRs of the demonstrations (the paper's evaluation grid of initial LRs)
DEFAULT_PEAK_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
#: inner runs per (schedule, peak LR) in the demonstrations
DEFAULT_DEMO_SEEDS = 2


def warm_start_params(cfg: IPPOConfig, env, env_params, params, sources: Sequence[str], steps: int, key: jax.Array,
                      num_agents_stacked: int = 0):
    """Behaviour-cloned ``params`` (and observation statistics) for IPPO to fine-tune; the whole warm start.

    Demonstrations of ``sources`` at ``DEFAULT_PEAK_LRS`` x ``DEFAULT_DEMO_SEEDS`` are rolled out through
    ``env`` once (``env`` may be a sequence of ``EnvGroup``, a family, with ``env_params`` None: every
    task's demonstrations, ``join``ed); every agent of ``params`` (a leading ``[num_agents_stacked]`` axis
    when > 0, as ``runs.run_pieces`` stacks several trained agents) is cloned from its own initialisation.
    Returns ``(params, obs_stats, report)``; ``report``: a JSON-ready dict (sources, demonstrations,
    steps, per-agent imitation accuracy before/after and first/last loss).
    """
    pairs = [(g.env, g.env_params) for g in env] if isinstance(env, (list, tuple)) else [(env, env_params)]
    network = make_network(cfg, pairs[0][0].action_space(pairs[0][1]))
    # task 0 uses ``key`` itself, so a one-task warm start is unchanged by the family's
    demos = join([demonstrations(e, p, sources, DEFAULT_PEAK_LRS, DEFAULT_DEMO_SEEDS,
                                 key if i == 0 else jax.random.fold_in(key, i)) for i, (e, p) in enumerate(pairs)])

    def clone(p):
        cloned, obs_stats, losses = behaviour_clone(network, cfg, p, demos, steps)
        fresh_stats = RunningMeanStd.create((demos.obs.shape[-1],))
        accuracy = (imitation_accuracy(network, cfg, p, fresh_stats, demos),
                    imitation_accuracy(network, cfg, cloned, obs_stats, demos))
        return cloned, obs_stats, losses[jnp.array([0, -1])], jnp.stack(accuracy)

    run = jax.jit(jax.vmap(clone) if num_agents_stacked else clone)
    cloned, obs_stats, losses, accuracy = run(params)
    losses, accuracy = jnp.atleast_2d(losses), jnp.atleast_2d(accuracy)
    report = {"sources": list(check_sources(sources)), "peak_lrs": list(DEFAULT_PEAK_LRS),
              "tasks": len(pairs), "demonstrations": int(demos.actions.shape[1]),
              "decisions": int(demos.actions.shape[0]),
              "steps": steps, "lr": BC_LR,
              "accuracy_before": [float(a) for a in accuracy[:, 0]], "accuracy": [float(a) for a in accuracy[:, 1]],
              "loss_first": [float(v) for v in losses[:, 0]], "loss_last": [float(v) for v in losses[:, 1]]}
    return cloned, obs_stats, report
