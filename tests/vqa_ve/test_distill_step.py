"""One distillation step end to end: a teacher feature file written by ``features --images
--grid`` with ``clipvil-tiny``, the Distiller on the three heads, and DistillConfig as a
settings section (flags, flat recipe keys)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from envs.errors import DataError
from vln_agent.encoders import create_encoder, save_encoder
from vln_agent.extract_images import extract_image_features
from vln_agent.training.settings import add_settings_flags, load_settings, settings_overrides
from vqa_ve.data.vqa import AnswerVocabulary
from vqa_ve.datasets import QAExample
from vqa_ve.distill import DistillConfig, TeacherImageFeatures, load_teacher
from vqa_ve.distill.distiller import Distiller, Teacher
from vqa_ve.models import QABatch, QAFusionModel, QAModelConfig
from vqa_ve.models.fusion import QAModelConfig as FusionConfig
from vqa_ve.training.trainer import QATrainConfig

IMAGES, VOCAB, CHANNELS, WIDTH = ("img0", "img1", "img2"), 20, 8, 16
#: The student's grid (2 x 3 cells) differs from the tiny teacher's (4 x 4).
STUDENT_GRID = (2, 3)
REGIONS = STUDENT_GRID[0] * STUDENT_GRID[1]


@pytest.fixture(scope="module")
def teacher_parts(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    torch.manual_seed(0)
    encoder = create_encoder("clipvil-tiny")
    encoder.requires_grad_(False)
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for name in IMAGES:
        pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{name}.png")
    out = folder / "teacher.h5"
    extract_image_features(folder, encoder, out, grid=True, workers=0, progress=False)
    return encoder, out


def examples_of(task: str) -> list[QAExample]:
    if task == "vcr":
        texts = tuple(("what is here ?", choice) for choice in ("a dog", "a cat", "a car", "sky"))
        return [QAExample(f"{i}/q2a", image, texts, i % 4) for i, image in enumerate(IMAGES)]
    if task == "snli-ve":
        return [QAExample(str(i), im, (("a red room", ""),), i) for i, im in enumerate(IMAGES)]
    scores = ((0, 1.0),)
    return [
        QAExample(str(i), im, (("what color ?", ""),), None, scores) for i, im in enumerate(IMAGES)
    ]


def student_of(task: str) -> tuple[QAFusionModel, QABatch]:
    torch.manual_seed(0)
    answers = 3 if task == "vqa" else 0
    config = QAModelConfig(
        task=task,
        vocab_size=VOCAB,
        num_answers=answers,
        feature_dim=CHANNELS,
        num_regions=REGIONS,
        hidden_size=WIDTH,
        num_layers=1,
        num_heads=2,
        dropout=0.0,
    )
    size = len(IMAGES)
    shape = (size, 4, 5) if task == "vcr" else (size, 5)
    tokens = torch.randint(4, VOCAB, shape)
    tokens[..., 0] = 3
    if task == "vqa":
        target = torch.zeros(size, answers)
        target[:, 0] = 1.0
    else:
        target = torch.tensor([0, 1, 2])
    batch = QABatch(tokens, torch.zeros_like(tokens), torch.randn(size, REGIONS, CHANNELS), target)
    return QAFusionModel(config).train(), batch


@pytest.mark.parametrize(
    ("task", "mode", "scorer"),
    [
        ("snli-ve", "clip-td", "clip"),
        ("vcr", "clip-td", "student-attention"),
        ("vqa", "naive", "clip"),
    ],
)
def test_a_distillation_step_trains_the_student_and_the_projection_only(
    teacher_parts: tuple, task: str, mode: str, scorer: str
) -> None:
    encoder, path = teacher_parts
    answers = AnswerVocabulary(("red", "blue", "green")) if task == "vqa" else None
    features = TeacherImageFeatures(path, encoder)
    assert features.grid_size == (4, 4)
    teacher = Teacher(encoder, features, task, answers)
    config = DistillConfig(
        distill_mode=mode,
        teacher="teacher.pt",
        teacher_features=(str(path),),
        token_scorer=scorer,
        distill_loss_weight=2.0,
    )
    distiller = Distiller(config, teacher, WIDTH, STUDENT_GRID)
    model, batch = student_of(task)
    keys = set(model.state_dict())
    losses, stats, logits = distiller.losses(model, batch, examples_of(task))
    assert set(losses) == {"task_loss", "distill_loss"} and losses["distill_loss"] > 0
    assert 0.0 <= stats["teacher_confidence"] <= 1.0
    if mode == "naive":
        assert stats["selected_fraction"] == 1.0 and stats["distill_weight"] == 1.0
    else:
        assert 0.0 < stats["selected_fraction"] < 1.0
    sum(losses.values()).backward()
    assert distiller.projection.linear.weight.grad.abs().sum() > 0
    assert model.image_projection[1].weight.grad.abs().sum() > 0
    assert set(model.state_dict()) == keys  # the saved model gains nothing
    assert not any(p.requires_grad for p in encoder.parameters())
    assert len(teacher.texts) > 0
    features.close()


def test_teacher_features_of_another_model_are_refused(
    teacher_parts: tuple, tmp_path: Path
) -> None:
    encoder, path = teacher_parts
    saved = save_encoder(encoder, tmp_path / "teacher.pt")
    loaded = load_teacher(saved, model_name="ignored: the checkpoint names its model")
    assert loaded.model_name == "clipvil-tiny" and not loaded.training
    assert not any(p.requires_grad for p in loaded.parameters())
    config = DistillConfig(distill_mode="naive", teacher=str(saved), teacher_features=(str(path),))
    teacher = Teacher.from_config(config, "snli-ve")
    assert teacher.features.grid_size == (4, 4)
    teacher.close()
    other = create_encoder("clipvil-tiny-rn")
    with pytest.raises(DataError, match="teacher is clipvil-tiny-rn"):
        TeacherImageFeatures(path, other)


def test_distill_config_is_a_section_of_the_qa_settings(tmp_path: Path) -> None:
    own = {f.name for f in dataclasses.fields(DistillConfig)}
    others = {f.name for f in dataclasses.fields(QATrainConfig)} | {
        f.name for f in dataclasses.fields(FusionConfig)
    }
    assert not own & others  # flat recipe keys and flags route to one section

    @dataclasses.dataclass(frozen=True)
    class Run:
        #: Steps.
        iterations: int = 3
        #: Distillation.
        distill: DistillConfig = DistillConfig()

    parser = argparse.ArgumentParser()
    add_settings_flags(parser, Run)
    args = parser.parse_args(
        [
            "--distill",
            "clip-td",
            "--teacher",
            "t.pt",
            "--teacher-features",
            "train.h5",
            "val.h5",
            "--selection-mass",
            "0.3",
            "--zero-when-teacher-wrong",
        ]
    )
    run = load_settings(Run, None, "test", **settings_overrides(args, Run))
    assert run.distill == DistillConfig(
        distill_mode="clip-td",
        teacher="t.pt",
        teacher_features=("train.h5", "val.h5"),
        selection_mass=0.3,
        zero_when_teacher_wrong=True,
    )
    with pytest.raises(DataError, match="teacher"):  # one-line error: no teacher given
        load_settings(Run, None, "test", distill_mode="naive")
    with pytest.raises(SystemExit):
        parser.parse_args(["--distill", "half"])
