"""Train the EnvDrop follower on panorama features (``clipvil train-vln``).

The default recipe is R2R-EnvDrop's: every iteration a teacher-forced imitation rollout
(loss x 0.2) and a sampled A2C rollout (shaped reward, gamma 0.9, critic 0.5 x MSE, entropy
0.01) on two fresh batches, one RMSprop step (lr 1e-4), gradients clipped to 40. Runs in one
process or under ``torchrun`` (see :mod:`vln_agent.training.distributed`). Checkpoints describe
themselves and are written atomically; ``resume`` continues exactly where the last one was
saved (model, optimizer, sampler and random states).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium.vector import AutoresetMode
from tqdm import tqdm

from envs.episodes import load_episodes
from envs.errors import DataError
from envs.graph import NavGraphs
from envs.gym_env import R2RVectorEnv
from envs.tokenizer import Tokenizer
from vln_agent.training.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from vln_agent.training.distributed import (
    DistributedContext,
    average_gradients,
    broadcast_parameters,
    init_distributed,
)
from vln_agent.evaluate import evaluate_follower
from vln_agent.losses import a2c_loss, imitation_loss
from vln_agent.models.follower import Follower, FollowerConfig
from vln_agent.rollout import Rollout, rollout
from vln_agent.training.runlog import RunLog
from vln_agent.sampler import EpisodeSampler
from vln_agent.training.settings import load_settings

FEEDBACK_MODES = ("envdrop", "teacher", "sample", "student")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a training run (defaults: R2R-EnvDrop's recipe)."""

    #: Optimizer steps.
    iterations: int = 3000
    #: Global batch size (split across processes under torchrun).
    batch_size: int = 64
    #: ``envdrop``: imitation (x il_weight) + A2C each iteration; ``teacher``: imitation
    #: only; ``sample``: A2C only; ``student``: imitation on the agent's own sampled
    #: trajectories (student forcing: the shortest-path teacher's action from wherever the
    #: agent is, which also teaches it to stop when it reaches the goal by another way).
    feedback: str = "envdrop"
    learning_rate: float = 1e-4
    #: ``rmsprop`` (EnvDrop) or ``adam``.
    optimizer: str = "rmsprop"
    grad_clip: float = 40.0
    il_weight: float = 0.2
    gamma: float = 0.9
    critic_weight: float = 0.5
    entropy_weight: float = 0.01
    #: Actions (STOP included) before an episode is cut.
    max_actions: int = 35
    max_instruction_length: int = 80
    #: Words seen fewer times in the training instructions become <UNK>.
    min_word_count: int = 1
    #: Follower architecture (see :class:`FollowerConfig`).
    hidden_size: int = 512
    word_embedding_size: int = 256
    dropout: float = 0.5
    feature_dropout: float = 0.4
    #: Evaluate (and save) every this many iterations, on these splits.
    eval_every: int = 250
    eval_splits: tuple[str, ...] = ("val_seen", "val_unseen")
    #: The best checkpoint is chosen by this split's SPL.
    select_split: str = "val_unseen"
    eval_batch_size: int = 64
    #: Log training statistics every this many iterations.
    log_every: int = 10
    seed: int = 0
    #: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    device: str = "auto"
    #: Augmentation paths (R2R JSON, ``clipvil sample-paths``): an extra optimizer step on an
    #: augmented batch after every real one (EnvDrop). With ``speaker`` (a checkpoint) the
    #: speaker describes them (back-translation with environmental dropout); without, the
    #: file's own instructions are used.
    aug_paths: str | None = None
    speaker: str | None = None
    #: Without a speaker, still drop one mask of feature channels per augmented batch
    #: (EnvDrop's environmental dropout, in place of the per-view feature dropout); with a
    #: speaker this is always on.
    aug_environment_dropout: bool = False

    def __post_init__(self) -> None:
        if self.feedback not in FEEDBACK_MODES:
            raise ValueError(f"feedback must be one of {FEEDBACK_MODES}, got {self.feedback!r}")
        if self.optimizer not in ("rmsprop", "adam"):
            raise ValueError(f"optimizer must be rmsprop or adam, got {self.optimizer!r}")
        if self.select_split not in self.eval_splits:
            raise ValueError(
                f"select_split {self.select_split!r} must be one of eval_splits {self.eval_splits}"
            )
        if self.speaker is not None and self.aug_paths is None:
            raise ValueError("back-translation needs aug_paths (clipvil sample-paths) for speaker")
        if self.aug_environment_dropout and self.aug_paths is None:
            raise ValueError("aug_environment_dropout needs aug_paths (clipvil sample-paths)")


def load_train_config(path: str | os.PathLike[str] | None, **overrides: Any) -> TrainConfig:
    """Settings from a JSON file (unknown keys and wrong types are errors), then ``overrides``."""
    return load_settings(TrainConfig, path, "training", **overrides)


def follower_config(config: TrainConfig, vocab_size: int, feature_size: int) -> FollowerConfig:
    return FollowerConfig(
        vocab_size=vocab_size,
        feature_size=feature_size,
        word_embedding_size=config.word_embedding_size,
        hidden_size=config.hidden_size,
        dropout=config.dropout,
        feature_dropout=config.feature_dropout,
    )


def make_env(data_dir, features, split, tokenizer, config: TrainConfig, batch, order):
    """A batch-synchronous vector env over one split."""
    return R2RVectorEnv(
        batch,
        autoreset_mode=AutoresetMode.DISABLED,
        data_dir=data_dir,
        features=features,
        split=split,
        tokenizer=tokenizer,
        max_instruction_length=config.max_instruction_length,
        max_actions=config.max_actions,
        shaped_reward=True,
        episode_order=order,
    )


def action_log_probs(logits: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """log pi(a) [B] and the policy entropy [B] of masked logits (-inf = unavailable)."""
    log_p = torch.log_softmax(logits, dim=1)  # [B, A]
    finite = torch.isfinite(log_p)
    safe = log_p.masked_fill(~finite, 0.0)
    entropy = -(safe.exp() * safe).sum(dim=1)
    return safe.gather(1, action[:, None]).squeeze(1), entropy


def _rollout_stats(result: Rollout) -> dict[str, float]:
    """Success rate and length of a sampled rollout."""
    return {
        "train_sr": float(np.mean([m["sr"] for m in result.metrics.values()])),
        "train_steps": float(result.steps),
    }


def a2c_from_rollout(result: Rollout, config: TrainConfig) -> dict[str, torch.Tensor]:
    """A2C loss parts of a sampled rollout."""
    log_probs, entropies = zip(
        *(action_log_probs(lg, a) for lg, a in zip(result.logits, result.actions, strict=True)),
        strict=True,
    )
    device = result.actions[0].device
    rewards = torch.from_numpy(np.stack(result.rewards)).to(device)  # [T, B]
    masks = torch.stack(result.active).float()  # [T, B]
    return a2c_loss(
        torch.stack(log_probs),
        torch.stack(entropies),
        torch.stack(result.values),
        rewards * masks,
        masks,
        result.bootstrap,
        gamma=config.gamma,
        critic_weight=config.critic_weight,
        entropy_weight=config.entropy_weight,
    )


class VLNTrainer:
    """One training run: environments, model, optimizer, logs and checkpoints."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        features: str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        config: TrainConfig,
        context: DistributedContext | None = None,
        resume: bool | str | os.PathLike[str] = False,
    ) -> None:
        """``resume``: ``True`` continues from ``out_dir/latest.pt``; a path continues from
        that checkpoint instead (e.g. a warm start fine-tuned with another recipe in a new
        run directory: weights, optimizer, samplers, random states and history carry over,
        the new settings apply from the next iteration). Under another ``config.seed`` than
        the checkpoint's, the samplers and random states start afresh from the new seed."""
        self.data_dir, self.features, self.out_dir = Path(data_dir), Path(features), Path(out_dir)
        self.config = config
        self.context = context or init_distributed(
            None if config.device == "auto" else config.device
        )
        torch.manual_seed(config.seed)
        train_episodes = load_episodes(self.data_dir, "train")
        self.tokenizer = Tokenizer.build_from_episodes(train_episodes, config.min_word_count)
        local_batch = config.batch_size // self.context.world_size
        self.context.shard(config.batch_size)  # validates divisibility
        self.env = make_env(
            data_dir, features, "train", self.tokenizer, config, local_batch, "random"
        )
        self.feature_size = self.env.core.feature_dim
        self.model_config = follower_config(config, len(self.tokenizer), self.feature_size)
        self.model = Follower(self.model_config).to(self.context.device)
        broadcast_parameters(self.model, self.context)
        self.optimizer = self._make_optimizer()
        self.sampler = EpisodeSampler(
            [e.instr_id for e in train_episodes], config.batch_size, config.seed
        )
        # on the model's device: torch.multinomial needs a generator where its input is
        self.generator = torch.Generator(self.context.device).manual_seed(config.seed + 1)
        self.graphs = NavGraphs(self.data_dir)
        self.iteration = 0
        self.best_score = -math.inf
        self.history: list[dict[str, float]] = []
        self._eval_envs: dict[str, tuple[R2RVectorEnv, list]] = {}
        self.augmentation = None
        if config.aug_paths is not None:
            from vln_agent.backtranslate import AugmentedBatches

            self.augmentation = AugmentedBatches(self, config.aug_paths, config.speaker)
        if resume is not False:
            self._resume(None if resume is True else Path(resume))

    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = self.model.parameters()
        if self.config.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.config.learning_rate)
        return torch.optim.RMSprop(params, lr=self.config.learning_rate)

    # ---------------------------------------------------------------- training
    def local_ids(self, sampler: EpisodeSampler | None = None) -> list[str]:
        """This process's slice of the next global batch."""
        return (sampler or self.sampler).next_batch()[self.context.shard(self.config.batch_size)]

    def losses(self) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """The loss parts of one iteration on the training split, and training statistics."""
        return self.feedback_losses(self.env, self.sampler)

    def feedback_losses(
        self, env: R2RVectorEnv, sampler: EpisodeSampler, describe=None
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """The loss parts of ``config.feedback`` on fresh batches of ``sampler``'s episodes.

        ``describe(ids)`` (back-translation) returns an environmental-dropout mask [D] and
        the instructions [B, L] to use for a batch instead of the episodes' own.
        """
        config, parts, stats = self.config, {}, {}

        def batch() -> tuple[list[str], torch.Tensor | None, np.ndarray | None]:
            ids = self.local_ids(sampler)
            mask, words = describe(ids) if describe is not None else (None, None)
            return ids, mask, words

        if config.feedback in ("envdrop", "teacher"):
            weight = config.il_weight if config.feedback == "envdrop" else 1.0
            ids, mask, words = batch()
            result = rollout(self.model, env, ids, "teacher", mask, words)
            parts["il_loss"] = weight * imitation_loss(result.logits, result.teacher, result.active)
        if config.feedback == "student":
            ids, mask, words = batch()
            result = rollout(self.model, env, ids, "sample", mask, words, generator=self.generator)
            parts["il_loss"] = imitation_loss(result.logits, result.teacher, result.active)
            stats.update(_rollout_stats(result))
        if config.feedback in ("envdrop", "sample"):
            ids, mask, words = batch()
            result = rollout(
                self.model,
                env,
                ids,
                "sample",
                mask,
                words,
                generator=self.generator,
                with_values=True,
            )
            parts.update(a2c_from_rollout(result, config))
            stats.update(_rollout_stats(result))
        return parts, stats

    def train_step(self) -> dict[str, float]:
        """One optimizer step (plus a back-translation step when configured)."""
        self.model.train()
        parts, stats = self.losses()
        self._apply(parts)
        if self.augmentation is not None:
            aug_parts, aug_stats = self.augmentation.losses()
            self._apply(aug_parts)
            parts.update({f"aug_{k}": v for k, v in aug_parts.items()})
            stats.update({f"aug_{k}": v for k, v in aug_stats.items()})
        self.iteration += 1
        return {k: float(v.detach()) for k, v in parts.items()} | stats

    def _apply(self, parts: dict[str, torch.Tensor]) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        sum(parts.values()).backward()
        average_gradients(self.model, self.context)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()

    def train(self, progress: bool = True) -> dict[str, Any]:
        """Run to ``config.iterations``; returns the best evaluation metrics."""
        config = self.config
        log = RunLog(self.out_dir, self.context.is_main, start_iteration=self.iteration)
        bar = tqdm(
            total=config.iterations,
            initial=self.iteration,
            desc="train-vln",
            disable=not (progress and self.context.is_main),
        )
        start = time.perf_counter()
        while self.iteration < config.iterations:
            stats = self.train_step()
            bar.update(1)
            if self.iteration % config.log_every == 0:
                stats["seconds"] = time.perf_counter() - start
                log.write(self.iteration, {f"train/{k}": v for k, v in stats.items()})
                bar.set_postfix(loss=f"{sum(v for k, v in stats.items() if 'loss' in k):.3f}")
            if self.iteration % config.eval_every == 0 or self.iteration == config.iterations:
                self.evaluate_and_save(log)
        bar.close()
        log.close()
        return self.best_metrics()

    # -------------------------------------------------------------- evaluation
    def eval_env(self, split: str) -> tuple[R2RVectorEnv, list]:
        if split not in self._eval_envs:
            env = make_env(
                self.data_dir,
                self.features,
                split,
                self.tokenizer,
                self.config,
                self.config.eval_batch_size,
                "sequential",
            )
            self._eval_envs[split] = (env, load_episodes(self.data_dir, split))
        return self._eval_envs[split]

    def evaluate(self) -> dict[str, dict[str, float]]:
        """Official metrics of the current model on every evaluation split."""
        results = {}
        for split in self.config.eval_splits:
            env, episodes = self.eval_env(split)
            _, summary = evaluate_follower(self.model, env, self.graphs, episodes, split)
            results[split] = summary
        return results

    def evaluate_and_save(self, log: RunLog) -> None:
        if not self.context.is_main:
            return
        results = self.evaluate()
        flat = {f"{split}/{k}": v for split, s in results.items() for k, v in s.items()}
        log.write(self.iteration, flat)
        self.history.append({"iteration": self.iteration, **flat})
        score = results.get(self.config.select_split, {}).get("spl", -math.inf)
        if score > self.best_score:
            self.best_score = score
            self.save(self.out_dir / "best.pt", results)
        self.save(self.out_dir / "latest.pt", results)

    def best_metrics(self) -> dict[str, Any]:
        if not self.history:
            return {}
        key = f"{self.config.select_split}/spl"
        return max(self.history, key=lambda row: row.get(key, -math.inf))

    # ------------------------------------------------------------- checkpoints
    def save(self, path: Path, metrics: dict[str, Any]) -> None:
        save_checkpoint(
            path,
            {
                "kind": "follower",
                "model_config": self.model_config.to_dict(),
                "train_config": dataclasses.asdict(self.config),
                "state_dict": self.model.state_dict(),
                "step": self.iteration,
                "metrics": metrics,
                "vocabulary": list(self.tokenizer.vocab),
                "extra": {"features": str(self.features), "feature_size": self.feature_size},
                "optimizer": self.optimizer.state_dict(),
                "rng": {
                    "global": capture_rng(),
                    "sampler": self.sampler.state_dict(),
                    "generator": self.generator.get_state(),
                    "best_score": self.best_score,
                    "history": self.history,
                    "aug_sampler": (
                        self.augmentation.sampler.state_dict() if self.augmentation else None
                    ),
                },
            },
        )

    def _resume(self, path: Path | None = None) -> None:
        path = path or self.out_dir / "latest.pt"
        payload = load_checkpoint(path, kind="follower")
        if payload["model_config"] != self.model_config.to_dict():
            raise DataError(path, "was trained with another model or vocabulary")
        if "optimizer" not in payload or "rng" not in payload:
            raise DataError(path, "has no training state to resume (an exported checkpoint?)")
        self.model.load_state_dict(payload["state_dict"])
        self.optimizer.load_state_dict(payload["optimizer"])
        for group in self.optimizer.param_groups:  # a resumed run may change the rate
            group["lr"] = self.config.learning_rate
        self.iteration = int(payload["step"])
        state = payload["rng"]
        self.best_score = float(state["best_score"])
        self.history = list(state["history"])
        if payload["train_config"].get("seed") != self.config.seed:
            # a warm start under another seed (a seed study of one stage): keep the fresh
            # random streams of the new seed instead of the checkpoint's
            torch.manual_seed(self.config.seed)
            return
        restore_rng(state["global"])
        self.sampler.load_state_dict(state["sampler"])
        self.generator.set_state(state["generator"])
        if self.augmentation is not None and state.get("aug_sampler") is not None:
            self.augmentation.sampler.load_state_dict(state["aug_sampler"])


def load_follower(path: str | os.PathLike[str]) -> tuple[Follower, Tokenizer, dict[str, Any]]:
    """A trained follower, its tokenizer and the whole checkpoint payload."""
    payload = load_checkpoint(path, kind="follower")
    try:
        model = Follower(FollowerConfig(**payload["model_config"]))
        model.load_state_dict(payload["state_dict"])
        tokenizer = Tokenizer(payload["vocabulary"])
    except (TypeError, RuntimeError, ValueError, KeyError) as err:
        raise DataError(path, f"checkpoint does not match the follower ({err})") from None
    model.eval()
    return model, tokenizer, payload
