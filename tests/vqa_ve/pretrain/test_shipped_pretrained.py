"""The shipped pretrained checkpoint: a card naming its sha256, a loadable ``vl-pretrain``
payload, and fine-tuning from it on grid features of the shipped small CLIP (the encoder it
was pretrained on) in the tiny world."""

from __future__ import annotations

import pytest
import torch

from checkpoints import checkpoint_path
from envs.fileio import file_sha256
from vqa_ve.models.fusion import GRID_POSITIONS
from vqa_ve.pretrain.transfer import load_pretrained
from vqa_ve.training.trainer import QATrainConfig, QATrainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHIPPED = "vl-pretrain-small-clip.pt"
CLIP = "clipvil-small-synthetic.pt"


def test_the_card_names_the_file_and_the_payload_loads():
    path = checkpoint_path(SHIPPED)
    assert file_sha256(path) in path.with_suffix(".md").read_text()
    assert path.stat().st_size < 2 * 2**20
    payload = load_pretrained(path)
    assert "optimizer" not in payload
    assert payload["model_config"]["image_positions"] == GRID_POSITIONS
    assert payload["extra"]["answers"]  # the stage-2 VQA head's vocabulary


def test_fine_tuning_from_it_on_the_shipped_clip_features(tiny_synthetic_world, tmp_path):
    from vln_agent.encoders import create_encoder
    from vln_agent.extract_images import extract_image_features

    clip = checkpoint_path(CLIP)
    encoder = create_encoder("clipvil-small", str(clip))
    features = tmp_path / "snli-ve.h5"
    images = tiny_synthetic_world / "qa" / "snli_ve" / "images"
    extract_image_features(
        images,
        encoder,
        features,
        grid=True,
        progress=False,
        workers=0,
        attrs={"pretrained": str(clip)},
    )
    config = QATrainConfig(
        task="snli-ve",
        iterations=2,
        batch_size=4,
        eval_every=2,
        eval_limit=8,
        device="cpu",
        init=str(checkpoint_path(SHIPPED)),
    )
    trainer = QATrainer(tiny_synthetic_world / "qa", [features], tmp_path / "run", config)
    payload = load_pretrained(checkpoint_path(SHIPPED))
    vocabulary = payload["vocabulary"]
    assert list(trainer.tokenizer.vocab[: len(vocabulary)]) == vocabulary
    assert torch.equal(
        trainer.model.encoder.layers[0].linear1.weight,
        payload["state_dict"]["fusion.encoder.layers.0.linear1.weight"],
    )
    assert trainer.train(progress=False)
