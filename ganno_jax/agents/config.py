"""IPPO configuration: paper defaults (GANNO, Appendix D) and validation at construction.

Field names follow purejaxrl (lower case). Defaults not given by the paper are marked ``# choice``:

- ``num_steps=32``: the paper's "epoch batch size = 32"; one rollout of 32 env steps per env copy holds
  a whole short GANNO episode (a horizon of <= 32 agent decisions) and 32/8 = 4 recurrent chunks.
- ``lr=2.5e-4``: not in the paper; the purejaxrl / Mava default for PPO.
- ``activation="tanh"``: not in the paper; purejaxrl's PPO default, bounded features feed the GRU.
"""
from __future__ import annotations

import dataclasses

_ACTIVATIONS = ("tanh", "relu")


@dataclasses.dataclass(frozen=True)
class IPPOConfig:
    """Hyperparameters of independent PPO with parameters shared by all agents.

    Frozen and hashable, so it can be a static argument and a static field of ``TrainOutput``.
    ``total_timesteps`` counts env steps summed over env copies (not over agents):
    ``num_updates = total_timesteps // num_steps // num_envs``.
    """

    # rollout
    num_envs: int = 4
    num_steps: int = 32
    total_timesteps: int = 50_000
    # optimisation
    lr: float = 2.5e-4  # choice
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
    activation: str = "tanh"  # choice
    init_log_std: float = 0.0  # Gaussian head (Box action spaces) only: initial log standard deviation

    def __post_init__(self):
        for name in ("num_envs", "num_steps", "total_timesteps", "update_epochs", "num_minibatches",
                     "seq_len", "gru_size", "actor_post_gru"):
            value = getattr(self, name)
            _require(name, value, isinstance(value, int) and value >= 1, "an integer >= 1")
        for name in ("lr", "max_grad_norm", "clip_eps", "obs_clip"):
            _require(name, getattr(self, name), getattr(self, name) > 0, "a float > 0")
        for name in ("ent_coef", "vf_coef"):
            _require(name, getattr(self, name), getattr(self, name) >= 0, "a float >= 0")
        _require("gamma", self.gamma, 0 < self.gamma <= 1, "0 < gamma <= 1")
        _require("gae_lambda", self.gae_lambda, 0 <= self.gae_lambda <= 1, "0 <= gae_lambda <= 1")
        for name in ("actor_layers", "critic_layers"):
            sizes = getattr(self, name)
            ok = isinstance(sizes, tuple) and all(isinstance(s, int) and s >= 1 for s in sizes)
            _require(name, sizes, ok, "a tuple of integers >= 1")
        _require("init_log_std", self.init_log_std, -10.0 <= self.init_log_std <= 2.0, "a float in [-10, 2]")
        _require("activation", self.activation, self.activation in _ACTIVATIONS, f"one of {_ACTIVATIONS}")
        _require("num_steps", self.num_steps, self.num_steps % self.seq_len == 0,
                 f"a multiple of seq_len={self.seq_len}")
        _require("total_timesteps", self.total_timesteps, self.num_updates >= 1,
                 f">= num_steps * num_envs = {self.num_steps * self.num_envs} (at least one update)")

    @property
    def num_updates(self) -> int:
        """Number of PPO updates (rollout + epochs) in a full training run."""
        return self.total_timesteps // self.num_steps // self.num_envs

    @property
    def num_chunks(self) -> int:
        """Sequence chunks of length ``seq_len`` per env copy and agent in one rollout."""
        return self.num_steps // self.seq_len

    def validate_for(self, num_agents: int) -> None:
        """Checks the constraints that depend on the env (raises ``ValueError`` naming the field)."""
        _require("num_agents", num_agents, num_agents >= 1, "an integer >= 1")
        chunks = self.num_envs * num_agents * self.num_chunks
        _require("num_minibatches", self.num_minibatches, chunks % self.num_minibatches == 0,
                 f"a divisor of num_envs*num_agents*(num_steps/seq_len) = {chunks}")


def _require(field: str, value, ok: bool, allowed: str) -> None:
    if not ok:
        raise ValueError(f"IPPOConfig.{field}={value!r} is invalid: must be {allowed}")
