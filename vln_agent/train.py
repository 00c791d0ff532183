"""Train the EnvDrop follower on panorama features (``clipvil train-vln``).

The default recipe is R2R-EnvDrop's: every iteration a teacher-forced imitation rollout
(loss x 0.2) and a sampled A2C rollout (shaped reward, gamma 0.9, critic 0.5 x MSE, entropy
0.01) on two fresh batches, one RMSprop step (lr 1e-4), gradients clipped to 40. Runs in one
process or under ``torchrun``. The spine (:class:`vln_agent.training.trainer.Trainer`)
owns the loop, logs, checkpoints and resumption; this module says how to batch, what the
losses are and how to evaluate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from envs.episodes import load_episodes
from envs.graph import NavGraphs
from envs.gym_env import R2RVectorEnv
from vln_agent.environments import DEFAULT_MAX_ACTIONS, DEFAULT_MAX_INSTRUCTION_LENGTH
from vln_agent.evaluate import evaluate_follower
from vln_agent.losses import a2c_loss, imitation_loss
from vln_agent.models.follower import Follower, FollowerConfig
from vln_agent.rollout import Rollout, rollout
from vln_agent.route_trainer import RouteTrainer
from vln_agent.sampler import EpisodeSampler
from vln_agent.training.distributed import DEVICES, DistributedContext
from vln_agent.training.settings import load_settings

FEEDBACK_MODES = ("envdrop", "teacher", "sample", "student")
OPTIMIZERS = ("rmsprop", "adam")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of a follower training run (defaults: R2R-EnvDrop's recipe)."""

    #: Optimizer steps.
    iterations: int = 3000
    #: Global batch size (split across processes under torchrun).
    batch_size: int = 64
    #: ``envdrop``: imitation (x il_weight) + A2C each iteration; ``teacher``: imitation
    #: only; ``sample``: A2C only; ``student``: imitation on the agent's own sampled
    #: trajectories (student forcing: the shortest-path teacher's action from wherever the
    #: agent is, which also teaches it to stop when it reaches the goal by another way).
    feedback: str = field(default="envdrop", metadata={"choices": FEEDBACK_MODES})
    #: Learning rate (a resumed run takes this one).
    learning_rate: float = 1e-4
    #: ``rmsprop`` (EnvDrop) or ``adam``.
    optimizer: str = field(default="rmsprop", metadata={"choices": OPTIMIZERS})
    #: Gradients are clipped to this global norm.
    grad_clip: float = 40.0
    #: Weight of the imitation loss in ``envdrop`` feedback.
    il_weight: float = 0.2
    #: A2C's discount, critic loss weight and entropy bonus weight.
    gamma: float = 0.9
    critic_weight: float = 0.5
    entropy_weight: float = 0.01
    #: Actions (STOP included) before an episode is cut.
    max_actions: int = DEFAULT_MAX_ACTIONS
    #: Instruction length in tokens (longer ones are cut).
    max_instruction_length: int = DEFAULT_MAX_INSTRUCTION_LENGTH
    #: Words seen fewer times in the training instructions become <UNK>.
    min_word_count: int = 1
    #: Evaluate (and save) every this many iterations.
    eval_every: int = 250
    #: Splits evaluated.
    eval_splits: tuple[str, ...] = ("val_seen", "val_unseen")
    #: The best checkpoint is chosen by this split's SPL.
    select_split: str = "val_unseen"
    #: Agents per evaluation batch.
    eval_batch_size: int = 64
    #: Log training statistics every this many iterations.
    log_every: int = 10
    #: Random seed; with --resume/--resume-from, another seed than the checkpoint's draws
    #: fresh batches and random states from it.
    seed: int = 0
    #: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    device: str = field(default="auto", metadata={"choices": DEVICES})
    #: Augmentation paths (R2R JSON, ``clipvil sample-paths``): an extra optimizer step on an
    #: augmented batch after every real one (EnvDrop). With ``speaker`` (a checkpoint) the
    #: speaker describes them (back-translation with environmental dropout); without, the
    #: file's own instructions are used.
    aug_paths: str | None = None
    #: Speaker checkpoint (``clipvil train-speaker``) for back-translation of aug_paths.
    speaker: str | None = None
    #: Without a speaker, still drop one mask of feature channels per augmented batch
    #: (EnvDrop's environmental dropout, in place of the per-view feature dropout); with a
    #: speaker this is always on.
    aug_environment_dropout: bool = False
    #: The follower's architecture (its vocabulary and feature sizes come from the data).
    model: FollowerConfig = FollowerConfig()

    def __post_init__(self) -> None:
        if self.feedback not in FEEDBACK_MODES:
            raise ValueError(f"feedback must be one of {FEEDBACK_MODES}, got {self.feedback!r}")
        if self.optimizer not in OPTIMIZERS:
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
    """Settings from a JSON recipe (unknown keys and wrong types are errors), then
    ``overrides`` (flat: architecture fields go to ``model``)."""
    return load_settings(TrainConfig, path, "training", **overrides)


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


class VLNTrainer(RouteTrainer):
    """The follower's run: training and evaluation environments, batches and losses."""

    kind = "follower"

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        features: str | os.PathLike[str],
        out_dir: str | os.PathLike[str],
        config: TrainConfig,
        context: DistributedContext | None = None,
        resume: bool | str | os.PathLike[str] = False,
        *,
        feature_columns: int | None = None,
        allow_other_features: bool = False,
    ) -> None:
        """``resume``: ``True`` continues from ``out_dir/latest.pt``; a path continues from
        that checkpoint instead (e.g. a warm start fine-tuned with another recipe in a new
        run directory: weights, optimizer, samplers, random states and history carry over,
        the new settings apply from the next iteration). Under another ``config.seed`` than
        the checkpoint's, the samplers and random states start afresh from the new seed.
        ``feature_columns`` / ``allow_other_features``: see :class:`RouteTrainer` (the
        speaker of back-translation is checked the same way)."""
        super().__init__(
            data_dir,
            features,
            out_dir,
            config,
            context,
            feature_columns=feature_columns,
            allow_other_features=allow_other_features,
        )
        self.env = self.make_env("train", self.local_batch_size, "random")
        self.feature_size = self.env.core.feature_dim
        self.model_config = self.data_model_config(self.feature_size)
        model = Follower(self.model_config).to(self.device)
        self.attach(model, _make_optimizer(model, config))
        # on the model's device: torch.multinomial needs a generator where its input is
        self.generator = torch.Generator(self.device).manual_seed(config.seed + 1)
        self.graphs = NavGraphs(self.data_dir)
        self._eval_envs: dict[str, tuple[R2RVectorEnv, list]] = {}
        self.augmentation = None
        if config.aug_paths is not None:
            from vln_agent.backtranslate import AugmentedBatches

            self.augmentation = AugmentedBatches(self, config.aug_paths, config.speaker)
        if resume is not False:
            self.resume(None if resume is True else resume)

    @property
    def iteration(self) -> int:
        """Optimizer steps on real batches so far (the spine's ``step``)."""
        return self.step

    @property
    def select_metric(self) -> str:
        return f"{self.config.select_split}/spl"

    # ---------------------------------------------------------------- training
    def local_ids(self, sampler: EpisodeSampler | None = None) -> list[str]:
        """This process's slice of the next global batch."""
        return (sampler or self.sampler).next_batch()[self.local_slice(self.config.batch_size)]

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
        self.optimize(parts)
        if self.augmentation is not None:
            aug_parts, aug_stats = self.augmentation.losses()
            self.optimize(aug_parts)
            parts.update({f"aug_{k}": v for k, v in aug_parts.items()})
            stats.update({f"aug_{k}": v for k, v in aug_stats.items()})
        return {k: float(v.detach()) for k, v in parts.items()} | stats

    # -------------------------------------------------------------- evaluation
    def eval_env(self, split: str) -> tuple[R2RVectorEnv, list]:
        if split not in self._eval_envs:
            env = self.make_env(split, self.config.eval_batch_size, "sequential")
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

    # ------------------------------------------------------------- checkpoints
    def run_state(self) -> dict[str, Any]:
        return {
            **super().run_state(),
            "generator": self.generator.get_state(),
            "aug_sampler": self.augmentation.sampler.state_dict() if self.augmentation else None,
        }

    def load_run_state(self, state: dict[str, Any]) -> None:
        super().load_run_state(state)
        self.generator.set_state(state["generator"])
        if self.augmentation is not None and state.get("aug_sampler") is not None:
            self.augmentation.sampler.load_state_dict(state["aug_sampler"])


def _make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    return torch.optim.RMSprop(model.parameters(), lr=config.learning_rate)
