"""train-qa --distill: the CLIP-TD head trains beside the model, resumes exactly, and
leaves the trained model (its parameters, its forward cost, its evaluation) as it would be
without distillation: evaluation never needs the teacher."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from envs.errors import DataError
from vln_agent.training.checkpoint import export_checkpoint, load_checkpoint
from vqa_ve.commands import eval_qa
from vqa_ve.models import load_qa_model
from vqa_ve.training.trainer import QATrainer, load_qa_train_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "dropout": 0.1}


@pytest.fixture(scope="module")
def snli_ve(distill_world):
    return distill_world


def settings(snli_ve, mode: str, **overrides: object):
    _, _, weights, teacher_features = snli_ve
    distill = {}
    if mode != "none":
        distill = {
            "teacher": str(weights),
            "teacher_model": "clipvil-tiny",
            "teacher_features": (str(teacher_features),),
        }
    values = {"task": "snli-ve", "iterations": 6, "batch_size": 8, "eval_every": 3, "log_every": 1}
    values |= {"eval_limit": 16, "device": "cpu", "distill_mode": mode, **distill, **TINY}
    return load_qa_train_config(None, **{**values, **overrides})


@pytest.mark.parametrize("mode", ["naive", "clip-td"])
def test_distillation_trains_and_leaves_the_model_as_without(snli_ve, tmp_path, mode):
    qa, student, _, _ = snli_ve
    plain = QATrainer(qa, student, tmp_path / "none", settings(snli_ve, "none"))
    plain.train(progress=False)
    trainer = QATrainer(qa, student, tmp_path / mode, settings(snli_ve, mode))
    trainer.train(progress=False)
    rows = (tmp_path / mode / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "train/distill_loss" in header and "train/selected_fraction" in header
    column = header.index("train/selected_fraction")
    fraction = [float(r.split(",")[column]) for r in rows[1:] if r.split(",")[column]]
    assert fraction
    if mode == "naive":
        assert all(f == 1.0 for f in fraction)
    else:
        assert all(0.0 < f < 1.0 for f in fraction)
    # the saved model is the undistilled model's: same parameters, shapes and config
    distilled = load_checkpoint(tmp_path / mode / "latest.pt")
    undistilled = load_checkpoint(tmp_path / "none" / "latest.pt")
    assert distilled["model_config"] == undistilled["model_config"]
    assert {k: v.shape for k, v in distilled["state_dict"].items()} == {
        k: v.shape for k, v in undistilled["state_dict"].items()
    }
    assert set(distilled["auxiliary"]) == {"projection.linear.weight", "projection.linear.bias"}
    assert "auxiliary" not in undistilled
    exported = tmp_path / "exported.pt"
    export_checkpoint(tmp_path / mode / "latest.pt", exported)
    assert "auxiliary" not in load_checkpoint(exported)


def test_evaluation_never_needs_the_teacher(snli_ve, tmp_path):
    qa, student, weights, teacher_features = snli_ve
    copy = tmp_path / "teacher.pt"
    copy.write_bytes(weights.read_bytes())
    config = settings(snli_ve, "clip-td", teacher=str(copy))
    QATrainer(qa, student, tmp_path / "run", config).train(progress=False)
    copy.unlink()  # the teacher is gone: evaluation must not notice
    model, _, _ = load_qa_model(tmp_path / "run" / "best.pt")
    parser = argparse.ArgumentParser()
    eval_qa.configure(parser)
    argv = ["--checkpoint", str(tmp_path / "run" / "best.pt"), "--data", str(qa)]
    argv += ["--features", str(student), "--out", str(tmp_path / "eval")]
    assert eval_qa.run(parser.parse_args(argv)) == 0
    assert "accuracy" in json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel()
        for p in QATrainer(
            qa, student, tmp_path / "plain", settings(snli_ve, "none")
        ).model.parameters()
    )


@pytest.mark.parametrize("mode", ["none", "clip-td"])
def test_a_distilled_run_resumes_exactly(snli_ve, tmp_path, mode):
    qa, student, _, _ = snli_ve
    config = settings(snli_ve, mode)
    whole = QATrainer(qa, student, tmp_path / "whole", config)
    whole.train(progress=False)
    QATrainer(qa, student, tmp_path / "cut", config).train(progress=False, stop_at=4)
    resumed = QATrainer(qa, student, tmp_path / "cut", config, resume=True)
    resumed.train(progress=False)
    for module in ("model", "distiller") if mode != "none" else ("model",):
        ours, theirs = getattr(whole, module).state_dict(), getattr(resumed, module).state_dict()
        for name, value in ours.items():
            assert torch.equal(value, theirs[name]), (module, name)
    with pytest.raises(DataError, match="other distillation settings"):
        QATrainer(qa, student, tmp_path / "cut", settings(snli_ve, "naive"), resume=True)


def test_missing_teacher_features_are_one_line_errors(snli_ve, tmp_path):
    qa, student, _, _ = snli_ve
    with pytest.raises(DataError, match="nowhere.h5"):
        QATrainer(
            qa,
            student,
            tmp_path,
            settings(snli_ve, "clip-td", teacher_features=(str(tmp_path / "nowhere.h5"),)),
        )
    from vqa_ve.distill import Teacher

    teacher = Teacher.from_config(settings(snli_ve, "clip-td").distill, "snli-ve")
    teacher.features.require(["1", "1"])  # present (read once)
    with pytest.raises(DataError, match="no teacher features for image no-such-image"):
        teacher.features.require(["1", "no-such-image"])
