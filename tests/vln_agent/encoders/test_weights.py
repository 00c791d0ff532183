"""Weights: offline failure, bad names/tags/files, checkpoints, TorchScript and safetensors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from envs.errors import DataError
from vln_agent.encoders import (
    ENCODER_CHECKPOINT_KIND,
    CLIPEncoder,
    WeightsUnavailableError,
    create_encoder,
    list_models,
    load_encoder,
    read_checkpoint_metadata,
    register_model_configs,
    resolve_pretrained,
    save_encoder,
)
from vln_agent.training.checkpoint import load_checkpoint

REPO_ROOT = Path(__file__).resolve().parents[3]
#: Generous bound for the offline failure, Python start-up and imports included.
OFFLINE_FAILURE_BOUND_S = 20.0
#: The clipvil-small checkpoint must fit in this many bytes (fp16 storage).
SMALL_CHECKPOINT_MAX_BYTES = 25_000_000

OFFLINE_SCRIPT = """
import json, sys, time
import open_clip
import vln_agent.encoders as encoders
registered_on_import = "clipvil-tiny" in open_clip.list_models()
messages = []
start = time.perf_counter()
for allow_download in (False, True):
    try:
        encoders.create_encoder("ViT-B-32", "openai", allow_download=allow_download)
    except encoders.WeightsUnavailableError as err:
        messages.append(str(err))
print(json.dumps({"registered_on_import": registered_on_import, "messages": messages,
                  "seconds": time.perf_counter() - start}))
"""


def test_missing_tag_fails_offline_within_seconds(tmp_path):
    """With an empty cache the tag fails at once with a one-line how-to, network or not."""
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        HF_HOME=str(tmp_path / "hf"),
        XDG_CACHE_HOME=str(tmp_path / "xdg"),
        HOME=str(tmp_path / "home"),
    )
    env.pop("HF_HUB_CACHE", None)
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert elapsed < OFFLINE_FAILURE_BOUND_S
    assert report["seconds"] < 2.0  # the failure itself: file-system checks only
    assert report["registered_on_import"] is False  # no side effects on import
    no_download, offline = report["messages"]
    for message in (no_download, offline):
        assert "\n" not in message
        assert message.startswith("ViT-B-32/openai: CLIP weights are not in the local cache")
        assert str(tmp_path / "hf" / "hub") in message  # where it looked
        assert "create_model_and_transforms" in message and "--pretrained PATH" in message
    assert "allow_download=False" in no_download
    assert "HF_HUB_OFFLINE=1 is set" in offline


def test_resolving_a_missing_tag_never_touches_the_network(tmp_path):
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match="not in the local cache") as info:
        resolve_pretrained("RN50x4", "openai", cache_dir=tmp_path)
    assert time.perf_counter() - start < 1.0
    assert isinstance(info.value, DataError)
    assert "RN50x4.pt" in str(info.value)  # the URL cache file it looked for, too


def test_bad_names_tags_and_paths_are_one_line_data_errors(tmp_path):
    with pytest.raises(DataError, match="ViT-B-99: unknown CLIP model name"):
        create_encoder("ViT-B-99")
    with pytest.raises(DataError, match="did you mean ViT-B-32"):
        create_encoder("vit-b-32")
    with pytest.raises(DataError, match="not a pretrained tag of ViT-B-32 .*openai"):
        create_encoder("ViT-B-32", "imagenet_supervised")
    with pytest.raises(DataError, match="file not found"):
        create_encoder("clipvil-tiny", str(tmp_path / "missing.pt"))
    with pytest.raises(DataError, match="not supported"):
        create_encoder("hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K")


def _outputs(encoder: CLIPEncoder) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(5)
    size = encoder.image_size
    images = torch.randn(2, 3, *size)
    tokens = encoder.tokenize(["go up the stairs", "turn left"])
    with torch.no_grad():
        return encoder.encode_image(images), encoder.encode_text(tokens)


def test_checkpoint_round_trip(tiny_encoder: CLIPEncoder, tmp_path):
    tiny_encoder.set_image_size(48)
    path = save_encoder(tiny_encoder, tmp_path / "ckpt" / "tiny.pt", extra={"step": 7})
    assert [p.name for p in path.parent.iterdir()] == ["tiny.pt"]  # no temp file left
    metadata = read_checkpoint_metadata(path)
    assert metadata["kind"] == ENCODER_CHECKPOINT_KIND and metadata["step"] == 7
    # the one checkpoint format: the generic loader reads it too (weights_only)
    assert load_checkpoint(path, kind=ENCODER_CHECKPOINT_KIND)["model_name"] == "clipvil-tiny"
    assert metadata["model_name"] == "clipvil-tiny" and metadata["image_size"] == [48, 48]
    assert metadata["model_config"]["vision_cfg"]["image_size"] == 48
    loaded = load_encoder(path)
    assert loaded.image_size == (48, 48)
    for ours, theirs in zip(_outputs(loaded), _outputs(tiny_encoder), strict=True):
        torch.testing.assert_close(ours, theirs)
    # the same file through the public factory, and resized on the way
    again = create_encoder("clipvil-tiny", str(path), image_size=32)
    assert again.model.visual.positional_embedding.shape == (1 + 4 * 4, 64)
    with pytest.raises(DataError, match="holds a clipvil-tiny model, not clipvil-small"):
        create_encoder("clipvil-small", str(path))
    with pytest.raises(ValueError, match="may not overwrite"):
        save_encoder(tiny_encoder, tmp_path / "x.pt", extra={"state_dict": {}})


def test_half_checkpoint_and_open_clip_reads_it(tiny_encoder: CLIPEncoder, tmp_path):
    full = save_encoder(tiny_encoder, tmp_path / "full.pt")
    half = save_encoder(tiny_encoder, tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = load_encoder(half)
    assert next(loaded.model.parameters()).dtype == torch.float32
    for ours, theirs in zip(_outputs(loaded), _outputs(tiny_encoder), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-2, atol=1e-2)
    register_model_configs()
    model = open_clip.create_model("clipvil-tiny", pretrained=str(full)).eval()
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(images), tiny_encoder.encode_image(images))


def test_corrupt_files_are_data_errors_naming_the_file(tiny_encoder: CLIPEncoder, tmp_path):
    good = save_encoder(tiny_encoder, tmp_path / "good.pt")
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"this is not a checkpoint\n" * 10)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    bad_safetensors = tmp_path / "bad.safetensors"
    bad_safetensors.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    for path in (truncated, garbage, empty, bad_safetensors):
        with pytest.raises(DataError) as info:
            create_encoder("clipvil-tiny", str(path))
        message = str(info.value)
        assert message.startswith(f"{path}: ") and "\n" not in message
    rn_weights = tmp_path / "rn.pt"
    register_model_configs()
    torch.save(open_clip.create_model("clipvil-tiny-rn").state_dict(), rn_weights)
    with pytest.raises(DataError, match="cannot load it as clipvil-tiny weights"):
        create_encoder("clipvil-tiny", str(rn_weights))


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:FutureWarning")
def test_plain_state_dict_safetensors_and_torchscript_files(tiny_encoder, tmp_path):
    state = {k: v.contiguous() for k, v in tiny_encoder.model.state_dict().items()}
    save_file(state, tmp_path / "tiny.safetensors")
    from_safetensors = create_encoder("clipvil-tiny", str(tmp_path / "tiny.safetensors"))
    for ours, theirs in zip(_outputs(from_safetensors), _outputs(tiny_encoder), strict=True):
        torch.testing.assert_close(ours, theirs)

    # An OpenAI-style TorchScript archive (QuickGELU) loads with QuickGELU switched on.
    register_model_configs()
    torch.manual_seed(4)
    scripted = open_clip.create_model("clipvil-tiny", force_quick_gelu=True, jit=True)
    archive = tmp_path / "tiny_jit.pt"
    torch.jit.save(scripted, str(archive))
    from_archive = create_encoder("clipvil-tiny", str(archive))
    assert from_archive.model_config["quick_gelu"] is True
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = scripted.encode_image(images)
        torch.testing.assert_close(from_archive.encode_image(images), expected)


def test_clipvil_small_fits_its_budget(tmp_path):
    assert {"clipvil-small", "clipvil-tiny", "clipvil-tiny-rn"} <= set(list_models())
    count = len(list_models())
    register_model_configs()  # idempotent
    assert len(list_models()) == count
    encoder = create_encoder("clipvil-small")
    params = sum(p.numel() for p in encoder.parameters())
    assert 5_000_000 < params < 12_500_000
    path = save_encoder(encoder, Path(tmp_path) / "small.pt", half=True)
    assert path.stat().st_size <= SMALL_CHECKPOINT_MAX_BYTES
    assert encoder.image_size == (112, 112) and encoder.grid_stride == (16, 16)
