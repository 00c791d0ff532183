"""VCR scores (Q->A, QA->R, Q->AR) and the leaderboard's predictions CSV, read and written.

The leaderboard CSV (rowanz/r2c ``models/README.md``, "Submitting to the leaderboard"; scored
by allenai/mosaic-leaderboard ``vcr/evaluator/eval.py``) has one row per question::

    annot_id,answer_0,...,answer_3,
    rationale_conditioned_on_a0_0,...,rationale_conditioned_on_a0_3, ...,
    rationale_conditioned_on_a3_0,...,rationale_conditioned_on_a3_3

The evaluator takes the argmax over the answer scores (Q->A), the argmax over the rationale
scores conditioned on the *right* answer (QA->R), and counts a question right for Q->AR
when both are. Ties go to the lowest index, as ``numpy.argmax`` breaks them there.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from envs.errors import DataError
from envs.fileio import atomic_write, read_text
from vqa_ve.data.vcr import NUM_CHOICES, VCRItem

ANSWER_COLUMNS = tuple(f"answer_{j}" for j in range(NUM_CHOICES))
RATIONALE_COLUMNS = tuple(
    f"rationale_conditioned_on_a{i}_{j}" for i in range(NUM_CHOICES) for j in range(NUM_CHOICES)
)
#: The leaderboard header, in its order.
CSV_COLUMNS = ("annot_id", *ANSWER_COLUMNS, *RATIONALE_COLUMNS)
#: Scores are percentages.
PERCENT = 100.0


@dataclass(frozen=True)
class VCRPrediction:
    """A model's scores for one question (higher is more likely; any finite numbers)."""

    annot_id: str
    answers: tuple[float, ...]  # [4]: score of each answer
    rationales: tuple[tuple[float, ...], ...]  # [4, 4]: [answer i][rationale j] given answer i


# ---------------------------------------------------------------------------------- CSV
def prediction_row(prediction: VCRPrediction) -> list[str]:
    """``prediction`` as a CSV row in :data:`CSV_COLUMNS` order (``repr`` keeps every bit)."""
    if len(prediction.answers) != NUM_CHOICES or len(prediction.rationales) != NUM_CHOICES:
        raise ValueError(f"annot_id {prediction.annot_id}: expected 4 answers and 4x4 rationales")
    rationales = [score for row in prediction.rationales for score in row]
    if len(rationales) != len(RATIONALE_COLUMNS):
        raise ValueError(f"annot_id {prediction.annot_id}: expected 4 rationales per answer")
    return [prediction.annot_id, *(repr(float(s)) for s in (*prediction.answers, *rationales))]


def write_vcr_predictions(
    path: str | os.PathLike[str], predictions: Iterable[VCRPrediction]
) -> None:
    """Write the leaderboard CSV (atomically: all or nothing)."""
    with atomic_write(path) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for prediction in predictions:
            writer.writerow(prediction_row(prediction))


def _score(path: Path, line: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(path, f"line {line}, {column}: {text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise DataError(path, f"line {line}, {column}: {text[:40]!r} is not a finite number")
    return value


def _header_columns(path: Path, header: list[str]) -> dict[str, int]:
    """Where each leaderboard column is (other columns are ignored, as the evaluator does)."""
    where = {}
    for at, name in enumerate(header):
        if name in where:
            raise DataError(path, f"line 1: column {name!r} appears twice")
        where[name] = at
    missing = [name for name in CSV_COLUMNS if name not in where]
    if missing:
        raise DataError(
            path,
            f"line 1: missing column {missing[0]!r} (expected {CSV_COLUMNS[0]},"
            f" {ANSWER_COLUMNS[0]}..., the leaderboard header)",
        )
    return {name: where[name] for name in CSV_COLUMNS}


def _parse_row(path: Path, line: int, row: list[str], where: dict[str, int]) -> VCRPrediction:
    annot_id = row[where["annot_id"]]
    if not annot_id:
        raise DataError(path, f"line {line}: empty annot_id")

    def scores(columns: Sequence[str]) -> tuple[float, ...]:
        return tuple(_score(path, line, name, row[where[name]]) for name in columns)

    rationales = scores(RATIONALE_COLUMNS)
    return VCRPrediction(
        annot_id=annot_id,
        answers=scores(ANSWER_COLUMNS),
        rationales=tuple(
            rationales[i * NUM_CHOICES : (i + 1) * NUM_CHOICES] for i in range(NUM_CHOICES)
        ),
    )


def read_vcr_predictions(
    path: str | os.PathLike[str], annot_ids: Iterable[str] | None = None
) -> dict[str, VCRPrediction]:
    """The predictions of a leaderboard CSV by ``annot_id`` (in file order).

    Every problem is a one-line :class:`DataError` naming the file and the line: a missing
    column, a row of the wrong length, a score that is not a finite number, an empty or
    repeated ``annot_id``; with ``annot_ids`` (those of the annotations), also an
    ``annot_id`` not among them or one of them without a row.
    """
    path = Path(path)
    text = read_text(path, "a VCR predictions CSV")
    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as err:
        raise DataError(path, f"malformed CSV ({err})") from None
    if not rows:
        raise DataError(path, "empty file, expected the leaderboard CSV header")
    where = _header_columns(path, rows[0])
    predictions: dict[str, VCRPrediction] = {}
    expected = None if annot_ids is None else set(annot_ids)
    for line, row in enumerate(rows[1:], 2):
        if not row:
            continue  # a blank line
        if len(row) != len(rows[0]):
            raise DataError(path, f"line {line}: {len(row)} fields, header has {len(rows[0])}")
        prediction = _parse_row(path, line, row, where)
        if prediction.annot_id in predictions:
            raise DataError(path, f"line {line}: duplicate annot_id {prediction.annot_id}")
        if expected is not None and prediction.annot_id not in expected:
            raise DataError(path, f"line {line}: unknown annot_id {prediction.annot_id}")
        predictions[prediction.annot_id] = prediction
    if expected is not None:
        missing = sorted(expected - predictions.keys())
        if missing:
            raise DataError(
                path, f"no prediction for annot_id {missing[0]} ({len(missing)} missing)"
            )
    return predictions


# ------------------------------------------------------------------------------ scoring
def argmax(scores: Sequence[float]) -> int:
    """Index of the highest score; a tie goes to the lowest index (as ``numpy.argmax``)."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


def answer_right(prediction: VCRPrediction, answer_label: int) -> bool:
    """Q->A: the best-scored answer is the right one."""
    return argmax(prediction.answers) == answer_label


def rationale_right(prediction: VCRPrediction, answer_label: int, rationale_label: int) -> bool:
    """QA->R: given the right answer, the best-scored rationale is the right one."""
    return argmax(prediction.rationales[answer_label]) == rationale_label


def vcr_scores(
    items: Sequence[VCRItem], predictions: Mapping[str, VCRPrediction]
) -> dict[str, float]:
    """``{"q2a", "qa2r", "q2ar"}`` accuracies in percent over the labelled ``items``
    (each needs a prediction; mosaic-leaderboard ``eval.py`` ``score_submission``)."""
    if not items:
        raise ValueError("no items to score")
    q2a = qa2r = q2ar = 0
    for item in items:
        if item.answer_label is None or item.rationale_label is None:
            raise ValueError(f"annot_id {item.annot_id}: no labels to score against")
        prediction = predictions[item.annot_id]
        answer = answer_right(prediction, item.answer_label)
        rationale = rationale_right(prediction, item.answer_label, item.rationale_label)
        q2a += answer
        qa2r += rationale
        q2ar += answer and rationale
    count = len(items)
    return {
        "q2a": PERCENT * q2a / count,
        "qa2r": PERCENT * qa2r / count,
        "q2ar": PERCENT * q2ar / count,
    }
