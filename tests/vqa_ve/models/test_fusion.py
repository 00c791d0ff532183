"""The fusion model's three heads: output shapes, losses by name, padding, bad configs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from envs.tokenizer import PAD_ID
from vqa_ve.models import QABatch, QAFusionModel, QAModelConfig
from vqa_ve.models.fusion import CHOICE_SEGMENT, NUM_ENTAILMENT_LABELS

BATCH, LENGTH, REGIONS, CHANNELS, VOCAB, ANSWERS, CHOICES = 3, 5, 4, 8, 20, 7, 4


def model_of(task: str) -> QAFusionModel:
    torch.manual_seed(0)
    config = QAModelConfig(
        task=task,
        vocab_size=VOCAB,
        num_answers=ANSWERS if task == "vqa" else 0,
        feature_dim=CHANNELS,
        num_regions=REGIONS,
        hidden_size=16,
        num_layers=1,
        num_heads=2,
        dropout=0.0,
    )
    return QAFusionModel(config).eval()


def tokens(*shape: int) -> torch.Tensor:
    ids = torch.randint(4, VOCAB, shape)  # words, no special tokens
    ids[..., 0] = 3  # <BOS>
    return ids


def image() -> torch.Tensor:
    return torch.randn(BATCH, REGIONS, CHANNELS)


def test_vqa_head_scores_every_answer_with_soft_score_bce() -> None:
    model = model_of("vqa")
    target = torch.zeros(BATCH, ANSWERS)
    target[:, 2] = 1.0
    target[0, 3] = 0.3
    ids = tokens(BATCH, LENGTH)
    batch = QABatch(ids, torch.zeros_like(ids), image(), target)
    parts, logits = model.losses(batch)
    assert logits.shape == (BATCH, ANSWERS)
    assert set(parts) == {"task_loss"}
    expected = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / BATCH
    assert math.isclose(float(parts["task_loss"].detach()), float(expected.detach()), rel_tol=1e-5)


def test_snli_ve_head_is_three_way_cross_entropy() -> None:
    model = model_of("snli-ve")
    ids = tokens(BATCH, LENGTH)
    target = torch.tensor([0, 1, 2])
    parts, logits = model.losses(QABatch(ids, torch.zeros_like(ids), image(), target))
    assert logits.shape == (BATCH, NUM_ENTAILMENT_LABELS)
    assert math.isclose(
        float(parts["task_loss"].detach()),
        float(F.cross_entropy(logits.detach(), target)),
        rel_tol=1e-6,
    )


def test_vcr_head_scores_each_choice_against_the_same_image() -> None:
    model = model_of("vcr")
    ids = tokens(BATCH, CHOICES, LENGTH)
    segments = torch.zeros_like(ids)
    segments[..., 3:] = CHOICE_SEGMENT
    pictures = image()
    target = torch.tensor([0, 3, 1])
    parts, logits = model.losses(QABatch(ids, segments, pictures, target))
    assert logits.shape == (BATCH, CHOICES)
    assert math.isclose(
        float(parts["task_loss"].detach()),
        float(F.cross_entropy(logits.detach(), target)),
        rel_tol=1e-6,
    )
    # choice 2 of question 1, scored alone, gets the same score
    alone = model.head(model.encode(ids[1:2, 2], segments[1:2, 2], pictures[1:2]))  # [1, 1]
    assert torch.allclose(alone[0, 0], logits[1, 2], atol=1e-5)


def test_padding_does_not_change_the_output() -> None:
    model = model_of("snli-ve")
    ids = tokens(BATCH, LENGTH)
    padded = torch.cat([ids, torch.full((BATCH, 3), PAD_ID)], dim=1)  # [B, L+3]
    pictures = image()
    with torch.no_grad():
        short = model(QABatch(ids, torch.zeros_like(ids), pictures))
        long = model(QABatch(padded, torch.zeros_like(padded), pictures))
    assert torch.allclose(short, long, atol=1e-5)


def test_the_image_matters() -> None:
    model = model_of("snli-ve")
    ids = tokens(BATCH, LENGTH)
    with torch.no_grad():
        first = model(QABatch(ids, torch.zeros_like(ids), image()))
        second = model(QABatch(ids, torch.zeros_like(ids), image()))
    assert not torch.allclose(first, second)


def test_bad_configs_and_unlabelled_losses_are_refused() -> None:
    with pytest.raises(ValueError, match="task"):
        QAFusionModel(QAModelConfig(task="gqa", vocab_size=5, feature_dim=2, num_regions=1))
    with pytest.raises(ValueError, match=">= 1"):
        QAFusionModel(QAModelConfig(task="vqa", vocab_size=5, feature_dim=2, num_regions=1))
    model = model_of("vcr")
    ids = tokens(BATCH, CHOICES, LENGTH)
    with pytest.raises(ValueError, match="without targets"):
        model.losses(QABatch(ids, torch.zeros_like(ids), image()))
