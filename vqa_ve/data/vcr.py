"""VCR (Visual Commonsense Reasoning, Zellers et al. 2019) in its release format, read and written.

The release (``vcr1annots.zip`` + ``vcr1images.zip``, README "VCR v1.0", Dec 2018)::

    vcr1/train.jsonl, val.jsonl, test.jsonl     one JSON object per line (labels absent in test)
    vcr1/vcr1images/{movie}/{image}.jpg          ``img_fn`` is relative to vcr1images/
    vcr1/vcr1images/{movie}/{image}.json         ``metadata_fn`` (boxes, segms, width, height)

A record holds ``annot_id``, ``img_fn``, ``metadata_fn``, ``objects`` (detected category
names), ``question``, four ``answer_choices`` and four ``rationale_choices`` (each a token
list), ``answer_label`` and ``rationale_label`` (0..3). A token is a string or a list of
0-based indices into ``objects``: ``["Is", [0], "happy", "?"]``. Other release fields
(``movie``, ``img_id``, ...) are ignored by the reader and not written.

The two sub-tasks follow rowanz/r2c ``dataloaders/vcr.py``: Q->A asks the question with the
four answers (label ``answer_label``); QA->R appends the right answer to the question and
offers the four rationales (label ``rationale_label``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn, Union

from envs.errors import DataError
from envs.fileio import atomic_write, read_json, read_jsonl, write_json

#: Choices per question (answers and rationales alike).
NUM_CHOICES = 4
#: Numbers per box: ``[x1, y1, x2, y2, score]`` (Detectron format).
BOX_FIELDS = 5
#: The folder of images and metadata files in the release, beside the ``.jsonl`` files.
IMAGES_DIR = "vcr1images"
#: The labels (absent in the test split).
LABEL_FIELDS = ("answer_label", "rationale_label")
#: Word between object tags of one token list (the README reads ``[0, 1]`` as "0 and 1").
TAG_JOINER = " and "
#: Tokens written without a space before them when a token list is rendered.
CLOSING_PUNCTUATION = frozenset({".", ",", "?", "!", ";", ":", "'s", "n't", "'re", "'m", "'ll"})

#: A word, or the indices of the objects a token names.
Token = Union[str, tuple[int, ...]]  # noqa: UP007 (a runtime alias; py310 has no `type`)
Tokens = tuple[Token, ...]


@dataclass(frozen=True)
class VCRItem:
    """One question with its answer and rationale choices (one line of ``{split}.jsonl``)."""

    annot_id: str
    img_fn: str  # relative to the images root (vcr1images/)
    metadata_fn: str  # relative to the images root
    objects: tuple[str, ...]  # category of each detected object, e.g. ("person", "horse")
    question: Tokens
    answer_choices: tuple[Tokens, ...]  # NUM_CHOICES of them
    rationale_choices: tuple[Tokens, ...]  # NUM_CHOICES of them
    answer_label: int | None = None  # None in the test split
    rationale_label: int | None = None


@dataclass(frozen=True)
class VCRMetadata:
    """The detections of one image (its ``metadata_fn`` JSON)."""

    boxes: tuple[tuple[float, float, float, float, float], ...]  # [x1, y1, x2, y2, score]
    segms: tuple[tuple[tuple[tuple[float, float], ...], ...], ...]  # object -> polygons -> [x,y]
    width: int
    height: int


@dataclass(frozen=True)
class VCRMultipleChoice:
    """One sub-task example: a context, four choices, the right one (None when unlabelled)."""

    annot_id: str
    task: str  # "q2a" or "qa2r"
    context: Tokens  # the question (Q->A) or the question + an answer (QA->R)
    choices: tuple[Tokens, ...]
    label: int | None
    objects: tuple[str, ...]
    img_fn: str
    metadata_fn: str


# ------------------------------------------------------------------------------ reading
class _Record:
    """Checks on one JSON record; every problem names the file, the line and the annot_id."""

    def __init__(self, path: Path, line: int, record: Any) -> None:
        self.path, self.where = path, f"record {line}"
        if not isinstance(record, dict):
            self.fail(f"expected a JSON object, got {type(record).__name__}")
        self.record = record
        annot_id = record.get("annot_id")
        if not isinstance(annot_id, str) or not annot_id:
            self.fail("annot_id: expected a non-empty string")
        self.where = f"record {line}, annot_id {annot_id}"

    def fail(self, problem: str) -> NoReturn:
        raise DataError(self.path, f"{self.where}: {problem}")

    def field(self, name: str) -> Any:
        if name not in self.record:
            self.fail(f"missing field {name!r}")
        return self.record[name]

    def text(self, name: str) -> str:
        value = self.field(name)
        if not isinstance(value, str) or not value:
            self.fail(f"{name}: expected a non-empty string")
        return value

    def relative_path(self, name: str) -> str:
        value = self.text(name)
        parts = PurePosixPath(value).parts
        if value.startswith(("/", "\\")) or ".." in parts or "\x00" in value:
            self.fail(f"{name} {value!r}: expected a path inside the images folder")
        return value

    def label(self, name: str) -> int:
        value = self.field(name)
        if type(value) is not int or not 0 <= value < NUM_CHOICES:
            self.fail(f"{name} {value!r}: expected an integer 0..{NUM_CHOICES - 1}")
        return value

    def tokens(self, name: str, value: Any, num_objects: int) -> Tokens:
        if not isinstance(value, list):
            self.fail(f"{name}: expected a list of tokens")
        out: list[Token] = []
        for at, token in enumerate(value):
            if isinstance(token, str):
                out.append(token)
                continue
            if not isinstance(token, list) or not token:
                self.fail(f"{name} token {at}: expected a string or a list of object indices")
            for index in token:
                if type(index) is not int or not 0 <= index < num_objects:
                    self.fail(
                        f"{name} token {at}: object index {index!r} out of range "
                        f"(the item has {num_objects} objects)"
                    )
            out.append(tuple(token))
        return tuple(out)

    def choices(self, name: str, num_objects: int) -> tuple[Tokens, ...]:
        value = self.field(name)
        if not isinstance(value, list) or len(value) != NUM_CHOICES:
            count = len(value) if isinstance(value, list) else type(value).__name__
            self.fail(f"{name}: expected {NUM_CHOICES} choices, got {count}")
        return tuple(
            self.tokens(f"{name}[{i}]", choice, num_objects) for i, choice in enumerate(value)
        )

    def item(self, require_labels: bool) -> VCRItem:
        objects = self.field("objects")
        if not isinstance(objects, list) or not all(isinstance(o, str) and o for o in objects):
            self.fail("objects: expected a list of category names")
        labels = [name in self.record for name in LABEL_FIELDS]
        if any(labels) and not all(labels):
            self.fail("expected both answer_label and rationale_label, or neither (test)")
        if require_labels and not all(labels):
            self.fail("no answer_label / rationale_label (a test split cannot be scored)")
        return VCRItem(
            annot_id=self.record["annot_id"],
            img_fn=self.relative_path("img_fn"),
            metadata_fn=self.relative_path("metadata_fn"),
            objects=tuple(objects),
            question=self.tokens("question", self.field("question"), len(objects)),
            answer_choices=self.choices("answer_choices", len(objects)),
            rationale_choices=self.choices("rationale_choices", len(objects)),
            answer_label=self.label("answer_label") if all(labels) else None,
            rationale_label=self.label("rationale_label") if all(labels) else None,
        )


def load_vcr(
    path: str | os.PathLike[str],
    images_root: str | os.PathLike[str] | None = None,
    require_labels: bool = False,
    check_metadata: bool = False,
) -> tuple[VCRItem, ...]:
    """The items of a VCR ``{split}.jsonl``, checked; a one-line :class:`DataError` otherwise.

    Args:
        path: the annotation file (``train.jsonl``, ``val.jsonl`` or ``test.jsonl``).
        images_root: when given, ``img_fn`` and ``metadata_fn`` must exist under it.
        require_labels: refuse items without labels (scoring needs them).
        check_metadata: also read every metadata file (needs ``images_root``) and check
            it has one box per object (:func:`load_item_metadata`).
    """
    path = Path(path)
    items = []
    seen: set[str] = set()
    for line, record in enumerate(read_jsonl(path), 1):
        item = _Record(path, line, record).item(require_labels)
        if item.annot_id in seen:
            raise DataError(path, f"record {line}: duplicate annot_id {item.annot_id}")
        seen.add(item.annot_id)
        items.append(item)
    if not items:
        raise DataError(path, "no annotations (expected one JSON object per line)")
    if images_root is not None:
        for item in items:
            _check_files(path, Path(images_root), item)
            if check_metadata:
                load_item_metadata(item, images_root)
    return tuple(items)


def _check_files(path: Path, images_root: Path, item: VCRItem) -> None:
    for name, relative in (("img_fn", item.img_fn), ("metadata_fn", item.metadata_fn)):
        if not os.path.isfile(images_root / relative):  # False on any OSError
            raise DataError(
                path, f"annot_id {item.annot_id}: {name} {images_root / relative} not found"
            )


def _number(value: Any) -> bool:
    """A JSON number (not a boolean) that is a finite float."""
    try:
        return type(value) in (int, float) and math.isfinite(value)
    except OverflowError:  # an integer beyond float range
        return False


def load_vcr_metadata(path: str | os.PathLike[str]) -> VCRMetadata:
    """One image's metadata JSON: ``boxes`` ``[[x1, y1, x2, y2, score], ...]`` (Detectron),
    ``segms`` (per object, polygons of ``[x, y]`` points), ``width`` and ``height``."""
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object, got {type(data).__name__}")
    for key in ("boxes", "segms", "width", "height"):
        if key not in data:
            raise DataError(path, f"missing key {key!r}")
    size = {}
    for key in ("width", "height"):
        if type(data[key]) is not int or data[key] <= 0:
            raise DataError(path, f"{key} {data[key]!r}: expected a positive integer")
        size[key] = data[key]
    boxes, segms = data["boxes"], data["segms"]
    if not isinstance(boxes, list) or not isinstance(segms, list) or len(boxes) != len(segms):
        raise DataError(path, "boxes and segms: expected two lists with one entry per object")
    for i, box in enumerate(boxes):
        if not (isinstance(box, list) and len(box) == BOX_FIELDS and all(map(_number, box))):
            raise DataError(path, f"boxes[{i}]: expected [x1, y1, x2, y2, score] numbers")
        if box[2] < box[0] or box[3] < box[1]:
            raise DataError(path, f"boxes[{i}] {box}: expected x1 <= x2 and y1 <= y2")
    return VCRMetadata(
        boxes=tuple(tuple(float(v) for v in box) for box in boxes),  # type: ignore[misc]
        segms=tuple(_polygons(path, i, polygons) for i, polygons in enumerate(segms)),
        width=size["width"],
        height=size["height"],
    )


def _polygons(path: Path, index: int, polygons: Any) -> tuple[tuple[tuple[float, float], ...], ...]:
    if not isinstance(polygons, list):
        raise DataError(path, f"segms[{index}]: expected a list of polygons")
    out = []
    for polygon in polygons:
        if not isinstance(polygon, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(map(_number, p)) for p in polygon
        ):
            raise DataError(path, f"segms[{index}]: expected polygons of [x, y] points")
        out.append(tuple((float(x), float(y)) for x, y in polygon))
    return tuple(out)


def load_item_metadata(item: VCRItem, images_root: str | os.PathLike[str]) -> VCRMetadata:
    """The metadata of ``item`` (``images_root / metadata_fn``), with one box per object."""
    path = Path(images_root) / item.metadata_fn
    metadata = load_vcr_metadata(path)
    if len(metadata.boxes) != len(item.objects):
        raise DataError(
            path,
            f"annot_id {item.annot_id}: {len(metadata.boxes)} boxes for "
            f"{len(item.objects)} objects",
        )
    return metadata


# ------------------------------------------------------------------------------ writing
def _token_json(token: Token) -> str | list[int]:
    return token if isinstance(token, str) else list(token)


def item_record(item: VCRItem) -> dict[str, Any]:
    """``item`` as one release JSON object (labels only when it has them)."""

    def tokens(value: Tokens) -> list[Any]:
        return [_token_json(token) for token in value]

    record: dict[str, Any] = {
        "objects": list(item.objects),
        "img_fn": item.img_fn,
        "metadata_fn": item.metadata_fn,
        "question": tokens(item.question),
        "answer_choices": [tokens(choice) for choice in item.answer_choices],
    }
    if item.answer_label is not None:
        record["answer_label"] = item.answer_label
    record["rationale_choices"] = [tokens(choice) for choice in item.rationale_choices]
    if item.rationale_label is not None:
        record["rationale_label"] = item.rationale_label
    record["annot_id"] = item.annot_id
    return record


def write_vcr(path: str | os.PathLike[str], items: Iterable[VCRItem]) -> None:
    """Write ``items`` as a release ``{split}.jsonl`` (atomically: all or nothing).

    Raises:
        ValueError: an item :func:`load_vcr` would refuse (nothing is written).
    """
    with atomic_write(path) as f:
        for line, item in enumerate(items, 1):
            record = item_record(item)
            try:  # the reader's checks, so that it reads back whatever is written
                _Record(Path(path), line, record).item(require_labels=False)
            except DataError as err:
                raise ValueError(err.problem) from None
            f.write(json.dumps(record) + "\n")


def metadata_record(metadata: VCRMetadata) -> dict[str, Any]:
    """``metadata`` as the release's metadata JSON object."""
    return {
        "boxes": [list(box) for box in metadata.boxes],
        "segms": [[[list(p) for p in polygon] for polygon in obj] for obj in metadata.segms],
        "width": metadata.width,
        "height": metadata.height,
    }


def write_vcr_metadata(path: str | os.PathLike[str], metadata: VCRMetadata) -> None:
    """Write one image's metadata JSON (atomically)."""
    write_json(path, metadata_record(metadata), indent=None)


# ---------------------------------------------------------------------------- rendering
def object_tag(index: int, objects: Sequence[str]) -> str:
    """How object ``index`` reads in text: its category and index, ``"person0"``.

    r2c swaps people for gender-neutral names numbered after its box selection, and VL-BERT
    keeps the category; category + index keeps r2c's point (two people stay apart) while
    naming the box the tag points at, the same in every choice of an item.
    """
    return f"{objects[index]}{index}"


def render_tokens(tokens: Tokens, objects: Sequence[str]) -> str:
    """A token list as text for a text encoder: ``["Is", (0, 1), "happy", "?"]`` ->
    ``"Is person0 and person1 happy?"`` (tags by :func:`object_tag`, joined by "and" as in
    the release README; :data:`CLOSING_PUNCTUATION` attaches to the word before it)."""
    text = ""
    for token in tokens:
        word = (
            token
            if isinstance(token, str)
            else TAG_JOINER.join(object_tag(i, objects) for i in token)
        )
        glue = "" if not text or word in CLOSING_PUNCTUATION else " "
        text += glue + word
    return text


# ---------------------------------------------------------------------------- sub-tasks
def q2a_example(item: VCRItem) -> VCRMultipleChoice:
    """Q->A: the question and the four answers; the label is ``answer_label``."""
    return _example(item, "q2a", item.question, item.answer_choices, item.answer_label)


def qa2r_example(item: VCRItem, answer: int | None = None) -> VCRMultipleChoice:
    """QA->R: the question with an answer appended (r2c: the right one; ``answer`` picks
    another, as the leaderboard asks for rationales conditioned on each) and the four
    rationales; the label is ``rationale_label``."""
    if answer is None:
        answer = item.answer_label
    if answer is None or not 0 <= answer < NUM_CHOICES:
        raise ValueError(f"annot_id {item.annot_id}: QA->R needs an answer 0..3, got {answer}")
    context = item.question + item.answer_choices[answer]
    return _example(item, "qa2r", context, item.rationale_choices, item.rationale_label)


def _example(
    item: VCRItem, task: str, context: Tokens, choices: tuple[Tokens, ...], label: int | None
) -> VCRMultipleChoice:
    return VCRMultipleChoice(
        annot_id=item.annot_id,
        task=task,
        context=context,
        choices=choices,
        label=label,
        objects=item.objects,
        img_fn=item.img_fn,
        metadata_fn=item.metadata_fn,
    )


def q2a_examples(items: Iterable[VCRItem]) -> list[VCRMultipleChoice]:
    """One Q->A example per item."""
    return [q2a_example(item) for item in items]


def qa2r_examples(items: Iterable[VCRItem]) -> list[VCRMultipleChoice]:
    """One QA->R example per (labelled) item, conditioned on the right answer (r2c)."""
    return [qa2r_example(item) for item in items]
