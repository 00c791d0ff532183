"""Images encoded on the fly (:mod:`vqa_ve.encoding`) on the tiny world's QA files, with
``clipvil-tiny`` (random init): the tokens are those ``features --images --grid`` stores,
every task's image ids find their files, and bad image files are one-line errors."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from envs.errors import DataError
from vln_agent.encoders import create_encoder, save_encoder
from vln_agent.extract_images import extract_image_features, list_images, open_image_features
from vqa_ve.commands import eval_qa, train_qa
from vqa_ve.datasets import EVAL_SPLITS, TRAIN_SPLITS, evaluation_examples, load_split
from vqa_ve.encoding import (
    ENCODER_PAYLOAD_KEY,
    GRID_TOKENS,
    POOLED_TOKENS,
    EncodedQAModel,
    ImageFiles,
    token_shape,
)
from vqa_ve.models import load_qa_model
from vqa_ve.models.fusion import QAFusionModel, QAModelConfig
from vqa_ve.training.trainer import QATrainer, load_qa_train_config

TINY_MODEL = "clipvil-tiny"
#: Channels of its grid cells (the ViT width; 32 px at patch 8 gives 4 x 4 cells).
TINY_WIDTH = 64


@pytest.fixture
def tiny_encoder():
    torch.manual_seed(0)
    return create_encoder(TINY_MODEL)


def encoded_model(encoder, tokens: str, finetune: bool = False) -> EncodedQAModel:
    regions, channels = token_shape(encoder, tokens)
    config = QAModelConfig(
        task="snli-ve", vocab_size=8, feature_dim=channels, num_regions=regions, hidden_size=16
    )
    return EncodedQAModel(QAFusionModel(config), encoder, tokens, finetune)


@pytest.mark.parametrize("tokens", [GRID_TOKENS, POOLED_TOKENS])
def test_tokens_are_those_of_the_stored_features(
    tiny_synthetic_world, tmp_path, tiny_encoder, tokens
):
    qa = tiny_synthetic_world / "qa"
    stored = tmp_path / "val2014.h5"
    options = {"grid": True, "progress": False, "workers": 0, "batch_size": 4}
    extract_image_features(qa / "vqa" / "val2014", tiny_encoder, stored, **options)
    files = ImageFiles(qa, "vqa", tiny_encoder)
    ids = list(list_images(qa / "vqa" / "val2014"))[:5]
    model = encoded_model(tiny_encoder, tokens).eval()
    pixels = torch.from_numpy(np.stack([files[i] for i in ids]))  # [B, 3, H*W]
    with torch.no_grad():
        on_the_fly = model.image_tokens(pixels)  # [B, R, F]
    with open_image_features(stored) as features:
        read = features.grid if tokens == GRID_TOKENS else features.pooled
        expected = np.stack([read(i).reshape(token_shape(tiny_encoder, tokens)) for i in ids])
    assert on_the_fly.shape == expected.shape
    np.testing.assert_allclose(on_the_fly.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("task", ["vqa", "snli-ve", "vcr"])
def test_every_example_of_each_task_finds_its_image_file(tiny_synthetic_world, tiny_encoder, task):
    qa = tiny_synthetic_world / "qa"
    for name in (TRAIN_SPLITS[task], EVAL_SPLITS[task]):
        split = load_split(task, qa, name)
        files = ImageFiles(qa, task, tiny_encoder)
        files.check(evaluation_examples(split), split.path)
        first = evaluation_examples(split)[0].image_id
        assert files[first].shape == (3, 32 * 32)
        assert files[first] is files[first]  # cached: decoded once
    assert "COCO_val2014_x" not in files and "no-such-image" not in files


def test_bad_image_files_are_one_line_errors_naming_the_file(
    tiny_synthetic_world, tmp_path, tiny_encoder
):
    qa = tmp_path / "qa"
    shutil.copytree(tiny_synthetic_world / "qa" / "snli_ve", qa / "snli_ve")
    split = load_split("snli-ve", qa, TRAIN_SPLITS["snli-ve"])
    files = ImageFiles(qa, "snli-ve", tiny_encoder, cache=False)
    examples = evaluation_examples(split)
    broken = files.image_path(examples[0].image_id)
    missing = files.image_path(examples[-1].image_id)
    broken.write_bytes(b"not a jpeg")
    missing.unlink()
    with pytest.raises(DataError, match="image file not found") as err:
        files.check(examples, split.path)
    assert str(missing) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataError, match="cannot read image") as err:
        files[examples[0].image_id]
    assert str(broken) in str(err.value) and "\n" not in str(err.value)


def test_a_frozen_encoder_gets_no_gradient_and_stays_in_eval_mode(tiny_encoder):
    frozen = encoded_model(tiny_encoder, GRID_TOKENS)
    frozen.train()
    assert not frozen.image_encoder.training
    assert not any(p.requires_grad for p in frozen.image_encoder.parameters())
    torch.manual_seed(0)
    tuned = encoded_model(create_encoder(TINY_MODEL), GRID_TOKENS, finetune=True).train()
    assert tuned.image_encoder.training
    pixels = torch.randn(2, 3, 32 * 32)
    tokens = tuned.image_tokens(pixels)
    assert tokens.requires_grad and tokens.shape == (2, 16, TINY_WIDTH)
    assert not frozen.image_tokens(pixels).requires_grad


# ------------------------------------------------------------------ train-qa / eval-qa
#: A tiny fusion model and budget (seconds on the tiny world's VQA files).
TINY_RUN = {
    "task": "vqa",
    "device": "cpu",
    "batch_size": 4,
    "iterations": 3,
    "eval_every": 3,
    "hidden_size": 16,
    "num_layers": 1,
    "num_heads": 2,
}


@pytest.fixture
def encoder_file(tmp_path, tiny_encoder):
    """A clipvil checkpoint of ``clipvil-tiny`` (it records its model name)."""
    return save_encoder(tiny_encoder, tmp_path / "tiny.pt")


def encoder_weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.image_encoder.model.state_dict().items()}


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> list[str]:
    return [name for name, value in before.items() if not torch.equal(value, after[name])]


def test_a_frozen_encoder_trains_the_fusion_model_only(
    tiny_synthetic_world, tmp_path, encoder_file
):
    qa = tiny_synthetic_world / "qa"
    settings = load_qa_train_config(None, image_encoder=str(encoder_file), **TINY_RUN)
    trainer = QATrainer(qa, [], tmp_path / "run", settings)
    assert isinstance(trainer.model, EncodedQAModel) and len(trainer.optimizer.param_groups) == 1
    before, fusion = encoder_weights(trainer.model), copy.deepcopy(trainer.model.fusion)
    best = trainer.train(progress=False)
    assert 0.0 <= best["val2014/accuracy"] <= 100.0
    assert changed(before, encoder_weights(trainer.model)) == []
    assert changed(fusion.state_dict(), trainer.model.fusion.state_dict())


def test_fine_tuning_changes_the_encoder_and_resumes_exactly(
    tiny_synthetic_world, tmp_path, encoder_file
):
    qa = tiny_synthetic_world / "qa"
    options = {"image_encoder": str(encoder_file), "finetune_encoder": True, "dropout": 0.1}
    settings = load_qa_train_config(
        None,
        **{**TINY_RUN, "iterations": 4, "eval_every": 2},
        encoder_learning_rate=1e-3,
        **options,
    )
    whole = QATrainer(qa, [], tmp_path / "whole", settings)
    before = encoder_weights(whole.model)
    whole.train(progress=False)
    assert changed(before, encoder_weights(whole.model))
    assert [g["lr"] for g in whole.optimizer.param_groups] == [settings.learning_rate, 1e-3]
    QATrainer(qa, [], tmp_path / "cut", settings).train(progress=False, stop_at=1)
    resumed = QATrainer(qa, [], tmp_path / "cut", settings, resume=True)
    assert resumed.step == 1
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [settings.learning_rate, 1e-3]
    resumed.train(progress=False)
    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name


def run_train(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    train_qa.configure(parser)
    return train_qa.run(parser.parse_args(list(argv)))


def run_eval(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    eval_qa.configure(parser)
    return eval_qa.run(parser.parse_args(list(argv)))


def test_eval_qa_of_a_fine_tuned_checkpoint_reads_the_images_itself(
    tiny_synthetic_world, tmp_path, encoder_file, capsys
):
    qa, run = tiny_synthetic_world / "qa", tmp_path / "run"
    flags = ["--data", str(qa), "--out", str(run), "--no-progress", "--image-encoder"]
    flags += [str(encoder_file), "--finetune-encoder", "--encoder-learning-rate", "1e-3"]
    for name, value in TINY_RUN.items():
        flags += [f"--{name.replace('_', '-')}", str(value)]
    assert run_train(*flags) == 0
    best = json.loads(capsys.readouterr().out)
    model, _, payload = load_qa_model(run / "best.pt")
    assert isinstance(model, EncodedQAModel) and payload[ENCODER_PAYLOAD_KEY]["finetuned"]
    out = tmp_path / "eval"
    argv = ["--checkpoint", str(run / "best.pt"), "--data", str(qa), "--out", str(out)]
    assert run_eval(*argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "val2014" and metrics["accuracy"] == best["val2014/accuracy"]
    stored = tmp_path / "stored.h5"
    with pytest.raises(DataError, match="--features"):
        run_eval(*argv[:-1], str(tmp_path / "eval2"), "--features", str(stored))


def test_encoder_settings_are_checked(tiny_synthetic_world, tmp_path, encoder_file):
    qa = tiny_synthetic_world / "qa"
    with pytest.raises(DataError, match="image_encoder"):
        load_qa_train_config(None, finetune_encoder=True)
    settings = load_qa_train_config(None, image_encoder=str(encoder_file), **TINY_RUN)
    with pytest.raises(DataError, match="--features"):
        QATrainer(qa, [tmp_path / "f.h5"], tmp_path / "run", settings)
    with pytest.raises(DataError, match="--features"):
        QATrainer(qa, [], tmp_path / "run", load_qa_train_config(None, **TINY_RUN))
    with pytest.raises(DataError, match="--encoder-model"):
        QATrainer(qa, [], tmp_path / "run", dataclasses.replace(settings, image_encoder="random"))
