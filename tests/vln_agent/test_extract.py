"""``clipvil features`` / :func:`vln_agent.extract.extract_features` on the tiny synthetic world."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import open_clip
import pytest
import torch

from envs.constants import NUM_VIEWS
from envs.errors import DataError
from envs.features import PARTIAL_SUFFIX, open_features
from envs.graph import CONNECTIVITY_DIR, NavGraphs, connectivity_path
from envs.views import load_skybox_faces, render_encoder_views, skybox_dir, skybox_face_path
from vln_agent.cli import main
from vln_agent.encoders import save_encoder
from vln_agent.extract import extract_features, list_viewpoints

#: Viewpoints most tests encode (a few batches, well under a second with clipvil-tiny).
FEW = 5

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def first_scan(tiny_synthetic_world: Path) -> str:
    return NavGraphs(tiny_synthetic_world).scans[0]


def read_h5(path: Path) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Every dataset and the root attributes of an HDF5 file."""
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in f}, dict(f.attrs)


def run_cli(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def cli_args(data: Path, out: Path, *extra: object) -> list[object]:
    return [
        "features",
        "--data",
        data,
        "--model",
        "clipvil-tiny",
        "--out",
        out,
        "--no-progress",
        *extra,
    ]


def test_features_are_encode_image_of_the_rendered_views(
    tiny_synthetic_world, first_scan, tiny_encoder, tmp_path
):
    out = tmp_path / "feats.h5"
    result = extract_features(
        tiny_synthetic_world, tiny_encoder, out, [first_scan], batch_size=1, progress=False, limit=2
    )
    assert result.viewpoints == result.encoded == 2 and result.feature_dim == 32
    item = list_viewpoints(tiny_synthetic_world, [first_scan])[1]
    faces = load_skybox_faces(skybox_dir(tiny_synthetic_world, first_scan), item.viewpoint)
    pixels = render_encoder_views(faces, item.pose, tiny_encoder.image_size[0])  # [36, 32, 32, 3]
    with torch.no_grad():
        expected = tiny_encoder.encode_image(tiny_encoder.pixels_to_input(pixels)).numpy()
    with open_features(out) as store:
        np.testing.assert_array_equal(store.get(first_scan, item.viewpoint), expected)


def test_batching_and_threads_do_not_change_the_features(
    tiny_synthetic_world, first_scan, tiny_encoder, tmp_path
):
    files = []
    for batch_size, workers in ((1, 0), (3, 2)):
        out = tmp_path / f"b{batch_size}w{workers}.h5"
        extract_features(
            tiny_synthetic_world,
            tiny_encoder,
            out,
            [first_scan],
            batch_size=batch_size,
            workers=workers,
            progress=False,
            limit=FEW,
        )
        files.append(read_h5(out)[0])
    assert files[0].keys() == files[1].keys() and len(files[0]) == FEW
    for key, features in files[0].items():
        np.testing.assert_allclose(files[1][key], features, rtol=0, atol=1e-5)


def test_resume_after_an_interruption_is_bit_equal(
    tiny_synthetic_world, first_scan, tiny_encoder, tmp_path
):
    def options(**extra):
        return dict(batch_size=2, progress=False, limit=7, dtype="float16", **extra)

    whole = tmp_path / "whole.h5"
    extract_features(tiny_synthetic_world, tiny_encoder, whole, [first_scan], **options())

    def interrupt_after_two_batches(count: int) -> None:
        if count >= 4:
            raise KeyboardInterrupt

    out = tmp_path / "resumed.h5"
    partial = Path(f"{out}{PARTIAL_SUFFIX}")
    with pytest.raises(KeyboardInterrupt):
        extract_features(
            tiny_synthetic_world,
            tiny_encoder,
            out,
            [first_scan],
            **options(on_batch=interrupt_after_two_batches),
        )
    assert not out.exists() and partial.exists()
    items = list_viewpoints(tiny_synthetic_world, [first_scan])
    with h5py.File(partial, "a") as f:  # as if killed in the middle of the second batch
        assert sorted(f) == sorted(item.key for item in items[:4])
        del f[items[3].key]
    result = extract_features(tiny_synthetic_world, tiny_encoder, out, [first_scan], **options())
    assert not partial.exists()
    assert result.viewpoints == 7 and result.encoded == 5  # the first batch was kept
    resumed, attrs = read_h5(out)
    expected, expected_attrs = read_h5(whole)
    assert resumed.keys() == expected.keys() and attrs == expected_attrs
    for key, features in expected.items():
        assert resumed[key].dtype == np.float16 and np.array_equal(resumed[key], features), key


def test_resume_refuses_a_partial_file_of_another_model(
    tiny_synthetic_world, first_scan, tiny_encoder, tiny_resnet_encoder, tmp_path
):
    out = tmp_path / "feats.h5"

    def stop(count: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        extract_features(
            tiny_synthetic_world, tiny_encoder, out, [first_scan], progress=False, on_batch=stop
        )
    with pytest.raises(DataError, match="was written with model_name 'clipvil-tiny', not"):
        extract_features(tiny_synthetic_world, tiny_resnet_encoder, out, [first_scan])


def test_cli_writes_the_hamt_layout_with_its_settings(
    tiny_synthetic_world, first_scan, tiny_encoder, tmp_path, capsys
):
    out = tmp_path / "feats.h5"
    argv = cli_args(tiny_synthetic_world, out, "--encoder", "random", "--seed", 0)
    argv += ["--scans", first_scan, "--float16", "--batch-size", 3, "--workers", 2, "--threads", 1]
    status, printed, _ = run_cli(argv, capsys)
    assert status == 0 and "features of" in printed and str(out) in printed
    graph = NavGraphs(tiny_synthetic_world)[first_scan]
    included = [vp for vp, inc in zip(graph.viewpoint_ids, graph.included, strict=True) if inc]
    features, attrs = read_h5(out)
    assert sorted(features) == sorted(f"{first_scan}_{vp}" for vp in included)
    assert all(f.shape == (NUM_VIEWS, 32) and f.dtype == np.float16 for f in features.values())
    assert attrs["model_name"] == "clipvil-tiny" and attrs["encoder_kind"] == "random"
    assert attrs["pretrained"] == "none" and attrs["seed"] == 0 and attrs["image_size"] == 32
    assert attrs["channel_order"] == "RGB" and attrs["feature"] == "encode_image"
    # --encoder random --seed 0 is the tiny_encoder fixture's init (manual_seed(0), then build)
    reference = tmp_path / "reference.h5"
    extract_features(
        tiny_synthetic_world, tiny_encoder, reference, [first_scan], progress=False, limit=2
    )
    for key, views in read_h5(reference)[0].items():
        np.testing.assert_allclose(features[key], views.astype(np.float16), atol=1e-3, rtol=1e-3)


def test_random_encoder_is_seeded(tiny_synthetic_world, first_scan, tmp_path, capsys):
    outputs = {}
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        outputs[name] = tmp_path / f"{name}.h5"
        argv = cli_args(tiny_synthetic_world, outputs[name], "--encoder", "random")
        argv += ["--seed", seed, "--scans", first_scan, "--limit", 1]
        assert run_cli(argv, capsys)[0] == 0
    a, b, c = (read_h5(outputs[name])[0] for name in "abc")
    key = next(iter(a))
    assert np.array_equal(a[key], b[key]) and not np.allclose(a[key], c[key])


@pytest.mark.parametrize(
    ("kind", "stored", "problem"),
    [
        ("supervised", "clip", "holds a 'clip' encoder, not 'supervised'"),
        ("clip", "supervised", "holds a 'supervised' encoder, not 'clip'"),
    ],
)
def test_encoder_kind_must_match_the_checkpoint(
    tiny_synthetic_world, first_scan, tiny_encoder, tmp_path, capsys, kind, stored, problem
):
    checkpoint = save_encoder(tiny_encoder, tmp_path / "enc.pt", extra={"encoder_kind": stored})
    out = tmp_path / "feats.h5"
    argv = cli_args(tiny_synthetic_world, out, "--encoder", kind, "--pretrained", checkpoint)
    status, _, err = run_cli([*argv, "--scans", first_scan], capsys)
    assert status == 2 and err == f"error: {checkpoint}: {problem} (--encoder)\n"
    assert not out.exists()


def test_supervised_checkpoint_gives_its_image_towers_features(
    tiny_synthetic_world, first_scan, tiny_encoder, tmp_path, capsys
):
    checkpoint = save_encoder(
        tiny_encoder, tmp_path / "sup.pt", extra={"encoder_kind": "supervised"}
    )
    out = tmp_path / "feats.h5"
    argv = cli_args(
        tiny_synthetic_world, out, "--encoder", "supervised", "--pretrained", checkpoint
    )
    assert run_cli([*argv, "--scans", first_scan, "--limit", 2], capsys)[0] == 0
    features, attrs = read_h5(out)
    assert attrs["encoder_kind"] == "supervised" and attrs["pretrained"] == str(checkpoint)
    reference = tmp_path / "reference.h5"
    extract_features(
        tiny_synthetic_world, tiny_encoder, reference, [first_scan], progress=False, limit=2
    )
    for key, views in read_h5(reference)[0].items():
        np.testing.assert_array_equal(features[key], views)


def test_option_errors_are_one_line(tiny_synthetic_world, tmp_path, capsys):
    out = tmp_path / "feats.h5"
    cases = [
        ([], "error: --pretrained: required with --encoder clip"),
        (["--encoder", "random", "--pretrained", "openai"], "takes no --pretrained weights"),
        (["--precision", "fp16"], "error: --precision: precision 'fp16' needs a GPU"),
        (["--encoder", "random", "--scans", "nope"], "no connectivity file for scan 'nope'"),
    ]
    for extra, problem in cases:
        status, _, err = run_cli(cli_args(tiny_synthetic_world, out, *extra), capsys)
        assert status == 2 and problem in err and err.count("\n") == 1, err
    assert not out.exists()


def test_missing_skybox_is_a_one_line_error(tiny_synthetic_world, first_scan, tmp_path, capsys):
    data = tmp_path / "world"
    (data / CONNECTIVITY_DIR).mkdir(parents=True)
    shutil.copy(connectivity_path(tiny_synthetic_world, first_scan), data / CONNECTIVITY_DIR)
    shutil.copytree(skybox_dir(tiny_synthetic_world, first_scan), skybox_dir(data, first_scan))
    item = list_viewpoints(data)[2]
    missing = skybox_face_path(skybox_dir(data, first_scan), item.viewpoint, 3)
    missing.unlink()
    out = tmp_path / "feats.h5"
    status, _, err = run_cli(cli_args(data, out, "--encoder", "random"), capsys)
    assert status == 2 and err == f"error: {missing}: skybox image not found\n"
    assert not out.exists() and not Path(f"{out}{PARTIAL_SUFFIX}").exists()


def test_a_standard_open_clip_file_runs_through_the_cli(
    tiny_synthetic_world, first_scan, tmp_path, capsys
):
    """ViT-B-32 (random init, 224 px) from a plain open_clip state dict, one viewpoint."""
    start = time.perf_counter()
    torch.manual_seed(1)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    weights = tmp_path / "vit_b32_random.pt"
    torch.save(model.state_dict(), weights)
    del model
    out = tmp_path / "feats.h5"
    argv = ["features", "--data", tiny_synthetic_world, "--model", "ViT-B-32"]
    argv += ["--pretrained", weights, "--out", out, "--scans", first_scan, "--limit", 1]
    status, _, err = run_cli([*argv, "--no-progress"], capsys)
    assert status == 0, err
    features, attrs = read_h5(out)
    assert len(features) == 1 and next(iter(features.values())).shape == (NUM_VIEWS, 512)
    assert attrs["image_size"] == 224 and attrs["pretrained"] == str(weights)
    print(f"ViT-B-32 through clipvil features: {time.perf_counter() - start:.1f} s")


def test_numpy_normalization_is_the_encoders_bit_for_bit(tiny_encoder):
    from vln_agent.extract import pixels_to_input

    pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    mean, std = (np.asarray(tiny_encoder.preprocess_cfg[k], np.float32) for k in ("mean", "std"))
    ours, theirs = pixels_to_input(pixels, mean, std), tiny_encoder.pixels_to_input(pixels)
    assert torch.equal(ours, theirs) and ours.stride() == theirs.stride()


def test_the_weights_are_recorded_by_a_sha256_that_survives_moving_them(
    tiny_synthetic_world, first_scan, tiny_encoder, tmp_path, capsys
):
    from envs.features import FeatureProvenance
    from envs.fileio import file_sha256

    kind = {"encoder_kind": "supervised"}
    first = save_encoder(tiny_encoder, tmp_path / "a" / "sup.pt", extra=kind)
    moved = tmp_path / "b" / "sup.pt"
    identities = []
    for weights, out in ((first, tmp_path / "a.h5"), (moved, tmp_path / "b.h5")):
        if not weights.exists():
            weights.parent.mkdir()
            shutil.move(first, weights)
        argv = cli_args(tiny_synthetic_world, out, "--encoder", "supervised")
        argv += ["--pretrained", weights]
        assert run_cli([*argv, "--scans", first_scan, "--limit", 1], capsys)[0] == 0
        attrs = read_h5(out)[1]
        assert attrs["pretrained"] == str(weights)
        assert attrs["pretrained_sha256"] == file_sha256(weights)
        with open_features(out) as store:
            identities.append(FeatureProvenance.of_store(store).encoder)
    assert identities[0] == identities[1]
    assert identities[0]["weights"] == f"sha256:{file_sha256(tmp_path / 'b' / 'sup.pt')}"
    assert identities[0]["encoder_kind"] == "supervised" and identities[0]["image_size"] == 32


#: A real process that holds the writer of ``argv[1]`` (as a running ``clipvil features``).
WRITER_HOLDER = """
import sys, time
from envs.features import HDF5FeatureWriter
writer = HDF5FeatureWriter(sys.argv[1], 32, dtype="float32", resume=True)
print("ready", flush=True)
time.sleep(120)
"""


def test_a_second_run_writing_the_same_file_refuses(
    tiny_synthetic_world, first_scan, tmp_path, capsys
):
    """Two processes, one output: the second ``clipvil features`` refuses with one line and
    leaves the first's file alone; once the first is gone (killed: its lock file stays)
    the next run writes the file (the stale lock blocks nothing)."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    out = tmp_path / "feats.h5"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER_HOLDER), str(out)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    argv = [*cli_args(tiny_synthetic_world, out, "--encoder", "random"), "--scans", first_scan]
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        written = Path(f"{out}{PARTIAL_SUFFIX}").stat().st_mtime_ns
        status, _, err = run_cli([*argv, "--limit", 2], capsys)
        assert status == 2
        assert err == (
            f"error: {out}: is being written by another run (process {holder.pid}): "
            "wait for it to finish (its lock is feats.h5.lock)\n"
        )
        partial = Path(f"{out}{PARTIAL_SUFFIX}")
        assert not out.exists() and partial.stat().st_mtime_ns == written
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert Path(f"{out}.lock").exists()  # left by the killed process
    Path(f"{out}{PARTIAL_SUFFIX}").unlink()  # its settings were not ours
    status, _, err = run_cli([*argv, "--limit", 2], capsys)
    assert status == 0, err
    assert len(read_h5(out)[0]) == 2 and not Path(f"{out}.lock").exists()
