"""The one way vln_agent builds its R2R environments (training, the speaker,
back-translation and evaluation): a batch-synchronous :class:`envs.gym_env.R2RVectorEnv`
that the caller resets with the episodes it wants (no autoreset)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from gymnasium.vector import AutoresetMode

from envs.episodes import Episode
from envs.features import FeatureStore
from envs.gym_env import R2RVectorEnv
from envs.nav.inputs import R2REnvConfig
from envs.tokenizer import Tokenizer

_ENV_DEFAULTS = {f.name: f.default for f in dataclasses.fields(R2REnvConfig)}
#: R2R's instruction length and action budget (R2R-EnvDrop's 80 tokens and 35 actions).
DEFAULT_MAX_INSTRUCTION_LENGTH: int = _ENV_DEFAULTS["max_instruction_length"]
DEFAULT_MAX_ACTIONS: int = _ENV_DEFAULTS["max_actions"]


def make_env(
    data_dir: str | os.PathLike[str],
    features: str | os.PathLike[str] | FeatureStore,
    split: str | Sequence[Episode],
    tokenizer: Tokenizer,
    batch_size: int,
    *,
    order: str = "sequential",
    max_instruction_length: int = DEFAULT_MAX_INSTRUCTION_LENGTH,
    max_actions: int = DEFAULT_MAX_ACTIONS,
    feature_dim: int | None = None,
) -> R2RVectorEnv:
    """``batch_size`` agents over ``split`` (a name, a file or episodes) with EnvDrop's shaped
    reward; ``order``: ``random`` (training) or ``sequential`` (every episode once)."""
    return R2RVectorEnv(
        batch_size,
        autoreset_mode=AutoresetMode.DISABLED,
        data_dir=data_dir,
        features=features,
        split=split,
        tokenizer=tokenizer,
        feature_dim=feature_dim,
        max_instruction_length=max_instruction_length,
        max_actions=max_actions,
        shaped_reward=True,
        episode_order=order,
    )
