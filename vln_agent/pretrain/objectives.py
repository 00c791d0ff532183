"""The two pretraining objectives over the same image tower.

* :class:`ContrastiveObjective` - CLIP: open_clip's own symmetric InfoNCE
  (:class:`open_clip.loss.ClipLoss`) between a batch of views and one caption of each,
  with CLIP's learnable temperature (clamped to at most 100, as open_clip's trainer does).
* :class:`SupervisedObjective` - the in-domain supervised baseline (the analogue of
  ImageNet / BUTD features): linear heads on the projected image embedding ``[B, E]``
  predict the view's room type (softmax cross-entropy) and the object categories it
  shows (multi-label binary cross-entropy).

Each objective owns the per-view targets (caption tokens or labels), hands out a batch of
them for given rows (:meth:`targets`) and returns its loss parts by name.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from vln_agent.encoders import ENCODER_KIND_KEY, CLIPEncoder
from vln_agent.encoders.kinds import CLIP_KIND, SUPERVISED_KIND
from vln_agent.pretrain.data import LabelSpace

#: open_clip's trainer keeps ``logit_scale`` in [0, ln 100] after every step.
MAX_LOGIT_SCALE = math.log(100.0)


class ContrastiveObjective(nn.Module):
    """CLIP's contrastive loss on (view, caption) pairs.

    Args:
        encoder: the CLIP model being trained (both towers).
        caption_tokens: ``[N, K, L]`` token ids of ``K`` captions of each of ``N`` views;
            each step draws one of the ``K`` per view.
    """

    #: ``encoder_kind`` of the checkpoints it writes.
    kind = CLIP_KIND

    def __init__(self, encoder: CLIPEncoder, caption_tokens: torch.Tensor) -> None:
        super().__init__()
        self.encoder = encoder
        self.caption_tokens = caption_tokens  # [N, K, L], not a parameter
        self.loss = open_clip.loss.ClipLoss()

    def targets(self, rows: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """One caption of each view in ``rows``: ``{"tokens": [B, L]}``."""
        choice = rng.integers(self.caption_tokens.shape[1], size=len(rows))  # [B]
        return {"tokens": self.caption_tokens[torch.as_tensor(rows), torch.as_tensor(choice)]}

    def forward(
        self, images: torch.Tensor, tokens: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """``[B, 3, H, W]`` images and ``[B, L]`` captions -> loss parts and statistics."""
        image = self.encoder.encode_image(images)  # [B, E]
        text = self.encoder.encode_text(tokens, trim_padding=True)  # [B, E], padding cut
        with _full_precision(image):
            image = F.normalize(image.float(), dim=-1)
            text = F.normalize(text.float(), dim=-1)
            scale = self.encoder.model.logit_scale.exp()  # []
            loss = self.loss(image, text, scale)
        with torch.no_grad():
            logits = image @ text.T  # [B, B]
            target = torch.arange(len(image), device=logits.device)
            accuracy = 0.5 * (
                (logits.argmax(1) == target).float().mean()
                + (logits.argmax(0) == target).float().mean()
            )
        stats = {"logit_scale": float(scale.detach()), "batch_accuracy": float(accuracy)}
        return {"contrastive_loss": loss}, stats

    def after_step(self) -> None:
        """Clamp the temperature as open_clip's trainer does."""
        with torch.no_grad():
            self.encoder.model.logit_scale.clamp_(0.0, MAX_LOGIT_SCALE)

    def checkpoint_extra(self) -> dict[str, Any]:
        return {ENCODER_KIND_KEY: self.kind}


def _full_precision(like: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast off on ``like``'s device: losses and heads run in fp32."""
    return torch.autocast(device_type=like.device.type, enabled=False)


class LabelHeads(nn.Module):
    """Linear heads on the projected image embedding ``[B, E]``."""

    def __init__(self, embed_dim: int, num_rooms: int, num_objects: int) -> None:
        super().__init__()
        self.room = nn.Linear(embed_dim, num_rooms)
        self.objects = nn.Linear(embed_dim, num_objects)

    def forward(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``[B, E]`` -> room logits ``[B, R]`` and object logits ``[B, C]``."""
        return self.room(embedding), self.objects(embedding)


class SupervisedObjective(nn.Module):
    """Room-type cross-entropy + visible-object binary cross-entropy on the image tower.

    Args:
        encoder: the CLIP model whose image tower is trained (the text tower is unused).
        room_index: ``[N]`` int64 room class of each view.
        object_multi_hot: ``[N, C]`` float32 visible object categories of each view.
        labels: the class names, stored in the checkpoint.
    """

    #: ``encoder_kind`` of the checkpoints it writes.
    kind = SUPERVISED_KIND

    def __init__(
        self,
        encoder: CLIPEncoder,
        room_index: torch.Tensor,
        object_multi_hot: torch.Tensor,
        labels: LabelSpace,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.labels = labels
        self.room_index = room_index  # [N]
        self.object_multi_hot = object_multi_hot  # [N, C]
        self.heads = LabelHeads(
            encoder.embed_dim, len(labels.room_types), len(labels.object_categories)
        )

    def targets(self, rows: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """``{"room": [B], "objects": [B, C]}`` of the views in ``rows``."""
        index = torch.as_tensor(rows)
        return {"room": self.room_index[index], "objects": self.object_multi_hot[index]}

    def forward(
        self, images: torch.Tensor, room: torch.Tensor, objects: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
        """``[B, 3, H, W]`` images, ``[B]`` rooms, ``[B, C]`` objects -> loss parts, stats."""
        embedding = self.encoder.encode_image(images)  # [B, E]
        with _full_precision(embedding):
            room_logits, object_logits = self.heads(embedding.float())  # [B, R], [B, C]
            room = room.to(room_logits.device)
            objects = objects.to(object_logits.device)
            parts = {
                "room_loss": F.cross_entropy(room_logits, room),
                # summed over the categories (mean over views): one binary decision per
                # category, each weighted like the room decision
                "object_loss": F.binary_cross_entropy_with_logits(
                    object_logits, objects, reduction="sum"
                )
                / len(objects),
            }
        with torch.no_grad():
            room_accuracy = (room_logits.argmax(1) == room).float().mean()
            object_accuracy = ((object_logits > 0).float() == objects).float().mean()
        stats = {
            "room_accuracy": float(room_accuracy),
            "object_label_accuracy": float(object_accuracy),
        }
        return parts, stats

    def after_step(self) -> None:
        pass

    def checkpoint_extra(self) -> dict[str, Any]:
        """The heads and class names, so that :mod:`.zeroshot` can report their accuracy."""
        return {
            ENCODER_KIND_KEY: self.kind,
            "label_names": self.labels.to_dict(),
            "heads": {k: v.detach().cpu().clone() for k, v in self.heads.state_dict().items()},
        }


def heads_from_checkpoint(metadata: dict[str, Any]) -> tuple[LabelHeads, LabelSpace] | None:
    """The linear heads stored in a supervised checkpoint's metadata, or None."""
    state = metadata.get("heads")
    names = metadata.get("label_names")
    if not isinstance(state, dict) or not isinstance(names, dict):
        return None
    labels = LabelSpace(tuple(names["room_types"]), tuple(names["object_categories"]))
    embed_dim = int(state["room.weight"].shape[1])
    heads = LabelHeads(embed_dim, len(labels.room_types), len(labels.object_categories))
    heads.load_state_dict({k: v.float() for k, v in state.items()})
    return heads.eval(), labels
