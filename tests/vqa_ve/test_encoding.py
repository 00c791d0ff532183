"""Images encoded on the fly (:mod:`vqa_ve.encoding`) on the tiny world's QA files, with
``clipvil-tiny`` (random init): the tokens are those ``features --images --grid`` stores,
every task's image ids find their files, and bad image files are one-line errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from envs.errors import DataError
from vln_agent.encoders import create_encoder
from vln_agent.extract_images import extract_image_features, list_images, open_image_features
from vqa_ve.datasets import EVAL_SPLITS, TRAIN_SPLITS, evaluation_examples, load_split
from vqa_ve.encoding import (
    GRID_TOKENS,
    POOLED_TOKENS,
    EncodedQAModel,
    ImageFiles,
    token_shape,
)
from vqa_ve.models.fusion import QAFusionModel, QAModelConfig

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
