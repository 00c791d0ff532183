"""The speaker on a tiny real world: ``clipvil train-speaker``, its checkpoints and logs,
``load_speaker``, learning a handful of instructions, and bad input on the command line."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
from pathlib import Path

import pytest
import torch

from envs.episodes import load_episodes
from envs.fileio import read_json, write_json
from envs.tokenizer import Tokenizer
from vln_agent.cli import main
from vln_agent.models.speaker import load_speaker
from vln_agent.routes import teacher_routes
from vln_agent.speaker_train import (
    SpeakerTrainConfig,
    SpeakerTrainer,
    load_speaker_train_config,
)
from vln_agent.training.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EVAL_SPLITS = ("val_seen", "val_unseen")
#: ``clipvil train-speaker`` on the tiny world: 10 iterations, evaluated at 5 and 10.
CLI_ITERATIONS, CLI_EVAL_EVERY, CLI_HIDDEN = 10, 5, 32


def read_log(run_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(run_dir / "log.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def run_cli(argv: list, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def cli_speaker_run(tiny_world, tmp_path_factory) -> tuple[Path, int, dict]:
    """``clipvil train-speaker`` on the tiny world: (run directory, exit status, printed JSON)."""
    root = tmp_path_factory.mktemp("speaker_cli")
    argv = ["train-speaker", "--data", tiny_world.data_dir, "--features", tiny_world.features]
    argv += ["--out", root / "run", "--iterations", CLI_ITERATIONS]
    argv += ["--eval-every", CLI_EVAL_EVERY, "--batch-size", 4, "--hidden-size", CLI_HIDDEN]
    argv += ["--no-progress"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main([str(a) for a in argv])
    torch.set_num_threads(threads)
    return root / "run", status, json.loads(printed.getvalue() or "{}")


def test_cli_writes_self_describing_checkpoints_and_a_bleu_log(tiny_world, cli_speaker_run):
    run, status, best = cli_speaker_run
    assert status == 0

    columns, rows = read_log(run)
    assert set(columns) == {"iteration", "train/loss", "train/seconds"} | {
        f"{s}/bleu" for s in EVAL_SPLITS
    }
    loss_rows = [r for r in rows if r["train/loss"]]
    eval_rows = [r for r in rows if r["val_seen/bleu"]]
    assert [float(r["iteration"]) for r in loss_rows] == [10.0]
    assert 0.0 < float(loss_rows[0]["train/loss"]) < 20.0
    assert [float(r["iteration"]) for r in eval_rows] == [5.0, 10.0]
    for row in eval_rows:
        assert all(0.0 <= float(row[f"{s}/bleu"]) <= 1.0 for s in EVAL_SPLITS)

    vocabulary = Tokenizer.build_from_episodes(load_episodes(tiny_world.data_dir, "train")).vocab
    latest = load_checkpoint(run / "latest.pt")
    assert latest["kind"] == "speaker" and latest["step"] == CLI_ITERATIONS
    assert latest["model_config"]["feature_size"] == tiny_world.feature_size
    assert latest["model_config"]["hidden_size"] == CLI_HIDDEN
    assert latest["model_config"]["vocab_size"] == len(vocabulary)
    expected_config = load_speaker_train_config(
        None,
        iterations=CLI_ITERATIONS,
        batch_size=4,
        eval_every=CLI_EVAL_EVERY,
        hidden_size=CLI_HIDDEN,
    )
    assert latest["train_config"] == dataclasses.asdict(expected_config)
    assert latest["vocabulary"] == list(vocabulary)
    assert latest["extra"]["features"] == str(tiny_world.features)
    assert set(latest["metrics"]) == {f"{s}/bleu" for s in EVAL_SPLITS}
    for split in EVAL_SPLITS:
        assert latest["metrics"][f"{split}/bleu"] == pytest.approx(
            float(eval_rows[-1][f"{split}/bleu"])
        )

    best_file = load_checkpoint(run / "best.pt")
    assert best_file["kind"] == "speaker"
    assert best_file["step"] == best["iteration"] in (5, 10)
    assert best_file["metrics"]["val_unseen/bleu"] == pytest.approx(best["val_unseen/bleu"])
    assert best["val_unseen/bleu"] == max(float(r["val_unseen/bleu"]) for r in eval_rows)


def test_load_speaker_round_trips_the_trained_model(tiny_world, tmp_path):
    config = load_speaker_train_config(
        None,
        iterations=2,
        batch_size=4,
        hidden_size=32,
        word_embedding_size=16,
        eval_every=2,
        eval_splits=("val_seen",),
        select_split="val_seen",
    )
    trainer = SpeakerTrainer(tiny_world.data_dir, tiny_world.features, tmp_path / "run", config)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train(progress=False)
    state = trainer.model.state_dict()
    assert any(not torch.equal(before[k], v) for k, v in state.items())

    model, tokenizer, payload = load_speaker(tmp_path / "run" / "latest.pt")
    assert model.config == trainer.model_config and not model.training
    assert list(tokenizer.vocab) == list(trainer.tokenizer.vocab)
    assert payload["step"] == 2 and payload["train_config"] == dataclasses.asdict(config)
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    # ... and describes a route word for word as the trained model does
    trainer.model.eval()
    ids = [e.instr_id for e in load_episodes(tiny_world.data_dir, "train")[:4]]
    routes = teacher_routes(trainer.env, ids, torch.device("cpu"))
    inputs = (routes.actions, routes.panoramas, routes.mask)
    assert torch.equal(model.generate(*inputs), trainer.model.generate(*inputs))


def test_speaker_learns_a_handful_of_instructions(tiny_world, tmp_path):
    """Two paths (six instructions): without dropout and at a higher rate the teacher-forced
    loss falls and greedy descriptions come to match the paths' instructions."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "connectivity").symlink_to(tiny_world.data_dir / "connectivity")
    write_json(data / "R2R_train.json", read_json(tiny_world.data_dir / "R2R_train.json")[:2])
    config = load_speaker_train_config(
        None,
        batch_size=6,
        hidden_size=64,
        word_embedding_size=32,
        learning_rate=3e-3,
        dropout=0.0,
        feature_dropout=0.0,
    )
    trainer = SpeakerTrainer(data, tiny_world.features, tmp_path / "run", config)
    bleu_before = trainer.bleu("train")
    losses = [trainer.train_step()["loss"] for _ in range(40)]
    bleu_after = trainer.bleu("train")
    assert losses[-1] < 0.2 * losses[0]
    assert bleu_before < 0.1
    assert bleu_after > 0.5


# --------------------------------------------------------------------------- bad input
def _speaker_checkpoint(run: Path) -> Path:
    return run / "latest.pt"


def _aug_paths(world, tmp: Path) -> Path:
    """Augmentation paths (the tiny world's own training paths, without instructions)."""
    entries = read_json(world.data_dir / "R2R_train.json")[:4]
    path = tmp / "aug.json"
    write_json(path, [{**e, "instructions": [""]} for e in entries])
    return path


def _train_vln_argv(world, speaker: Path, tmp: Path, features: Path | None = None) -> list:
    argv = ["train-vln", "--data", world.data_dir, "--features", features or world.features]
    argv += ["--out", tmp / "out", "--iterations", "1", "--batch-size", "4", "--device", "cpu"]
    return argv + ["--aug-paths", _aug_paths(world, tmp), "--speaker", speaker, "--no-progress"]


def missing_features(world, run, tmp, make_features):
    bad = tmp / "missing.h5"
    argv = ["train-speaker", "--data", world.data_dir, "--features", bad, "--out", tmp / "out"]
    return argv + ["--iterations", "1", "--no-progress"], bad, "file not found"


def truncated_speaker(world, run, tmp, make_features):
    data = _speaker_checkpoint(run).read_bytes()
    bad = tmp / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    return _train_vln_argv(world, bad, tmp), bad, "truncated"


def missing_speaker(world, run, tmp, make_features):
    bad = tmp / "nowhere.pt"
    return _train_vln_argv(world, bad, tmp), bad, "not found"


def not_a_speaker(world, run, tmp, make_features):
    payload = load_checkpoint(_speaker_checkpoint(run))
    bad = tmp / "follower.pt"
    save_checkpoint(bad, {**payload, "kind": "follower"})
    return _train_vln_argv(world, bad, tmp), bad, "expected speaker"


def speaker_of_another_feature_size(world, run, tmp, make_features):
    """A speaker trained on 16-d features with an 8-d follower."""
    features = make_features(tmp / "d8.h5", world.data_dir, world.scans, 8)
    bad = _speaker_checkpoint(run)
    return _train_vln_argv(world, bad, tmp, features), bad, "speaker uses 16-d features"


@pytest.mark.parametrize(
    "case",
    [
        missing_features,
        truncated_speaker,
        missing_speaker,
        not_a_speaker,
        speaker_of_another_feature_size,
    ],
    ids=lambda case: case.__name__,
)
def test_cli_bad_input_is_one_line_naming_the_file(
    tiny_world, cli_speaker_run, tmp_path, capsys, make_features, case
):
    argv, bad_file, problem = case(tiny_world, cli_speaker_run[0], tmp_path, make_features)
    status, _, err = run_cli(argv, capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {bad_file}: ")
    assert problem in lines[0]
    assert not (tmp_path / "out").exists()


def test_speaker_best_checkpoint_split_must_be_evaluated():
    with pytest.raises(ValueError, match="select_split"):
        SpeakerTrainConfig(eval_splits=("val_seen",), select_split="val_unseen")


def test_train_speaker_resume_continues_exactly(tiny_world, tmp_path):
    """``clipvil train-speaker --resume`` (the spine's resume) ends where an uninterrupted
    run ends: same weights, same BLEU history."""
    argv = ["train-speaker", "--data", tiny_world.data_dir, "--features", tiny_world.features]
    argv += ["--batch-size", 4, "--hidden-size", 16, "--word-embedding-size", 8]
    argv += ["--eval-every", 2, "--eval-limit", 4, "--device", "cpu", "--no-progress"]

    def run(out: Path, iterations: int, *extra: str) -> int:
        with contextlib.redirect_stdout(io.StringIO()):
            return main([str(a) for a in [*argv, "--out", out, "--iterations", iterations, *extra]])

    assert run(tmp_path / "whole", 4) == 0
    assert run(tmp_path / "cut", 2) == 0
    assert run(tmp_path / "cut", 4, "--resume") == 0
    whole = load_checkpoint(tmp_path / "whole" / "latest.pt")
    resumed = load_checkpoint(tmp_path / "cut" / "latest.pt")
    assert whole["step"] == resumed["step"] == 4
    for key, value in whole["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][key]), key
    assert whole["rng"]["history"] == resumed["rng"]["history"]
