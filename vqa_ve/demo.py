"""The question-answering part of ``clipvil demo``: the shipped QA models on a synthetic
world's ``val`` split and on its lighting-shifted copy ``val_shift``, beside a blind baseline.

:func:`evaluate_shipped_qa`:

1. extracts the grid features of each image folder those splits read (VQA's ``val2014/`` and
   ``valshift2014/``, SNLI-VE's ``images/``, VCR's ``vcr1images/``) with the demo's CLIP, as
   ``clipvil features --images DIR --grid`` does, unless a finished file made with the same
   weights and holding every image of the folder is already there (a killed extraction is
   resumed);
2. runs each shipped model (:data:`QA_CHECKPOINTS`) on both splits with eval-qa's functions
   and writes what ``clipvil eval-qa`` writes, the official prediction file and
   ``metrics.json``, under ``OUT/<task>/<split>/``;
3. returns one :class:`QARow` per task, split and official metric, beside the blind
   baseline's: the training split's majority answer for every question
   (:func:`vqa_ve.baselines.majority_predictions`), scored by the same official metric.

A task whose shipped checkpoint is missing, or whose model eval-qa would refuse the demo's
features (trained on another token shape or encoder), is named in one line and skipped.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from envs.errors import DataError
from envs.fileio import file_sha256, make_output_dir, write_json
from envs.synthetic.qa.writer import QA_SPLITS, snli_ve_images, vcr_images, vqa_files
from envs.tokenizer import Tokenizer
from vln_agent.encoders import create_encoder_of_kind
from vln_agent.extract_images import (
    GRID_LAYOUT,
    extract_image_features,
    list_images,
    open_image_features,
)
from vqa_ve.baselines import majority_predictions
from vqa_ve.commands.eval_qa import DEFAULT_BATCH_SIZE, METRICS_FILE
from vqa_ve.data.vqa import AnswerVocabulary
from vqa_ve.datasets import (
    TRAIN_SPLITS,
    FeatureFiles,
    QASplit,
    check_features,
    check_image_provenance,
    evaluation_examples,
    load_split,
)
from vqa_ve.models import load_qa_model
from vqa_ve.models.fusion import QAFusionModel
from vqa_ve.training.evaluation import PREDICTION_FILES, predict, score, write_prediction_file

#: The shipped QA models (checkpoints/*.md cards), trained on the ``small`` world's train
#: split with grid features of the shipped small CLIP.
QA_CHECKPOINTS = {
    "vqa": "qa-vqa-small-clip.pt",
    "snli-ve": "qa-snli-ve-small-clip.pt",
    "vcr": "qa-vcr-small-clip.pt",
}
#: The world's QA splits the demo evaluates: held-out houses, then the same views relit.
DEMO_QA_SPLITS = ("val", "val_shift")
TASK_NAMES = {"vqa": "VQA", "snli-ve": "SNLI-VE", "vcr": "VCR"}
METRIC_NAMES = {"accuracy": "accuracy", "q2a": "Q->A", "qa2r": "QA->R", "q2ar": "Q->AR"}
#: Device of the demo's QA evaluation (its features are extracted on the CPU too).
DEVICE = "cpu"
BLIND_NOTE = (
    "blind: the train split's majority answer (VQA), label (SNLI-VE), answer and rationale "
    "position (VCR)"
)


@dataclass(frozen=True)
class QARow:
    """One official score of a shipped QA model on one split."""

    #: ``vqa``, ``snli-ve`` or ``vcr``.
    task: str
    #: The released split name (``val2014``, ``dev_shift``, ...).
    split: str
    #: The key in ``metrics.json``: ``accuracy``, ``q2a``, ``qa2r`` or ``q2ar``.
    metric: str
    #: Percent.
    score: float
    #: The blind baseline's score on the same split, percent.
    blind: float
    #: Questions (VQA), pairs (SNLI-VE) or items (VCR) scored.
    items: int
    #: Seconds to read, predict, score and write the split.
    seconds: float


def split_name(task: str, qa_split: str) -> str:
    """The released name of a world QA split (``val``, ``val_shift``) in ``task``."""
    _, vqa_subtype, snli_ve_split = QA_SPLITS[qa_split]
    return {"vqa": vqa_subtype, "snli-ve": snli_ve_split, "vcr": qa_split}[task]


def image_folder(qa_dir: Path, task: str, split: str) -> Path:
    """The folder of a split's images (SNLI-VE and VCR keep every split in one folder)."""
    if task == "vqa":
        return vqa_files(qa_dir, split)[2]
    return snli_ve_images(qa_dir) if task == "snli-ve" else vcr_images(qa_dir)


def features_file(features_dir: Path, qa_dir: Path, folder: Path) -> Path:
    """``FEATURES_DIR/qa-vqa-val2014.h5`` for ``QA_DIR/vqa/val2014/``, and so on."""
    return features_dir / f"qa-{'-'.join(folder.relative_to(qa_dir).parts)}.h5"


def evaluate_shipped_qa(
    qa_dir: str | os.PathLike[str],
    features_dir: str | os.PathLike[str],
    checkpoints_dir: str | os.PathLike[str],
    out: str | os.PathLike[str],
    encoder_path: str | os.PathLike[str],
    encoder_model: str,
    workers: int,
) -> list[QARow]:
    """Extract the QA grid features once per image folder, then score each shipped QA
    model on ``val`` and ``val_shift`` (see the module); ``out`` gets ``<task>/<split>/``."""
    qa_dir = Path(qa_dir)
    present = {}
    for task, name in QA_CHECKPOINTS.items():
        path = Path(checkpoints_dir) / name
        if path.is_file():
            present[task] = path
        else:
            print(f"      no {TASK_NAMES[task]} model at {path}: {TASK_NAMES[task]} skipped")
    splits = {task: [split_name(task, s) for s in DEMO_QA_SPLITS] for task in present}
    folders = {image_folder(qa_dir, task, s) for task in present for s in splits[task]}
    features = {f: features_file(Path(features_dir), qa_dir, f) for f in sorted(folders)}
    ensure_grid_features(features, Path(encoder_path), encoder_model, workers)
    rows: list[QARow] = []
    for task, checkpoint in present.items():
        files = {s: features[image_folder(qa_dir, task, s)] for s in splits[task]}
        rows += evaluate_task(task, checkpoint, qa_dir, files, Path(out))
    return rows


def ensure_grid_features(
    features: dict[Path, Path], encoder_path: Path, model: str, workers: int
) -> None:
    """Write each ``{image folder: feature file}``'s grid features with the CLIP at
    ``encoder_path``, keeping a finished file of the same weights that holds every image."""
    digest = file_sha256(encoder_path) if features else ""
    todo = {}
    for folder, path in features.items():
        if is_finished(path, folder, digest):
            print(f"      reusing {path} (made with the same encoder)")
        else:
            todo[folder] = path
    if not todo:
        return
    encoder, attrs = create_encoder_of_kind("clip", model, str(encoder_path))
    attrs.update(pretrained=encoder_path.name, pretrained_sha256=digest)
    for folder, path in todo.items():
        print(f"      {folder} -> {path}")
        path.unlink(missing_ok=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        extract_image_features(folder, encoder, path, grid=True, workers=workers, attrs=attrs)


def is_finished(path: Path, folder: Path, digest: str) -> bool:
    """Whether ``path`` holds grid features of every image in ``folder``, made with the
    weights of SHA-256 ``digest`` (an unreadable file does not)."""
    if not path.is_file():
        return False
    try:
        with open_image_features(path) as features:
            return (
                features.attrs.get("pretrained_sha256") == digest
                and features.layout == GRID_LAYOUT
                and features.image_ids() == list(list_images(folder))
            )
    except DataError:
        return False


def evaluate_task(
    task: str, checkpoint: Path, qa_dir: Path, features: dict[str, Path], out: Path
) -> list[QARow]:
    """The rows of one shipped model on each ``{split: feature file}``: none, and a line
    saying why, when eval-qa would refuse the features (another token shape or encoder
    than the model was trained on)."""
    model, tokenizer, payload = load_qa_model(checkpoint)
    if model.config.task != task:
        raise DataError(checkpoint, f"is a {model.config.task} model, not {task}")
    answers = AnswerVocabulary(tuple(payload["extra"]["answers"])) if task == "vqa" else None
    train = load_split(task, qa_dir, TRAIN_SPLITS[task])
    rows = []
    for split_id, path in features.items():
        start = time.perf_counter()
        files = FeatureFiles([path])
        try:
            check_image_provenance(files, payload, checkpoint)
        except DataError as err:
            print(f"      {TASK_NAMES[task]} skipped: {err}")
            return []
        split = load_split(task, qa_dir, split_id)
        metrics = evaluate_split(
            model, tokenizer, answers, split, files, checkpoint, out / task / split_id
        )
        blind = score(split, majority_predictions(train, split))
        seconds = time.perf_counter() - start
        rows += [
            QARow(task, split_id, key, value, blind[key], len(split.records), seconds)
            for key, value in metrics.items()
        ]
    return rows


def evaluate_split(
    model: QAFusionModel,
    tokenizer: Tokenizer,
    answers: AnswerVocabulary | None,
    split: QASplit,
    features: FeatureFiles,
    checkpoint: Path,
    out: Path,
) -> dict[str, float]:
    """What ``clipvil eval-qa`` does on a labelled split: the official scores, written to
    ``out`` with the official prediction file (``metrics.json`` names ``checkpoint``)."""
    check_features(features, evaluation_examples(split), split.path)
    model.to(DEVICE)
    predictions = predict(model, split, tokenizer, features, answers, DEFAULT_BATCH_SIZE, DEVICE)
    metrics = score(split, predictions)
    folder = make_output_dir(out)
    write_prediction_file(split.task, folder / PREDICTION_FILES[split.task], predictions)
    record = {"task": split.task, "split": split.split, "checkpoint": str(checkpoint)}
    write_json(folder / METRICS_FILE, {**record, **metrics})
    return metrics


def format_qa_results(rows: list[QARow]) -> str:
    """One line per task, split and metric: the model's score and the blind one, percent."""
    header = (
        f"{'task':<8} {'split':<13} {'metric':<9} {'model':>6} {'blind':>6} {'items':>6} {'sec':>5}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{TASK_NAMES[row.task]:<8} {row.split:<13} {METRIC_NAMES[row.metric]:<9} "
            f"{row.score:6.1f} {row.blind:6.1f} {row.items:>6} {row.seconds:5.1f}"
        )
    return "\n".join(lines)
