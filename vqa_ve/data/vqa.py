"""VQA v1/v2 files in their official layout: questions, annotations, images, results.

Formats (https://visualqa.org/download.html, read by GT-Vision-Lab/VQA's
``PythonHelperTools/vqaTools/vqa.py``):

- questions ``{"info", "task_type", "data_type", "data_subtype", "license",
  "questions": [{"image_id", "question", "question_id"}]}``;
- annotations ``{"info", "data_type", "data_subtype", "license", "annotations":
  [{"question_id", "image_id", "question_type", "answer_type", "multiple_choice_answer",
  "answers": [10 x {"answer", "answer_confidence", "answer_id"}]}]}`` (none for test);
- images ``COCO_{subtype}_{image_id:012d}.jpg`` (test-dev questions use the test images);
- results ``[{"question_id", "answer"}]``, one per question of the split.

Exactly :data:`ANSWERS_PER_QUESTION` answers are required: every official train/val
question has ten, and the accuracy's leave-one-out mean of ``min(1, matches / 3)`` is
calibrated to ten humans. The training answer vocabulary and its soft targets follow
the standard recipe (bottom-up top-down, LXMERT, CLIP-ViL): :class:`AnswerVocabulary`,
:func:`soft_scores`.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from envs.errors import DataError
from envs.fileio import read_json, write_json
from vqa_ve.metrics.vqa import MATCHES_FOR_FULL_CREDIT, normalize_answer

#: Human answers per question in VQA v1/v2.
ANSWERS_PER_QUESTION = 10
#: Header keys of a questions file, in the official order.
QUESTION_HEADER_KEYS = ("info", "task_type", "data_type", "data_subtype", "license")
#: Header keys of an annotations file (no ``task_type``).
ANNOTATION_HEADER_KEYS = ("info", "data_type", "data_subtype", "license")
#: Question subsets whose images live under another subset's name.
IMAGE_SUBTYPE = {"test-dev2015": "test2015"}
#: ``str`` or ``dict`` for each header key.
_HEADER_TYPES = {"info": dict, "license": dict}

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class VQAQuestion:
    """One entry of ``questions``."""

    image_id: int
    question: str
    question_id: int


@dataclass(frozen=True)
class VQAAnswer:
    """One human answer (``answer_confidence`` is "yes", "maybe" or "no")."""

    answer: str
    answer_confidence: str
    answer_id: int


@dataclass(frozen=True)
class VQAAnnotation:
    """One entry of ``annotations``: the question's type, its answer type and ten answers."""

    question_id: int
    image_id: int
    question_type: str
    answer_type: str
    multiple_choice_answer: str
    answers: tuple[VQAAnswer, ...]


@dataclass(frozen=True)
class VQAQuestionFile:
    """A questions file: its header as read (``info``/``license`` are free-form dicts)."""

    info: dict[str, Any]
    task_type: str
    data_type: str
    data_subtype: str
    license: dict[str, Any]
    questions: tuple[VQAQuestion, ...]


@dataclass(frozen=True)
class VQAAnnotationFile:
    """An annotations file."""

    info: dict[str, Any]
    data_type: str
    data_subtype: str
    license: dict[str, Any]
    annotations: tuple[VQAAnnotation, ...]


@dataclass(frozen=True)
class VQAExample:
    """A question joined with its annotation (``None`` on the test split)."""

    question: VQAQuestion
    annotation: VQAAnnotation | None


#: Fields of each record, with their JSON types (checked exactly: a bool is not an integer).
QUESTION_FIELDS = (("image_id", int), ("question", str), ("question_id", int))
ANNOTATION_FIELDS = (("question_id", int), ("image_id", int), ("question_type", str))
ANNOTATION_FIELDS += (("answer_type", str), ("multiple_choice_answer", str))
ANSWER_FIELDS = (("answer", str), ("answer_confidence", str), ("answer_id", int))
RESULT_FIELDS = (("question_id", int), ("answer", str))
_TYPE_NAMES = {int: "an integer", str: "a string", dict: "an object", list: "a list"}
_MISSING = object()


def _fields(
    record: Any, fields: Sequence[tuple[str, type]], path: PathLike, where: str
) -> dict[str, Any]:
    """The ``fields`` of a JSON object, each of its exact JSON type, else a :class:`DataError`."""
    if type(record) is not dict:
        raise DataError(path, f"{where}: expected an object, got {type(record).__name__}")
    values = {}
    for key, kind in fields:
        value = record.get(key, _MISSING)
        if type(value) is not kind:
            if value is _MISSING:
                raise DataError(path, f"{where}: missing {key!r}")
            got = f"{value!r:.60}"
            raise DataError(path, f"{where}: {key!r} must be {_TYPE_NAMES[kind]}, got {got}")
        values[key] = value
    return values


def _field(record: Any, key: str, kind: type, path: PathLike, where: str) -> Any:
    """``record[key]``, checked to be a ``kind``."""
    return _fields(record, ((key, kind),), path, where)[key]


def _where(record: Any, list_name: str, position: int) -> str:
    """``question_id 42`` when the record has a usable id, else ``questions[3]``."""
    qid = record.get("question_id") if isinstance(record, dict) else None
    return f"question_id {qid}" if type(qid) is int else f"{list_name}[{position}]"


def _header(data: Any, keys: Sequence[str], list_name: str, path: PathLike) -> dict[str, Any]:
    """The header fields of a file (its record list checked to be a list, then left out)."""
    fields = [(key, _HEADER_TYPES.get(key, str)) for key in keys]
    values = _fields(data, [*fields, (list_name, list)], path, "top level")
    del values[list_name]
    return values


def _unique(ids: Iterable[int], path: PathLike, what: str) -> None:
    seen: set[int] = set()
    for qid in ids:
        if qid in seen:
            raise DataError(path, f"question_id {qid}: appears twice in {what}")
        seen.add(qid)


def load_vqa_questions(path: PathLike) -> VQAQuestionFile:
    """Read an official questions file (any split, test included)."""
    data = read_json(path)
    header = _header(data, QUESTION_HEADER_KEYS, "questions", path)
    questions = []
    for position, record in enumerate(data["questions"]):
        where = _where(record, "questions", position)
        questions.append(VQAQuestion(**_fields(record, QUESTION_FIELDS, path, where)))
    _unique((q.question_id for q in questions), path, "questions")
    return VQAQuestionFile(**header, questions=tuple(questions))


def _answers(record: dict[str, Any], path: PathLike, where: str) -> tuple[VQAAnswer, ...]:
    raw = _field(record, "answers", list, path, where)
    if len(raw) != ANSWERS_PER_QUESTION:
        raise DataError(path, f"{where}: {len(raw)} answers, expected {ANSWERS_PER_QUESTION}")
    answers = tuple(
        VQAAnswer(**_fields(item, ANSWER_FIELDS, path, f"{where} answers[{i}]"))
        for i, item in enumerate(raw)
    )
    if len({a.answer_id for a in answers}) != len(answers):
        raise DataError(path, f"{where}: two answers share an answer_id")
    return answers


def load_vqa_annotations(path: PathLike) -> VQAAnnotationFile:
    """Read an official annotations file (ten answers per question)."""
    data = read_json(path)
    header = _header(data, ANNOTATION_HEADER_KEYS, "annotations", path)
    annotations = []
    for position, record in enumerate(data["annotations"]):
        where = _where(record, "annotations", position)
        fields = _fields(record, ANNOTATION_FIELDS, path, where)
        annotations.append(VQAAnnotation(**fields, answers=_answers(record, path, where)))
    _unique((a.question_id for a in annotations), path, "annotations")
    return VQAAnnotationFile(**header, annotations=tuple(annotations))


def join_vqa(
    questions: VQAQuestionFile,
    annotations: VQAAnnotationFile | None,
    annotations_path: PathLike = "annotations",
) -> tuple[VQAExample, ...]:
    """Pair every question with its annotation by question_id (in question order).

    With annotations, each question needs exactly one, on the same image and subset;
    without (the test split), every annotation is ``None``.
    """
    if annotations is None:
        return tuple(VQAExample(question, None) for question in questions.questions)
    path = annotations_path
    if annotations.data_subtype != questions.data_subtype:
        raise DataError(
            path,
            f"data_subtype {annotations.data_subtype!r} differs from the questions' "
            f"{questions.data_subtype!r}",
        )
    by_id = {annotation.question_id: annotation for annotation in annotations.annotations}
    asked = {question.question_id for question in questions.questions}
    for annotation in annotations.annotations:
        if annotation.question_id not in asked:
            raise DataError(path, f"question_id {annotation.question_id}: not in the questions")
    examples = []
    for question in questions.questions:
        annotation = by_id.get(question.question_id)
        if annotation is None:
            raise DataError(path, f"question_id {question.question_id}: no annotation")
        if annotation.image_id != question.image_id:
            raise DataError(
                path,
                f"question_id {question.question_id}: image_id {annotation.image_id} differs "
                f"from the question's {question.image_id}",
            )
        examples.append(VQAExample(question, annotation))
    return tuple(examples)


def load_vqa(
    questions_path: PathLike, annotations_path: PathLike | None = None
) -> tuple[VQAExample, ...]:
    """Read and join a split (no annotations: the test split)."""
    questions = load_vqa_questions(questions_path)
    if annotations_path is None:
        return join_vqa(questions, None)
    return join_vqa(questions, load_vqa_annotations(annotations_path), annotations_path)


def vqa_image_path(
    image_dir: PathLike, data_subtype: str, image_id: int, must_exist: bool = False
) -> Path:
    """``image_dir/COCO_{subtype}_{image_id:012d}.jpg`` (test-dev2015 reads test2015).

    Raises:
        DataError: naming the image, when ``must_exist`` and it is not a file.
    """
    subtype = IMAGE_SUBTYPE.get(data_subtype, data_subtype)
    path = Path(image_dir) / f"COCO_{subtype}_{image_id:012d}.jpg"
    if must_exist and not path.is_file():
        raise DataError(path, f"image_id {image_id}: image file not found")
    return path


def _header_dict(file: VQAQuestionFile | VQAAnnotationFile, keys: Sequence[str]) -> dict:
    return {key: getattr(file, key) for key in keys}


def write_vqa_questions(path: PathLike, file: VQAQuestionFile) -> None:
    """Write a questions file in the official layout (atomically, compact like the originals)."""
    data = _header_dict(file, QUESTION_HEADER_KEYS)
    data["questions"] = [asdict(question) for question in file.questions]
    write_json(path, data, indent=None)


def write_vqa_annotations(path: PathLike, file: VQAAnnotationFile) -> None:
    """Write an annotations file in the official layout (atomically)."""
    data = _header_dict(file, ANNOTATION_HEADER_KEYS)
    data["annotations"] = [asdict(annotation) for annotation in file.annotations]
    write_json(path, data, indent=None)


def write_vqa_results(path: PathLike, answers: Mapping[int, str]) -> None:
    """Write ``[{"question_id", "answer"}]`` (the challenge's results format), in the
    order of ``answers``."""
    results = [{"question_id": qid, "answer": answer} for qid, answer in answers.items()]
    write_json(path, results, indent=None)


def read_vqa_results(path: PathLike, question_ids: Sequence[int]) -> dict[int, str]:
    """Read a results file that answers every one of ``question_ids`` exactly once.

    Stricter than the official ``loadRes`` (which compares sets, so a duplicate silently
    wins): a missing, unknown or repeated question_id is a one-line :class:`DataError`.
    """
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(path, f"expected a list of results, got {type(data).__name__}")
    expected = set(question_ids)
    answers: dict[int, str] = {}
    for position, record in enumerate(data):
        where = _where(record, "results", position)
        qid, answer = _fields(record, RESULT_FIELDS, path, where).values()
        if qid not in expected:
            raise DataError(path, f"question_id {qid}: not a question of the split")
        if qid in answers:
            raise DataError(path, f"question_id {qid}: answered twice")
        answers[qid] = answer
    missing = [qid for qid in question_ids if qid not in answers]
    if missing:
        raise DataError(
            path, f"question_id {missing[0]}: no answer ({len(missing)} questions unanswered)"
        )
    return answers


#: Answers kept: the size of the LXMERT / CLIP-ViL VQA v2 answer table (bottom-up top-down's
#: answers given as ``multiple_choice_answer`` at least 9 times in train + val).
VQA_ANSWER_VOCABULARY_SIZE = 3129
#: Soft score = the exact official credit of the answer: the mean over the leave-one-out
#: subsets of ``min(1, matches / 3)``. With ten answers this is 0, .3, .6, .9, 1 for
#: 0, 1, 2, 3, 4+ matches: bottom-up top-down's ``get_score`` table, which LXMERT and
#: CLIP-ViL train on.
SOFT_SCORE_LEAVE_ONE_OUT = "leave-one-out"
#: Soft score = ``min(1, count / 3)`` (the paper's shorthand for the metric; 1/3, 2/3, 1, 1).
SOFT_SCORE_MIN_COUNT_OVER_3 = "min-count-over-3"
#: Training uses the exact credit: the target then equals what the metric pays for the
#: answer, and it is what the CLIP-ViL / LXMERT recipe trains on. ``min(1, count/3)``
#: overstates answers given by 1-3 humans (by 0.03-0.1).
TRAINING_SOFT_SCORE = SOFT_SCORE_LEAVE_ONE_OUT
#: Version of the vocabulary JSON written by :meth:`AnswerVocabulary.save`.
ANSWER_VOCABULARY_VERSION = 1


def soft_score(count: int, total: int, rule: str = TRAINING_SOFT_SCORE) -> float:
    """Credit in [0, 1] of an answer given by ``count`` of ``total`` humans under ``rule``."""
    full = MATCHES_FOR_FULL_CREDIT
    if rule == SOFT_SCORE_MIN_COUNT_OVER_3:
        return min(1.0, count / full)
    if rule == SOFT_SCORE_LEAVE_ONE_OUT:
        # dropping one of the `count` matching humans leaves count - 1 matches; any other, count
        kept = count * min(1.0, (count - 1) / full) + (total - count) * min(1.0, count / full)
        return kept / total
    raise ValueError(f"unknown soft-score rule {rule!r}")


def soft_scores(annotation: VQAAnnotation, rule: str = TRAINING_SOFT_SCORE) -> dict[str, float]:
    """Normalised answer -> soft score, for every answer some human gave (in first-seen order)."""
    counts = Counter(normalize_answer(answer.answer) for answer in annotation.answers)
    total = len(annotation.answers)
    return {answer: soft_score(count, total, rule) for answer, count in counts.items()}


@dataclass(frozen=True)
class AnswerVocabulary:
    """The classifier's answers (normalised with :func:`normalize_answer`), most frequent first."""

    answers: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {a: i for i, a in enumerate(self.answers)})
        if len(self._index) != len(self.answers):
            raise ValueError("answer vocabulary entries must be unique")

    def __len__(self) -> int:
        return len(self.answers)

    def index(self, answer: str) -> int | None:
        """Class index of ``answer`` (normalised first), or None when it is not kept."""
        return self._index.get(normalize_answer(answer))

    def targets(
        self, annotation: VQAAnnotation, rule: str = TRAINING_SOFT_SCORE
    ) -> dict[int, float]:
        """Class index -> soft score for the kept answers of ``annotation`` (others dropped)."""
        scores = soft_scores(annotation, rule)
        return {self._index[a]: s for a, s in scores.items() if a in self._index and s > 0}

    def save(self, path: PathLike) -> None:
        """Write ``{"version", "normalization", "answers"}`` atomically."""
        data = {
            "version": ANSWER_VOCABULARY_VERSION,
            "normalization": "vqaEval processPunctuation + processDigitArticle",
            "answers": list(self.answers),
        }
        write_json(path, data)

    @classmethod
    def load(cls, path: PathLike) -> AnswerVocabulary:
        """Read a file written by :meth:`save`."""
        data = read_json(path)
        answers = _field(data, "answers", list, path, "top level")
        version = _field(data, "version", int, path, "top level")
        if version != ANSWER_VOCABULARY_VERSION:
            raise DataError(path, f"version {version}, expected {ANSWER_VOCABULARY_VERSION}")
        for position, answer in enumerate(answers):
            if not isinstance(answer, str):
                raise DataError(path, f"answers[{position}]: expected a string, got {answer!r:.60}")
        if len(set(answers)) != len(answers):
            raise DataError(path, "answers: an answer appears twice")
        return cls(tuple(answers))


def build_answer_vocabulary(
    annotations: Iterable[VQAAnnotation], size: int = VQA_ANSWER_VOCABULARY_SIZE
) -> AnswerVocabulary:
    """The ``size`` most frequent normalised ``multiple_choice_answer``s of ``annotations``
    (ties broken alphabetically, so the vocabulary does not depend on file order)."""
    counts = Counter(normalize_answer(a.multiple_choice_answer) for a in annotations)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return AnswerVocabulary(tuple(answer for answer, _ in ranked[:size]))
