"""Standard open_clip models (random init) loaded the way users load real CLIP weights."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F

from vln_agent.encoders import create_encoder

VIT_SIZE = 224
VIT_PATCH = 32
RESNET_SIZE = 128


@pytest.fixture(scope="module")
def vit_b32(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    """A random-init ViT-B-32 (open_clip's own model) and its state dict saved to a file."""
    torch.manual_seed(1)
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    path = tmp_path_factory.mktemp("vit") / "vit_b32_random.pt"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture(scope="module")
def vit_encoder(vit_b32):
    return create_encoder("ViT-B-32", pretrained=str(vit_b32[1]))


@pytest.fixture(scope="module")
def rn50(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    """A random-init RN50 and its state dict in a file."""
    torch.manual_seed(2)
    model = open_clip.create_model("RN50", pretrained=None).eval()
    path = tmp_path_factory.mktemp("rn") / "rn50_random.pt"
    torch.save(model.state_dict(), path)
    return model, path


def test_vit_b32_file_gives_open_clips_own_features(vit_b32, vit_encoder):
    reference, _ = vit_b32
    torch.manual_seed(3)
    images = torch.randn(2, 3, VIT_SIZE, VIT_SIZE)
    tokens = vit_encoder.tokenize(["walk past the sofa", "stop at the door"])
    with torch.no_grad():
        torch.testing.assert_close(vit_encoder.encode_image(images), reference.encode_image(images))
        torch.testing.assert_close(vit_encoder.encode_text(tokens), reference.encode_text(tokens))
        pooled = vit_encoder.encode_image(images, normalize=True)
    torch.testing.assert_close(pooled.norm(dim=-1), torch.ones(2))
    assert vit_encoder.embed_dim == 512 and vit_encoder.image_size == (VIT_SIZE, VIT_SIZE)
    assert vit_encoder.model_config["quick_gelu"] is False  # a plain state dict: as named


def test_vit_grid_features_are_open_clips_patch_tokens(vit_b32, vit_encoder):
    reference, _ = vit_b32
    images = torch.randn(2, 3, VIT_SIZE, VIT_SIZE)
    reference.visual.output_tokens = True
    try:
        with torch.no_grad():
            _, tokens = reference.visual(images)  # [2, 49, 768] after ln_post
    finally:
        reference.visual.output_tokens = False
    with torch.no_grad():
        grid = vit_encoder.encode_image_grid(images)
        projected = vit_encoder.encode_image_grid(images, project=True)
    grid_side = VIT_SIZE // VIT_PATCH
    assert grid.shape == (2, grid_side, grid_side, 768)
    assert projected.shape == (2, grid_side, grid_side, 512)
    torch.testing.assert_close(grid.reshape(2, -1, 768), tokens)
    torch.testing.assert_close(projected.reshape(2, -1, 512), tokens @ reference.visual.proj)


def test_vit_resolution_change_interpolates_and_restores(vit_b32, vit_encoder):
    reference, _ = vit_b32
    original = reference.visual.positional_embedding.detach()  # [1 + 7*7, 768]
    try:
        vit_encoder.set_image_size(VIT_SIZE)  # same size: exactly the identity
        assert torch.equal(vit_encoder.model.visual.positional_embedding, original)

        vit_encoder.set_image_size(160)
        resized = vit_encoder.model.visual.positional_embedding.detach()  # [1 + 5*5, 768]
        grid = original[1:].reshape(1, 7, 7, 768).permute(0, 3, 1, 2)
        expected = F.interpolate(
            grid, size=(5, 5), mode="bicubic", align_corners=False, antialias=True
        )
        assert resized.shape == (26, 768)
        assert torch.equal(resized[0], original[0])  # class token kept
        torch.testing.assert_close(resized[1:], expected.permute(0, 2, 3, 1).reshape(25, 768))
        assert resized[1:].abs().sum() > 0  # not CLIP-ViL's silently zeroed embedding
        # the same as open_clip's own resizing when it loads a checkpoint at 160 px
        state = {"visual.positional_embedding": original.clone()}
        open_clip.model.resize_pos_embed(state, vit_encoder.model)
        torch.testing.assert_close(resized, state["visual.positional_embedding"])
        images = torch.randn(2, 3, 160, 160)
        with torch.no_grad():
            assert vit_encoder.encode_image_grid(images).shape == (2, 5, 5, 768)
            assert vit_encoder.encode_image(images).shape == (2, 512)
        assert vit_encoder.preprocess_cfg["size"] == 160
        assert vit_encoder.model_config["vision_cfg"]["image_size"] == 160
        with pytest.raises(ValueError, match="set up for 160x160"):
            vit_encoder.encode_image(torch.randn(1, 3, VIT_SIZE, VIT_SIZE))
        with pytest.raises(ValueError, match="multiple"):
            vit_encoder.set_image_size(100)

        vit_encoder.set_image_size((160, 224))  # non-square
        with torch.no_grad():
            grid = vit_encoder.encode_image_grid(torch.randn(1, 3, 160, 224))
        assert grid.shape == (1, 5, 7, 768)
    finally:
        vit_encoder.set_image_size(VIT_SIZE)
    # changed, then restored: open_clip's output again
    assert torch.equal(vit_encoder.model.visual.positional_embedding, original)
    images = torch.randn(2, 3, VIT_SIZE, VIT_SIZE)
    with torch.no_grad():
        torch.testing.assert_close(vit_encoder.encode_image(images), reference.encode_image(images))


def test_pretrained_tag_loads_from_the_local_cache(rn50, tmp_path):
    """A tag whose file sits in the Hugging Face cache loads offline, with the tag's
    QuickGELU and preprocessing: the same model as open_clip's RN50-quickgelu."""
    _, path = rn50
    repo = tmp_path / "models--timm--resnet50_clip.openai"
    snapshot = repo / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abc")
    (snapshot / "open_clip_pytorch_model.bin").symlink_to(path)
    encoder = create_encoder("RN50", pretrained="openai", cache_dir=tmp_path)
    assert encoder.model_config["quick_gelu"] is True
    assert tuple(encoder.preprocess_cfg["mean"]) == open_clip.OPENAI_DATASET_MEAN
    reference = open_clip.create_model("RN50-quickgelu", pretrained=str(path)).eval()
    tokens = encoder.tokenize(["a kitchen with a table"])
    with torch.no_grad():
        torch.testing.assert_close(encoder.encode_text(tokens), reference.encode_text(tokens))


def test_resnet_grid_and_pooled_features(rn50):
    reference, path = rn50
    encoder = create_encoder("RN50", pretrained=str(path), image_size=RESNET_SIZE)
    images = torch.randn(2, 3, RESNET_SIZE, RESNET_SIZE)
    visual = reference.visual
    with torch.no_grad():
        fmap = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(images)))))
        grid = encoder.encode_image_grid(images)
        side = RESNET_SIZE // 32
        assert grid.shape == (2, side, side, 2048)
        torch.testing.assert_close(grid, fmap.permute(0, 2, 3, 1))
        assert encoder.encode_image_grid(images, project=True).shape == (2, side, side, 1024)
        # grid features take any size without resizing anything
        assert encoder.encode_image_grid(torch.randn(1, 3, 96, 160)).shape == (1, 3, 5, 2048)
    # the pooled output at 128 px: the attention pool's position embedding resized like a
    # ViT's (bicubic on the 7x7 grid, mean-token row kept)
    original = visual.attnpool.positional_embedding.detach()  # [1 + 7*7, 2048]
    resized = encoder.model.visual.attnpool.positional_embedding.detach()  # [1 + 4*4, 2048]
    old_grid = original[1:].reshape(1, 7, 7, 2048).permute(0, 3, 1, 2)
    expected = F.interpolate(old_grid, size=(side, side), mode="bicubic", antialias=True)
    assert torch.equal(resized[0], original[0])
    torch.testing.assert_close(resized[1:], expected.permute(0, 2, 3, 1).reshape(-1, 2048))
    visual.attnpool.positional_embedding = torch.nn.Parameter(resized)
    try:
        with torch.no_grad():
            torch.testing.assert_close(encoder.encode_image(images), reference.encode_image(images))
    finally:
        visual.attnpool.positional_embedding = torch.nn.Parameter(original)
