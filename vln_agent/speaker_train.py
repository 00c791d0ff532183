"""Train the EnvDrop speaker (``clipvil train-speaker``) on the teacher's routes.

Teacher-forced cross entropy of the training instructions given the route (the panorama
and the chosen candidate at every step of the shortest-path teacher), RMSprop. Evaluation
decodes greedily and scores corpus BLEU-4 against all instructions of the same path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from envs.episodes import load_episodes
from envs.tokenizer import split_words
from vln_agent.bleu import corpus_bleu
from vln_agent.environments import DEFAULT_MAX_ACTIONS, DEFAULT_MAX_INSTRUCTION_LENGTH
from vln_agent.models.speaker import Speaker, SpeakerConfig
from vln_agent.route_trainer import RouteTrainer
from vln_agent.routes import teacher_routes
from vln_agent.training.distributed import DEVICES, DistributedContext
from vln_agent.training.settings import load_settings


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


class SpeakerTrainer(RouteTrainer):
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
        """``feature_columns`` / ``allow_other_features``: see :class:`RouteTrainer`."""
        super().__init__(
            data_dir,
            features,
            out_dir,
            config,
            context,
            feature_columns=feature_columns,
            allow_other_features=allow_other_features,
        )
        self.env = self.make_env(self.train_episodes, self.local_batch_size)
        self.model_config = self.data_model_config(self.env.core.feature_dim)
        model = Speaker(self.model_config).to(self.device)
        self.attach(model, torch.optim.RMSprop(model.parameters(), lr=config.learning_rate))
        if resume:
            self.resume()

    @property
    def select_metric(self) -> str:
        return f"{self.config.select_split}/bleu"

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
