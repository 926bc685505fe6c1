"""PPO pieces (agents/ppo.py) against independent references: GAE as an explicit forward sum in NumPy,
minibatch dealing of whole-env sequences traced by labelled entries, and the clipped loss by hand."""
import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ganno_jax.agents import IPPOConfig
from ganno_jax.agents.config import MAVA_PAPER, PUREJAXRL_STYLE
from ganno_jax.agents.ppo import PPOBatch, Transition, gae, minibatches, ppo_loss

GAMMA, LAMBDA = 0.9, 0.8


def _gae_reference(reward, value, done, bootstrap, last_value):
    """A_t = sum_k (gamma lambda)^k delta_{t+k} up to the end of t's episode (forward sum, not a recursion).

    delta_t = r_t + gamma V_next - V_t with V_next: 0 after a terminated step, the pre-reset value after a
    truncated one, V_{t+1} inside an episode and ``last_value`` after the rollout's last step."""
    steps, actors = reward.shape
    next_value = np.concatenate([value[1:], last_value[None]])
    next_value = np.where(done, bootstrap, next_value)
    delta = reward + GAMMA * next_value - value
    adv = np.zeros_like(reward)
    for n in range(actors):
        for t in range(steps):
            for k in range(steps - t):
                adv[t, n] += (GAMMA * LAMBDA) ** k * delta[t + k, n]
                if done[t + k, n]:
                    break
    return adv


def test_gae_with_terminated_and_truncated_steps_matches_numpy_reference():
    steps, actors = 6, 3
    rng = np.random.default_rng(0)
    reward = rng.normal(size=(steps, actors)).astype(np.float32)
    value = rng.normal(size=(steps, actors)).astype(np.float32)
    last_value = rng.normal(size=actors).astype(np.float32)
    done = np.zeros((steps, actors), bool)
    bootstrap = np.zeros((steps, actors), np.float32)
    done[1, 0] = True  # actor 0: terminated at t=1 (no bootstrap)
    done[3, 1], bootstrap[3, 1] = True, 0.7  # actor 1: truncated at t=3, value of its final obs 0.7
    # actor 2 never ends: bootstraps from last_value
    traj = Transition(obs=None, reset=None, hidden=None, action=None, log_prob=None, value=jnp.asarray(value),
                      reward=jnp.asarray(reward), done=jnp.asarray(done), bootstrap_value=jnp.asarray(bootstrap))
    adv, returns = gae(traj, jnp.asarray(last_value), GAMMA, LAMBDA)

    expected = _gae_reference(reward, value, done, bootstrap, last_value)
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(returns, expected + value, rtol=1e-5, atol=1e-6)
    # by hand at the episode ends: one TD error, nothing from the next episode
    np.testing.assert_allclose(adv[1, 0], reward[1, 0] - value[1, 0], rtol=1e-6)
    np.testing.assert_allclose(adv[3, 1], reward[3, 1] + GAMMA * 0.7 - value[3, 1], rtol=1e-6)


@pytest.mark.parametrize("cfg", [MAVA_PAPER, PUREJAXRL_STYLE], ids=["mava_paper", "purejaxrl_style"])
def test_minibatches_deal_whole_env_sequences_with_their_initial_hidden_state(cfg):
    """An update's batch, ``[num_steps, num_envs * agents]`` as the trainer builds it, dealt by the config's
    own fields: the paper's is Mava's epoch batch of 32 sequences x 8 steps x agents, 8 per minibatch."""
    agents = 3
    steps, envs, seq_len, num_mb = cfg.num_steps, cfg.num_envs, cfg.seq_len, cfg.num_minibatches
    t, n = np.meshgrid(np.arange(steps), np.arange(envs * agents), indexing="ij")
    label = (1000 * (n // agents) + 100 * (n % agents) + t).astype(np.float32)  # [T, N]: env, agent, step
    batch = PPOBatch(obs=jnp.asarray(label[..., None]), reset=jnp.asarray(t % 5 == 0),
                     hidden=jnp.asarray(np.stack([label, -label], -1)), action=jnp.asarray(label.astype(np.int32)),
                     log_prob=jnp.asarray(label), value=jnp.asarray(label), advantage=jnp.asarray(label),
                     target=jnp.asarray(label))
    mbs = minibatches(jax.random.key(0), batch, seq_len, num_mb, envs)
    seqs_per_mb = cfg.num_sequences // num_mb
    assert mbs.obs.shape == (num_mb, seq_len, seqs_per_mb * agents, 1)
    assert mbs.hidden.shape == (num_mb, seq_len, seqs_per_mb * agents, 2)
    if cfg is MAVA_PAPER:  # GANNO Appendix D: epoch batch 32, sequence length 8, 4 minibatches
        assert (cfg.num_sequences, seq_len, num_mb, seqs_per_mb) == (32, 8, 4, 8)

    seen = []
    for m in range(num_mb):
        for s in range(seqs_per_mb):
            starts = set()
            for a in range(agents):  # the agents of one sequence sit next to each other, in order
                b = s * agents + a
                seq = np.asarray(mbs.obs[m, :, b, 0])
                env, rest = divmod(int(seq[0]), 1000)
                agent, start = divmod(rest, 100)
                assert agent == a and start % seq_len == 0
                np.testing.assert_array_equal(seq, 1000 * env + 100 * a + start + np.arange(seq_len))
                for leaf in (mbs.action, mbs.log_prob, mbs.value, mbs.advantage, mbs.target):
                    np.testing.assert_array_equal(leaf[m, :, b], seq)  # every field dealt the same way
                np.testing.assert_array_equal(mbs.reset[m, :, b], (start + np.arange(seq_len)) % 5 == 0)
                np.testing.assert_array_equal(mbs.hidden[m, 0, b], [seq[0], -seq[0]])  # state entering the chunk
                starts.add((env, start))
            assert len(starts) == 1  # one env copy, one time window for all agents
            seen.extend(starts)
    assert sorted(seen) == [(e, c) for e in range(envs) for c in range(0, steps, seq_len)]  # each exactly once
    shuffled = minibatches(jax.random.key(1), batch, seq_len, num_mb, envs)
    assert not np.array_equal(shuffled.obs, mbs.obs)


# Ratios r and advantages A of six samples, and min(r A, clip(r, 0.8, 1.2) A) worked out by hand:
RATIOS = np.array([0.5, 0.5, 1.1, 1.5, 1.5, 0.9])
ADVANTAGES = np.array([1.0, -1.0, 2.0, 2.0, -2.0, -1.0])
SURROGATE = np.array([0.5, -0.8, 2.2, 2.4, -3.0, -0.9])  # out (unclipped), out (clipped), in, out (clipped), out, in
# New value v, old value v_old and target: max((v - tgt)^2, (v_old + clip(v - v_old, +-0.2) - tgt)^2) by hand:
VALUES = np.array([1.0, 0.1, -1.0, 0.5, 0.0, 2.0])
OLD_VALUES = np.array([0.0, 0.0, 0.0, 0.5, 0.0, 1.0])
TARGETS = np.array([2.0, 0.1, 0.0, 0.0, 1.0, 2.5])
VALUE_SQ_ERR = np.array([3.24, 0.0, 1.0, 0.25, 1.0, 1.69])  # clipped, in, unclipped, in, in, clipped


@pytest.mark.parametrize("clip_value", [True, False])
def test_ppo_loss_inside_and_outside_the_clip_by_hand(clip_value):
    cfg = IPPOConfig(clip_eps=0.2, vf_coef=0.5, ent_coef=0.01, normalize_advantages=False, clip_value=clip_value)
    shape = (2, 3)  # [L, B]
    log_pi = np.log(0.5)  # uniform policy over 2 actions: log pi(a) = log 0.5 for every action

    def apply_fn(params, hidden, obs, reset):
        return hidden, distrax.Categorical(logits=jnp.zeros(shape + (2,))), params

    def as_mb(x):
        return jnp.asarray(x.reshape(shape), jnp.float32)

    mb = PPOBatch(obs=jnp.zeros(shape + (1,)), reset=jnp.zeros(shape, bool), hidden=jnp.zeros(shape + (1,)),
                  action=jnp.zeros(shape, jnp.int32), log_prob=as_mb(log_pi - np.log(RATIOS)),
                  value=as_mb(OLD_VALUES), advantage=as_mb(ADVANTAGES), target=as_mb(TARGETS))
    total, stats = ppo_loss(as_mb(VALUES), apply_fn, cfg, mb)

    value_sq_err = VALUE_SQ_ERR if clip_value else (VALUES - TARGETS) ** 2
    expected = {
        "actor": -SURROGATE.mean(),
        "value": 0.5 * value_sq_err.mean(),
        "entropy": np.log(2.0),
        "clip_frac": 4 / 6,
        "approx_kl": np.mean(RATIOS - 1 - np.log(RATIOS)),
    }
    expected["total"] = expected["actor"] + 0.5 * expected["value"] - 0.01 * expected["entropy"]
    for name, want in expected.items():
        np.testing.assert_allclose(stats[name], want, rtol=1e-5, atol=1e-7, err_msg=name)
    np.testing.assert_allclose(total, expected["total"], rtol=1e-5)
