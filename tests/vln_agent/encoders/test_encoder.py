"""CLIPEncoder on the tiny configs: feature shapes, text tokens, locking, precision, batching."""

from __future__ import annotations

import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from vln_agent.encoders import (
    CLIPEncoder,
    count_trainable,
    create_encoder,
    interpolate_pos_embed,
    save_encoder,
)
from vln_agent.encoders.pos_embed import grid_shape

TINY_SIZE = 32  # clipvil-tiny: 32 px, patch 8 -> 4x4 grid, width 64, E = 32
TINY_RN_SIZE = 64  # clipvil-tiny-rn: 64 px -> 2x2 layer4 grid, 512 channels


def test_tiny_vit_shapes(tiny_encoder: CLIPEncoder):
    images = torch.randn(3, 3, TINY_SIZE, TINY_SIZE)
    with torch.no_grad():
        pooled = tiny_encoder.encode_image(images)
        assert pooled.shape == (3, 32) and pooled.dtype == torch.float32
        torch.testing.assert_close(pooled, tiny_encoder.model.encode_image(images))
        assert tiny_encoder.encode_image_grid(images).shape == (3, 4, 4, 64)
        assert tiny_encoder.encode_image_grid(images, project=True).shape == (3, 4, 4, 32)
    assert tiny_encoder.grid_stride == (8, 8) and tiny_encoder.is_vit
    assert not tiny_encoder.training


def test_text_tokens_pool_to_the_text_embedding(tiny_encoder: CLIPEncoder):
    texts = ["a chair", "walk past the sofa and stop at the door"]
    tokens = tiny_encoder.tokenize(texts)  # [2, 77]
    assert tokens.shape == (2, tiny_encoder.context_length) == (2, 77)
    with torch.no_grad():
        pooled = tiny_encoder.encode_text(tokens)  # [2, 32]
        per_token = tiny_encoder.encode_text_tokens(tokens)
        projected = tiny_encoder.encode_text_tokens(tokens, project=True)
    assert per_token.features.shape == (2, 77, 32)  # text width 32
    lengths = [len(tiny_encoder.tokenizer.encode(text)) + 2 for text in texts]  # + SOT, EOT
    assert per_token.mask.sum(dim=1).tolist() == lengths
    assert per_token.eot_index.tolist() == [n - 1 for n in lengths]
    rows = torch.arange(2)
    eot_features = projected.features[rows, projected.eot_index]  # [2, E]
    torch.testing.assert_close(eot_features, pooled)
    projection = tiny_encoder.model.text_projection
    torch.testing.assert_close(per_token.features @ projection, projected.features)
    with pytest.raises(ValueError, match="encoder.tokenize"):
        tiny_encoder.encode_text(tokens[:, :16])


def trimmed_text_reference(encoder: CLIPEncoder, token_ids: torch.Tensor) -> torch.Tensor:
    """The trimmed text encoding as ``pretrain.objectives`` computed it before it moved into
    :meth:`CLIPEncoder.encode_text` (the same operations, on the model's public members)."""
    model = encoder.model
    tokens = token_ids.to(encoder.device, torch.long)  # [B, L]
    length = int(tokens.argmax(dim=-1).max()) + 1
    tokens = tokens[:, :length]  # [B, l]
    dtype = {"fp32": None, "bf16": torch.bfloat16}[encoder.precision]
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        x = model.token_embedding(tokens) + model.positional_embedding[:length]  # [B, l, W]
        x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
        x = model.ln_final(x)  # [B, l, W]
        x = x[torch.arange(len(tokens)), tokens.argmax(dim=-1)]  # [B, W]
        x = x @ model.text_projection  # [B, E]
    return x.float()


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_trimmed_text_encoding_is_unchanged_and_matches_the_full_one(precision, one_torch_thread):
    torch.manual_seed(0)
    encoder = create_encoder("clipvil-tiny", precision=precision)
    texts = ["a blue sofa in a living room", "a hall", "walk past the table and stop"]
    tokens = encoder.tokenize(texts)  # [3, 77], the longest: 8 positions
    with torch.no_grad():
        trimmed = encoder.encode_text(tokens, trim_padding=True)  # [3, E]
        assert torch.equal(trimmed, trimmed_text_reference(encoder, tokens))
        full = encoder.encode_text(tokens)  # [3, E]
        tolerance = {"fp32": 1e-5, "bf16": 2e-2}[precision]
        torch.testing.assert_close(trimmed, full, atol=tolerance, rtol=tolerance)
        normalized = encoder.encode_text(tokens, normalize=True, trim_padding=True)
    torch.testing.assert_close(normalized, F.normalize(trimmed, dim=-1), atol=0, rtol=0)
    with pytest.raises(ValueError, match="encoder.tokenize"):
        encoder.encode_text(tokens[:, :16], trim_padding=True)


def test_text_towers_that_cannot_be_trimmed_run_in_full(tiny_encoder: CLIPEncoder):
    tiny_encoder.model.text_pool_type = "last"  # pools the last position: padding counts
    tokens = tiny_encoder.tokenize(["a chair", "a door"])
    with torch.no_grad():
        full = tiny_encoder.encode_text(tokens)
        assert torch.equal(tiny_encoder.encode_text(tokens, trim_padding=True), full)


def test_resnet_shapes_at_any_grid_size(tiny_resnet_encoder: CLIPEncoder):
    images = torch.randn(2, 3, TINY_RN_SIZE, TINY_RN_SIZE)
    with torch.no_grad():
        assert tiny_resnet_encoder.encode_image(images).shape == (2, 32)
        assert tiny_resnet_encoder.encode_image_grid(images).shape == (2, 2, 2, 512)
        grid = tiny_resnet_encoder.encode_image_grid(torch.randn(1, 3, 96, 160))
        assert grid.shape == (1, 3, 5, 512)
        projected = tiny_resnet_encoder.encode_image_grid(images, project=True)
    pool = tiny_resnet_encoder.model.visual.attnpool
    grid = tiny_resnet_encoder.encode_image_grid(images)
    torch.testing.assert_close(projected, pool.c_proj(pool.v_proj(grid)).detach())
    with pytest.raises(ValueError, match="set_image_size"):
        tiny_resnet_encoder.encode_image(torch.randn(1, 3, 96, 96))
    tiny_resnet_encoder.set_image_size(96)
    with torch.no_grad():
        assert tiny_resnet_encoder.encode_image(torch.randn(1, 3, 96, 96)).shape == (1, 32)


def test_image_size_at_creation_equals_set_image_size(tiny_encoder, tmp_path):
    path = save_encoder(tiny_encoder, tmp_path / "tiny.pt")
    created = create_encoder("clipvil-tiny", str(path), image_size=48)
    tiny_encoder.set_image_size(48)
    assert created.image_size == (48, 48) == tiny_encoder.image_size
    images = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(created.encode_image(images), tiny_encoder.encode_image(images))
    assert created.preprocess(Image.new("RGB", (80, 60))).shape == (3, 48, 48)


def test_resizing_back_restores_and_keeps_native_updates(tiny_encoder: CLIPEncoder):
    visual = tiny_encoder.model.visual
    with torch.no_grad():
        visual.positional_embedding.add_(1.0)  # e.g. fine-tuned at the native size
    tuned = visual.positional_embedding.detach().clone()
    tiny_encoder.set_image_size(64)
    assert visual.positional_embedding.shape == (1 + 8 * 8, 64)
    tiny_encoder.set_image_size(TINY_SIZE)
    assert torch.equal(visual.positional_embedding, tuned)


def test_interpolate_pos_embed():
    torch.manual_seed(0)
    pos = torch.randn(1 + 3 * 4, 5)  # a 3x4 grid of width 5, class token first
    assert torch.equal(interpolate_pos_embed(pos, (3, 4), (3, 4)), pos)
    out = interpolate_pos_embed(pos, (3, 4), (6, 2))
    assert out.shape == (1 + 6 * 2, 5)
    assert torch.equal(out[0], pos[0])
    grid = pos[1:].reshape(1, 3, 4, 5).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(6, 2), mode="bicubic", antialias=True)
    torch.testing.assert_close(out[1:], expected.permute(0, 2, 3, 1).reshape(12, 5))
    with pytest.raises(ValueError, match="does not fit"):
        interpolate_pos_embed(pos, (4, 4), (2, 2))
    assert grid_shape((96, 160), (32, 32)) == (3, 5)
    with pytest.raises(ValueError, match="multiple"):
        grid_shape((100, 160), (32, 32))


def test_embed_images_is_one_batched_call(tiny_encoder: CLIPEncoder):
    images = torch.randn(5, 3, TINY_SIZE, TINY_SIZE)
    tiny_encoder.train()
    features = tiny_encoder.embed_images(images, batch_size=2)
    assert tiny_encoder.training  # mode restored
    assert features.shape == (5, 32) and features.device.type == "cpu"
    with torch.no_grad():
        torch.testing.assert_close(features, tiny_encoder.eval().encode_image(images))
    assert tiny_encoder.embed_images(images[:0]).shape == (0, 32)


def test_lock_image_freezes_the_image_tower_and_keeps_it_in_eval():
    encoder = create_encoder("clipvil-tiny", lock_image=True)
    model = encoder.model
    assert count_trainable(model.visual) == 0
    assert all(p.requires_grad for p in model.transformer.parameters())
    assert model.token_embedding.weight.requires_grad and model.logit_scale.requires_grad
    encoder.train()
    assert not model.visual.training and model.transformer.training


def test_partial_unlocking():
    encoder = create_encoder("clipvil-tiny", lock_image=True, unlocked_image_groups=2)
    visual = encoder.model.visual
    trainable = {name for name, p in visual.named_parameters() if p.requires_grad}
    assert "proj" in trainable and "ln_post.weight" in trainable
    assert any(name.startswith("transformer.resblocks.1.") for name in trainable)
    assert not any(name.startswith("transformer.resblocks.0.") for name in trainable)
    assert "positional_embedding" not in trainable
    encoder.train()
    assert not visual.transformer.resblocks[0].training
    assert visual.transformer.resblocks[1].training

    text_locked = create_encoder("clipvil-tiny", lock_text=True, unlocked_text_layers=1)
    model = text_locked.model
    assert model.text_projection.requires_grad
    assert not model.token_embedding.weight.requires_grad
    assert count_trainable(model.transformer) == 0 and count_trainable(model.visual) > 0
    with pytest.raises(ValueError, match="need lock_image"):
        create_encoder("clipvil-tiny", unlocked_image_groups=1)


def test_resnet_partial_unlocking_freezes_batch_norm_stats():
    encoder = create_encoder("clipvil-tiny-rn", lock_image=True, unlocked_image_groups=1)
    visual = encoder.model.visual
    assert count_trainable(visual) == count_trainable(visual.attnpool) > 0
    encoder.train()
    assert not visual.bn1.training and not visual.layer4.training
    before = visual.bn1.running_mean.clone()
    encoder.encode_image(torch.randn(2, 3, TINY_RN_SIZE, TINY_RN_SIZE))
    assert torch.equal(visual.bn1.running_mean, before)


def test_contrastive_forward_trains_only_unlocked_parts():
    encoder = create_encoder("clipvil-tiny", lock_image=True).train()
    images = torch.randn(4, 3, TINY_SIZE, TINY_SIZE)
    tokens = encoder.tokenize(["a", "b c", "d e f", "g"])
    image, text, scale = encoder(images, tokens)
    loss = open_clip.ClipLoss()(image, text, scale)
    loss.backward()
    assert encoder.model.visual.proj.grad is None
    assert encoder.model.text_projection.grad is not None
    torch.testing.assert_close(image.norm(dim=-1), torch.ones(4))


def test_precision_options(tiny_encoder: CLIPEncoder):
    images = torch.randn(2, 3, TINY_SIZE, TINY_SIZE)
    with torch.no_grad():
        fp32 = tiny_encoder.encode_image(images)
        tiny_encoder.precision = "bf16"
        bf16 = tiny_encoder.encode_image(images)
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
    torch.testing.assert_close(bf16, fp32, rtol=0.1, atol=0.1)
    with pytest.raises(ValueError, match="needs a GPU"):
        create_encoder("clipvil-tiny", precision="fp16")
    with pytest.raises(ValueError, match="precision must be one of"):
        create_encoder("clipvil-tiny", precision="fp8")


def test_preprocess_and_input_checks(tiny_encoder: CLIPEncoder):
    pixels = tiny_encoder.preprocess(Image.new("RGB", (64, 48), color=(200, 10, 10)))
    assert pixels.shape == (3, TINY_SIZE, TINY_SIZE)
    assert tiny_encoder.preprocess_train(Image.new("RGB", (64, 48))).shape == pixels.shape
    with pytest.raises(ValueError, match=r"\[B, 3, H, W\]"):
        tiny_encoder.encode_image(pixels)


@pytest.mark.parametrize("fixture", ["tiny_encoder", "tiny_resnet_encoder"])
def test_one_pass_gives_the_pooled_and_grid_features_bit_for_bit(fixture, request):
    """``encode_image_and_grid`` (what ``features --images --grid`` runs) runs the tower
    once and gives exactly what ``encode_image`` and ``encode_image_grid`` give."""
    encoder: CLIPEncoder = request.getfixturevalue(fixture)
    images = torch.randn(3, 3, *encoder.image_size)
    with torch.inference_mode():
        pooled, grid = encoder.encode_image_and_grid(images)
        assert torch.equal(pooled, encoder.encode_image(images))
        assert torch.equal(grid, encoder.encode_image_grid(images))
