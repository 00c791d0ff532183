"""``clipvil features --images``: per-image pooled and grid features, resume, reader, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from fuzzing import corrupted_bytes, fuzz_settings, returns_or_data_error
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from envs.errors import DataError
from envs.features import PARTIAL_SUFFIX
from vln_agent.cli import main
from vln_agent.encoders import CLIPEncoder
from vln_agent.extract_images import (
    GRID_LAYOUT,
    POOLED_LAYOUT,
    extract_image_features,
    list_images,
    open_image_features,
)

#: Image id -> (width, height, format) of the generated folder (sizes unlike the encoder's).
IMAGES = {
    "3416050480": (40, 30, "JPEG"),
    "COCO_val2014_000000000042": (32, 32, "PNG"),
    "COCO_val2014_000000000073": (50, 64, "PNG"),
    "a": (33, 47, "PNG"),
    "b": (64, 40, "JPEG"),
}
#: clipvil-tiny: 32 px ViT, patch 8 -> a 4 x 4 grid.
TINY_GRID_CELLS = 16


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    """A folder of small random RGB images, PNG and JPEG, plus a file that is not an image."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for image_id, (width, height, kind) in IMAGES.items():
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        suffix = ".png" if kind == "PNG" else ".jpg"
        Image.fromarray(pixels).save(folder / f"{image_id}{suffix}", kind)
    (folder / "notes.txt").write_text("not an image")
    (folder / "._a.png").write_bytes(b"a macOS resource fork, not an image")
    return folder


def encoder_inputs(encoder: CLIPEncoder, folder: Path) -> torch.Tensor:
    """The encoder's own preprocessing of every image, in id order: ``[N, 3, H, W]``."""
    paths = list_images(folder).values()
    return torch.stack([encoder.preprocess(Image.open(p).convert("RGB")) for p in paths])


def run_cli(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def cli_args(images: Path, out: Path, *extra: object) -> list[object]:
    return [
        "features",
        "--images",
        images,
        "--model",
        "clipvil-tiny",
        "--encoder",
        "random",
        "--out",
        out,
        "--no-progress",
        "--threads",
        1,
        *extra,
    ]


def read_h5(path: Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}, dict(f.attrs)


def test_pooled_features_are_the_encoders_own(image_dir, tiny_encoder, tmp_path, capsys):
    out = tmp_path / "pooled.h5"
    status, stdout, _ = run_cli(cli_args(image_dir, out, "--batch-size", 8), capsys)
    assert status == 0 and "wrote [32] pooled features of 5 images" in stdout
    with torch.inference_mode():
        expected = tiny_encoder.encode_image(encoder_inputs(tiny_encoder, image_dir)).numpy()
    stored, attrs = read_h5(out)
    assert sorted(stored) == sorted(IMAGES)
    for index, image_id in enumerate(sorted(IMAGES)):
        assert stored[image_id].shape == (32,)
        np.testing.assert_array_equal(stored[image_id], expected[index])
    assert attrs["layout"] == POOLED_LAYOUT and attrs["model_name"] == "clipvil-tiny"
    assert attrs["encoder_kind"] == "random" and attrs["pretrained"] == "none"
    assert attrs["feature_dim"] == 32 and attrs["image_size"] == 32
    with open_image_features(out) as features:
        assert features.image_ids() == sorted(IMAGES) and len(features) == 5
        np.testing.assert_array_equal(features["a"], stored["a"])
        with pytest.raises(DataError, match="has no grid features"):
            features.grid("a")


def test_grid_features_are_the_encoders_grid(image_dir, tiny_encoder, tmp_path, capsys):
    out = tmp_path / "grid.h5"
    status, stdout, _ = run_cli(cli_args(image_dir, out, "--grid", "--batch-size", 8), capsys)
    assert status == 0 and f"[{TINY_GRID_CELLS}, " in stdout
    inputs = encoder_inputs(tiny_encoder, image_dir)
    with torch.inference_mode():
        pooled = tiny_encoder.encode_image(inputs).numpy()  # [5, E]
        grid = tiny_encoder.encode_image_grid(inputs).flatten(1, 2).numpy()  # [5, 16, C]
    with open_image_features(out) as features:
        assert features.layout == GRID_LAYOUT
        assert features.grid_shape == (TINY_GRID_CELLS, grid.shape[-1])
        assert features.image_ids() == sorted(IMAGES)
        for index, image_id in enumerate(sorted(IMAGES)):
            np.testing.assert_array_equal(features[image_id], grid[index])
            np.testing.assert_array_equal(features.pooled(image_id), pooled[index])
        assert features.attrs["grid_height"] == features.attrs["grid_width"] == 4


def test_resume_after_an_interruption_is_bit_equal(image_dir, tiny_encoder, tmp_path):
    def options(**extra):
        return dict(grid=True, batch_size=2, progress=False, dtype="float16", **extra)

    whole = tmp_path / "whole.h5"
    extract_image_features(image_dir, tiny_encoder, whole, **options())

    def interrupt_after_two_batches(count: int) -> None:
        if count >= 4:
            raise KeyboardInterrupt

    out = tmp_path / "resumed.h5"
    partial = Path(f"{out}{PARTIAL_SUFFIX}")
    with pytest.raises(KeyboardInterrupt):
        extract_image_features(
            image_dir, tiny_encoder, out, **options(on_batch=interrupt_after_two_batches)
        )
    assert not out.exists() and partial.exists()
    ids = sorted(IMAGES)
    with h5py.File(partial, "a") as f:  # as if killed between an image's two datasets
        assert sorted(f) == sorted([*ids[:4], *(f"{i}.grid" for i in ids[:4])])
        del f[f"{ids[3]}.grid"]
    result = extract_image_features(image_dir, tiny_encoder, out, **options())
    assert not partial.exists()
    assert result.images == 5 and result.encoded == 3  # the first batch was kept
    resumed, attrs = read_h5(out)
    expected, expected_attrs = read_h5(whole)
    assert resumed.keys() == expected.keys() and attrs == expected_attrs
    for key, features in expected.items():
        assert resumed[key].dtype == np.float16
        assert resumed[key].tobytes() == features.tobytes(), key


def test_resume_refuses_a_partial_file_of_other_settings(image_dir, tiny_encoder, tmp_path):
    out = tmp_path / "f.h5"
    with pytest.raises(KeyboardInterrupt):
        extract_image_features(
            image_dir, tiny_encoder, out, batch_size=2, progress=False, on_batch=interrupt
        )
    with pytest.raises(DataError, match="was written with layout 'image-pooled'"):
        extract_image_features(image_dir, tiny_encoder, out, grid=True, progress=False)


def interrupt(count: int) -> None:
    raise KeyboardInterrupt


def test_bad_images_and_options_are_one_line_errors(image_dir, tmp_path, capsys):
    out = tmp_path / "f.h5"
    broken = image_dir / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    status, _, err = run_cli(cli_args(image_dir, out), capsys)
    assert status == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {broken}: cannot read image")
    broken.unlink()
    (image_dir / "a.jpg").write_bytes(b"")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    cases = [
        (cli_args(image_dir, out), f"error: {image_dir / 'a.png'}: image id a also names a.jpg"),
        (cli_args(tmp_path / "nowhere", out), "image folder not found"),
        (cli_args(empty, out), "no images (.jpg, .jpeg, .png) in the folder or below"),
        (cli_args(image_dir, out, "--scans", "x"), "error: --scans: selects panoramas"),
    ]
    for argv, problem in cases:
        status, _, err = run_cli(argv, capsys)
        assert status == 2 and problem in err and err.count("\n") == 1, err
    assert not out.exists()


def test_subfolders_are_walked_and_keyed_by_stem(image_dir, tmp_path):
    """VCR's layout: ``vcr1images/<movie>/<stem>.jpg`` is one feature file keyed by stem;
    hidden folders are skipped, and a stem found twice is a one-line error naming both."""
    root = tmp_path / "vcr1images"
    flat = list_images(image_dir)
    for index, path in enumerate(flat.values()):
        movie = root / f"movie_{index % 2}"
        movie.mkdir(parents=True, exist_ok=True)
        (movie / path.name).write_bytes(path.read_bytes())
    (root / ".cache").mkdir()
    (root / ".cache" / "hidden.jpg").write_bytes(b"not listed")
    nested = list_images(root)
    assert list(nested) == list(flat)
    assert {p.parent.name for p in nested.values()} == {"movie_0", "movie_1"}
    first = next(iter(flat.values()))
    (root / "movie_1" / first.name).write_bytes(first.read_bytes())
    with pytest.raises(DataError, match=f"image id {first.stem} also names movie_0/{first.name}"):
        list_images(root)


def test_grid_needs_images(tmp_path, capsys):
    argv = ["features", "--data", tmp_path, "--grid", "--out", tmp_path / "f.h5"]
    status, _, err = run_cli([*argv, "--model", "clipvil-tiny", "--encoder", "random"], capsys)
    assert (
        status == 2 and err == "error: --grid: needs --images (panorama features are pooled only)\n"
    )


def test_reader_errors_are_one_line(tmp_path):
    path = tmp_path / "f.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(layout=GRID_LAYOUT, feature_dim=4, grid_height=2, grid_width=2, grid_dim=3)
        f["x"] = np.zeros(4, np.float32)
        f["x.grid"] = np.zeros((4, 2), np.float32)
        f["y"] = np.zeros(5, np.float32)
        f["z"] = np.zeros(4, np.int64)
    with open_image_features(path) as features:
        assert "x" in features and "w" not in features
        with pytest.raises(DataError) as info:
            features["w"]
        assert str(info.value) == f"{path}: no features for image w"
        with pytest.raises(DataError, match=r"features of x.grid have shape \[4, 2\], expected"):
            features["x"]
        with pytest.raises(DataError, match=r"features of y have shape \[5\], expected \[4\]"):
            features.pooled("y")
        with pytest.raises(DataError, match="features of z are int64, expected floats"):
            features.pooled("z")
    with h5py.File(path, "a") as f:
        f.attrs["layout"] = "hamt"
    with pytest.raises(DataError, match="layout is 'hamt'"):
        open_image_features(path)
    with pytest.raises(DataError, match="file not found"):
        open_image_features(tmp_path / "missing.h5")


def test_resnet_grid_is_its_layer4_map(image_dir, tiny_resnet_encoder, tmp_path):
    out = tmp_path / "rn.h5"
    result = extract_image_features(
        image_dir, tiny_resnet_encoder, out, grid=True, batch_size=8, progress=False, workers=0
    )
    inputs = encoder_inputs(tiny_resnet_encoder, image_dir)
    with torch.inference_mode():
        grid = tiny_resnet_encoder.encode_image_grid(inputs).flatten(1, 2).numpy()  # [5, 4, C]
    assert result.grid_shape == grid.shape[1:] and grid.shape[1] == 4  # 64 px / 32: 2 x 2
    with open_image_features(out) as features:
        for index, image_id in enumerate(sorted(IMAGES)):
            np.testing.assert_array_equal(features.grid(image_id), grid[index])


@pytest.fixture(scope="module")
def small_feature_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The bytes of a tiny valid image-grid feature file."""
    path = tmp_path_factory.mktemp("fuzz") / "f.h5"
    with h5py.File(path, "w") as f:
        f.attrs.update(layout=GRID_LAYOUT, feature_dim=4, grid_height=1, grid_width=2, grid_dim=3)
        for image_id in ("a", "b"):
            f.create_dataset(image_id, data=np.ones(4, np.float32), fletcher32=True)
            f.create_dataset(f"{image_id}.grid", data=np.ones((2, 3), np.float32), fletcher32=True)
    return path.read_bytes()


def read_everything(path: Path) -> None:
    with open_image_features(path) as features:
        for image_id in features.image_ids():
            features.pooled(image_id)
            features.grid(image_id)


@fuzz_settings(20)
@given(data=st.data())
def test_fuzzed_feature_file_reads_or_raises_one_line_error(small_feature_file, tmp_path, data):
    path = tmp_path / "fuzzed.h5"
    path.write_bytes(data.draw(corrupted_bytes(small_feature_file)))
    returns_or_data_error(lambda: read_everything(path), path, seconds=20)


#: Images of the kill test, and the partial file's size at which its child is killed
#: (a few images in: the whole run takes seconds at one image per batch).
KILL_TEST_IMAGES = 300
KILL_AT_PARTIAL_BYTES = 24_000
KILL_POINT_TIMEOUT_S = 300


def test_killed_run_resumes_to_the_same_features(tmp_path, capsys):
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for index in range(KILL_TEST_IMAGES):
        pixels = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:012d}.png")
    options = ["--batch-size", 1, "--workers", 0, "--grid"]
    out = tmp_path / "killed.h5"
    partial = Path(f"{out}{PARTIAL_SUFFIX}")
    log = tmp_path / "child.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "vln_agent.cli", *map(str, cli_args(folder, out, *options))]
    with open(log, "wb") as child_out:
        child = subprocess.Popen(argv, stdout=child_out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + KILL_POINT_TIMEOUT_S
    while not (partial.exists() and partial.stat().st_size > KILL_AT_PARTIAL_BYTES):
        assert child.poll() is None, f"ended before the kill point:\n{log.read_text()}"
        if time.monotonic() > deadline:
            child.kill()
            pytest.fail(f"no kill point within {KILL_POINT_TIMEOUT_S} s:\n{log.read_text()}")
        time.sleep(0.002)
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL and not out.exists()

    status, stdout, _ = run_cli(cli_args(folder, out, *options), capsys)
    assert status == 0 and "kept from an interrupted run" in stdout, stdout
    whole = tmp_path / "whole.h5"
    assert run_cli(cli_args(folder, whole, *options), capsys)[0] == 0
    resumed, attrs = read_h5(out)
    expected, expected_attrs = read_h5(whole)
    assert resumed.keys() == expected.keys() and attrs == expected_attrs
    assert len(expected) == 2 * KILL_TEST_IMAGES
    for key, features in expected.items():
        assert resumed[key].tobytes() == features.tobytes(), key
