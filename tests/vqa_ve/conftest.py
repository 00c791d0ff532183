"""Fixtures shared by the QA tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def distill_world(
    tiny_synthetic_world: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path, Path]:
    """``(qa dir, student features, teacher weights, teacher features)`` of the tiny
    world's SNLI-VE images: two random clipvil-tiny towers (seeds 1 and 2), the teacher's
    saved as an open_clip weight file, both extracted with ``--grid``."""
    import torch

    from vln_agent.encoders import create_encoder
    from vln_agent.extract_images import extract_image_features

    folder = tmp_path_factory.mktemp("distill-world")
    images = tiny_synthetic_world / "qa" / "snli_ve" / "images"
    files = {}
    for name, seed in (("student", 1), ("teacher", 2)):
        torch.manual_seed(seed)
        encoder = create_encoder("clipvil-tiny")
        files[name] = folder / f"{name}.h5"
        extract_image_features(images, encoder, files[name], grid=True, progress=False, workers=0)
    files["weights"] = folder / "teacher.pt"
    torch.save(encoder.model.state_dict(), files["weights"])
    return tiny_synthetic_world / "qa", files["student"], files["weights"], files["teacher"]
