"""Fine-tuning from a pretrained checkpoint: ``clipvil train-qa --init RUN/best.pt``.

What carries over from a ``vl-pretrain`` checkpoint into a task's fusion model:

- **architecture**: the transformer's size, text length and image-position scheme
  (:data:`ARCHITECTURE`) are the checkpoint's, whatever the recipe says; dropout, blindness
  and grid sampling stay the run's settings, and the image tokens' shape is the data's
  (it must be the checkpoint's: :func:`check_pretrained_images`);
- **vocabulary**: the pretrained words keep their ids and the task's training words the
  checkpoint lacks are appended (:func:`extended_tokenizer`), so every pretrained word
  embedding is reused and new words start from the fresh initialisation;
- **weights**: every ``fusion.*`` tensor except the task head (``head.*``, which the task
  defines), the word embedding row by row; the MLM and ITM heads are left behind. A model
  that encodes its images (the checkpoint holds a trained ``image_encoder``) takes that
  encoder's weights too;
- **image features**: fine-tuning must read features of the encoder the checkpoint was
  pretrained on (its recorded encoder identity), or a one-line error says which differs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from envs.errors import DataError
from envs.features.provenance import (
    encoder_differences,
    encoder_identity_of_record,
)
from envs.tokenizer import Tokenizer
from vln_agent.provenance import PROVENANCE_KEY
from vln_agent.training.checkpoint import load_checkpoint
from vqa_ve.pretrain.model import PRETRAIN_KIND

#: Model settings a fine-tuned model takes from the pretrained checkpoint.
ARCHITECTURE = (
    "hidden_size",
    "num_layers",
    "num_heads",
    "max_text_length",
    "image_positions",
)
#: State-dict prefixes: the fusion model's (whose head is the task's own) and the encoder's.
FUSION_PREFIX, ENCODER_PREFIX, HEAD_PREFIX = "fusion.", "image_encoder.", "head."
WORD_EMBEDDING = "word_embedding.weight"


def load_pretrained(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The payload of a ``vl-pretrain`` checkpoint (one-line errors naming the file)."""
    payload = load_checkpoint(path, kind=PRETRAIN_KIND)
    for key in ("vocabulary", "model_config", "state_dict"):
        if key not in payload:
            raise DataError(path, f"pretrained checkpoint without {key!r}")
    return payload


def extended_tokenizer(pretrained: list[str], texts: list[str], min_count: int = 1) -> Tokenizer:
    """The pretrained vocabulary, then the words of ``texts`` (seen ``min_count`` times)
    that it lacks, in :meth:`Tokenizer.from_texts` order."""
    known = set(pretrained)
    task = Tokenizer.from_texts(texts, min_count)
    return Tokenizer([*pretrained, *(word for word in task.vocab if word not in known)])


def architecture(payload: dict[str, Any]) -> dict[str, Any]:
    """The model settings fine-tuning takes from the checkpoint (:data:`ARCHITECTURE`)."""
    return {name: payload["model_config"][name] for name in ARCHITECTURE}


def check_pretrained_images(
    payload: dict[str, Any], provenance: dict[str, Any], path: str | os.PathLike[str]
) -> None:
    """Refuse image tokens of another shape or encoder than the checkpoint was pretrained
    on (``provenance``: what the fine-tuning run records of its own images)."""
    record = (payload.get("extra") or {}).get(PROVENANCE_KEY) or {}
    if list(record.get("shape", [])) != list(provenance["shape"]):
        raise DataError(
            path,
            f"was pretrained on image tokens of shape {record.get('shape')}, this run's are "
            f"{list(provenance['shape'])}",
        )
    differences = encoder_differences(
        encoder_identity_of_record(provenance.get("encoder")),
        encoder_identity_of_record(record.get("encoder")),
    )
    if differences:
        shown = ", ".join(f"{key} {a} vs {b}" for key, a, b in differences)
        raise DataError(path, f"was pretrained on features of another encoder: {shown}")


def initialise_from_pretrained(
    model: nn.Module, payload: dict[str, Any], path: str | os.PathLike[str]
) -> list[str]:
    """Copy the pretrained weights into ``model`` (a ``QAFusionModel`` or an
    ``EncodedQAModel``) in place; returns the names of the tensors set."""
    source = payload["state_dict"]
    target = model.state_dict()
    encoded = any(name.startswith(FUSION_PREFIX) for name in target)
    loaded: list[str] = []
    with torch.no_grad():
        for name, value in source.items():
            if name.startswith(FUSION_PREFIX):
                inner = name.removeprefix(FUSION_PREFIX)
                if inner.startswith(HEAD_PREFIX):
                    continue
                ours = name if encoded else inner
            elif name.startswith(ENCODER_PREFIX) and encoded:
                ours = name
            else:
                continue  # the MLM / ITM heads
            if ours not in target:
                raise DataError(path, f"holds {name}, which the fine-tuned model lacks")
            if ours.endswith(WORD_EMBEDDING):
                rows = value.shape[0]
                if target[ours].shape[0] < rows or target[ours].shape[1:] != value.shape[1:]:
                    raise DataError(path, f"word embedding {tuple(value.shape)} does not fit")
                target[ours][:rows].copy_(value)
            elif target[ours].shape != value.shape:
                raise DataError(
                    path,
                    f"{name} is {tuple(value.shape)}, the model's {tuple(target[ours].shape)}",
                )
            else:
                target[ours].copy_(value)
            loaded.append(ours)
    return loaded


def describe(path: str | os.PathLike[str], payload: dict[str, Any], loaded: list[str]) -> dict:
    """What a fine-tuned checkpoint records of its initialisation."""
    return {
        "path": str(Path(path)),
        "step": int(payload.get("step", 0)),
        "vocabulary": len(payload["vocabulary"]),
        "tensors": len(loaded),
    }
