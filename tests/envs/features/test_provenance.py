"""Feature provenance (torch-free): what a feature file says about its encoder, and the
rules :func:`check_provenance` applies between a checkpoint's training features and others."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from envs.constants import NUM_VIEWS
from envs.errors import DataError
from envs.features import FeatureProvenance, HDF5FeatureWriter, check_provenance, open_features
from envs.features.provenance import encoder_identity, weights_identity

SHA_A = "a" * 64
SHA_B = "b" * 64
#: What ``clipvil features`` records for a CLIP tower (beside ``feature_dim``).
CLIP_ATTRS = {
    "model_name": "clipvil-small",
    "image_size": 64,
    "feature": "encode_image",
    "channel_order": "RGB",
    "precision": "fp32",
    "encoder_kind": "clip",
    "pretrained": "/old/place/clip.pt",
    "pretrained_sha256": SHA_A,
}


def write_features(path: Path, width: int, attrs: dict | None = None) -> Path:
    with HDF5FeatureWriter(path, width, dtype="float32", attrs=attrs) as writer:
        writer.add("scan", "vp", np.ones((NUM_VIEWS, width), np.float32))
    return path


def provenance(path: Path, feature_columns: int | None = None) -> FeatureProvenance:
    with open_features(path, feature_columns=feature_columns) as store:
        return FeatureProvenance.of_store(store)


def test_weights_are_identified_by_what_survives_moving_files() -> None:
    assert weights_identity(CLIP_ATTRS) == f"sha256:{SHA_A}"
    assert weights_identity({"pretrained": "openai"}) == "tag:openai"
    assert weights_identity({"pretrained": "none", "seed": 3}) == "random:seed=3"
    # a bare path (older files) identifies nothing: the same weights may live elsewhere
    assert weights_identity({"pretrained": "/somewhere/clip.pt"}) is None
    assert weights_identity({"pretrained": "clip.pt"}) is None
    assert weights_identity({}) is None
    # the demo's files spell the kind "encoder"; precision and paths are not identity
    demo = {"encoder": "clip", "pretrained": "x.pt", "pretrained_sha256": SHA_A, "precision": 1}
    assert encoder_identity(demo) == {"encoder_kind": "clip", "weights": f"sha256:{SHA_A}"}


def test_a_store_exposes_the_recorded_encoder(tmp_path: Path) -> None:
    path = write_features(tmp_path / "clip.h5", 8, CLIP_ATTRS)
    with open_features(path) as store:
        assert store.attrs["model_name"] == "clipvil-small" and store.attrs["feature_dim"] == 8
    got = provenance(path)
    assert (got.path, got.width, got.stored_width) == (str(path), 8, 8)
    assert got.encoder == {
        "model_name": "clipvil-small",
        "encoder_kind": "clip",
        "weights": f"sha256:{SHA_A}",
        "image_size": 64,
        "feature": "encode_image",
        "channel_order": "RGB",
    }
    assert FeatureProvenance.from_record(got.path, 8, got.to_record()) == got


def test_another_width_is_refused_naming_both_files_and_widths(tmp_path: Path) -> None:
    trained = provenance(write_features(tmp_path / "train.h5", 8, CLIP_ATTRS))
    wide = write_features(tmp_path / "wide.h5", 16)  # no metadata: a public release
    with pytest.raises(DataError) as err:
        check_provenance(provenance(wide), trained, "follower.pt")
    assert str(err.value) == (
        f"{wide}: holds [36, 16] features, but follower.pt was trained on [36, 8] features "
        f"({tmp_path / 'train.h5'}) (--feature-columns 8 reads the first 8 columns)"
    )
    # asked for explicitly, the first columns of a file without metadata are fine
    assert check_provenance(provenance(wide, feature_columns=8), trained, "follower.pt") is None
    # the encoder is no excuse for another width, nor is allow_other
    narrow = provenance(write_features(tmp_path / "narrow.h5", 4, CLIP_ATTRS))
    with pytest.raises(DataError, match=r"\[36, 4\] features, but f\.pt .* \[36, 8\] features"):
        check_provenance(narrow, trained, "f.pt", allow_other=True)


def test_another_encoder_of_the_same_width_needs_allow_other(tmp_path: Path) -> None:
    trained = provenance(write_features(tmp_path / "train.h5", 8, CLIP_ATTRS))
    supervised = {**CLIP_ATTRS, "encoder_kind": "supervised", "pretrained_sha256": SHA_B}
    other = provenance(write_features(tmp_path / "supervised.h5", 8, supervised))
    with pytest.raises(DataError) as err:
        check_provenance(other, trained, "follower.pt")
    message = str(err.value)
    assert message.startswith(f"{tmp_path / 'supervised.h5'}: features of another encoder ")
    assert "follower.pt" in message and str(tmp_path / "train.h5") in message
    assert "encoder_kind supervised vs clip" in message
    assert f"weights sha256:{SHA_B[:12]} vs sha256:{SHA_A[:12]}" in message
    assert message.endswith("pass --allow-other-features if that is meant")
    warning = check_provenance(other, trained, "follower.pt", allow_other=True)
    assert warning is not None and warning.startswith(f"{tmp_path / 'supervised.h5'}: ")
    assert "follower.pt" in warning and "--allow-other-features" in warning


def test_same_weights_moved_elsewhere_and_one_sided_records_pass(tmp_path: Path) -> None:
    trained = provenance(write_features(tmp_path / "train.h5", 8, CLIP_ATTRS))
    moved = {**CLIP_ATTRS, "pretrained": "/new/place/clip.pt", "precision": "bf16"}
    moved_file = provenance(write_features(tmp_path / "moved.h5", 8, moved))
    assert check_provenance(moved_file, trained, "f") is None
    # a file without metadata, or a checkpoint that recorded none: the width decides
    foreign = provenance(write_features(tmp_path / "public.h5", 8))
    assert check_provenance(foreign, trained, "f") is None
    old_checkpoint = FeatureProvenance.from_record("small-clip.h5", 8, None)
    assert old_checkpoint.encoder == {} and old_checkpoint.stored_width == 8
    assert check_provenance(trained, old_checkpoint, "f") is None
    with pytest.raises(DataError, match=r"\[36, 16\] features, but f was trained on \[36, 8\]"):
        check_provenance(provenance(write_features(tmp_path / "w.h5", 16)), old_checkpoint, "f")
