"""Agents: env-agnostic IPPO/PPO trainer (purejaxrl style), recurrent actor-critic, policies.

```python
cfg = IPPOConfig(num_envs=4, total_timesteps=50_000)      # GANNO Appendix D defaults
out = jax.jit(make_train(cfg, env, env_params))(key)       # TrainOutput(runner_state, metrics, cfg)
policy = policy_from(out)                                  # a Policy: init / act
pieces = make_train_pieces(cfg, env, env_params)           # init(key), update(runner_state, n) between checkpoints
train = make_train(cfg, env, env_params, mesh=env_mesh())  # env copies split over all devices
train = make_train(cfg, [EnvGroup(env_a, params_a), EnvGroup(env_b, params_b, name="b")])  # a family
```
"""
from ganno_jax.agents.config import IPPOConfig
from ganno_jax.agents.groups import EnvGroup
from ganno_jax.agents.ippo import RunnerState, TrainOutput, TrainPieces, make_train, make_train_pieces
from ganno_jax.agents.networks import ActorCritic, CategoricalHead, GaussianHead, ScannedGRU, init_hidden, make_network
from ganno_jax.agents.normalize import RunningMeanStd, sanitize
from ganno_jax.agents.policies import ConstantPolicy, LearnedPolicy, Policy, RandomPolicy, policy_from
from ganno_jax.agents.sharding import env_mesh

__all__ = [
    "IPPOConfig", "make_train", "make_train_pieces", "EnvGroup", "env_mesh", "TrainOutput", "TrainPieces",
    "RunnerState",
    "ActorCritic", "CategoricalHead", "GaussianHead", "ScannedGRU", "make_network", "init_hidden",
    "RunningMeanStd", "sanitize",
    "Policy", "LearnedPolicy", "RandomPolicy", "ConstantPolicy", "policy_from",
]
