"""What the follower's and the speaker's runs share: a :class:`~vln_agent.training.Trainer`
over R2R routes.

It opens the features once (and records and checks their provenance), builds the
tokenizer from the training instructions, samples global batches of training instructions,
makes the run's environments, and describes the model in checkpoints (config, weights,
vocabulary, training features). Subclasses build their env and model, and say how to train
and evaluate.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from envs.episodes import load_episodes
from envs.errors import DataError
from envs.features import open_features
from envs.features.provenance import FeatureProvenance
from envs.gym_env import R2RVectorEnv
from envs.tokenizer import Tokenizer
from vln_agent.environments import make_env
from vln_agent.provenance import check_checkpoint_features, features_extra
from vln_agent.sampler import EpisodeSampler
from vln_agent.training.distributed import DistributedContext
from vln_agent.training.trainer import Trainer


class RouteTrainer(Trainer):
    """A run on the R2R instructions of ``data_dir`` with the panorama ``features``.

    The settings need ``min_word_count``, ``batch_size``, ``max_instruction_length``,
    ``max_actions`` and a ``model`` section whose ``vocab_size`` / ``feature_size`` come
    from the data (:meth:`data_model_config`).
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        features: str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        config: Any,
        context: DistributedContext | None = None,
        *,
        feature_columns: int | None = None,
        allow_other_features: bool = False,
    ) -> None:
        """``feature_columns``: train on the first N columns of a wider feature file;
        ``allow_other_features``: continue on features of another encoder than a
        checkpoint's, with a warning, instead of refusing (:mod:`vln_agent.provenance`);
        a width that differs is always refused."""
        super().__init__(out_dir, config, context)
        self.data_dir, self.features = Path(data_dir), Path(features)
        #: The features every env of the run reads (opened once; checked against resumed
        #: checkpoints, recorded in every checkpoint).
        self.feature_store = open_features(
            self.features, cache_size=0, feature_columns=feature_columns
        )
        self.feature_provenance = FeatureProvenance.of_store(self.feature_store, self.features)
        self.allow_other_features = allow_other_features
        self.train_episodes = load_episodes(self.data_dir, "train")
        self.tokenizer = Tokenizer.build_from_episodes(self.train_episodes, config.min_word_count)
        self.local_slice(config.batch_size)  # validates divisibility
        self.local_batch_size = config.batch_size // self.context.world_size
        self.sampler = EpisodeSampler(
            [e.instr_id for e in self.train_episodes], config.batch_size, config.seed
        )

    def make_env(self, split, batch_size: int, order: str = "sequential") -> R2RVectorEnv:
        """An environment over ``split`` with this run's tokenizer, features and limits."""
        return make_env(
            self.data_dir,
            self.feature_store,
            split,
            self.tokenizer,
            batch_size,
            order=order,
            max_instruction_length=self.config.max_instruction_length,
            max_actions=self.config.max_actions,
        )

    def data_model_config(self, feature_size: int) -> Any:
        """The configured architecture with the vocabulary and feature sizes of the data."""
        return dataclasses.replace(
            self.config.model, vocab_size=len(self.tokenizer), feature_size=feature_size
        )

    def model_payload(self) -> dict[str, Any]:
        return {
            "model_config": self.model_config.to_dict(),
            "state_dict": self.model.state_dict(),
            "vocabulary": list(self.tokenizer.vocab),
            "extra": features_extra(self.features, self.feature_store),
        }

    def run_state(self) -> dict[str, Any]:
        return {"sampler": self.sampler.state_dict()}

    def load_run_state(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])

    def check_resumable(self, payload: dict[str, Any], path: Path) -> None:
        check_checkpoint_features(
            self.feature_provenance,
            payload,
            path,
            allow_other=self.allow_other_features,
            warn=self.context.is_main,
        )
        if payload["model_config"] != self.model_config.to_dict():
            raise DataError(path, "was trained with another model or vocabulary")
