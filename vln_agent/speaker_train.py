"""Train the EnvDrop speaker (``clipvil train-speaker``) on the teacher's routes.

Teacher-forced cross entropy of the training instructions given the route (the panorama
and the chosen candidate at every step of the shortest-path teacher), RMSprop. Evaluation
decodes greedily and scores corpus BLEU-4 against all instructions of the same path.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from gymnasium.vector import AutoresetMode
from tqdm import tqdm

from envs.episodes import load_episodes
from envs.errors import DataError
from envs.gym_env import R2RVectorEnv
from envs.tokenizer import Tokenizer, split_words
from vln_agent.bleu import corpus_bleu
from vln_agent.training.checkpoint import load_checkpoint, save_checkpoint
from vln_agent.models.speaker import Speaker, SpeakerConfig
from vln_agent.routes import teacher_routes
from vln_agent.training.runlog import RunLog
from vln_agent.sampler import EpisodeSampler


@dataclass(frozen=True)
class SpeakerTrainConfig:
    """Settings of a speaker training run (defaults: R2R-EnvDrop's)."""

    iterations: int = 2000
    batch_size: int = 64
    learning_rate: float = 1e-4
    grad_clip: float = 40.0
    max_instruction_length: int = 80
    max_actions: int = 35
    min_word_count: int = 1
    hidden_size: int = 512
    word_embedding_size: int = 256
    dropout: float = 0.5
    feature_dropout: float = 0.4
    #: Evaluate (and save) every this many iterations, on these splits; the best
    #: checkpoint is chosen by BLEU on ``select_split``.
    eval_every: int = 250
    eval_splits: tuple[str, ...] = ("val_seen", "val_unseen")
    select_split: str = "val_unseen"
    #: At most this many instructions per split are decoded when evaluating.
    eval_limit: int = 500
    #: Log the training loss every this many iterations.
    log_every: int = 10
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.select_split not in self.eval_splits:
            raise ValueError(
                f"select_split {self.select_split!r} must be one of eval_splits {self.eval_splits}"
            )


def _env(data_dir, features, split, tokenizer, config: SpeakerTrainConfig, batch: int):
    return R2RVectorEnv(
        batch,
        autoreset_mode=AutoresetMode.DISABLED,
        data_dir=data_dir,
        features=features,
        split=split,
        tokenizer=tokenizer,
        max_instruction_length=config.max_instruction_length,
        max_actions=config.max_actions,
        episode_order="sequential",
    )


class SpeakerTrainer:
    """Environments, speaker, optimizer, logs and checkpoints of one run."""

    def __init__(self, data_dir, features, out_dir, config: SpeakerTrainConfig) -> None:
        self.data_dir, self.features, self.out_dir = Path(data_dir), Path(features), Path(out_dir)
        self.config = config
        self.device = torch.device(config.device)
        torch.manual_seed(config.seed)
        train = load_episodes(self.data_dir, "train")
        self.tokenizer = Tokenizer.build_from_episodes(train, config.min_word_count)
        self.env = _env(data_dir, features, train, self.tokenizer, config, config.batch_size)
        self.model_config = SpeakerConfig(
            vocab_size=len(self.tokenizer),
            feature_size=self.env.core.feature_dim,
            hidden_size=config.hidden_size,
            word_embedding_size=config.word_embedding_size,
            dropout=config.dropout,
            feature_dropout=config.feature_dropout,
        )
        self.model = Speaker(self.model_config).to(self.device)
        self.optimizer = torch.optim.RMSprop(self.model.parameters(), lr=config.learning_rate)
        self.sampler = EpisodeSampler([e.instr_id for e in train], config.batch_size, config.seed)
        self.iteration = 0
        self.best_score = -math.inf

    def train_step(self) -> float:
        self.model.train()
        routes = teacher_routes(self.env, self.sampler.next_batch(), self.device)
        tokens = torch.from_numpy(routes.tokens).to(self.device)
        loss = self.model.loss(routes.actions, routes.panoramas, routes.mask, tokens)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.iteration += 1
        return float(loss.detach())

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
        env = _env(self.data_dir, self.features, firsts, self.tokenizer, self.config, batch)
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

    def train(self, progress: bool = True) -> dict[str, float]:
        log = RunLog(self.out_dir)
        best: dict[str, float] = {}
        for _ in tqdm(range(self.config.iterations), desc="train-speaker", disable=not progress):
            loss = self.train_step()
            if self.iteration % self.config.log_every == 0:
                log.write(self.iteration, {"train/loss": loss})
            if (
                self.iteration % self.config.eval_every == 0
                or self.iteration == self.config.iterations
            ):
                scores = {f"{s}/bleu": self.bleu(s) for s in self.config.eval_splits}
                log.write(self.iteration, scores)
                score = scores.get(f"{self.config.select_split}/bleu", -math.inf)
                if score > self.best_score:
                    self.best_score, best = score, {"iteration": self.iteration, **scores}
                    self.save(self.out_dir / "best.pt", scores)
                self.save(self.out_dir / "latest.pt", scores)
        log.close()
        return best

    def save(self, path: Path, metrics: dict[str, Any]) -> None:
        save_checkpoint(
            path,
            {
                "kind": "speaker",
                "model_config": self.model_config.to_dict(),
                "train_config": dataclasses.asdict(self.config),
                "state_dict": self.model.state_dict(),
                "step": self.iteration,
                "metrics": metrics,
                "vocabulary": list(self.tokenizer.vocab),
                "extra": {"features": str(self.features)},
            },
        )


def load_speaker(path: str | os.PathLike[str]) -> tuple[Speaker, Tokenizer, dict[str, Any]]:
    """A trained speaker, its tokenizer and the checkpoint payload."""
    payload = load_checkpoint(path, kind="speaker")
    try:
        model = Speaker(SpeakerConfig(**payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
        tokenizer = Tokenizer(payload["vocabulary"])
    except (TypeError, RuntimeError, ValueError, KeyError) as err:
        raise DataError(path, f"checkpoint does not match the speaker ({err})") from None
    model.eval()
    return model, tokenizer, payload
