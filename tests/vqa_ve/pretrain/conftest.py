"""The tiny world's QA images as grid features of one random clipvil-tiny tower (its
weights saved as an open_clip file too), for pretraining and fine-tuning tests."""

from __future__ import annotations

from pathlib import Path

import pytest

#: Feature files by name: the folders of the tiny world's QA data they encode.
FOLDERS = {
    "train2014": "vqa/train2014",
    "val2014": "vqa/val2014",
    "snli-ve": "snli_ve/images",
    "vcr": "vcr/vcr1images",
}


@pytest.fixture(scope="session")
def pretrain_world(
    tiny_synthetic_world: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Path], Path]:
    """``(qa dir, {name: grid feature file}, encoder weight file)``."""
    import torch

    from vln_agent.encoders import create_encoder
    from vln_agent.extract_images import extract_image_features

    folder = tmp_path_factory.mktemp("pretrain-world")
    qa = tiny_synthetic_world / "qa"
    torch.manual_seed(0)
    encoder = create_encoder("clipvil-tiny")
    weights = folder / "encoder.pt"
    torch.save(encoder.model.state_dict(), weights)
    encoder = create_encoder("clipvil-tiny", str(weights))  # the files record its sha256
    files = {}
    for name, images in FOLDERS.items():
        files[name] = folder / f"{name}.h5"
        extract_image_features(
            qa / images,
            encoder,
            files[name],
            grid=True,
            progress=False,
            workers=0,
            attrs={"pretrained": str(weights)},
        )
    return qa, files, weights
