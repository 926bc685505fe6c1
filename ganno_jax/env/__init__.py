"""Functional environments: ``LayerwiseLREnv`` (GANNO) and the shared inner training engine.

The second paper's ``GlobalLREnv`` lives in ``ganno_jax.sgd_scheduler``."""
from ganno_jax.env import features
from ganno_jax.env.base import FunctionalEnv, log_uniform
from ganno_jax.env.actions import ACTION_NAMES, NUM_WD_ACTIONS, WD_ACTION_NAMES, apply_actions, apply_wd_actions
from ganno_jax.env.features import FEATURE_GROUPS, NUM_ACTIONS, OBS_DIM, OBS_MASKS
from ganno_jax.env.inner import InnerState, InnerTrainer, Metrics, SegmentStats
from ganno_jax.env.layerwise import REWARD_MODES, EnvParams, EnvState, LayerwiseLREnv
from ganno_jax.env.spaces import Box, Discrete, MultiDiscrete
from ganno_jax.env.wrappers import VARIANTS, SingleAgentLREnv, variant_env

__all__ = [
    "features", "FunctionalEnv", "log_uniform", "FEATURE_GROUPS", "NUM_ACTIONS", "OBS_DIM", "OBS_MASKS",
    "InnerState", "InnerTrainer", "Metrics", "SegmentStats", "ACTION_NAMES", "REWARD_MODES", "EnvParams",
    "EnvState", "LayerwiseLREnv", "apply_actions", "Box", "Discrete", "SingleAgentLREnv", "VARIANTS", "variant_env",
    "NUM_WD_ACTIONS", "WD_ACTION_NAMES", "apply_wd_actions", "MultiDiscrete",
]
