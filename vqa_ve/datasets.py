"""QA examples from the released files + an image feature file, as model batches.

Data layout under ``--data DIR`` (the released file names, one folder per dataset)::

    DIR/vqa/v2_OpenEnded_mscoco_{train2014,val2014}_questions.json
    DIR/vqa/v2_mscoco_{train2014,val2014}_annotations.json
    DIR/snli_ve/snli_ve_{train,dev,test}.jsonl
    DIR/vcr/{train,val}.jsonl                      (images are not read: features are)

Training reads the ``train`` split (:data:`TRAIN_SPLITS`), evaluation the validation split
(:data:`EVAL_SPLITS`: ``val2014``, ``dev``, ``val``).

Image ids are the keys ``clipvil features --images`` writes (the image file's stem): VQA
``COCO_{subtype}_{image_id:012d}``, SNLI-VE the Flickr30k id, VCR the stem of ``img_fn``.
A grid feature file gives ``[h*w, C]`` image tokens, a pooled one a single ``[1, E]`` token;
several files (one per image folder) are read as one (:class:`FeatureFiles`).

Text: a word vocabulary (:class:`envs.tokenizer.Tokenizer`) built from the training text,
not CLIP's BPE tokenizer: the fusion model learns its own word embedding (CLIP-ViL's V&L
models use their own text embedding too, CLIP supplying the visual side), the vocabulary
is small enough for CPU runs (CLIP's is 49408 rows), and the same text side serves every
visual encoder compared (CLIP, in-domain, random). A sequence is ``<BOS> context <EOS>``
(+ ``choice <EOS>`` for VCR, segment 1); ``<BOS>`` is the pooled [CLS] token.

``fraction`` keeps a seeded random subset of the training examples (the low-shot protocol;
VCR: of the questions, each giving its Q->A and QA->R examples).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import torch

from envs.errors import DataError
from envs.features.provenance import (
    encoder_differences,
    encoder_identity,
    encoder_identity_of_record,
)
from envs.tokenizer import PAD_ID, Tokenizer
from vln_agent.extract_images import ImageFeatures, open_image_features
from vln_agent.provenance import PROVENANCE_KEY
from vqa_ve.data.snli_ve import load_snli_ve
from vqa_ve.data.vcr import (
    NUM_CHOICES,
    VCRItem,
    VCRMultipleChoice,
    load_vcr,
    q2a_example,
    qa2r_example,
    render_tokens,
)
from vqa_ve.data.vqa import (
    AnswerVocabulary,
    join_vqa,
    load_vqa_annotations,
    load_vqa_questions,
    vqa_image_path,
)
from vqa_ve.models.fusion import CHOICE_SEGMENT, TEXT_SEGMENT, QABatch

#: Folder of each task under the data root.
TASK_DIRS = {"vqa": "vqa", "snli-ve": "snli_ve", "vcr": "vcr"}
#: The split trained on and the split evaluated, per task.
TRAIN_SPLITS = {"vqa": "train2014", "snli-ve": "train", "vcr": "train"}
EVAL_SPLITS = {"vqa": "val2014", "snli-ve": "dev", "vcr": "val"}


@dataclass(frozen=True)
class QAExample:
    """One model input: an image, its text sequences and its target."""

    #: question_id (VQA), pairID (SNLI-VE), ``{annot_id}/{q2a|qa2r}`` (VCR).
    key: str
    image_id: str
    #: ``(context, choice)`` per sequence: one with choice "" (VQA, SNLI-VE), four (VCR).
    texts: tuple[tuple[str, str], ...]
    #: Class id (SNLI-VE label, VCR right choice); None for VQA and unlabelled examples.
    label: int | None = None
    #: VQA soft targets: answer index -> score.
    scores: tuple[tuple[int, float], ...] = ()


@dataclass(frozen=True)
class QASplit:
    """One split of a task: its examples and the records the official metric reads
    (VQA ``VQAExample``\\ s, SNLI-VE ``SNLIVEExample``\\ s, VCR ``VCRItem``\\ s)."""

    task: str
    split: str
    path: Path
    records: tuple[Any, ...]
    #: VQA: the questions' ``data_subtype`` (image names); "" otherwise.
    subtype: str = ""

    @property
    def labelled(self) -> bool:
        """Whether the official metric can score this split (SNLI-VE files are labelled)."""
        if self.task == "vqa":
            return all(record.annotation is not None for record in self.records)
        if self.task == "vcr":
            return all(item.answer_label is not None for item in self.records)
        return True


def split_path(task: str, data_dir: str | os.PathLike[str], split: str) -> Path:
    """The file a split is read from (VQA: the questions file)."""
    folder = Path(data_dir) / TASK_DIRS[task]
    if task == "vqa":
        return folder / f"v2_OpenEnded_mscoco_{split}_questions.json"
    if task == "snli-ve":
        return folder / f"snli_ve_{split}.jsonl"
    return folder / f"{split}.jsonl"


def vqa_annotations_path(data_dir: str | os.PathLike[str], split: str) -> Path:
    return Path(data_dir) / TASK_DIRS["vqa"] / f"v2_mscoco_{split}_annotations.json"


def load_split(
    task: str, data_dir: str | os.PathLike[str], split: str, require_labels: bool = True
) -> QASplit:
    """Read a split of ``task`` from the layout above (one-line errors). Without
    ``require_labels``, a VQA split without its annotations file (test) and unlabelled VCR
    items are read too (predictions only: see :attr:`QASplit.labelled`)."""
    path = split_path(task, data_dir, split)
    if task == "vqa":
        questions = load_vqa_questions(path)
        annotations_path = vqa_annotations_path(data_dir, split)
        if not require_labels and not annotations_path.exists():
            return QASplit(task, split, path, join_vqa(questions, None), questions.data_subtype)
        annotations = load_vqa_annotations(annotations_path)
        records = join_vqa(questions, annotations, annotations_path)
        return QASplit(task, split, path, records, questions.data_subtype)
    if task == "snli-ve":
        return QASplit(task, split, path, load_snli_ve(path).examples)
    return QASplit(task, split, path, load_vcr(path, require_labels=require_labels))


def subset(records: Sequence[Any], fraction: float, seed: int) -> tuple[Any, ...]:
    """A seeded random ``fraction`` of ``records`` (at least one), in their order."""
    if fraction >= 1.0:
        return tuple(records)
    count = max(1, round(len(records) * fraction))
    kept = sorted(random.Random(seed).sample(range(len(records)), count))
    return tuple(records[i] for i in kept)


def vcr_image_id(img_fn: str) -> str:
    """The feature key of a VCR image: the stem of ``img_fn``."""
    return PurePosixPath(img_fn).stem


def multiple_choice_example(example: VCRMultipleChoice) -> QAExample:
    """A VCR sub-task example as four (context, choice) texts."""
    context = render_tokens(example.context, example.objects)
    texts = tuple((context, render_tokens(c, example.objects)) for c in example.choices)
    key = f"{example.annot_id}/{example.task}"
    return QAExample(key, vcr_image_id(example.img_fn), texts, example.label)


def vcr_eval_examples(item: VCRItem) -> list[QAExample]:
    """Q->A, then QA->R conditioned on each of the four answers (the leaderboard's 4x4)."""
    examples = [multiple_choice_example(q2a_example(item))]
    examples += [multiple_choice_example(qa2r_example(item, a)) for a in range(NUM_CHOICES)]
    return examples


def training_examples(split: QASplit, answers: AnswerVocabulary | None = None) -> list[QAExample]:
    """The examples a split trains on (VCR: Q->A and QA->R on the right answer)."""
    if split.task == "vqa":
        return [vqa_example(record, split.subtype, answers) for record in split.records]
    if split.task == "snli-ve":
        return [
            QAExample(e.pair_id, e.image_id, ((e.hypothesis, ""),), e.label_id)
            for e in split.records
        ]
    examples = [multiple_choice_example(q2a_example(item)) for item in split.records]
    return examples + [multiple_choice_example(qa2r_example(item)) for item in split.records]


def vqa_example(record: Any, subtype: str, answers: AnswerVocabulary | None) -> QAExample:
    """A joined VQA question (soft targets when ``answers`` and an annotation are given)."""
    question = record.question
    image_id = vqa_image_path("", subtype, question.image_id).stem
    scores: tuple[tuple[int, float], ...] = ()
    if answers is not None and record.annotation is not None:
        scores = tuple(sorted(answers.targets(record.annotation).items()))
    return QAExample(str(question.question_id), image_id, ((question.question, ""),), None, scores)


def evaluation_examples(split: QASplit) -> list[QAExample]:
    """What a model is run on to predict a split (VCR: Q->A, then QA->R given each answer)."""
    if split.task == "vqa":
        return [vqa_example(record, split.subtype, None) for record in split.records]
    if split.task == "vcr":
        return [e for item in split.records for e in vcr_eval_examples(item)]
    return training_examples(split)


def split_texts(split: QASplit) -> list[str]:
    """Every text of a split's training examples (what the word vocabulary is built from)."""
    return [text for e in training_examples(split) for pair in e.texts for text in pair if text]


class FeatureFiles:
    """Several image feature files read as one: an image id is read from the first file
    holding it. ``clipvil features --images`` encodes one folder, and the released images
    come in several (COCO's ``train2014/`` and ``val2014/``); the files must share their
    layout, token shape and encoder."""

    def __init__(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        if not paths:
            raise ValueError("no feature files")
        self.files = [open_image_features(path) for path in paths]
        first = self.files[0]
        for other in self.files[1:]:
            if other.layout != first.layout or image_shape(other) != image_shape(first):
                raise DataError(
                    other.path,
                    f"{other.layout} features of shape {image_shape(other)} differ from "
                    f"{first.path}'s {first.layout} {image_shape(first)}",
                )
            differences = encoder_differences(
                encoder_identity(other.attrs), encoder_identity(first.attrs)
            )
            if differences:
                shown = ", ".join(f"{key} {a} vs {b}" for key, a, b in differences)
                raise DataError(other.path, f"made by another encoder than {first.path}: {shown}")
        self.path, self.attrs, self.layout = first.path, first.attrs, first.layout
        self.grid_shape, self.feature_dim = first.grid_shape, first.feature_dim

    def __contains__(self, image_id: object) -> bool:
        return any(image_id in features for features in self.files)

    def __getitem__(self, image_id: str) -> np.ndarray:
        """``[h*w, C]`` (grid files) or ``[E]`` (pooled files) of ``image_id``."""
        for features in self.files:
            if image_id in features:
                return features[image_id]
        raise DataError(self.path, f"no features for image {image_id} in {len(self.files)} files")


def image_shape(features: ImageFeatures | FeatureFiles) -> tuple[int, int]:
    """``(tokens, channels)`` of one image: the grid's ``[h*w, C]`` or pooled ``[1, E]``."""
    if features.grid_shape is not None:
        return features.grid_shape
    return 1, features.feature_dim


def image_provenance(features: ImageFeatures | FeatureFiles) -> dict[str, Any]:
    """What a QA checkpoint records of the image features it was trained on (plain values):
    ``layout``, ``shape`` (image tokens, channels) and ``encoder``
    (:func:`envs.features.provenance.encoder_identity` of the file's root attributes)."""
    return {
        "layout": str(features.layout),
        "shape": list(image_shape(features)),
        "encoder": encoder_identity(features.attrs),
    }


def check_image_provenance(
    features: ImageFeatures | FeatureFiles,
    payload: dict[str, Any],
    checkpoint: str | os.PathLike[str],
    *,
    allow_other: bool = False,
) -> str | None:
    """Refuse image features a QA checkpoint cannot read, or that another encoder made.

    The token shape must be the model's; an encoder that differs from the recorded one
    (model, kind, weights, image size: :func:`encoder_differences`) is refused unless
    ``allow_other``, which turns it into the returned one-line warning. A checkpoint that
    records no encoder is checked by shape only.

    Raises:
        DataError: naming the feature file, the checkpoint and the difference.
    """
    config = payload["model_config"]
    expected = (int(config["num_regions"]), int(config["feature_dim"]))
    if image_shape(features) != expected:
        raise DataError(
            features.path,
            f"image tokens of shape {image_shape(features)}, {os.fspath(checkpoint)} was "
            f"trained on {expected}",
        )
    record = (payload.get("extra") or {}).get(PROVENANCE_KEY) or {}
    trained = encoder_identity_of_record(record.get("encoder"))
    differences = encoder_differences(encoder_identity(features.attrs), trained)
    if not differences:
        return None
    shown = ", ".join(f"{key} {a} vs {b}" for key, a, b in differences)
    problem = f"features of another encoder than {os.fspath(checkpoint)} was trained on: {shown}"
    if not allow_other:
        raise DataError(features.path, f"{problem}; pass --allow-other-features if that is meant")
    return f"{features.path}: {problem} (used as asked by --allow-other-features)"


def check_features(
    features: ImageFeatures | FeatureFiles, examples: Sequence[QAExample], source: Path
) -> None:
    """Fail fast (one line) when an example's image has no features in the file."""
    for example in examples:
        if example.image_id not in features:
            files = len(getattr(features, "files", [features]))
            raise DataError(
                features.path,
                f"no features for image {example.image_id} (example {example.key} of "
                f"{source}){f' in any of {files} files' if files > 1 else ''}",
            )


def encode_pair(
    tokenizer: Tokenizer, context: str, choice: str, max_length: int
) -> tuple[list[int], list[int]]:
    """Ids and segments of ``<BOS> context <EOS> [choice <EOS>]``, at most ``max_length``
    (a choice keeps up to half when both must be cut)."""
    first = tokenizer.encode(context, bos=True)
    second = tokenizer.encode(choice) if choice else []
    if len(first) + len(second) > max_length:
        keep_second = min(len(second), max_length // 2)
        first = tokenizer.encode(context, max_length=max_length - keep_second, bos=True)
        second = tokenizer.encode(choice, max_length=keep_second) if keep_second else []
    return first + second, [TEXT_SEGMENT] * len(first) + [CHOICE_SEGMENT] * len(second)


def collate(
    examples: Sequence[QAExample],
    tokenizer: Tokenizer,
    features: ImageFeatures | FeatureFiles,
    max_length: int,
    num_answers: int = 0,
) -> QABatch:
    """A batch: tokens/segments ``[B, L]`` (``[B, 4, L]`` for VCR), image ``[B, R, F]`` and
    the target (soft scores ``[B, A]`` when ``num_answers``, else label ids ``[B]``)."""
    encoded = [[encode_pair(tokenizer, c, x, max_length) for c, x in e.texts] for e in examples]
    choices = len(encoded[0])
    length = max(len(ids) for row in encoded for ids, _ in row)
    tokens = np.full((len(examples), choices, length), PAD_ID, dtype=np.int64)  # [B, C, L]
    segments = np.zeros_like(tokens)  # [B, C, L]
    for b, row in enumerate(encoded):
        for c, (ids, segs) in enumerate(row):
            tokens[b, c, : len(ids)] = ids
            segments[b, c, : len(segs)] = segs
    cells, channels = image_shape(features)
    image = np.stack([features[e.image_id].reshape(cells, channels) for e in examples])
    target: torch.Tensor | None = None
    if num_answers:
        soft = torch.zeros(len(examples), num_answers)  # [B, A]
        for b, example in enumerate(examples):
            for index, score in example.scores:
                soft[b, index] = score
        target = soft
    elif all(e.label is not None for e in examples):
        target = torch.tensor([e.label for e in examples], dtype=torch.long)  # [B]
    token_tensor, segment_tensor = torch.from_numpy(tokens), torch.from_numpy(segments)
    if choices == 1:  # one sequence per example (VQA, SNLI-VE)
        token_tensor, segment_tensor = token_tensor[:, 0], segment_tensor[:, 0]  # [B, L]
    return QABatch(token_tensor, segment_tensor, torch.from_numpy(image), target)


class EpochSampler:
    """Batches of example indices: a fresh seeded permutation every epoch; its state
    (generator, order, position) resumes exactly."""

    def __init__(self, size: int, batch_size: int, seed: int) -> None:
        if size < 1:
            raise ValueError("no training examples")
        self.size, self.batch_size = size, batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.empty(0, dtype=torch.long)
        self.position = 0

    def next_batch(self) -> list[int]:
        batch: list[int] = []
        while len(batch) < self.batch_size:
            if self.position >= len(self.order):
                self.order = torch.randperm(self.size, generator=self.generator)
                self.position = 0
            take = min(self.batch_size - len(batch), len(self.order) - self.position)
            batch += self.order[self.position : self.position + take].tolist()
            self.position += take
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "order": self.order.clone(),
            "position": self.position,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order = state["order"].clone()
        self.position = int(state["position"])
