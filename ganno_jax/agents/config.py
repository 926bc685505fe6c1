"""IPPO configuration: the GANNO paper's PPO (Appendix D, run with Mava), other styles, validation.

Field names follow purejaxrl (lower case). ``IPPOConfig()`` is the paper's setting (``MAVA_PAPER``);
each default says where it comes from:

- paper (GANNO Appendix D, "PPO Details"): ``num_envs=4`` executors, ``total_timesteps=50_000``,
  ``actor_layers=(128, 128)``, ``gru_size=64``, ``actor_post_gru=64``, ``critic_layers=(64, 64)``,
  ``seq_len=8``, ``update_epochs=2``, ``num_minibatches=4``, ``normalize_advantages``,
  ``normalize_values``, ``normalize_obs``, ``clip_value``; "epoch batch size = 32" is Mava's
  ``epoch_batch_size``: each PPO update consumes 32 sequences of ``seq_len`` steps, every sequence one
  env copy's consecutive steps with all its agents. Here ``num_steps=64`` steps per env copy give
  ``num_envs * num_steps / seq_len = 32`` non-overlapping sequences (256 steps of each agent), dealt
  whole into ``num_minibatches`` minibatches of 8 sequences (``ppo.minibatches``).
- Mava default (instadeepai/Mava, component-based JAX IPPO, develop commit
  0000dd1076654c91eebfb050a9f736413d9c9bd7, 2023-01-25): ``lr=1e-3`` (``DefaultOptimisersConfig``
  policy and critic learning rate), ``activation="relu"`` (``make_default_networks``),
  ``max_grad_norm=0.5``, ``gamma=0.99``, ``gae_lambda=0.95``, ``clip_eps=0.2`` (ratio and value clip),
  ``ent_coef=0.01``, ``vf_coef=0.5``, ``anneal_lr=False``, Adam eps 1e-5 (``ippo._optimizer``).
- choice: ``obs_clip=10`` (purejaxrl / SB3 ``VecNormalize``; Mava normalises without clipping),
  ``recurrent=True`` (the paper lists a recurrent policy layer), ``init_log_std=0`` (Box action spaces
  only; GANNO's are discrete), ``critic="independent"`` (the paper's IPPO: each agent's value from its
  own observation; ``"centralised"`` is MAPPO's critic over all agents of an env copy, ``networks.py``).

``PUREJAXRL_STYLE`` keeps this repository's earlier settings: purejaxrl's PPO learning rate 2.5e-4 and
tanh activation, one 32-step rollout per env copy (4 sequences of 8 per env copy and agent).
"""
from __future__ import annotations

import dataclasses

from ganno_jax.checks import check_choice, check_float_range, check_int, is_int, require

ACTIVATIONS = ("tanh", "relu")
_FIELD = "IPPOConfig."  # how errors name a field
CRITICS = ("independent", "centralised")


@dataclasses.dataclass(frozen=True)
class IPPOConfig:
    """Hyperparameters of independent PPO with parameters shared by all agents.

    Frozen and hashable, so it can be a static argument and a static field of ``TrainOutput``.
    ``total_timesteps`` counts env steps summed over env copies (not over agents):
    ``num_updates = total_timesteps // num_steps // num_envs``. Each update trains ``update_epochs``
    epochs on ``num_sequences`` sequences of ``seq_len`` steps (all agents of an env copy together),
    shuffled and dealt into ``num_minibatches`` minibatches.
    """

    # rollout
    num_envs: int = 4
    num_steps: int = 64
    total_timesteps: int = 50_000
    # optimisation
    lr: float = 1e-3
    anneal_lr: bool = False
    update_epochs: int = 2
    num_minibatches: int = 4
    seq_len: int = 8
    max_grad_norm: float = 0.5
    # PPO loss
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    clip_value: bool = True
    # normalisation
    normalize_advantages: bool = True
    normalize_values: bool = True
    normalize_obs: bool = True
    obs_clip: float = 10.0
    # network
    recurrent: bool = True
    actor_layers: tuple[int, ...] = (128, 128)
    gru_size: int = 64
    actor_post_gru: int = 64
    critic_layers: tuple[int, ...] = (64, 64)
    activation: str = "relu"
    critic: str = "independent"  # "centralised": one value per agent from all agents of its env copy
    init_log_std: float = 0.0  # Gaussian head (Box action spaces) only: initial log standard deviation

    def __post_init__(self):
        for name in ("num_envs", "num_steps", "total_timesteps", "update_epochs", "num_minibatches",
                     "seq_len", "gru_size", "actor_post_gru"):
            check_int(_FIELD + name, getattr(self, name))
        for name in ("lr", "max_grad_norm", "clip_eps", "obs_clip"):
            check_float_range(_FIELD + name, getattr(self, name), 0, low_open=True)
        for name in ("ent_coef", "vf_coef"):
            check_float_range(_FIELD + name, getattr(self, name), 0)
        check_float_range(_FIELD + "gamma", self.gamma, 0, 1, low_open=True)
        check_float_range(_FIELD + "gae_lambda", self.gae_lambda, 0, 1)
        for name in ("actor_layers", "critic_layers"):
            sizes = getattr(self, name)
            ok = isinstance(sizes, tuple) and all(is_int(s) and s >= 1 for s in sizes)
            require(_FIELD + name, sizes, ok, "a tuple of integers >= 1")
        check_float_range(_FIELD + "init_log_std", self.init_log_std, -10.0, 2.0)
        check_choice(_FIELD + "activation", self.activation, ACTIVATIONS)
        check_choice(_FIELD + "critic", self.critic, CRITICS)
        require(_FIELD + "num_steps", self.num_steps, self.num_steps % self.seq_len == 0,
                f"a multiple of seq_len={self.seq_len}")
        require(_FIELD + "num_minibatches", self.num_minibatches, self.num_sequences % self.num_minibatches == 0,
                f"a divisor of num_sequences = num_envs*num_steps/seq_len = {self.num_sequences}")
        require(_FIELD + "total_timesteps", self.total_timesteps, self.num_updates >= 1,
                f">= num_steps * num_envs = {self.num_steps * self.num_envs} (at least one update)")

    @property
    def num_updates(self) -> int:
        """Number of PPO updates (rollout + epochs) in a full training run."""
        return self.total_timesteps // self.num_steps // self.num_envs

    @property
    def num_sequences(self) -> int:
        """Sequences of ``seq_len`` steps (one env copy, all its agents) per update: Mava's epoch batch."""
        return self.num_envs * (self.num_steps // self.seq_len)

    def validate_for(self, num_agents: int) -> None:
        """Checks the constraints that depend on the env (raises ``ValueError`` naming the field)."""
        check_int(_FIELD + "num_agents", num_agents)


#: GANNO Appendix D as run with Mava (see the module docstring): ``IPPOConfig()``.
MAVA_PAPER = IPPOConfig()
#: This repository's earlier purejaxrl-style defaults: lr 2.5e-4, tanh, a 32-step rollout per env copy.
PUREJAXRL_STYLE = dataclasses.replace(MAVA_PAPER, num_steps=32, lr=2.5e-4, activation="tanh")
