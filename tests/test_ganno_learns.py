"""IPPO learns on GANNO's own env (issue 22): a task whose better schedule is known.

Every run starts at LR 1e-5, far below a good Adam LR for the digits MLP (~1e-2): the no-op policy barely
trains in 32 Adam steps, while raising every layer's LR with the additive actions (+0.0005 / +0.001 per
decision) reaches ~0.008 by the end of the episode. Eight policies train as one ``jax.vmap`` (a run of 8
members, the user's ``train_run`` path, difference reward as in the paper), then each acts greedily from the
same start through the evaluation harness beside the no-op (constant LR) and the random agent.

Thresholds, from calibration runs on two CPUs (20 PPO updates, 8 members x 2 evaluation seeds): the trained
members' median final test accuracy was 0.79 (7 of 8 members at 0.79, one at 0.71); the no-op's mean 0.12,
the random agent's 0.25. With 8 updates only half the members had learned (median 0.33), so a policy whose
actions did not matter to the reward, or a PPO that did not learn, fails both margins below.
"""
import numpy as np

import ganno_jax as gj
from ganno_jax import training
from ganno_jax.agents import IPPOConfig
from ganno_jax.env.layerwise import EnvParams
from ganno_jax.evaluation import controllers

TASK = gj.tasks.get("digits-mlp", tau=4, horizon=8, batch_size=32, width=4, eval_batch=128)
UPDATES = 20
CFG = IPPOConfig(num_envs=4, num_steps=8, total_timesteps=4 * 8 * UPDATES, update_epochs=2, num_minibatches=2,
                 seq_len=8, actor_layers=(32,), gru_size=16, actor_post_gru=16, critic_layers=(32,), lr=3e-3)
MEMBERS, EVAL_SEEDS, START_LR = 8, 2, 1e-5
MARGIN_OVER_NOOP, MARGIN_OVER_RANDOM = 0.3, 0.2


def test_ippo_learns_to_raise_a_too_small_learning_rate(tmp_path):
    run = str(tmp_path / "run")
    training.train_run(run, TASK, CFG, env_params=EnvParams(init_lr=START_LR), seed=0, checkpoint_every=UPDATES,
                       progress=False, log_episodes=(), members=MEMBERS)
    learned, noop, random = gj.evaluation.run_many(
        [controllers.from_run(run), controllers.baseline("constant"), controllers.baseline("random")], TASK,
        init_lrs=(START_LR,), seeds=EVAL_SEEDS)
    per_member = learned.final_acc.reshape(MEMBERS, EVAL_SEEDS).mean(axis=1)
    median = float(np.median(per_member))
    assert median > noop.final_acc.mean() + MARGIN_OVER_NOOP, (per_member, noop.final_acc)
    assert median > random.final_acc.mean() + MARGIN_OVER_RANDOM, (per_member, random.final_acc)
    # what it learned: the layers' LRs end far above where they started
    assert np.median(learned.curves["lrs"][..., -1, :]) > 100 * START_LR
