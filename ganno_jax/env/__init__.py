"""Functional environments: ``LayerwiseLREnv`` (GANNO) and the shared inner training engine.

The second paper's ``GlobalLREnv`` lives in ``ganno_jax.sgd_scheduler``."""
from ganno_jax.env import features
from ganno_jax.env.base import FunctionalEnv, log_uniform
from ganno_jax.env.features import FEATURE_GROUPS, NUM_ACTIONS, OBS_DIM, OBS_MASKS
from ganno_jax.env.inner import InnerState, InnerTrainer, Metrics, SegmentStats
from ganno_jax.env.layerwise import ACTION_NAMES, REWARD_MODES, EnvParams, EnvState, LayerwiseLREnv, apply_actions
from ganno_jax.env.spaces import Box, Discrete
from ganno_jax.env.wrappers import VARIANTS, SingleAgentLREnv, variant_env

__all__ = [
    "features", "FunctionalEnv", "log_uniform", "FEATURE_GROUPS", "NUM_ACTIONS", "OBS_DIM", "OBS_MASKS",
    "InnerState", "InnerTrainer", "Metrics", "SegmentStats", "ACTION_NAMES", "REWARD_MODES", "EnvParams",
    "EnvState", "LayerwiseLREnv", "apply_actions", "Box", "Discrete", "SingleAgentLREnv", "VARIANTS", "variant_env",
]
