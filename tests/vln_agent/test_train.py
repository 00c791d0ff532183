"""Training the follower on a tiny real world: logs, checkpoints, overfitting, exact resume."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from envs.episodes import load_episodes
from envs.errors import DataError
from envs.evaluate import load_predictions
from envs.fileio import read_json, write_json
from envs.metrics import METRIC_NAMES
from vln_agent import rollout as vln_rollout
from vln_agent import train as vln_train
from vln_agent.cli import main
from vln_agent.losses import imitation_loss
from vln_agent.models.follower import load_follower
from vln_agent.train import TrainConfig, VLNTrainer, load_train_config
from vln_agent.training.checkpoint import export_checkpoint, load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EVAL_SPLITS = ("val_seen", "val_unseen")
#: The loss parts each feedback mode logs (besides ``train/seconds``).
TRAIN_COLUMNS = {
    "envdrop": {"il_loss", "policy_loss", "critic_loss", "entropy_loss", "train_sr", "train_steps"},
    "teacher": {"il_loss"},
    "sample": {"policy_loss", "critic_loss", "entropy_loss", "train_sr", "train_steps"},
    "student": {"il_loss", "train_sr", "train_steps"},
}


def tiny_config(**overrides) -> TrainConfig:
    """A few iterations of a small follower on the tiny world."""
    values = dict(
        iterations=4,
        batch_size=4,
        hidden_size=32,
        word_embedding_size=16,
        eval_every=2,
        log_every=2,
        eval_batch_size=12,
        max_actions=10,
        device="cpu",
    )
    return load_train_config(None, **(values | overrides))


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    expected, got = a.state_dict(), b.state_dict()
    return expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)


def read_log(run_dir: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(run_dir / "log.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def eval_columns(splits=EVAL_SPLITS) -> set[str]:
    return {f"{s}/{m}" for s in splits for m in ("num_instructions", *METRIC_NAMES)}


@pytest.mark.parametrize("feedback", ["envdrop", "teacher", "sample", "student"])
def test_feedback_mode_trains_and_writes_logs_and_checkpoints(tiny_world, tmp_path, feedback):
    run = tmp_path / "run"
    config = tiny_config(feedback=feedback)
    trainer = VLNTrainer(tiny_world.data_dir, tiny_world.features, run, config)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    best = trainer.train(progress=False)
    assert trainer.iteration == 4
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())

    columns, rows = read_log(run)
    train_columns = {f"train/{c}" for c in TRAIN_COLUMNS[feedback] | {"seconds"}}
    assert set(columns) == {"iteration"} | train_columns | eval_columns()
    train_rows = [r for r in rows if r["train/seconds"]]
    eval_rows = [r for r in rows if r["val_seen/sr"]]
    assert [float(r["iteration"]) for r in train_rows] == [2.0, 4.0]
    assert [float(r["iteration"]) for r in eval_rows] == [2.0, 4.0]
    assert all(float(r["val_seen/num_instructions"]) == 12 for r in eval_rows)
    for row in train_rows:
        assert all(torch.isfinite(torch.tensor(float(row[c]))) for c in train_columns)

    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1
    scalars = EventAccumulator(str(events[0])).Reload().Tags()["scalars"]
    assert set(scalars) == train_columns | eval_columns()

    latest = load_checkpoint(run / "latest.pt")
    assert latest["kind"] == "follower" and latest["step"] == 4
    assert latest["model_config"] == trainer.model_config.to_dict()
    assert latest["model_config"]["feature_size"] == tiny_world.feature_size
    assert latest["train_config"] == dataclasses.asdict(config)
    assert latest["vocabulary"] == list(trainer.tokenizer.vocab)
    assert set(latest["metrics"]) == set(EVAL_SPLITS)
    assert latest["metrics"]["val_seen"]["sr"] == pytest.approx(float(eval_rows[-1]["val_seen/sr"]))
    best_file = load_checkpoint(run / "best.pt")
    assert best_file["step"] == best["iteration"] in (2, 4)
    assert best_file["metrics"]["val_unseen"]["spl"] == pytest.approx(best["val_unseen/spl"])
    assert best["val_unseen/spl"] == max(float(r["val_unseen/spl"]) for r in eval_rows)

    model, tokenizer, payload = load_follower(run / "latest.pt")
    assert model.config == trainer.model_config and not model.training
    assert list(tokenizer.vocab) == list(trainer.tokenizer.vocab)
    state = trainer.model.state_dict()
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert payload["step"] == 4


def test_teacher_forcing_overfits_the_tiny_world(tiny_world, tmp_path):
    config = tiny_config(
        iterations=50,
        batch_size=12,
        feedback="teacher",
        optimizer="adam",
        learning_rate=2e-3,
        hidden_size=64,
        word_embedding_size=32,
        dropout=0.0,
        feature_dropout=0.0,
        eval_every=50,
        log_every=10,
        eval_splits=("train",),
        select_split="train",
        eval_batch_size=36,
        max_actions=15,
    )
    trainer = VLNTrainer(tiny_world.data_dir, tiny_world.features, tmp_path / "run", config)
    before = trainer.evaluate()["train"]
    after = trainer.train(progress=False)
    _, rows = read_log(tmp_path / "run")
    losses = [float(r["train/il_loss"]) for r in rows if r["train/il_loss"]]
    assert len(losses) == 5
    assert losses[-1] < 0.5 * losses[0]
    assert after["train/num_instructions"] == 36
    assert before["sr"] < 0.3
    assert after["train/sr"] > 0.8
    assert after["train/ne"] < before["ne"] / 2


def test_resume_continues_exactly_where_the_run_stopped(tiny_world, tmp_path):
    """4 iterations at once == 2 iterations, then a fresh trainer resumed to 4 (with dropout,
    feature dropout and sampled A2C rollouts, so every random state matters)."""
    full = VLNTrainer(tiny_world.data_dir, tiny_world.features, tmp_path / "a", tiny_config())
    full.train(progress=False)
    first = VLNTrainer(
        tiny_world.data_dir, tiny_world.features, tmp_path / "b", tiny_config(iterations=2)
    )
    first.train(progress=False)
    assert load_checkpoint(tmp_path / "b" / "latest.pt")["step"] == 2
    resumed = VLNTrainer(
        tiny_world.data_dir, tiny_world.features, tmp_path / "b", tiny_config(), resume=True
    )
    assert resumed.iteration == 2
    resumed.train(progress=False)

    assert same_weights(full.model, resumed.model)
    a, b = (
        load_checkpoint(tmp_path / "a" / "latest.pt"),
        load_checkpoint(tmp_path / "b" / "latest.pt"),
    )
    assert a["step"] == b["step"] == 4
    assert a["metrics"] == b["metrics"]
    assert full.history == resumed.history
    assert full.best_metrics() == resumed.best_metrics()
    _, rows_a = read_log(tmp_path / "a")
    _, rows_b = read_log(tmp_path / "b")
    drop_time = [{k: v for k, v in r.items() if k != "train/seconds"} for r in rows_a]
    assert drop_time == [{k: v for k, v in r.items() if k != "train/seconds"} for r in rows_b]


def test_student_forcing_imitates_the_teacher_from_where_the_agent_went(tiny_world, tmp_path):
    """Student forcing: the agent's own (sampled) actions move it, and the loss is the cross
    entropy of the shortest-path teacher's action from wherever that took it."""
    config = tiny_config(feedback="student", batch_size=12, max_actions=10)
    trainer = VLNTrainer(tiny_world.data_dir, tiny_world.features, tmp_path / "run", config)
    trainer.model.train()
    taken, targets = [], []
    original = vln_rollout.rollout

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        assert args[3] == "sample"
        taken.extend(result.actions)
        targets.extend(result.teacher)
        recording.result = result
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vln_train, "rollout", recording)
        torch.manual_seed(0)
        parts, stats = trainer.losses()
    result = recording.result
    # the agents went their own way: somewhere a sampled action is not the teacher's
    assert any(bool((a != t).any()) for a, t in zip(taken, targets, strict=True))
    expected = imitation_loss(result.logits, result.teacher, result.active)
    assert set(parts) == {"il_loss"}
    assert float(parts["il_loss"].detach()) == pytest.approx(float(expected.detach()))
    assert 0.0 <= stats["train_sr"] <= 1.0 and stats["train_steps"] == result.steps


def test_resume_takes_the_new_learning_rate(tiny_world, tmp_path):
    """Fine-tuning a run with another rate: the optimizer state is kept, the rate is new."""
    run = tmp_path / "run"
    config = tiny_config(iterations=2, optimizer="adam", learning_rate=1e-3, feedback="teacher")
    VLNTrainer(tiny_world.data_dir, tiny_world.features, run, config).train(progress=False)
    resumed = VLNTrainer(
        tiny_world.data_dir,
        tiny_world.features,
        run,
        dataclasses.replace(config, iterations=3, learning_rate=2e-4, feedback="student"),
        resume=True,
    )
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [2e-4]
    assert resumed.optimizer.state_dict()["state"]  # Adam's moments came back
    resumed.train(progress=False)
    assert load_checkpoint(run / "latest.pt")["train_config"]["feedback"] == "student"


def test_resume_from_another_runs_checkpoint_continues_it_in_a_new_directory(
    tiny_world, tmp_path, capsys
):
    """``--resume-from CKPT``: the same as resuming in place, but logs and checkpoints go to
    the new run directory and the source run is left alone."""
    in_place = VLNTrainer(tiny_world.data_dir, tiny_world.features, tmp_path / "a", tiny_config())
    in_place.train(progress=False)
    VLNTrainer(
        tiny_world.data_dir, tiny_world.features, tmp_path / "b", tiny_config(iterations=2)
    ).train(progress=False)
    source = tmp_path / "b" / "latest.pt"
    before = source.read_bytes()
    moved = VLNTrainer(
        tiny_world.data_dir, tiny_world.features, tmp_path / "c", tiny_config(), resume=source
    )
    assert moved.iteration == 2
    moved.train(progress=False)
    assert same_weights(in_place.model, moved.model)
    assert load_checkpoint(tmp_path / "c" / "latest.pt")["step"] == 4
    assert source.read_bytes() == before
    _, rows = read_log(tmp_path / "c")
    assert [float(r["iteration"]) for r in rows if r["val_seen/sr"]] == [4.0]

    exported = tmp_path / "exported.pt"
    export_checkpoint(source, exported)
    with pytest.raises(DataError, match="no training state"):
        VLNTrainer(
            tiny_world.data_dir, tiny_world.features, tmp_path / "d", tiny_config(), resume=exported
        )
    argv = ["train-vln", "--data", tiny_world.data_dir, "--features", tiny_world.features]
    argv += ["--out", tmp_path / "e", "--resume-from", exported, "--no-progress"]
    status, _, err = run_cli(argv, capsys)
    assert status == 2 and "exported.pt" in err and len(err.strip().splitlines()) == 1


def test_warm_start_under_another_seed_draws_fresh_random_streams(tiny_world, tmp_path):
    """``--resume-from CKPT --seed N``: the weights, optimizer and history carry over, the
    batches and random states come from the new seed (a seed study of one stage), and are
    reproducible from it."""
    VLNTrainer(
        tiny_world.data_dir, tiny_world.features, tmp_path / "src", tiny_config(iterations=2)
    ).train(progress=False)
    source = tmp_path / "src" / "latest.pt"
    saved = load_checkpoint(source)

    def reseeded(name: str) -> VLNTrainer:
        return VLNTrainer(
            tiny_world.data_dir,
            tiny_world.features,
            tmp_path / name,
            tiny_config(seed=1),
            resume=source,
        )

    first = reseeded("s1")
    weights = first.model.state_dict()
    assert first.iteration == 2
    assert all(torch.equal(weights[k], v) for k, v in saved["state_dict"].items())
    assert first.history == saved["rng"]["history"]
    assert first.best_score == saved["rng"]["best_score"]
    assert first.sampler.state_dict() != saved["rng"]["sampler"]
    first.train(progress=False)
    second = reseeded("s1-again")  # the global random state is the process's: one at a time
    second.train(progress=False)
    same_seed = VLNTrainer(
        tiny_world.data_dir, tiny_world.features, tmp_path / "s0", tiny_config(), resume=source
    )
    same_seed.train(progress=False)
    assert not same_weights(same_seed.model, first.model)
    assert same_weights(first.model, second.model)
    assert load_checkpoint(tmp_path / "s1" / "latest.pt")["train_config"]["seed"] == 1


def test_resume_refuses_another_architecture(tiny_world, tmp_path):
    run = tmp_path / "run"
    VLNTrainer(tiny_world.data_dir, tiny_world.features, run, tiny_config(iterations=2)).train(
        progress=False
    )
    with pytest.raises(Exception, match="another model"):
        VLNTrainer(
            tiny_world.data_dir, tiny_world.features, run, tiny_config(hidden_size=16), resume=True
        )


# --------------------------------------------------------------------------- command line
#: Training settings of the command-line runs (a JSON file, as a user writes it).
CLI_SETTINGS = {
    "hidden_size": 32,
    "word_embedding_size": 16,
    "batch_size": 4,
    "eval_batch_size": 12,
    "max_actions": 10,
    "log_every": 1,
    "device": "cpu",
}


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def cli_run(tiny_world, tmp_path_factory) -> Path:
    """``clipvil train-vln`` for 2 teacher-forcing iterations; returns the run directory."""
    root = tmp_path_factory.mktemp("cli_run")
    settings = root / "settings.json"
    write_json(settings, CLI_SETTINGS)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    argv = ["train-vln", "--data", tiny_world.data_dir, "--features", tiny_world.features]
    argv += ["--out", root / "run", "--config", settings, "--iterations", "2"]
    argv += ["--eval-every", "2", "--feedback", "teacher", "--no-progress"]
    status = main([str(a) for a in argv])
    torch.set_num_threads(threads)
    assert status == 0
    return root / "run"


def test_cli_train_then_eval_writes_submission_metrics_and_maps(
    tiny_world, cli_run, tmp_path, capsys
):
    latest = load_checkpoint(cli_run / "latest.pt")
    assert latest["step"] == 2 and latest["train_config"]["feedback"] == "teacher"
    assert latest["train_config"]["model"]["hidden_size"] == CLI_SETTINGS["hidden_size"]
    out = tmp_path / "eval"
    argv = ["eval-vln", "--checkpoint", cli_run / "latest.pt", "--data", tiny_world.data_dir]
    argv += ["--features", tiny_world.features, "--split", "val_seen", "--out", out]
    argv += ["--batch-size", "5", "--maps", "2"]  # 12 instructions: a short last batch
    status, printed, _ = run_cli(argv, capsys)
    assert status == 0 and "SPL" in printed
    submission = out / "submission_val_seen.json"
    predictions = load_predictions(submission)
    episodes = load_episodes(tiny_world.data_dir, "val_seen")
    assert set(predictions) == {e.instr_id for e in episodes}
    for episode in episodes:
        assert predictions[episode.instr_id][0][0] == episode.start
    metrics = read_json(out / "metrics_val_seen.json")
    assert metrics["num_instructions"] == 12
    # the same numbers as the evaluation at the end of training ...
    for name in METRIC_NAMES:
        assert metrics[name] == pytest.approx(latest["metrics"]["val_seen"][name])
    # ... and as `clipvil eval-r2r` scoring the submission file
    scores = tmp_path / "scores.json"
    argv = ["eval-r2r", "--data", tiny_world.data_dir, "--split", "val_seen"]
    argv += ["--predictions", submission, "--out", scores]
    assert run_cli(argv, capsys)[0] == 0
    assert read_json(scores) == pytest.approx(metrics)
    assert len(read_json(out / "per_instruction_val_seen.json")) == 12
    maps = sorted((out / "maps").glob("*.png"))
    assert [m.stem for m in maps] == sorted(e.instr_id for e in episodes[:2])
    for image in maps:
        with Image.open(image) as png:
            assert png.format == "PNG" and min(png.size) > 100


def _eval_argv(world, checkpoint: Path, features: Path, out: Path) -> list:
    argv = ["eval-vln", "--checkpoint", checkpoint, "--data", world.data_dir]
    return argv + ["--features", features, "--split", "val_seen", "--out", out]


def _train_argv(world, settings: Path | None, features: Path, out: Path) -> list:
    argv = ["train-vln", "--data", world.data_dir, "--features", features, "--out", out]
    argv += ["--iterations", "1", "--no-progress"]
    return argv + (["--config", settings] if settings else [])


def missing_features(world, run, tmp, make_features):
    bad = tmp / "missing.h5"
    return _eval_argv(world, run / "latest.pt", bad, tmp / "out"), bad, "file not found"


def features_missing_a_viewpoint(world, run, tmp, make_features):
    hole = load_episodes(world.data_dir, "val_seen")[0].path[1]
    bad = make_features(tmp / "holes.h5", world.data_dir, world.scans, 16, skip=(hole,))
    return _eval_argv(world, run / "latest.pt", bad, tmp / "out"), bad, hole


def features_of_the_wrong_size(world, run, tmp, make_features):
    bad = make_features(tmp / "d8.h5", world.data_dir, world.scans, 8)
    checkpoint = run / "latest.pt"
    problem = f"holds [36, 8] features, but {checkpoint} was trained on [36, 16] features"
    return _eval_argv(world, checkpoint, bad, tmp / "out"), bad, problem


def truncated_checkpoint(world, run, tmp, make_features):
    data = (run / "latest.pt").read_bytes()
    bad = tmp / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    return _eval_argv(world, bad, world.features, tmp / "out"), bad, "truncated"


def unknown_config_key(world, run, tmp, make_features):
    bad = tmp / "settings.json"
    write_json(bad, {**CLI_SETTINGS, "hiden_size": 64})
    return _train_argv(world, bad, world.features, tmp / "out"), bad, "'hiden_size'"


def malformed_config(world, run, tmp, make_features):
    bad = tmp / "settings.json"
    bad.write_text('{"hidden_size": 32,', encoding="utf-8")
    return _train_argv(world, bad, world.features, tmp / "out"), bad, "malformed JSON"


def config_value_of_the_wrong_type(world, run, tmp, make_features):
    bad = tmp / "settings.json"
    write_json(bad, {**CLI_SETTINGS, "hidden_size": "big"})
    return _train_argv(world, bad, world.features, tmp / "out"), bad, "'hidden_size'"


def training_features_missing_a_viewpoint(world, run, tmp, make_features):
    hole = load_episodes(world.data_dir, "train")[-1].path[-1]
    bad = make_features(tmp / "holes.h5", world.data_dir, world.scans, 16, skip=(hole,))
    return _train_argv(world, None, bad, tmp / "out"), bad, hole


@pytest.mark.parametrize(
    "case",
    [
        missing_features,
        features_missing_a_viewpoint,
        features_of_the_wrong_size,
        truncated_checkpoint,
        unknown_config_key,
        malformed_config,
        config_value_of_the_wrong_type,
        training_features_missing_a_viewpoint,
    ],
    ids=lambda case: case.__name__,
)
def test_cli_bad_input_is_one_line_and_writes_nothing(
    tiny_world, cli_run, tmp_path, capsys, make_features, case
):
    argv, bad_file, problem = case(tiny_world, cli_run, tmp_path, make_features)
    status, _, err = run_cli(argv, capsys)
    assert status == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {bad_file}: ")
    assert problem in lines[0]
    assert not (tmp_path / "out").exists()


def test_exported_checkpoint_drops_training_state_and_predicts_the_same(tiny_world, tmp_path):
    from vln_agent.training.checkpoint import export_checkpoint, load_checkpoint

    run = tmp_path / "run"
    VLNTrainer(tiny_world.data_dir, tiny_world.features, run, tiny_config(iterations=2)).train(
        progress=False
    )
    shipped = tmp_path / "shipped.pt"
    export_checkpoint(run / "latest.pt", shipped, card="card.md")
    payload = load_checkpoint(shipped, kind="follower")
    assert "optimizer" not in payload and "rng" not in payload
    assert payload["extra"]["card"] == "card.md" and "feature_size" in payload["extra"]
    assert shipped.stat().st_size < (run / "latest.pt").stat().st_size
    original, _, _ = load_follower(run / "latest.pt")
    exported, _, _ = load_follower(shipped)
    for (name, a), (_, b) in zip(
        original.state_dict().items(), exported.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_the_best_checkpoint_split_must_be_evaluated():
    with pytest.raises(ValueError, match="select_split"):
        tiny_config(eval_splits=("val_seen",), select_split="val_unseen")
