"""Fuzzing the checkpoint readers: whatever a file holds, only a one-line DataError comes out.

Two valid files are corrupted at random: a tiny follower checkpoint (read by
``load_checkpoint`` and ``load_follower``, i.e. ``load_model``) and a tiny encoder checkpoint
(read by ``read_checkpoint_metadata``). Corruption is of the bytes (flipped, cut, inserted,
deleted) or of the payload before ``torch.save`` (an entry anywhere replaced by another
value, a tensor of the wrong shape or type included, or removed). Sizes in model configs
stay small: a checkpoint that asks for a huge model is an honest request, not a corrupt one.
``CLIPVIL_FUZZ_EXAMPLES`` raises the number of examples (and draws fresh ones).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from fuzzing import corrupted_bytes, fuzz_settings, returns_or_data_error
from hypothesis import given
from hypothesis import strategies as st

from envs.errors import DataError
from envs.tokenizer import Tokenizer
from vln_agent.encoders import create_encoder, read_checkpoint_metadata, save_encoder
from vln_agent.models.follower import Follower, FollowerConfig, load_follower
from vln_agent.training.checkpoint import load_checkpoint, save_checkpoint

#: Examples per property in the suite (``$CLIPVIL_FUZZ_EXAMPLES`` for a deep run).
EXAMPLES = 20
#: A reader that takes longer than this on a tiny file hangs.
HANG_SECONDS = 30
FUZZ = fuzz_settings(EXAMPLES)
#: The tiny follower: every size small, so a corrupt config cannot ask for much memory.
TINY_FOLLOWER = FollowerConfig(
    vocab_size=8,
    feature_size=6,
    word_embedding_size=4,
    hidden_size=4,
    action_embedding_size=4,
    angle_feature_size=4,
)

# ------------------------------------------------------------------ corruption strategies
#: Plain values a payload entry may be replaced by (small sizes, and awkward types).
PLAIN_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 16)
    | st.sampled_from([float("nan"), float("inf"), 0.5, 10**400, "", "x", "follower"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=5,
)
TENSORS = st.builds(
    lambda shape, dtype: torch.zeros(shape, dtype=dtype),
    st.lists(st.integers(0, 5), max_size=3),
    st.sampled_from([torch.float32, torch.float16, torch.int64, torch.bool]),
)
VALUES = PLAIN_VALUES | TENSORS


@st.composite
def corrupted_payload(draw: st.DrawFn, payload: dict[str, Any]) -> Any:
    """A copy of ``payload`` with one to three entries (at depth 1 or 2) replaced or removed."""
    payload = {
        key: dict(value) if isinstance(value, dict) else value for key, value in payload.items()
    }
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.integers(0, 9)) == 0:
            return draw(VALUES)  # not even a dict
        parent = payload
        key = draw(st.sampled_from(sorted(parent)))
        if isinstance(parent[key], dict) and parent[key] and draw(st.booleans()):
            parent = parent[key]
            key = draw(st.sampled_from(sorted(parent)))
        if draw(st.booleans()):
            parent[key] = draw(VALUES)
        else:
            del parent[key]
    return payload


# ------------------------------------------------------------------------------ checking
def reads_or_data_error(read: Callable[[], object], path: Path) -> None:
    """``read()`` returns, or raises a one-line DataError naming ``path``; nothing else."""
    returns_or_data_error(read, path, HANG_SECONDS)


# ------------------------------------------------------------------------------ the files
@pytest.fixture(scope="module")
def follower_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny follower checkpoint: its payload, its bytes, and a folder to corrupt in."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("fuzz_follower")
    tokenizer = Tokenizer.from_texts(["walk past the sofa and stop"])
    config = FollowerConfig(**{**TINY_FOLLOWER.to_dict(), "vocab_size": len(tokenizer)})
    payload = {
        "kind": "follower",
        "model_config": config.to_dict(),
        "train_config": {"iterations": 1},
        "state_dict": Follower(config).state_dict(),
        "vocabulary": list(tokenizer.vocab),
        "step": 1,
        "metrics": {"spl": 0.5},
        "extra": {"feature_size": config.feature_size},
    }
    save_checkpoint(folder / "follower.pt", payload)
    full = load_checkpoint(folder / "follower.pt")
    return {"folder": folder, "payload": full, "bytes": (folder / "follower.pt").read_bytes()}


@pytest.fixture(scope="module")
def encoder_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A tiny encoder checkpoint (``clipvil-tiny``): its payload, its bytes and a folder."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("fuzz_encoder")
    save_encoder(create_encoder("clipvil-tiny"), folder / "encoder.pt", extra={"step": 3})
    payload = torch.load(folder / "encoder.pt", weights_only=True)
    return {"folder": folder, "payload": payload, "bytes": (folder / "encoder.pt").read_bytes()}


def test_the_valid_files_read(follower_checkpoint, encoder_checkpoint):
    model, tokenizer, payload = load_follower(follower_checkpoint["folder"] / "follower.pt")
    assert payload["step"] == 1 and isinstance(model, Follower)
    assert len(tokenizer) == payload["model_config"]["vocab_size"]
    metadata = read_checkpoint_metadata(encoder_checkpoint["folder"] / "encoder.pt")
    assert metadata is not None and metadata["model_name"] == "clipvil-tiny"


# --------------------------------------------------------------------------- properties
@FUZZ
@given(data=st.data())
def test_follower_checkpoint_bytes(follower_checkpoint, data):
    path = follower_checkpoint["folder"] / "bytes.pt"
    path.write_bytes(data.draw(corrupted_bytes(follower_checkpoint["bytes"])))
    reads_or_data_error(lambda: load_checkpoint(path), path)
    reads_or_data_error(lambda: load_follower(path), path)


@FUZZ
@given(data=st.data())
def test_follower_checkpoint_payloads(follower_checkpoint, data):
    path = follower_checkpoint["folder"] / "payload.pt"
    torch.save(data.draw(corrupted_payload(follower_checkpoint["payload"])), path)
    reads_or_data_error(lambda: load_checkpoint(path, kind="follower"), path)
    reads_or_data_error(lambda: load_follower(path), path)


@FUZZ
@given(data=st.data())
def test_encoder_checkpoint_bytes(encoder_checkpoint, data):
    path = encoder_checkpoint["folder"] / "bytes.pt"
    path.write_bytes(data.draw(corrupted_bytes(encoder_checkpoint["bytes"])))
    reads_or_data_error(lambda: read_checkpoint_metadata(path), path)


@FUZZ
@given(data=st.data())
def test_encoder_checkpoint_payloads(encoder_checkpoint, data):
    path = encoder_checkpoint["folder"] / "payload.pt"
    torch.save(data.draw(corrupted_payload(encoder_checkpoint["payload"])), path)
    reads_or_data_error(lambda: read_checkpoint_metadata(path), path)


# ------------------------------------------------- exhaustive and found-by-fuzzing cases
def _tiny_checkpoint(path: Path) -> bytes:
    payload = {"kind": "x", "model_config": {}, "state_dict": {"w": torch.zeros(4)}}
    save_checkpoint(path, payload)
    return path.read_bytes()


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch warns of odd pickle protocols
def test_every_byte_of_a_small_checkpoint_set_to_ff(tmp_path):
    """Exhaustive single-byte damage: a read returns or is a DataError (was IndexError,
    UnicodeDecodeError, OSError and more)."""
    original = _tiny_checkpoint(tmp_path / "ok.pt")
    path = tmp_path / "damaged.pt"
    outcomes = {"read": 0, "error": 0}
    for at in range(len(original)):
        path.write_bytes(original[:at] + b"\xff" + original[at + 1 :])
        try:
            load_checkpoint(path)
            outcomes["read"] += 1
        except DataError as err:
            assert str(err).startswith(f"{path}: ") and "\n" not in str(err)
            outcomes["error"] += 1
    assert outcomes["error"] > len(original) // 4  # much of the file matters


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": "2"}, "checkpoint version '2', expected an integer >= 1"),
        ({"version": True}, "checkpoint version True, expected an integer >= 1"),
        ({"version": 0}, "checkpoint version 0, expected an integer >= 1"),
        ({"kind": 3}, "checkpoint kind 3, expected a string"),
        ({"state_dict": [1]}, "state_dict is a list, expected a dict"),
        ({"model_config": None}, "model_config is a NoneType, expected a dict"),
    ],
)
def test_checkpoint_header_of_the_wrong_type(tmp_path, change, message):
    path = tmp_path / "bad.pt"
    payload = {"version": 2, "kind": "x", "model_config": {}, "state_dict": {}, **change}
    torch.save(payload, path)
    with pytest.raises(DataError) as err:
        load_checkpoint(path)
    assert str(err.value) == f"{path}: {message}"


@pytest.mark.parametrize(
    ("entry", "value", "message"),
    [
        ("model_config", [], "model_config is a list, expected a dict"),
        ("image_size", 7, "image_size is a int, expected a list"),
        ("model_name", None, "model_name is a NoneType, expected a str"),
        ("version", "2", "clipvil checkpoint version '2', expected 2"),
    ],
)
def test_encoder_metadata_of_the_wrong_type(encoder_checkpoint, tmp_path, entry, value, message):
    path = tmp_path / "bad.pt"
    torch.save({**encoder_checkpoint["payload"], entry: value}, path)
    with pytest.raises(DataError) as err:
        read_checkpoint_metadata(path)
    assert str(err.value) == f"{path}: {message}"


def test_encoder_checkpoint_with_a_damaged_zip_listing(encoder_checkpoint, tmp_path):
    """The archive's central directory is cut: zipfile's BadZipFile was not caught."""
    data = encoder_checkpoint["bytes"]
    listing = data.rfind(b"PK\x01\x02")  # the last central-directory entry
    path = tmp_path / "damaged.pt"
    path.write_bytes(data[:listing] + b"\x00" * 8 + data[listing + 8 :])
    with pytest.raises(DataError) as err:
        read_checkpoint_metadata(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)


def test_follower_config_that_does_not_fit(follower_checkpoint, tmp_path):
    path = tmp_path / "bad.pt"
    payload = follower_checkpoint["payload"]
    torch.save({**payload, "model_config": {**payload["model_config"], "hidden_size": 3}}, path)
    with pytest.raises(DataError) as err:
        load_follower(path)
    assert str(err.value).startswith(f"{path}: checkpoint does not match the follower (")
