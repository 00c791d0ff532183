"""Augmented batches: back-translation with environmental dropout (Tan et al. 2019, EnvDrop).

With a speaker, each augmented batch samples one dropout mask over the feature channels;
the speaker describes the teacher's route on the augmentation paths through the masked
features, and the follower learns (with the run's feedback) to follow those generated
instructions through the same masked features. Without a speaker the augmentation file's
own instructions are used (e.g. ``clipvil sample-paths --instructions N`` in a synthetic
world), optionally through one environmental-dropout mask per batch as well
(``aug_environment_dropout``). The trainer alternates real and augmented batches, one
optimizer step each.
"""

from __future__ import annotations

import numpy as np
import torch

from envs.episodes import load_episodes
from envs.errors import DataError
from vln_agent.models.speaker import load_speaker
from vln_agent.provenance import check_checkpoint_features
from vln_agent.routes import environment_dropout, teacher_routes
from vln_agent.sampler import EpisodeSampler


class AugmentedBatches:
    """Augmented batches for a :class:`vln_agent.train.VLNTrainer`."""

    def __init__(self, trainer, aug_paths: str, speaker_checkpoint: str | None) -> None:
        self.trainer = trainer
        config = trainer.config
        self.speaker = None
        if speaker_checkpoint is not None:
            self.speaker, self.speaker_tokenizer, payload = load_speaker(speaker_checkpoint)
            self.speaker.to(trainer.context.device).eval()
            if self.speaker.config.feature_size != trainer.feature_size:
                raise DataError(
                    speaker_checkpoint,
                    f"speaker uses {self.speaker.config.feature_size}-d features, "
                    f"the follower {trainer.feature_size}-d ({trainer.features})",
                )
            # the speaker describes routes through the follower's features: the same kind
            check_checkpoint_features(
                trainer.feature_provenance,
                payload,
                speaker_checkpoint,
                allow_other=trainer.allow_other_features,
                warn=trainer.context.is_main,
            )
        episodes = load_episodes(trainer.data_dir, aug_paths)
        if self.speaker is None and not all(e.instruction.strip() for e in episodes):
            raise DataError(
                aug_paths, "has paths without instructions: pass --speaker to describe them"
            )
        self.env = trainer.make_env(
            episodes, config.batch_size // trainer.context.world_size, "random"
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

    def describe(self, ids: list[str]) -> tuple[torch.Tensor, np.ndarray | None]:
        """One environmental-dropout mask [D] for a batch and, with a speaker, its
        instructions (else the file's own)."""
        trainer = self.trainer
        mask = environment_dropout(
            trainer.feature_size, trainer.model_config.feature_dropout, trainer.context.device
        )
        return mask, self.instructions(ids, mask) if self.speaker is not None else None

    def losses(self) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """The run's feedback losses on augmented batches (each with its own mask)."""
        masked = self.speaker is not None or self.trainer.config.aug_environment_dropout
        describe = self.describe if masked else None
        return self.trainer.feedback_losses(self.env, self.sampler, describe)
