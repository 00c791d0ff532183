"""Feature stores: HDF5 and legacy TSV round trips, errors, the LRU cache, resumable writing."""

from __future__ import annotations

import base64
import csv
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from envs.constants import NUM_VIEWS, R2R_IMAGE_HEIGHT, R2R_IMAGE_WIDTH
from envs.errors import DataError
from envs.features import (
    PARTIAL_SUFFIX,
    HDF5FeatureWriter,
    TSVFeatureStore,
    convert_tsv_to_hdf5,
    encode_tsv_line,
    feature_key,
    open_features,
)
from vln_agent.cli import main

REPO_ROOT = Path(__file__).resolve().parents[3]
SCAN = "17DRP5sb8fy"
DIM = 16


def viewpoint_id(i: int) -> str:
    return f"{i:032x}"


def random_features(n: int, dim: int = DIM, seed: int = 0) -> dict[tuple[str, str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        (SCAN, viewpoint_id(i)): rng.standard_normal((NUM_VIEWS, dim)).astype(np.float32)
        for i in range(n)
    }


def write_h5(path: Path, features: dict, dtype: str = "float32") -> None:
    with HDF5FeatureWriter(path, next(iter(features.values())).shape[1], dtype=dtype) as writer:
        for (scan, viewpoint), array in features.items():
            writer.add(scan, viewpoint, array)


def write_legacy_tsv(path: Path, features: dict) -> None:
    """The way R2R-EnvDrop's precompute_img_features.py writes its TSV (csv, CRLF lines)."""
    fieldnames = ["scanId", "viewpointId", "image_w", "image_h", "vfov", "features"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, delimiter="\t", fieldnames=fieldnames)
        for (scan, viewpoint), array in features.items():
            row = {
                "scanId": scan,
                "viewpointId": viewpoint,
                "image_w": R2R_IMAGE_WIDTH,
                "image_h": R2R_IMAGE_HEIGHT,
                "vfov": 60,
                "features": str(base64.b64encode(array.astype(np.float32).tobytes()), "utf-8"),
            }
            writer.writerow(row)


def test_hdf5_round_trip_float32(tmp_path: Path) -> None:
    features = random_features(5)
    path = tmp_path / "feats.h5"
    write_h5(path, features)
    assert not Path(f"{path}{PARTIAL_SUFFIX}").exists()
    with open_features(path) as store:
        assert store.feature_dim == DIM
        assert len(store) == 5
        assert set(store.keys()) == set(features)
        assert (SCAN, viewpoint_id(0)) in store
        assert (SCAN, "missing") not in store
        for (scan, viewpoint), expected in features.items():
            got = store.get(scan, viewpoint)
            assert got.dtype == np.float32 and got.shape == (NUM_VIEWS, DIM)
            np.testing.assert_array_equal(got, expected)


def test_hdf5_round_trip_float16(tmp_path: Path) -> None:
    features = random_features(3)
    path = tmp_path / "feats.hdf5"
    write_h5(path, features, dtype="float16")
    with h5py.File(path, "r") as f:
        assert f[feature_key(SCAN, viewpoint_id(0))].dtype == np.float16
    with open_features(path) as store:
        for (scan, viewpoint), expected in features.items():
            got = store.get(scan, viewpoint)
            assert got.dtype == np.float32
            np.testing.assert_array_equal(got, expected.astype(np.float16).astype(np.float32))


def test_public_layout_with_extra_columns_is_sliced_only_when_asked(tmp_path: Path) -> None:
    """HAMT-style files: plain datasets without attributes, wider than the visual feature.
    A width is never cut silently: ``feature_dim`` must match, ``feature_columns`` cuts."""
    path = tmp_path / "public.hdf5"
    wide = np.arange(NUM_VIEWS * 20, dtype=np.float32).reshape(NUM_VIEWS, 20)
    with h5py.File(path, "w") as f:
        f[feature_key(SCAN, viewpoint_id(1))] = wide
        f[feature_key(SCAN, viewpoint_id(2))] = wide[:, :12]  # narrower than asked below
    with open_features(path) as store:
        assert store.feature_dim == store.stored_dim == 20 and store.attrs == {}
        np.testing.assert_array_equal(store.get(SCAN, viewpoint_id(1)), wide)
    with pytest.raises(DataError, match=r"have shape \[36, 20\], expected \[36, 16\]$"):
        open_features(path, feature_dim=16)
    with open_features(path, feature_columns=16) as store:
        assert (store.feature_dim, store.stored_dim, store.columns) == (16, 20, True)
        np.testing.assert_array_equal(store.get(SCAN, viewpoint_id(1)), wide[:, :16])
        with pytest.raises(DataError, match=r"have shape \[36, 12\], expected \[36, >=16\]"):
            store.get(SCAN, viewpoint_id(2))


def test_legacy_tsv_read_and_convert(tmp_path: Path) -> None:
    features = random_features(6, dim=24, seed=1)
    tsv = tmp_path / "ResNet-152-imagenet.tsv"
    write_legacy_tsv(tsv, features)
    with open_features(tsv) as store:
        assert isinstance(store, TSVFeatureStore)
        assert store.feature_dim == 24
        assert list(store.keys()) == list(features)
        for (scan, viewpoint), expected in features.items():
            np.testing.assert_array_equal(store.get(scan, viewpoint), expected)
    with pytest.raises(DataError, match=r"expected \[36, 8\]"):
        open_features(tsv, feature_dim=8)
    with open_features(tsv, feature_columns=8) as store:
        np.testing.assert_array_equal(
            store.get(SCAN, viewpoint_id(2)), features[SCAN, viewpoint_id(2)][:, :8]
        )

    h5 = tmp_path / "converted.h5"
    assert convert_tsv_to_hdf5(tsv, h5) == 6
    with open_features(h5) as store:
        assert len(store) == 6
        for (scan, viewpoint), expected in features.items():
            np.testing.assert_array_equal(store.get(scan, viewpoint), expected)


def test_encode_tsv_line_matches_the_legacy_writer(tmp_path: Path) -> None:
    features = random_features(2, seed=2)
    tsv = tmp_path / "legacy.tsv"
    write_legacy_tsv(tsv, features)
    lines = [
        encode_tsv_line(scan, viewpoint, array, R2R_IMAGE_WIDTH, R2R_IMAGE_HEIGHT, 60)
        for (scan, viewpoint), array in features.items()
    ]
    assert tsv.read_bytes() == "".join(line + "\r\n" for line in lines).encode("ascii")


def test_tsv_is_decoded_lazily(tmp_path: Path) -> None:
    """A broken line is only an error when its viewpoint is read."""
    features = random_features(3)
    tsv = tmp_path / "feats.tsv"
    write_legacy_tsv(tsv, features)
    with open(tsv, "a") as f:
        f.write(f"{SCAN}\tbroken\t640\t480\t60\tnot*base64\n")
    with open_features(tsv) as store:
        assert len(store) == 4
        np.testing.assert_array_equal(
            store.get(SCAN, viewpoint_id(1)), features[SCAN, viewpoint_id(1)]
        )
        with pytest.raises(DataError, match=r"feats\.tsv: features of 17DRP5sb8fy_broken are not"):
            store.get(SCAN, "broken")


def test_missing_viewpoint(tmp_path: Path) -> None:
    path = tmp_path / "feats.h5"
    write_h5(path, random_features(2))
    tsv = tmp_path / "feats.tsv"
    write_legacy_tsv(tsv, random_features(2))
    for feature_file in (path, tsv):
        with open_features(feature_file) as store, pytest.raises(DataError) as err:
            store.get(SCAN, "abc")
        assert str(err.value) == f"{feature_file}: no features for viewpoint {SCAN}_abc"


def test_wrong_shapes(tmp_path: Path) -> None:
    path = tmp_path / "feats.h5"
    write_h5(path, random_features(2))
    with pytest.raises(DataError) as err:
        open_features(path, feature_dim=32)
    name = feature_key(SCAN, viewpoint_id(0))
    assert str(err.value) == f"{path}: features of {name} have shape [36, 16], expected [36, 32]"

    odd = tmp_path / "odd.h5"
    with h5py.File(odd, "w") as f:
        f["a_1"] = np.zeros((NUM_VIEWS, 8), np.float32)
        f["a_2"] = np.zeros((12, 8), np.float32)
    with (
        open_features(odd) as store,
        pytest.raises(DataError, match=r"odd\.h5: .*a_2 have shape \[12, 8\]"),
    ):
        store.get("a", "2")

    with HDF5FeatureWriter(tmp_path / "w.h5", DIM) as writer:
        with pytest.raises(DataError, match=r"w\.h5: features of s_v have shape \[36, 15\]"):
            writer.add("s", "v", np.zeros((NUM_VIEWS, 15)))
        with pytest.raises(DataError, match="NaN or infinity"):
            writer.add("s", "v", np.full((NUM_VIEWS, DIM), np.nan))
        with pytest.raises(DataError, match="float16 range"):
            writer.add("s", "v", np.full((NUM_VIEWS, DIM), 1e6))


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    for missing in (tmp_path / "none.h5", tmp_path / "none.tsv"):
        with pytest.raises(DataError, match=f"{missing.name}: file not found"):
            open_features(missing)
    text = tmp_path / "text.h5"
    text.write_text("scan\tviewpoint\n")
    with pytest.raises(DataError, match=r"text\.h5: not an HDF5 file"):
        open_features(text)
    with pytest.raises(DataError, match=r"feats\.npy: unknown feature file type"):
        (tmp_path / "feats.npy").write_bytes(b"")
        open_features(tmp_path / "feats.npy")
    one_field = tmp_path / "short.tsv"
    one_field.write_text("just-one-field\n")
    with pytest.raises(DataError, match=r"short\.tsv: line 1: expected 6 tab-separated fields"):
        open_features(one_field)


@pytest.mark.parametrize("suffix", [".h5", ".tsv"])
def test_cache_stays_bounded(tmp_path: Path, suffix: str) -> None:
    features = random_features(2000, dim=4)
    path = tmp_path / f"many{suffix}"
    if suffix == ".h5":
        write_h5(path, features)
    else:
        write_legacy_tsv(path, features)
    order = np.random.default_rng(3).permutation(len(features))
    keys = list(features)
    with open_features(path, cache_size=50) as store:
        assert store.num_cached == 0  # nothing read on open
        for i in order:
            np.testing.assert_array_equal(store.get(*keys[i]), features[keys[i]])
            assert store.num_cached <= 50
        assert store.num_cached == 50
        assert (store.cache_hits, store.cache_misses) == (0, 2000)
        recent = keys[order[-1]]
        assert store.get(*recent) is store.get(*recent)  # a cache hit
        assert store.cache_hits == 2
        evicted = keys[order[0]]
        first = store.get(*evicted)
        assert not first.flags.writeable


def test_writer_is_atomic_and_resumes_after_an_exception(tmp_path: Path) -> None:
    path = tmp_path / "out" / "feats.h5"
    partial = Path(f"{path}{PARTIAL_SUFFIX}")
    features = random_features(8)
    items = list(features.items())
    with pytest.raises(KeyboardInterrupt):
        with HDF5FeatureWriter(path, DIM) as writer:
            for i, ((scan, viewpoint), array) in enumerate(items):
                if i == 5:
                    raise KeyboardInterrupt
                writer.add(scan, viewpoint, array)
                assert not path.exists() and partial.exists()
    assert not path.exists() and partial.exists()

    with HDF5FeatureWriter(path, DIM, resume=True) as writer:
        assert writer.done() == {feature_key(*key) for key, _ in items[:5]}
        for (scan, viewpoint), array in items:
            if feature_key(scan, viewpoint) not in writer.done():
                writer.add(scan, viewpoint, array)
    assert path.exists() and not partial.exists()
    with open_features(path) as store:
        assert set(store.keys()) == set(features)


def test_resume_refuses_a_different_feature_size(tmp_path: Path) -> None:
    path = tmp_path / "feats.h5"
    writer = HDF5FeatureWriter(path, DIM)
    writer.add(SCAN, viewpoint_id(0), np.zeros((NUM_VIEWS, DIM)))
    writer.abandon()
    with pytest.raises(
        DataError, match=r"feats\.h5\.partial: was written with feature_dim 16, not 8"
    ):
        HDF5FeatureWriter(path, 8, resume=True)


def test_writer_records_attributes_and_resumes_only_with_the_same(tmp_path: Path) -> None:
    path = tmp_path / "feats.h5"
    attrs = {"model_name": "ViT-B-32", "image_size": 224, "scale": 0.5}
    writer = HDF5FeatureWriter(path, DIM, attrs=attrs)
    writer.add(SCAN, viewpoint_id(0), np.zeros((NUM_VIEWS, DIM)))
    writer.abandon()
    with pytest.raises(DataError, match=r"was written with image_size 224, not 336: resume"):
        HDF5FeatureWriter(path, DIM, resume=True, attrs={**attrs, "image_size": 336})
    with pytest.raises(DataError, match=r"was written with seed nothing, not 1"):
        HDF5FeatureWriter(path, DIM, resume=True, attrs={**attrs, "seed": 1})
    with HDF5FeatureWriter(path, DIM, resume=True, attrs=attrs) as writer:
        assert writer.done() == {feature_key(SCAN, viewpoint_id(0))}
    with h5py.File(path, "r") as f:
        assert {k: f.attrs[k] for k in attrs} == attrs and f.attrs["feature_dim"] == DIM


def test_failed_close_keeps_the_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "feats.h5"
    writer = HDF5FeatureWriter(path, DIM)
    writer.add(SCAN, viewpoint_id(0), np.ones((NUM_VIEWS, DIM)))
    path.mkdir()  # something else now occupies the output path
    (path / "keep.txt").write_text("keep")
    with pytest.raises(DataError, match=r"feats\.h5: cannot finish writing"):
        writer.close()
    assert (path / "keep.txt").read_text() == "keep"
    assert Path(f"{path}{PARTIAL_SUFFIX}").exists()


def test_resume_rebuilds_a_damaged_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "feats.h5"
    partial = Path(f"{path}{PARTIAL_SUFFIX}")
    features = random_features(6)
    writer = HDF5FeatureWriter(path, DIM, dtype="float32")
    for (scan, viewpoint), array in features.items():
        writer.add(scan, viewpoint, array)
    writer.abandon()
    damaged = feature_key(SCAN, viewpoint_id(3))
    with h5py.File(partial, "r") as f:
        offset = f[damaged].id.get_chunk_info(0).byte_offset
    with open(partial, "r+b") as f:  # flip bytes inside one viewpoint's data
        f.seek(offset + 100)
        f.write(b"\xff" * 16)

    with HDF5FeatureWriter(path, DIM, dtype="float32", resume=True) as writer:
        assert writer.done() == {feature_key(*key) for key in features} - {damaged}
        writer.add(SCAN, viewpoint_id(3), features[SCAN, viewpoint_id(3)])
    with open_features(path) as store:
        for key, expected in features.items():
            np.testing.assert_array_equal(store.get(*key), expected)

    partial.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)  # killed before anything useful
    with HDF5FeatureWriter(path, DIM, resume=True) as writer:
        assert writer.done() == set()


CHILD_WRITER = """
import sys
import numpy as np
from envs.features import HDF5FeatureWriter

writer = HDF5FeatureWriter(sys.argv[1], 64, dtype="float32")
for i in range(1_000_000):
    writer.add("scan", f"{i:032x}", np.full((36, 64), i, np.float32))
    print(i, flush=True)
"""


def test_resume_after_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "feats.h5"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD_WRITER), str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    assert child.stdout is not None
    for line in child.stdout:
        if int(line) >= 150:
            break
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert not path.exists()

    total = 300
    with HDF5FeatureWriter(path, 64, dtype="float32", resume=True) as writer:
        done = writer.done()
        assert done <= {feature_key("scan", viewpoint_id(i)) for i in range(total)}
        for i in range(total):
            if feature_key("scan", viewpoint_id(i)) not in done:
                writer.add("scan", viewpoint_id(i), np.full((NUM_VIEWS, 64), i, np.float32))
    with open_features(path) as store:
        assert len(store) == total
        for i in range(total):  # values the killed child wrote survive intact
            assert np.all(store.get("scan", viewpoint_id(i)) == i)


def test_convert_features_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    features = random_features(4)
    tsv = tmp_path / "feats.tsv"
    write_legacy_tsv(tsv, features)
    out = tmp_path / "feats.h5"
    assert main(["convert-features", "--tsv", str(tsv), "--out", str(out), "--float16"]) == 0
    with h5py.File(out, "r") as f:
        assert f[feature_key(SCAN, viewpoint_id(0))].dtype == np.float16
    with open_features(out) as store:
        assert len(store) == 4

    with open(tsv, "a") as f:
        f.write(f"{SCAN}\tbroken\t640\t480\t60\tnot*base64\n")
    bad_out = tmp_path / "bad.h5"
    capsys.readouterr()
    assert main(["convert-features", "--tsv", str(tsv), "--out", str(bad_out)]) == 2
    last_line = capsys.readouterr().err.splitlines()[-1]  # after the progress bar
    assert last_line == f"error: {tsv}: features of {SCAN}_broken are not valid base64"
    assert not bad_out.exists() and not Path(f"{bad_out}{PARTIAL_SUFFIX}").exists()
    assert main(["convert-features", "--tsv", str(tmp_path / "no.tsv"), "--out", str(bad_out)]) == 2
    assert "no.tsv: file not found" in capsys.readouterr().err


def test_envs_features_does_not_import_torch() -> None:
    code = "import sys, envs.features; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)
