"""SNLI-VE (visual entailment) in its released format: JSON Lines, one hypothesis per line.

The official files (``snli_ve_{train,dev,test}.jsonl``, necla-ml/SNLI-VE, Xie et al. 2019,
"Visual Entailment: A Novel Task for Fine-Grained Image Understanding") keep SNLI's fields
and add the Flickr30k image that replaces the caption premise. The fields read here:

* ``Flikr30kID`` (the dataset's own spelling, a file name such as ``"2248275918.jpg"``) or
  ``Flickr30K_ID`` / ``Flickr30kID`` (a bare id): the image premise ``{id}.jpg``;
* ``sentence2``: the text hypothesis the model reads;
* ``sentence1``: SNLI's caption premise (kept, not used by the model: the image replaces it);
* ``gold_label``: ``entailment``, ``neutral`` or ``contradiction``; SNLI marks pairs whose
  annotators reached no majority ``"-"``; those lines are skipped and counted
  (:attr:`SNLIVESplit.skipped`), as the official loaders skip them;
* ``pairID`` (unique per line, e.g. ``"2248275918.jpg#1r1e"``) and ``captionID``.

Label ids are fixed: ``entailment`` 0, ``neutral`` 1, ``contradiction`` 2 (:data:`LABELS`).

Predictions are JSON Lines too, ``{"pairID": ..., "gold_label": <predicted label>}`` per
pair (the annotation format with only the fields a score needs); :func:`accuracy` scores
them against the gold labels.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envs.errors import DataError
from envs.fileio import atomic_write, parse_json, read_text

#: The three labels in id order (id = index).
LABELS = ("entailment", "neutral", "contradiction")
#: Label name -> id.
LABEL_IDS = {label: index for index, label in enumerate(LABELS)}
#: ``gold_label`` of pairs whose annotators reached no majority (skipped, counted).
NO_CONSENSUS = "-"
#: Fields that may name the image, the dataset's own misspelling first.
IMAGE_ID_FIELDS = ("Flikr30kID", "Flickr30K_ID", "Flickr30kID")
#: The field :func:`write_snli_ve` writes the image in (as the released files do).
WRITTEN_IMAGE_FIELD = "Flikr30kID"
#: Flickr30k images are JPEG files named by their id.
IMAGE_SUFFIX = ".jpg"
#: Text fields every labelled line must have.
TEXT_FIELDS = ("pairID", "captionID", "sentence1", "sentence2")


@dataclass(frozen=True)
class SNLIVEExample:
    """One labelled image-hypothesis pair."""

    #: ``pairID``: unique per pair.
    pair_id: str
    #: The Flickr30k image id (``Flikr30kID`` without ``.jpg``).
    image_id: str
    #: ``sentence2``: the text hypothesis.
    hypothesis: str
    #: ``sentence1``: SNLI's caption premise (not used by the model).
    premise: str
    #: ``gold_label``: one of :data:`LABELS`.
    label: str
    #: ``captionID``: the Flickr30k caption the premise came from.
    caption_id: str

    @property
    def label_id(self) -> int:
        """The label's id (:data:`LABELS` order)."""
        return LABEL_IDS[self.label]


@dataclass(frozen=True)
class SNLIVESplit:
    """The labelled pairs of one SNLI-VE file."""

    path: Path
    examples: tuple[SNLIVEExample, ...]
    #: Lines skipped for ``gold_label == "-"`` (no annotator majority).
    skipped: int


def _numbered_records(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, JSON value)`` of each non-blank line (errors name the line).

    Lines end at ``"\n"`` only, as JSON Lines defines them (``str.splitlines`` would also
    split inside strings holding U+0085, U+2028 and the like, which JSON leaves raw).
    """
    for number, line in enumerate(read_text(path, "a JSON Lines file").split("\n"), 1):
        if not line.strip():
            continue
        try:
            yield number, parse_json(line, path)
        except DataError as err:
            problem = err.problem.removeprefix("line 1, ")
            raise DataError(path, f"line {number}, {problem}") from None


def _where(number: int, record: Mapping[str, Any]) -> str:
    pair_id = record.get("pairID")
    return f"line {number} (pairID {pair_id})" if isinstance(pair_id, str) else f"line {number}"


def _text(path: Path, where: str, record: Mapping[str, Any], field: str) -> str:
    if field not in record:
        raise DataError(path, f"{where}: missing field {field!r}")
    value = record[field]
    if not isinstance(value, str):
        raise DataError(path, f"{where}: {field} is {type(value).__name__}, expected a string")
    return value


def _image_id(path: Path, where: str, record: Mapping[str, Any]) -> str:
    field = next((name for name in IMAGE_ID_FIELDS if name in record), None)
    if field is None:
        raise DataError(path, f"{where}: missing field {IMAGE_ID_FIELDS[0]!r} (or Flickr30K_ID)")
    value = record[field]
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(path, f"{where}: {field} is {type(value).__name__}, expected a string")
    image_id = value.removesuffix(IMAGE_SUFFIX)
    if not image_id or "/" in image_id or image_id in (".", ".."):
        raise DataError(path, f"{where}: {field} {value!r} is not a Flickr30k image id")
    return image_id


def _claim(path: Path, where: str, pair_id: str, number: int, first_line: dict[str, int]) -> None:
    """Record that ``pair_id`` is on line ``number``; a pairID seen before is an error."""
    if pair_id in first_line:
        raise DataError(path, f"{where}: duplicate pairID (first on line {first_line[pair_id]})")
    first_line[pair_id] = number


def _label(path: Path, where: str, record: Mapping[str, Any]) -> str:
    label = _text(path, where, record, "gold_label")
    if label != NO_CONSENSUS and label not in LABEL_IDS:
        raise DataError(
            path,
            f"{where}: unknown gold_label {label!r} (expected {', '.join(LABELS)}, "
            f"or {NO_CONSENSUS!r} for no consensus)",
        )
    return label


def load_snli_ve(path: str | os.PathLike[str]) -> SNLIVESplit:
    """The labelled pairs of an SNLI-VE JSON Lines file, in file order.

    Raises:
        DataError: naming the file and the line (and pairID) of a malformed line, a line that
            is not an object, a missing or non-string field, an unknown label or a pairID
            seen before.
    """
    path = Path(path)
    examples: list[SNLIVEExample] = []
    first_line: dict[str, int] = {}
    skipped = 0
    for number, record in _numbered_records(path):
        if not isinstance(record, dict):
            raise DataError(path, f"line {number}: expected a JSON object")
        where = _where(number, record)
        label = _label(path, where, record)
        pair_id = _text(path, where, record, "pairID")
        _claim(path, where, pair_id, number, first_line)
        if label == NO_CONSENSUS:
            skipped += 1
            continue
        caption_id, premise, hypothesis = (
            _text(path, where, record, field) for field in TEXT_FIELDS[1:]
        )
        image_id = _image_id(path, where, record)
        examples.append(SNLIVEExample(pair_id, image_id, hypothesis, premise, label, caption_id))
    return SNLIVESplit(path, tuple(examples), skipped)


def image_path(image_dir: str | os.PathLike[str], image_id: str) -> Path:
    """Where a Flickr30k image lives: ``image_dir / f"{image_id}.jpg"``."""
    return Path(image_dir) / f"{image_id}{IMAGE_SUFFIX}"


def check_images(image_dir: str | os.PathLike[str], examples: Iterable[SNLIVEExample]) -> None:
    """Fail fast when an example's image is not a file; the error names the first one
    missing and its pairID."""
    seen: set[str] = set()
    for example in examples:
        if example.image_id in seen:
            continue
        seen.add(example.image_id)
        path = image_path(image_dir, example.image_id)
        if not path.is_file():
            raise DataError(path, f"image of pairID {example.pair_id} not found")


def example_record(example: SNLIVEExample) -> dict[str, str]:
    """One released-format line of ``example`` (the image as ``Flikr30kID: "{id}.jpg"``)."""
    return {
        "pairID": example.pair_id,
        WRITTEN_IMAGE_FIELD: f"{example.image_id}{IMAGE_SUFFIX}",
        "captionID": example.caption_id,
        "sentence1": example.premise,
        "sentence2": example.hypothesis,
        "gold_label": example.label,
    }


def _write_lines(path: str | os.PathLike[str], records: Iterable[Mapping[str, str]]) -> None:
    with atomic_write(path) as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False))
            f.write("\n")


def write_snli_ve(path: str | os.PathLike[str], examples: Iterable[SNLIVEExample]) -> None:
    """Write ``examples`` as an SNLI-VE JSON Lines file (atomically) that
    :func:`load_snli_ve` reads back equal."""
    _write_lines(path, (example_record(example) for example in examples))


def write_predictions(path: str | os.PathLike[str], predictions: Mapping[str, str]) -> None:
    """Write ``{pairID: predicted label}`` as JSON Lines ``{"pairID", "gold_label"}``."""
    for pair_id, label in predictions.items():
        if label not in LABEL_IDS:
            raise ValueError(f"prediction for pairID {pair_id} is {label!r}, not one of {LABELS}")
    _write_lines(
        path, ({"pairID": pair_id, "gold_label": label} for pair_id, label in predictions.items())
    )


def read_predictions(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{pairID: predicted label}`` of a predictions file (one-line errors as
    :func:`load_snli_ve`'s; ``"-"`` is not a prediction)."""
    path = Path(path)
    predictions: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, record in _numbered_records(path):
        if not isinstance(record, dict):
            raise DataError(path, f"line {number}: expected a JSON object")
        where = _where(number, record)
        pair_id = _text(path, where, record, "pairID")
        label = _text(path, where, record, "gold_label")
        if label not in LABEL_IDS:
            raise DataError(
                path, f"{where}: unknown predicted label {label!r} (expected {', '.join(LABELS)})"
            )
        _claim(path, where, pair_id, number, first_line)
        predictions[pair_id] = label
    return predictions


def accuracy(examples: Iterable[SNLIVEExample], predictions: Mapping[str, str]) -> float:
    """Fraction of ``examples`` whose predicted label (by pairID) is the gold label, SNLI-VE's
    metric. A pair with no prediction counts as wrong; predictions of other pairs are ignored.

    Raises:
        ValueError: no examples.
    """
    gold = [(example.pair_id, example.label) for example in examples]
    if not gold:
        raise ValueError("accuracy of no examples")
    correct = sum(predictions.get(pair_id) == label for pair_id, label in gold)
    return correct / len(gold)
