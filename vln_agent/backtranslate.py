"""Back-translation with environmental dropout (Tan et al. 2019, EnvDrop).

Each augmented batch: sample one dropout mask over the feature channels; the speaker
describes the teacher's route on augmentation paths through the masked features; the
follower then learns (imitation + A2C) to follow those generated instructions through the
same masked features. The trainer alternates real and augmented batches.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium.vector import AutoresetMode

from envs.episodes import load_episodes
from envs.errors import DataError
from envs.gym_env import R2RVectorEnv
from vln_agent.losses import imitation_loss
from vln_agent.rollout import rollout
from vln_agent.routes import environment_dropout, teacher_routes
from vln_agent.sampler import EpisodeSampler
from vln_agent.speaker_train import load_speaker


class BackTranslation:
    """Augmented batches for a :class:`vln_agent.train.VLNTrainer`."""

    def __init__(self, trainer, aug_paths: str, speaker_checkpoint: str) -> None:
        self.trainer = trainer
        config = trainer.config
        self.speaker, self.speaker_tokenizer, _ = load_speaker(speaker_checkpoint)
        self.speaker.to(trainer.context.device).eval()
        if self.speaker.config.feature_size != trainer.feature_size:
            raise DataError(
                speaker_checkpoint,
                f"speaker uses {self.speaker.config.feature_size}-d features, "
                f"the follower {trainer.feature_size}-d",
            )
        episodes = load_episodes(trainer.data_dir, aug_paths)
        self.env = R2RVectorEnv(
            config.batch_size // trainer.context.world_size,
            autoreset_mode=AutoresetMode.DISABLED,
            data_dir=trainer.data_dir,
            features=trainer.features,
            split=episodes,
            tokenizer=trainer.tokenizer,
            max_instruction_length=config.max_instruction_length,
            max_actions=config.max_actions,
            episode_order="random",
        )
        self.sampler = EpisodeSampler(
            [e.instr_id for e in episodes], config.batch_size, config.seed + 2
        )

    def instructions(self, ids: list[str], mask: torch.Tensor) -> np.ndarray:
        """Speaker instructions [B, L] for the routes of ``ids``, in the follower's ids."""
        routes = teacher_routes(self.env, ids, mask.device, feature_mask=mask)
        generated = self.speaker.generate(
            routes.actions,
            routes.panoramas,
            routes.mask,
            max_length=self.trainer.config.max_instruction_length,
            already_dropped=True,
        )
        length = self.trainer.config.max_instruction_length
        tokens = np.zeros((len(ids), length), dtype=np.int64)
        for row, words in enumerate(generated.tolist()):
            text = self.speaker_tokenizer.decode(words)
            encoded = self.trainer.tokenizer.encode(text, length)
            tokens[row, : len(encoded)] = encoded
        return tokens

    def losses(self) -> dict[str, torch.Tensor]:
        """Imitation + A2C losses on two augmented batches, each with its own mask."""
        from vln_agent.train import a2c_from_rollout

        trainer, config = self.trainer, self.trainer.config
        device, parts = trainer.context.device, {}
        mask = environment_dropout(trainer.feature_size, config.feature_dropout, device)
        ids = trainer.local_ids(self.sampler)
        words = self.instructions(ids, mask)
        result = rollout(trainer.model, self.env, ids, "teacher", mask, words)
        parts["il_loss"] = config.il_weight * imitation_loss(
            result.logits, result.teacher, result.active
        )
        if config.feedback in ("envdrop", "sample"):
            mask = environment_dropout(trainer.feature_size, config.feature_dropout, device)
            ids = trainer.local_ids(self.sampler)
            words = self.instructions(ids, mask)
            result = rollout(
                trainer.model,
                self.env,
                ids,
                "sample",
                mask,
                words,
                generator=trainer.generator,
                with_values=True,
            )
            parts.update(a2c_from_rollout(result, config))
        return parts
