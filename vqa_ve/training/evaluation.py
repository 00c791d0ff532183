"""Predictions of a QA model on a split, their official files and official scores.

One place for what training's evaluation and ``clipvil eval-qa`` both do: VQA answers
(argmax over the answer vocabulary) scored by :func:`vqa_ve.metrics.vqa.evaluate_vqa`;
SNLI-VE labels scored by :func:`vqa_ve.data.snli_ve.accuracy`; VCR's 4 answer scores and
4x4 rationale scores (conditioned on each answer) scored by
:func:`vqa_ve.metrics.vcr.vcr_scores`. Every score is a percentage.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch

from envs.tokenizer import Tokenizer
from vln_agent.extract_images import ImageFeatures
from vqa_ve.data.snli_ve import LABELS, accuracy
from vqa_ve.data.snli_ve import write_predictions as write_snli_ve_predictions
from vqa_ve.data.vcr import NUM_CHOICES
from vqa_ve.data.vqa import AnswerVocabulary, write_vqa_results
from vqa_ve.datasets import FeatureFiles, QAExample, QASplit, collate, evaluation_examples
from vqa_ve.metrics.vcr import VCRPrediction, vcr_scores, write_vcr_predictions
from vqa_ve.metrics.vqa import evaluate_vqa
from vqa_ve.models.fusion import QAFusionModel

#: Scores are percentages.
PERCENT = 100.0
#: The official prediction file of each task (written by ``eval-qa``).
PREDICTION_FILES = {"vqa": "results.json", "snli-ve": "predictions.jsonl", "vcr": "leaderboard.csv"}


@torch.no_grad()
def predict_logits(
    model: QAFusionModel,
    examples: Sequence[QAExample],
    tokenizer: Tokenizer,
    features: ImageFeatures | FeatureFiles,
    batch_size: int,
    device: torch.device | str,
) -> torch.Tensor:
    """The model's logits ``[N, K]`` on ``examples``, in eval mode, batch by batch."""
    model.eval()
    outputs = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = collate(chunk, tokenizer, features, model.config.max_text_length).to(device)
        outputs.append(model(batch).float().cpu())  # [b, K]
    return torch.cat(outputs)  # [N, K]


def predict(
    model: QAFusionModel,
    split: QASplit,
    tokenizer: Tokenizer,
    features: ImageFeatures | FeatureFiles,
    answers: AnswerVocabulary | None,
    batch_size: int,
    device: torch.device | str,
) -> dict[Any, Any]:
    """Predictions by example id: VQA question_id -> answer, SNLI-VE pairID -> label,
    VCR annot_id -> :class:`VCRPrediction`."""
    examples = evaluation_examples(split)
    scores = predict_logits(model, examples, tokenizer, features, batch_size, device)  # [N, K]
    if split.task == "vqa":
        if answers is None:
            raise ValueError("VQA predictions need the answer vocabulary")
        best = scores.argmax(1)  # [N]
        return {int(e.key): answers.answers[int(i)] for e, i in zip(examples, best, strict=True)}
    if split.task == "snli-ve":
        best = scores.argmax(1)  # [N]
        return {e.key: LABELS[int(i)] for e, i in zip(examples, best, strict=True)}
    per_item = 1 + NUM_CHOICES  # Q->A, then QA->R given each answer
    scores = scores.reshape(len(split.records), per_item, NUM_CHOICES)  # [Q, 5, 4]
    return {
        item.annot_id: VCRPrediction(
            item.annot_id,
            tuple(float(s) for s in rows[0]),
            tuple(tuple(float(s) for s in row) for row in rows[1:]),
        )
        for item, rows in zip(split.records, scores, strict=True)
    }


def score(split: QASplit, predictions: dict[Any, Any]) -> dict[str, float]:
    """The task's official scores in percent: ``accuracy`` (VQA, SNLI-VE) or
    ``q2a`` / ``qa2r`` / ``q2ar`` (VCR)."""
    if split.task == "vqa":
        annotations = [record.annotation for record in split.records]
        return {"accuracy": float(evaluate_vqa(annotations, predictions)["overall"])}
    if split.task == "snli-ve":
        return {"accuracy": PERCENT * accuracy(split.records, predictions)}
    return vcr_scores(split.records, predictions)


def write_prediction_file(
    task: str, path: str | os.PathLike[str], predictions: dict[Any, Any]
) -> None:
    """The official prediction file (VQA results JSON, SNLI-VE predictions JSON Lines, VCR
    leaderboard CSV), written atomically."""
    if task == "vqa":
        write_vqa_results(path, predictions)
    elif task == "snli-ve":
        write_snli_ve_predictions(path, predictions)
    else:
        write_vcr_predictions(path, predictions.values())
