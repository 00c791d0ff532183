"""The QA part of ``clipvil demo`` (:mod:`vqa_ve.demo`) on the tiny synthetic world: tiny QA
models trained a few iterations on a tiny random CLIP's grid features stand in for the
shipped ones."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch

from vln_agent.encoders import create_encoder, save_encoder
from vqa_ve.datasets import load_split
from vqa_ve.demo import (
    QA_CHECKPOINTS,
    ensure_grid_features,
    evaluate_shipped_qa,
    features_file,
    format_qa_results,
)
from vqa_ve.training.evaluation import PREDICTION_FILES
from vqa_ve.training.trainer import QATrainer, load_qa_train_config

TINY_MODEL = "clipvil-tiny"
#: A tiny fusion model and budget: seconds for the three tasks.
TINY_QA = {
    "iterations": 2,
    "eval_every": 2,
    "batch_size": 8,
    "hidden_size": 16,
    "num_layers": 1,
    "num_heads": 2,
    "device": "cpu",
}
#: ``(task, split, metric)`` of every row, in the table's order.
EXPECTED_ROWS = [
    ("vqa", "val2014", "accuracy"),
    ("vqa", "valshift2014", "accuracy"),
    ("snli-ve", "dev", "accuracy"),
    ("snli-ve", "dev_shift", "accuracy"),
    *[("vcr", split, m) for split in ("val", "val_shift") for m in ("q2a", "qa2r", "q2ar")],
]


@pytest.fixture(scope="module")
def qa_models(tiny_synthetic_world: Path, tmp_path_factory: pytest.TempPathFactory):
    """``(QA dir, tiny CLIP file, checkpoints dir)``: each task's model trained 2 iterations
    on the grid features of that CLIP, saved under its shipped name."""
    root = tmp_path_factory.mktemp("qa_demo")
    qa_dir = tiny_synthetic_world / "qa"
    torch.manual_seed(0)
    encoder = save_encoder(create_encoder(TINY_MODEL), root / "clip.pt")
    folders = {
        "vqa": [qa_dir / "vqa" / "train2014", qa_dir / "vqa" / "val2014"],
        "snli-ve": [qa_dir / "snli_ve" / "images"],
        "vcr": [qa_dir / "vcr" / "vcr1images"],
    }
    features = {f: features_file(root, qa_dir, f) for task in folders for f in folders[task]}
    ensure_grid_features(features, encoder, TINY_MODEL, workers=0)
    checkpoints = root / "checkpoints"
    checkpoints.mkdir()
    for task, name in QA_CHECKPOINTS.items():
        config = load_qa_train_config(None, task=task, **TINY_QA)
        files = [features[folder] for folder in folders[task]]
        QATrainer(qa_dir, files, root / task, config).train(progress=False)
        shutil.copy(root / task / "best.pt", checkpoints / name)
    return qa_dir, encoder, checkpoints


def test_each_model_is_scored_on_val_and_shift_beside_its_blind_baseline(
    qa_models, tmp_path, capsys
):
    qa_dir, encoder, checkpoints = qa_models
    features, out = tmp_path / "features", tmp_path / "out"
    rows = evaluate_shipped_qa(qa_dir, features, checkpoints, out, encoder, TINY_MODEL, 0)
    assert [(r.task, r.split, r.metric) for r in rows] == EXPECTED_ROWS
    assert sorted(p.name for p in features.iterdir()) == [
        "qa-snli_ve-images.h5",
        "qa-vcr-vcr1images.h5",
        "qa-vqa-val2014.h5",
        "qa-vqa-valshift2014.h5",
    ]
    for row in rows:
        folder = out / row.task / row.split
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["split"] == row.split and metrics[row.metric] == row.score
        assert (folder / PREDICTION_FILES[row.task]).is_file()
        assert row.items == len(load_split(row.task, qa_dir, row.split).records)
        assert 0.0 <= row.score <= 100.0 and row.seconds > 0.0
    blind = {(r.task, r.split, r.metric): r.blind for r in rows}
    # The shifted split asks the val questions again: the blind answer scores the same.
    assert blind["vqa", "val2014", "accuracy"] == blind["vqa", "valshift2014", "accuracy"]
    # Majority by hand: SNLI-VE's most frequent train label, VCR's answer position.
    snli_train = load_split("snli-ve", qa_dir, "train").records
    label = Counter(e.label for e in snli_train).most_common(1)[0][0]
    dev = load_split("snli-ve", qa_dir, "dev").records
    share = 100.0 * sum(e.label == label for e in dev) / len(dev)
    assert blind["snli-ve", "dev", "accuracy"] == pytest.approx(share)
    vcr_train = load_split("vcr", qa_dir, "train").records
    position = Counter(item.answer_label for item in vcr_train).most_common(1)[0][0]
    val = load_split("vcr", qa_dir, "val").records
    share = 100.0 * sum(item.answer_label == position for item in val) / len(val)
    assert blind["vcr", "val", "q2a"] == pytest.approx(share)
    assert blind["vcr", "val", "q2ar"] <= min(blind["vcr", "val", m] for m in ("q2a", "qa2r"))

    table = format_qa_results(rows).splitlines()
    assert table[0].split() == ["task", "split", "metric", "model", "blind", "items", "sec"]
    assert len(table) == 2 + len(EXPECTED_ROWS)
    assert table[-1].split()[:3] == ["VCR", "val_shift", "Q->AR"]
    assert table[-1].split()[3:5] == [f"{rows[-1].score:.1f}", f"{rows[-1].blind:.1f}"]

    # A second run keeps the finished feature files and gives the same scores.
    capsys.readouterr()
    again = evaluate_shipped_qa(qa_dir, features, checkpoints, out, encoder, TINY_MODEL, 0)
    assert capsys.readouterr().out.count("reusing") == 4
    assert [r.score for r in again] == [r.score for r in rows]


def test_a_missing_checkpoint_is_one_line_and_its_task_skipped(qa_models, tmp_path, capsys):
    qa_dir, encoder, checkpoints = qa_models
    only_vqa = tmp_path / "checkpoints"
    only_vqa.mkdir()
    shutil.copy(checkpoints / QA_CHECKPOINTS["vqa"], only_vqa)
    features = tmp_path / "features"
    rows = evaluate_shipped_qa(qa_dir, features, only_vqa, tmp_path / "out", encoder, TINY_MODEL, 0)
    assert {r.task for r in rows} == {"vqa"}
    printed = capsys.readouterr().out.splitlines()
    for task, name in (("SNLI-VE", "qa-snli-ve-small-clip.pt"), ("VCR", "qa-vcr-small-clip.pt")):
        [line] = [line for line in printed if f"{task} skipped" in line]
        assert f"no {task} model at {only_vqa / name}" in line
    # Only the folders the present model reads are encoded.
    assert sorted(p.name for p in features.iterdir()) == [
        "qa-vqa-val2014.h5",
        "qa-vqa-valshift2014.h5",
    ]


def test_features_of_another_encoder_skip_the_task_in_one_line(qa_models, tmp_path, capsys):
    qa_dir, _, checkpoints = qa_models
    torch.manual_seed(1)
    other = save_encoder(create_encoder(TINY_MODEL), tmp_path / "other.pt")
    only_vqa = tmp_path / "checkpoints"
    only_vqa.mkdir()
    shutil.copy(checkpoints / QA_CHECKPOINTS["vqa"], only_vqa)
    rows = evaluate_shipped_qa(
        qa_dir, tmp_path / "features", only_vqa, tmp_path / "out", other, TINY_MODEL, 0
    )
    assert rows == []
    [line] = [line for line in capsys.readouterr().out.splitlines() if "VQA skipped" in line]
    assert "another encoder" in line
