"""Blind baselines that need no model: the majority answer of the training split.

Each returns predictions in the form :func:`vqa_ve.training.evaluation.score` takes, so a
baseline is scored by the official metric exactly as a model is:

- VQA: every question gets the most frequent ``multiple_choice_answer`` of the training
  annotations;
- SNLI-VE: every pair gets the most frequent training label;
- VCR: every question picks the answer position most often right in training, and the
  rationale position most often right (chance is 25 % when the positions are balanced).

Ties go to the first in sorted order, so a baseline is reproducible. The learned blind
baseline (the same model trained on the text alone) is ``train-qa --blind``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from vqa_ve.data.vcr import NUM_CHOICES
from vqa_ve.datasets import QASplit
from vqa_ve.metrics.vcr import VCRPrediction


def most_common(values: Iterable[Any]) -> Any:
    """The most frequent value (ties: the smallest)."""
    counts = Counter(values)
    if not counts:
        raise ValueError("no training labels to take a majority of")
    top = max(counts.values())
    return min(value for value, count in counts.items() if count == top)


def one_hot(index: int) -> tuple[float, ...]:
    """Scores that choose ``index`` of the :data:`NUM_CHOICES` choices."""
    return tuple(1.0 if i == index else 0.0 for i in range(NUM_CHOICES))


def majority_predictions(train: QASplit, split: QASplit) -> dict[Any, Any]:
    """The majority-answer predictions of ``train`` for every example of ``split``."""
    if train.task != split.task:
        raise ValueError(f"a {train.task} training split cannot predict {split.task}")
    if split.task == "vqa":
        answer = most_common(r.annotation.multiple_choice_answer for r in train.records)
        return {record.question.question_id: answer for record in split.records}
    if split.task == "snli-ve":
        label = most_common(e.label for e in train.records)
        return {example.pair_id: label for example in split.records}
    answer = one_hot(most_common(item.answer_label for item in train.records))
    rationale = one_hot(most_common(item.rationale_label for item in train.records))
    return {
        item.annot_id: VCRPrediction(item.annot_id, answer, (rationale,) * NUM_CHOICES)
        for item in split.records
    }
