"""Feature provenance end to end: a follower records the features it was trained on, and
``eval-vln``, ``train-vln --resume-from`` and back-translation refuse features of another
width, or of another encoder unless ``--allow-other-features``; ``--feature-columns N``
reads the first N columns of a wider file; checkpoints made before are checked by width."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from envs.errors import DataError
from envs.fileio import read_json, write_json
from vln_agent.cli import main
from vln_agent.provenance import PROVENANCE_KEY
from vln_agent.speaker_train import SpeakerTrainer, load_speaker_train_config
from vln_agent.train import VLNTrainer, load_train_config
from vln_agent.training.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHA_CLIP = "c" * 64
SHA_SUPERVISED = "5" * 64
#: What ``clipvil features`` records for a CLIP tower and for a supervised one.
CLIP_ATTRS = {
    "model_name": "clipvil-tiny",
    "encoder_kind": "clip",
    "pretrained": "/weights/clip.pt",
    "pretrained_sha256": SHA_CLIP,
    "image_size": 32,
    "feature": "encode_image",
    "channel_order": "RGB",
}
SUPERVISED_ATTRS = {**CLIP_ATTRS, "encoder_kind": "supervised", "pretrained_sha256": SHA_SUPERVISED}
SETTINGS = {
    "hidden_size": 32,
    "word_embedding_size": 16,
    "batch_size": 4,
    "eval_batch_size": 12,
    "max_actions": 10,
    "eval_splits": ["val_seen"],
    "select_split": "val_seen",
    "device": "cpu",
}


def with_attrs(source: Path, target: Path, attrs: dict) -> Path:
    """A copy of a feature file that records ``attrs`` (as ``clipvil features`` would)."""
    shutil.copy(source, target)
    with h5py.File(target, "a") as f:
        for key, value in attrs.items():
            f.attrs[key] = value
    return target


def widened(source: Path, target: Path, width: int) -> Path:
    """The features of ``source`` followed by extra columns, without metadata (the layout
    of public releases that store more than the visual feature)."""
    rng = np.random.default_rng(1)
    with h5py.File(source, "r") as src, h5py.File(target, "w") as dst:
        for name in src:
            views = src[name][()]  # [36, D]
            extra = rng.standard_normal((views.shape[0], width - views.shape[1]))
            dst[name] = np.concatenate([views, extra.astype(np.float32)], axis=1)  # [36, W]
    return target


def run_cli(argv: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def files(tiny_world, tmp_path_factory) -> dict[str, Path]:
    """CLIP features (D = 16) and a follower trained on them for one iteration (the CLI);
    supervised features of the same width; public-style [36, 32] features (no metadata)."""
    root = tmp_path_factory.mktemp("provenance")
    clip = with_attrs(tiny_world.features, root / "clip.h5", CLIP_ATTRS)
    supervised = with_attrs(tiny_world.features, root / "supervised.h5", SUPERVISED_ATTRS)
    wide = widened(tiny_world.features, root / "public.h5", 32)
    write_json(root / "settings.json", SETTINGS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    argv = ["train-vln", "--data", tiny_world.data_dir, "--features", clip, "--out", root / "run"]
    argv += ["--config", root / "settings.json", "--iterations", "1", "--eval-every", "1"]
    status = main([str(a) for a in [*argv, "--feedback", "teacher", "--no-progress"]])
    torch.set_num_threads(threads)
    assert status == 0
    return {
        "clip": clip,
        "supervised": supervised,
        "wide": wide,
        "checkpoint": root / "run" / "latest.pt",
        "settings": root / "settings.json",
    }


def eval_argv(world, files, features: Path, out: Path, *flags: object) -> list[object]:
    argv = ["eval-vln", "--checkpoint", files["checkpoint"], "--data", world.data_dir]
    return [*argv, "--features", features, "--split", "val_seen", "--out", out, *flags]


def test_the_checkpoint_records_its_training_features(files) -> None:
    extra = load_checkpoint(files["checkpoint"])["extra"]
    assert extra["features"] == str(files["clip"]) and extra["feature_size"] == 16
    record = extra[PROVENANCE_KEY]
    assert record["width"] == record["stored_width"] == 16
    assert record["encoder"]["weights"] == f"sha256:{SHA_CLIP}"
    assert record["encoder"]["encoder_kind"] == "clip"
    assert record["encoder"]["model_name"] == "clipvil-tiny"


def test_eval_refuses_a_wider_file_unless_feature_columns_asks(
    tiny_world, files, tmp_path, capsys
) -> None:
    """The issue's case: [36, 32] features for a 16-wide follower used to run on the first
    16 columns and report a success rate."""
    out = tmp_path / "eval"
    status, _, err = run_cli(eval_argv(tiny_world, files, files["wide"], out), capsys)
    assert status == 2 and not out.exists()
    assert err == (
        f"error: {files['wide']}: holds [36, 32] features, but {files['checkpoint']} was "
        f"trained on [36, 16] features ({files['clip']}) "
        "(--feature-columns 16 reads the first 16 columns)\n"
    )
    flags = ("--feature-columns", 16)
    status, printed, err = run_cli(eval_argv(tiny_world, files, files["wide"], out, *flags), capsys)
    assert status == 0 and "SPL" in printed and "warning" not in err
    # its first 16 columns are the training features: the same episodes, the same metrics
    assert run_cli(eval_argv(tiny_world, files, files["clip"], tmp_path / "same"), capsys)[0] == 0
    metrics = "metrics_val_seen.json"
    assert read_json(out / metrics) == read_json(tmp_path / "same" / metrics)
    # asking for columns does not make another width fit
    status, _, err = run_cli(
        eval_argv(tiny_world, files, files["wide"], tmp_path / "e2", "--feature-columns", 8), capsys
    )
    assert status == 2 and "holds [36, 8] features" in err and err.count("\n") == 1


def test_eval_refuses_another_encoder_unless_allowed(tiny_world, files, tmp_path, capsys) -> None:
    out = tmp_path / "eval"
    status, _, err = run_cli(eval_argv(tiny_world, files, files["supervised"], out), capsys)
    assert status == 2 and not out.exists() and err.count("\n") == 1
    assert err.startswith(f"error: {files['supervised']}: features of another encoder than ")
    assert str(files["checkpoint"]) in err and "encoder_kind supervised vs clip" in err
    assert "--allow-other-features" in err

    flags = ("--allow-other-features",)
    status, printed, err = run_cli(
        eval_argv(tiny_world, files, files["supervised"], out, *flags), capsys
    )
    assert status == 0 and "SPL" in printed
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert str(files["supervised"]) in warnings[0] and str(files["checkpoint"]) in warnings[0]


def test_the_same_weights_moved_elsewhere_are_the_same_encoder(
    tiny_world, files, tmp_path, capsys
) -> None:
    moved = with_attrs(files["clip"], tmp_path / "clip.h5", {"pretrained": "/elsewhere/c.pt"})
    status, _, err = run_cli(eval_argv(tiny_world, files, moved, tmp_path / "eval"), capsys)
    assert status == 0 and "warning" not in err


def test_a_checkpoint_made_before_provenance_is_checked_by_width(
    tiny_world, files, tmp_path, capsys
) -> None:
    """Like the shipped follower: ``extra`` holds only ``features`` and ``feature_size``."""
    payload = load_checkpoint(files["checkpoint"])
    payload["extra"] = {"features": "small-clip.h5", "feature_size": 16}
    old = tmp_path / "old.pt"
    save_checkpoint(old, payload)
    argv = eval_argv(tiny_world, {"checkpoint": old}, files["supervised"], tmp_path / "eval")
    status, _, err = run_cli(argv, capsys)
    assert status == 0 and "warning" not in err
    argv = eval_argv(tiny_world, {"checkpoint": old}, files["wide"], tmp_path / "eval2")
    status, _, err = run_cli(argv, capsys)
    assert status == 2
    assert "holds [36, 32] features, but" in err and "[36, 16] features (small-clip.h5)" in err


def test_resume_from_refuses_other_features_unless_allowed(
    tiny_world, files, tmp_path, capsys
) -> None:
    def train(features: Path, out: Path, *flags: object) -> tuple[int, str, str]:
        argv = ["train-vln", "--data", tiny_world.data_dir, "--features", features]
        argv += ["--out", out, "--config", files["settings"], "--iterations", "2"]
        argv += ["--resume-from", files["checkpoint"], "--no-progress", *flags]
        return run_cli(argv, capsys)

    status, _, err = train(files["wide"], tmp_path / "a")
    assert status == 2 and err.startswith(f"error: {files['wide']}: holds [36, 32] features")
    assert str(files["checkpoint"]) in err and err.count("\n") == 1
    status, _, err = train(files["supervised"], tmp_path / "b")
    assert status == 2 and "--allow-other-features" in err and err.count("\n") == 1
    status, _, err = train(files["supervised"], tmp_path / "c", "--allow-other-features")
    assert status == 0
    assert any(
        line.startswith(f"warning: {files['supervised']}: ") and str(files["checkpoint"]) in line
        for line in err.splitlines()
    )
    resumed = load_checkpoint(tmp_path / "c" / "latest.pt")
    assert resumed["step"] == 2
    assert resumed["extra"][PROVENANCE_KEY]["encoder"]["encoder_kind"] == "supervised"


def test_back_translation_refuses_a_speaker_of_other_features(
    tiny_world, files, tmp_path, capsys
) -> None:
    config = load_speaker_train_config(
        None, iterations=1, batch_size=4, hidden_size=32, word_embedding_size=16,
        eval_every=1, eval_splits=("val_seen",), select_split="val_seen", eval_limit=4,
    )  # fmt: skip
    SpeakerTrainer(tiny_world.data_dir, files["clip"], tmp_path / "speaker", config).train(False)
    speaker = tmp_path / "speaker" / "latest.pt"
    assert load_checkpoint(speaker)["extra"][PROVENANCE_KEY]["encoder"]["encoder_kind"] == "clip"
    settings = {k: v for k, v in SETTINGS.items() if k not in ("eval_splits", "select_split")}
    follower = load_train_config(
        None,
        **settings,
        iterations=1,
        aug_paths=str(tiny_world.data_dir / "R2R_val_seen.json"),
        speaker=str(speaker),
    )
    with pytest.raises(DataError) as err:
        VLNTrainer(tiny_world.data_dir, files["supervised"], tmp_path / "run", follower)
    assert str(err.value).startswith(f"{files['supervised']}: features of another encoder than")
    assert str(speaker) in str(err.value)
    capsys.readouterr()
    VLNTrainer(
        tiny_world.data_dir,
        files["supervised"],
        tmp_path / "run",
        follower,
        allow_other_features=True,
    )
    assert f"warning: {files['supervised']}: " in capsys.readouterr().err
    VLNTrainer(tiny_world.data_dir, files["clip"], tmp_path / "run2", follower)  # the same: fine


@pytest.mark.parametrize("command", ["eval-vln", "train-vln"])
def test_the_flags_say_their_defaults(command, capsys) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--feature-columns N read the first N columns" in text
    assert "default: none, the file's width must be the model's exactly" in text
    assert "--allow-other-features use features made by another encoder" in text
    assert "default: off, such features are refused" in text
