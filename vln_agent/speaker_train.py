"""Train the EnvDrop speaker (``clipvil train-speaker``) on the teacher's routes.

Teacher-forced cross entropy of the training instructions given the route (the panorama
and the chosen candidate at every step of the shortest-path teacher), RMSprop. Evaluation
decodes greedily and scores corpus BLEU-4 against all instructions of the same path.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from envs.episodes import load_episodes
from envs.errors import DataError
from envs.features import open_features
from envs.features.provenance import FeatureProvenance
from envs.tokenizer import Tokenizer, split_words
from vln_agent.bleu import corpus_bleu
from vln_agent.environments import DEFAULT_MAX_ACTIONS, DEFAULT_MAX_INSTRUCTION_LENGTH, make_env
from vln_agent.models.speaker import Speaker, SpeakerConfig
from vln_agent.provenance import check_checkpoint_features, features_extra
from vln_agent.routes import teacher_routes
from vln_agent.sampler import EpisodeSampler
from vln_agent.training.distributed import DEVICES, DistributedContext
from vln_agent.training.settings import load_settings
from vln_agent.training.trainer import Trainer


@dataclass(frozen=True)
class SpeakerTrainConfig:
    """Settings of a speaker training run (defaults: R2R-EnvDrop's)."""

    #: Optimizer steps.
    iterations: int = 2000
    #: Global batch size (split across processes under torchrun).
    batch_size: int = 64
    #: RMSprop learning rate (a resumed run takes this one).
    learning_rate: float = 1e-4
    #: Gradients are clipped to this global norm.
    grad_clip: float = 40.0
    #: Instruction length in tokens (longer ones are cut).
    max_instruction_length: int = DEFAULT_MAX_INSTRUCTION_LENGTH
    #: Actions (STOP included) of the longest route.
    max_actions: int = DEFAULT_MAX_ACTIONS
    #: Words seen fewer times in the training instructions become <UNK>.
    min_word_count: int = 1
    #: Evaluate (and save) every this many iterations.
    eval_every: int = 250
    #: Splits evaluated (greedy decoding, corpus BLEU-4).
    eval_splits: tuple[str, ...] = ("val_seen", "val_unseen")
    #: The best checkpoint is chosen by BLEU on this split.
    select_split: str = "val_unseen"
    #: At most this many instructions per split are decoded when evaluating.
    eval_limit: int = 500
    #: Log the training loss every this many iterations.
    log_every: int = 10
    #: Random seed; with --resume, another seed than the checkpoint's draws fresh batches.
    seed: int = 0
    #: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    device: str = field(default="auto", metadata={"choices": DEVICES})
    #: The speaker's architecture (its vocabulary and feature sizes come from the data).
    model: SpeakerConfig = SpeakerConfig()

    def __post_init__(self) -> None:
        if self.select_split not in self.eval_splits:
            raise ValueError(
                f"select_split {self.select_split!r} must be one of eval_splits {self.eval_splits}"
            )


def load_speaker_train_config(
    path: str | os.PathLike[str] | None, **overrides: Any
) -> SpeakerTrainConfig:
    """Settings from a JSON recipe (unknown keys and wrong types are errors), then
    ``overrides`` (flat: architecture fields go to ``model``)."""
    return load_settings(SpeakerTrainConfig, path, "speaker training", **overrides)


class SpeakerTrainer(Trainer):
    """The speaker's run: teacher routes of the training split, BLEU on the val splits."""

    kind = "speaker"

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        features: str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        config: SpeakerTrainConfig,
        context: DistributedContext | None = None,
        resume: bool = False,
        *,
        feature_columns: int | None = None,
        allow_other_features: bool = False,
    ) -> None:
        """``feature_columns``: train on the first N columns of a wider feature file;
        ``allow_other_features``: resume on features of another encoder than the
        checkpoint's, with a warning, instead of refusing (:mod:`vln_agent.provenance`)."""
        super().__init__(out_dir, config, context)
        self.data_dir, self.features = Path(data_dir), Path(features)
        self.feature_store = open_features(
            self.features, cache_size=0, feature_columns=feature_columns
        )
        self.feature_provenance = FeatureProvenance.of_store(self.feature_store, self.features)
        self.allow_other_features = allow_other_features
        train = load_episodes(self.data_dir, "train")
        self.tokenizer = Tokenizer.build_from_episodes(train, config.min_word_count)
        local_batch = config.batch_size // self.context.world_size
        self.local_slice(config.batch_size)  # validates divisibility
        self.env = self.make_env(train, local_batch)
        self.model_config = dataclasses.replace(
            config.model, vocab_size=len(self.tokenizer), feature_size=self.env.core.feature_dim
        )
        model = Speaker(self.model_config).to(self.device)
        self.attach(model, torch.optim.RMSprop(model.parameters(), lr=config.learning_rate))
        self.sampler = EpisodeSampler([e.instr_id for e in train], config.batch_size, config.seed)
        if resume:
            self.resume()

    @property
    def select_metric(self) -> str:
        return f"{self.config.select_split}/bleu"

    def make_env(self, split, batch_size: int):
        return make_env(
            self.data_dir,
            self.feature_store,
            split,
            self.tokenizer,
            batch_size,
            max_instruction_length=self.config.max_instruction_length,
            max_actions=self.config.max_actions,
        )

    def train_step(self) -> dict[str, float]:
        self.model.train()
        ids = self.sampler.next_batch()[self.local_slice(self.config.batch_size)]
        routes = teacher_routes(self.env, ids, self.device)
        tokens = torch.from_numpy(routes.tokens).to(self.device)
        loss = self.model.loss(routes.actions, routes.panoramas, routes.mask, tokens)
        self.optimize({"loss": loss})
        return {"loss": float(loss.detach())}

    def evaluate(self) -> dict[str, float]:
        return {f"{split}/bleu": self.bleu(split) for split in self.config.eval_splits}

    @torch.no_grad()
    def bleu(self, split: str) -> float:
        """Greedy decoding on (up to ``eval_limit``) instructions of one path each."""
        episodes = load_episodes(self.data_dir, split)
        references: dict[int, list[list[str]]] = {}
        for e in episodes:
            references.setdefault(e.path_id, []).append(split_words(e.instruction))
        firsts = list({e.path_id: e for e in reversed(episodes)}.values())[::-1]
        firsts = firsts[: self.config.eval_limit]
        self.model.eval()
        hypotheses = []
        batch = min(self.config.batch_size, len(firsts))
        env = self.make_env(firsts, batch)
        for start in range(0, len(firsts), batch):
            chunk = [e.instr_id for e in firsts[start : start + batch]]
            padded = chunk + [chunk[0]] * (batch - len(chunk))
            routes = teacher_routes(env, padded, self.device)
            words = self.model.generate(routes.actions, routes.panoramas, routes.mask)
            hypotheses += [split_words(self.tokenizer.decode(w)) for w in words.tolist()][
                : len(chunk)
            ]
        env.close()
        return corpus_bleu(hypotheses, [references[e.path_id] for e in firsts])

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
