"""``clipvil demo`` end to end on the tiny synthetic world, and the shipped checkpoints."""

from __future__ import annotations

import shutil

import pytest
import torch

from envs.fileio import write_json
from vln_agent.cli import main
from vln_agent.encoders import create_encoder, save_encoder

TINY_SETTINGS = {
    "batch_size": 4,
    "hidden_size": 32,
    "word_embedding_size": 16,
    "eval_every": 2,
    "max_actions": 10,
    "device": "cpu",
}


@pytest.fixture(scope="module")
def tiny_demo_inputs(tiny_synthetic_world, tmp_path_factory):
    """A copy of the tiny world, a tiny random CLIP file and a follower trained 2 iterations
    on that CLIP's features (what the shipped checkpoints are for the small world)."""
    root = tmp_path_factory.mktemp("demo")
    world = root / "world"
    shutil.copytree(tiny_synthetic_world, world)
    torch.manual_seed(0)
    encoder_file = save_encoder(create_encoder("clipvil-tiny"), root / "clip.pt")
    features = root / "features.h5"
    argv = ["features", "--data", str(world), "--model", "clipvil-tiny"]
    argv += ["--pretrained", str(encoder_file), "--out", str(features), "--no-progress"]
    assert main(argv) == 0
    settings = root / "settings.json"
    write_json(settings, TINY_SETTINGS)
    argv = ["train-vln", "--data", str(world), "--features", str(features), "--out"]
    argv += [str(root / "run"), "--config", str(settings), "--iterations", "2", "--no-progress"]
    assert main(argv) == 0
    return world, encoder_file, root / "run" / "best.pt"


def test_demo_evaluates_the_agent_and_the_references(tiny_demo_inputs, tmp_path, capsys):
    world, encoder_file, follower = tiny_demo_inputs
    out = tmp_path / "out"
    argv = ["demo", "--world", str(world), "--preset", "tiny", "--out", str(out)]
    argv += ["--encoder-checkpoint", str(encoder_file), "--encoder-model", "clipvil-tiny"]
    argv += ["--follower-checkpoint", str(follower), "--splits", "val_unseen"]
    # No QA models here (tests/vqa_ve/test_demo.py runs the QA part with tiny ones).
    argv += ["--qa-checkpoints", str(tmp_path / "no-qa-models")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "[5/5] shipped QA models" in printed
    assert all(f"{task} skipped" in printed for task in ("VQA", "SNLI-VE", "VCR"))
    table = [line for line in printed.splitlines() if line.startswith("val_unseen")]
    agents = [line.split()[1] for line in table]
    assert agents[:3] == ["CLIP", "shortest-path", "random"]  # synthetic world rows first
    oracle = next(line for line in table if "shortest-path oracle" in line)
    assert oracle.split()[6] == "100.0"  # SR of the oracle
    assert (out / "val_unseen" / "metrics_val_unseen.json").is_file()
    assert list((out / "val_unseen").glob("**/*.png")), "episode maps are drawn"
    assert "real R2R data" in printed  # the references also ran on ../shared/r2r_real
    assert "clipvil train-vln" in printed
    assert "clipvil sample-paths" in printed and "--aug-paths" in printed
    # A second run reuses the world and the features (same encoder file).
    assert main(argv) == 0
    assert "reusing" in capsys.readouterr().out


def test_demo_names_a_missing_checkpoint(tiny_demo_inputs, tmp_path, capsys):
    world, encoder_file, _ = tiny_demo_inputs
    argv = ["demo", "--world", str(world), "--preset", "tiny", "--out", str(tmp_path / "out")]
    argv += ["--encoder-checkpoint", str(encoder_file), "--encoder-model", "clipvil-tiny"]
    argv += ["--follower-checkpoint", str(tmp_path / "missing.pt")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "missing.pt" in err and "\n" not in err


def test_shipped_checkpoints_load_and_fit_together():
    from checkpoints import checkpoint_path, list_checkpoints
    from envs.fileio import file_sha256
    from vln_agent.commands.demo import (
        ENCODER_CHECKPOINT,
        ENCODER_MODEL,
        FOLLOWER_CHECKPOINT,
    )
    from vln_agent.models.follower import load_follower

    assert {ENCODER_CHECKPOINT, FOLLOWER_CHECKPOINT} <= set(list_checkpoints())
    encoder = create_encoder(ENCODER_MODEL, pretrained=checkpoint_path(ENCODER_CHECKPOINT))
    follower, tokenizer, payload = load_follower(checkpoint_path(FOLLOWER_CHECKPOINT))
    assert payload["extra"]["feature_size"] == encoder.embed_dim == 256
    assert "optimizer" not in payload and len(tokenizer.vocab) > 100
    for name in (ENCODER_CHECKPOINT, FOLLOWER_CHECKPOINT):
        path = checkpoint_path(name)
        assert path.stat().st_size <= 25 * 2**20, name
        card = path.with_suffix(".md").read_text()
        assert file_sha256(path) in card, f"the card of {name} names its sha256"


# ------------------------------------------------------- where the real data is looked for
def demo_module_in(root, checkout: bool):
    """A ``vln_agent/commands/demo.py`` under ``root``: a source checkout (``pyproject.toml``
    at ``root``) or an installed package (``root`` is site-packages)."""
    module = root / "vln_agent" / "commands" / "demo.py"
    module.parent.mkdir(parents=True)
    module.write_text("")
    if checkout:
        (root / "pyproject.toml").write_text("")
    return module


def test_real_data_is_looked_for_in_the_env_then_the_checkout_then_the_user_folder(
    real_data_dir, tmp_path, monkeypatch
):
    from vln_agent.commands import demo

    monkeypatch.delenv(demo.REAL_DATA_ENV, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))  # platformdirs reads it
    user_folder = tmp_path / "xdg" / "clipvil" / "r2r_real"
    checkout = demo_module_in(tmp_path / "work" / "main", checkout=True)
    installed = demo_module_in(tmp_path / "venv" / "site-packages", checkout=False)
    beside = tmp_path / "work" / "shared" / "r2r_real"
    assert demo.default_real_data(checkout) == user_folder  # nothing beside the checkout yet
    beside.mkdir(parents=True)
    assert demo.default_real_data(checkout) == beside
    (tmp_path / "venv" / "shared" / "r2r_real").mkdir(parents=True)
    assert demo.default_real_data(installed) == user_folder  # never beside site-packages
    monkeypatch.setenv(demo.REAL_DATA_ENV, str(real_data_dir))
    for module in (checkout, installed, demo.__file__):
        assert demo.default_real_data(module) == real_data_dir


def test_help_of_real_names_where_the_data_is_looked_for(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "$CLIPVIL_R2R_REAL" in help_text and "user data folder" in help_text
