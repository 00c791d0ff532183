"""Augmentation data: ``clipvil sample-paths``, ``train-vln --aug-paths`` with the file's own
instructions, and back-translation with a speaker (environmental dropout, exact resume)."""

from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.episodes import load_episodes
from envs.errors import DataError
from envs.fileio import read_json
from envs.graph import NavGraphs
from envs.synthetic.language import instructions_for_path
from envs.synthetic.paths import path_candidates, sample_paths
from envs.tokenizer import PAD_ID
from vln_agent import train as vln_train
from vln_agent.cli import main
from vln_agent.routes import teacher_routes
from vln_agent.speaker_train import SpeakerTrainer, load_speaker_train_config
from vln_agent.train import TrainConfig, VLNTrainer, load_train_config
from vln_agent.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EVALUATION_SPLITS = ("val_seen", "val_unseen", "test")
#: Viewpoints on an R2R-like path, both ends included.
PATH_VIEWPOINTS = range(4, 8)
#: R2R rounds distances to two decimals.
DISTANCE_TOLERANCE_M = 0.005 + 1e-9
#: More than any house of the tiny worlds has candidate paths: ``sample-paths`` takes them all.
ALL_PATHS = 1000
#: Paths per house of the other ``sample-paths`` files.
PER_SCAN = 10
FEATURE_SIZE = 16


def tiny_config(**overrides) -> TrainConfig:
    """A few iterations of a small follower, evaluated on val_seen at the end."""
    values = dict(
        iterations=2,
        batch_size=4,
        hidden_size=32,
        word_embedding_size=16,
        eval_every=1000,
        log_every=1,
        eval_splits=("val_seen",),
        select_split="val_seen",
        eval_batch_size=12,
        max_actions=10,
        device="cpu",
    )
    return load_train_config(None, **(values | overrides))


def sample_paths_cli(data: Path, out: Path, *options) -> tuple[int, str]:
    """``clipvil sample-paths``: (exit status, stderr without the progress bar)."""
    err = io.StringIO()
    argv = ["sample-paths", "--data", data, "--out", out, *options]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main([str(a) for a in argv])
    lines = [line for line in err.getvalue().splitlines() if not line.startswith("sample-paths:")]
    return status, "\n".join(line for line in lines if line.strip())


def read_log(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "log.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def evaluation_pairs(data: Path) -> set[tuple[str, str, str]]:
    """(scan, start, goal) of every evaluation path with a goal, both directions."""
    pairs = set()
    for split in EVALUATION_SPLITS:
        for episode in load_episodes(data, split):
            if len(episode.path) > 1:
                pairs |= {(episode.scan, episode.start, episode.goal)}
                pairs |= {(episode.scan, episode.goal, episode.start)}
    return pairs


# ------------------------------------------------------------------------------ sample-paths
@pytest.fixture(scope="module")
def synthetic_aug(tiny_synthetic_world, tmp_path_factory) -> dict[str, Path]:
    """``sample-paths`` files of the tiny synthetic world: with 3 instructions, without, all
    candidate paths, and a second run of the first with the same seed."""
    out = tmp_path_factory.mktemp("synthetic_aug")
    runs = {
        "three": ["--instructions", 3, "--per-scan", PER_SCAN],
        "again": ["--instructions", 3, "--per-scan", PER_SCAN],
        "other_seed": ["--instructions", 3, "--per-scan", PER_SCAN, "--seed", 1],
        "none": ["--per-scan", PER_SCAN],
        "all": ["--per-scan", ALL_PATHS],
    }
    for name, options in runs.items():
        status, err = sample_paths_cli(tiny_synthetic_world, out / f"{name}.json", *options)
        assert status == 0, err
    return {name: out / f"{name}.json" for name in runs}


def test_sampled_paths_are_r2r_like_shortest_paths_of_the_training_houses(
    tiny_synthetic_world, synthetic_aug
):
    world = tiny_synthetic_world
    graphs = NavGraphs(world)
    train_scans = {e.scan for e in load_episodes(world, "train")}
    entries = read_json(synthetic_aug["all"])
    assert {e["scan"] for e in entries} == train_scans
    for entry in entries:
        graph, path = graphs[entry["scan"]], entry["path"]
        assert len(path) in PATH_VIEWPOINTS and len(set(path)) == len(path)
        assert all(graph.is_edge(a, b) for a, b in zip(path, path[1:], strict=False))
        steps = [graph.positions[graph.index[v]] for v in path]
        length = sum(float(np.linalg.norm(b - a)) for a, b in zip(steps, steps[1:], strict=False))
        assert length == pytest.approx(graph.distance(path[0], path[-1]), abs=1e-6)
        assert abs(entry["distance"] - length) <= DISTANCE_TOLERANCE_M
        assert 0.0 <= entry["heading"] < 2 * math.pi

    episodes = load_episodes(world, str(synthetic_aug["all"]))
    assert len(episodes) == len(entries)
    own_ids = {
        e.path_id for split in ("train", *EVALUATION_SPLITS) for e in load_episodes(world, split)
    }
    aug_ids = [e["path_id"] for e in entries]
    assert len(set(aug_ids)) == len(aug_ids) and not set(aug_ids) & own_ids


def test_sampled_paths_are_every_candidate_but_the_evaluation_paths(
    tiny_synthetic_world, synthetic_aug
):
    """With room for all, ``sample-paths`` takes each R2R-like (start, goal) pair of a training
    house once, in one direction, except the pairs of val_seen / val_unseen / test paths."""
    world = tiny_synthetic_world
    graphs = NavGraphs(world)
    held_out = evaluation_pairs(world)
    sampled = [(e["scan"], e["path"][0], e["path"][-1]) for e in read_json(synthetic_aug["all"])]
    assert not set(sampled) & held_out

    candidates = set()
    for scan in {e.scan for e in load_episodes(world, "train")}:
        ids = graphs[scan].viewpoint_ids
        candidates |= {frozenset((scan, ids[a], ids[b])) for a, b in path_candidates(graphs[scan])}
    unordered = [frozenset(pair) for pair in sampled]
    assert len(set(unordered)) == len(unordered)
    excluded = {frozenset(pair) for pair in held_out} & candidates
    assert excluded  # val_seen paths lie in the training houses: something was held out
    assert set(unordered) == candidates - excluded


def test_instructions_come_from_the_world_annotator(tiny_synthetic_world, synthetic_aug):
    world = tiny_synthetic_world
    entries = read_json(synthetic_aug["three"])
    for entry in entries:
        texts = entry["instructions"]
        assert len(texts) == 3 and len(set(texts)) == 3
        assert all(len(text.split()) >= 3 for text in texts)
    episodes = load_episodes(world, str(synthetic_aug["three"]))
    assert len(episodes) == 3 * len(entries)
    assert {e.instr_id for e in episodes} == {
        f"{e['path_id']}_{k}" for e in entries for k in range(3)
    }
    without = read_json(synthetic_aug["none"])
    assert without and all(entry["instructions"] == [""] for entry in without)

    # the first path and its instructions, drawn as the command draws them (one generator
    # seeded by --seed: the first house's paths, then each path's instructions)
    rng = np.random.default_rng(0)
    scan = sorted({e.scan for e in load_episodes(world, "train")})[0]
    graph = NavGraphs(world)[scan]
    held_out = evaluation_pairs(world)
    ids = graph.viewpoint_ids
    pairs = [(a, b) for a, b in path_candidates(graph) if (scan, ids[a], ids[b]) not in held_out]
    first = sample_paths(rng, graph, pairs, min(PER_SCAN, len(pairs)))[0]
    scene = read_json(world / "scenes" / f"{scan}.json")
    expected = instructions_for_path(scene, list(first.path), first.heading, rng, count=3)
    assert entries[0]["scan"] == scan and entries[0]["path"] == list(first.path)
    assert entries[0]["instructions"] == expected


def test_same_seed_same_file(synthetic_aug):
    assert synthetic_aug["three"].read_bytes() == synthetic_aug["again"].read_bytes()
    assert synthetic_aug["three"].read_bytes() != synthetic_aug["other_seed"].read_bytes()


def test_instructions_need_a_synthetic_world(tiny_world, tmp_path):
    out = tmp_path / "aug.json"
    status, err = sample_paths_cli(tiny_world.data_dir, out, "--instructions", 3)
    assert status == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: {tiny_world.data_dir / 'scenes'}")
    assert "synthetic world" in lines[0]
    assert not out.exists()


# ------------------------------------------------- train-vln --aug-paths, the file's own words
@pytest.fixture
def synthetic_features(tiny_synthetic_world, tmp_path, make_features) -> Path:
    scans = tuple(NavGraphs(tiny_synthetic_world).scans)
    return make_features(tmp_path / "features.h5", tiny_synthetic_world, scans, FEATURE_SIZE)


def test_aug_paths_add_an_optimizer_step_on_an_augmented_batch(
    tiny_synthetic_world, synthetic_aug, synthetic_features, tmp_path
):
    """Each iteration: a step on a real batch, then one on a batch of augmentation paths
    with the file's own instructions."""
    aug_ids = {e.instr_id for e in load_episodes(tiny_synthetic_world, str(synthetic_aug["three"]))}
    train_ids = {e.instr_id for e in load_episodes(tiny_synthetic_world, "train")}
    config = tiny_config(feedback="teacher", aug_paths=str(synthetic_aug["three"]))
    trainer = VLNTrainer(tiny_synthetic_world, synthetic_features, tmp_path / "run", config)
    batches = []
    original = vln_train.rollout

    def recording(model, env, instr_ids, feedback, feature_mask=None, instructions=None, **kw):
        batches.append((list(instr_ids), feature_mask, instructions))
        return original(model, env, instr_ids, feedback, feature_mask, instructions, **kw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vln_train, "rollout", recording)
        trainer.train(progress=False)

    steps = {float(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()}
    assert steps == {2.0 * config.iterations}
    assert len(batches) == 2 * config.iterations
    for (real, *_), (aug, mask, words) in zip(batches[::2], batches[1::2], strict=True):
        assert set(real) <= train_ids and set(aug) <= aug_ids
        assert mask is None and words is None  # the file's own instructions, no dropout mask
    rows = [r for r in read_log(tmp_path / "run") if r["train/il_loss"]]
    assert [float(r["iteration"]) for r in rows] == [1.0, 2.0]
    assert all(np.isfinite(float(r["train/aug_il_loss"])) for r in rows)
    assert load_checkpoint(tmp_path / "run" / "latest.pt")["train_config"]["aug_paths"] == str(
        synthetic_aug["three"]
    )


def test_environment_dropout_without_a_speaker_masks_only_augmented_batches(
    tiny_synthetic_world, synthetic_aug, synthetic_features, tmp_path
):
    """``aug_environment_dropout``: every augmented batch gets its own channel mask [D] and
    keeps the file's own instructions; real batches keep the per-view feature dropout."""
    config = tiny_config(
        feedback="envdrop", aug_paths=str(synthetic_aug["three"]), aug_environment_dropout=True
    )
    trainer = VLNTrainer(tiny_synthetic_world, synthetic_features, tmp_path / "run", config)
    batches = []
    original = vln_train.rollout

    def recording(model, env, instr_ids, feedback, feature_mask=None, instructions=None, **kw):
        batches.append((env, feature_mask, instructions))
        return original(model, env, instr_ids, feedback, feature_mask, instructions, **kw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vln_train, "rollout", recording)
        trainer.train(progress=False)

    # per iteration: imitation + A2C on a real batch, then on an augmented batch
    assert len(batches) == 4 * config.iterations
    real = [b for b in batches if b[0] is trainer.env]
    augmented = [b for b in batches if b[0] is trainer.augmentation.env]
    assert len(real) == len(augmented) == 2 * config.iterations
    assert all(mask is None and words is None for _, mask, words in real)
    scale = 1.0 / (1.0 - config.model.feature_dropout)
    masks = [mask for _, mask, _ in augmented]
    for mask in masks:
        assert mask.shape == (FEATURE_SIZE,)
        assert mask.unique().tolist() == pytest.approx([0.0, scale])
    assert all(words is None for _, _, words in augmented)
    assert len({tuple(m.tolist()) for m in masks}) > 1  # a fresh mask per batch
    with pytest.raises(ValueError, match="aug_paths"):
        tiny_config(aug_environment_dropout=True)


def test_a_plain_run_makes_one_step_per_iteration(
    tiny_synthetic_world, synthetic_features, tmp_path
):
    trainer = VLNTrainer(
        tiny_synthetic_world, synthetic_features, tmp_path / "run", tiny_config(feedback="teacher")
    )
    trainer.train(progress=False)
    steps = {float(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()}
    assert steps == {2.0}
    assert "train/aug_il_loss" not in read_log(tmp_path / "run")[0]


def test_paths_without_instructions_need_a_speaker(
    tiny_synthetic_world, synthetic_aug, synthetic_features, tmp_path, capsys
):
    aug = synthetic_aug["none"]
    with pytest.raises(DataError, match="without instructions"):
        VLNTrainer(
            tiny_synthetic_world,
            synthetic_features,
            tmp_path / "run",
            tiny_config(aug_paths=str(aug)),
        )
    argv = ["train-vln", "--data", tiny_synthetic_world, "--features", synthetic_features]
    argv += ["--out", tmp_path / "out", "--iterations", "1", "--batch-size", "4"]
    argv += ["--device", "cpu", "--aug-paths", aug, "--no-progress"]
    capsys.readouterr()
    assert main([str(a) for a in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {aug}: ")
    assert "--speaker" in lines[0]
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------- back-translation
@pytest.fixture(scope="module")
def speaker_and_paths(tiny_world, tmp_path_factory) -> tuple[Path, Path]:
    """A speaker trained for a few iterations on the tiny world, and augmentation paths
    (``sample-paths`` without instructions) in its houses."""
    root = tmp_path_factory.mktemp("backtranslation")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    config = load_speaker_train_config(
        None,
        iterations=3,
        batch_size=4,
        hidden_size=32,
        word_embedding_size=16,
        learning_rate=1e-3,
        eval_every=3,
        eval_splits=("val_seen",),
        select_split="val_seen",
    )
    SpeakerTrainer(tiny_world.data_dir, tiny_world.features, root / "speaker", config).train(False)
    torch.set_num_threads(threads)
    status, err = sample_paths_cli(tiny_world.data_dir, root / "aug.json", "--per-scan", 4)
    assert status == 0, err
    assert all(e["instructions"] == [""] for e in read_json(root / "aug.json"))
    return root / "speaker" / "latest.pt", root / "aug.json"


def backtranslation_config(speaker_and_paths, **overrides) -> TrainConfig:
    """Back-translation; the follower's vocabulary (words seen twice) is not the speaker's."""
    speaker, aug = speaker_and_paths
    return tiny_config(aug_paths=str(aug), speaker=str(speaker), min_word_count=2, **overrides)


def test_back_translation_trains_and_logs_augmented_losses(tiny_world, speaker_and_paths, tmp_path):
    config = backtranslation_config(speaker_and_paths)
    trainer = VLNTrainer(tiny_world.data_dir, tiny_world.features, tmp_path / "run", config)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.train(progress=False)
    assert any(not torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())
    steps = {float(s["step"]) for s in trainer.optimizer.state_dict()["state"].values()}
    assert steps == {2.0 * config.iterations}
    rows = [r for r in read_log(tmp_path / "run") if r["train/il_loss"]]
    assert len(rows) == config.iterations
    for name in ("il_loss", "policy_loss", "critic_loss", "entropy_loss"):
        assert all(np.isfinite(float(r[f"train/aug_{name}"])) for r in rows)
    saved = load_checkpoint(tmp_path / "run" / "latest.pt")["train_config"]
    assert saved["speaker"] == config.speaker and saved["aug_paths"] == config.aug_paths


def test_augmented_batches_share_one_dropout_mask_with_the_speaker(
    tiny_world, speaker_and_paths, tmp_path
):
    """Each augmented batch: one environmental-dropout mask [D]; the speaker's description of
    the route through the masked features, in the follower's word ids; and a follower that
    sees exactly those masked views (not dropped again by its own feature dropout)."""
    config = backtranslation_config(speaker_and_paths)
    trainer = VLNTrainer(tiny_world.data_dir, tiny_world.features, tmp_path / "run", config)
    augmentation = trainer.augmentation
    assert len(trainer.tokenizer) < len(augmentation.speaker_tokenizer)
    described, seen = [], []
    describe = augmentation.describe

    def recording_describe(ids):
        mask, words = describe(ids)
        described.append((list(ids), mask, words))
        return mask, words

    views = []
    hook = trainer.model.view_attention.register_forward_hook(
        lambda module, args, output: views.append(args[1].detach().clone())
    )
    original = vln_train.rollout

    def recording_rollout(
        model, env, instr_ids, feedback, feature_mask=None, instructions=None, **kw
    ):
        views.clear()
        result = original(model, env, instr_ids, feedback, feature_mask, instructions, **kw)
        obs, _ = env.reset(options={"instr_ids": list(instr_ids)})
        seen.append((list(instr_ids), feature_mask, instructions, views[0], obs))
        return result

    trainer.model.train()
    augmentation.describe = recording_describe
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vln_train, "rollout", recording_rollout)
        augmentation.losses()
    hook.remove()

    # envdrop feedback: an imitation batch and an A2C batch, each described once
    assert len(described) == len(seen) == 2
    scale = 1.0 / (1.0 - config.model.feature_dropout)
    length = config.max_instruction_length
    for (ids, mask, words), (rollout_ids, feature_mask, instructions, first_views, obs) in zip(
        described, seen, strict=True
    ):
        assert mask.shape == (FEATURE_SIZE,)
        assert mask.unique().tolist() == pytest.approx([0.0, scale])  # some channels dropped
        assert rollout_ids == ids and feature_mask is mask and instructions is words

        # the follower saw the raw views times exactly this mask (angle features untouched)
        raw = torch.from_numpy(obs["view_features"])  # [B, 36, D]
        angles = torch.from_numpy(obs["view_angle_features"])  # [B, 36, 128]
        assert torch.equal(first_views, torch.cat([raw * mask, angles], dim=-1))

        # the instructions are the speaker's greedy description, in the follower's ids
        assert words.shape == (len(ids), length) and words.dtype == np.int64
        assert words.max() < len(trainer.tokenizer) and (words > PAD_ID).sum(1).min() >= 1
        routes = teacher_routes(augmentation.env, ids, torch.device("cpu"), feature_mask=mask)
        generated = augmentation.speaker.generate(
            routes.actions, routes.panoramas, routes.mask, max_length=length, already_dropped=True
        )
        texts = [augmentation.speaker_tokenizer.decode(row) for row in generated.tolist()]
        assert any(texts)
        for row, text in zip(words, texts, strict=True):
            encoded = trainer.tokenizer.encode(text, length)
            assert row.tolist() == encoded + [PAD_ID] * (length - len(encoded))
    assert not torch.equal(described[0][1], described[1][1])


def test_resume_with_back_translation_continues_exactly(tiny_world, speaker_and_paths, tmp_path):
    """4 iterations at once == 2, then a fresh trainer resumed to 4: the augmentation
    sampler, the dropout masks and the sampled A2C rollouts all continue."""
    data, features = tiny_world.data_dir, tiny_world.features
    config = backtranslation_config(speaker_and_paths, iterations=4, eval_every=2)
    full = VLNTrainer(data, features, tmp_path / "a", config)
    full.train(progress=False)
    first = VLNTrainer(
        data, features, tmp_path / "b", backtranslation_config(speaker_and_paths, iterations=2)
    )
    first.train(progress=False)
    resumed = VLNTrainer(data, features, tmp_path / "b", config, resume=True)
    assert resumed.iteration == 2
    resumed.train(progress=False)

    expected, got = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert full.augmentation.sampler.state_dict() == resumed.augmentation.sampler.state_dict()
    a, b = (
        load_checkpoint(tmp_path / "a" / "latest.pt"),
        load_checkpoint(tmp_path / "b" / "latest.pt"),
    )
    assert a["step"] == b["step"] == 4 and a["metrics"] == b["metrics"]
    drop_time = [
        {k: v for k, v in r.items() if k != "train/seconds"} for r in read_log(tmp_path / "a")
    ]
    assert drop_time == [
        {k: v for k, v in r.items() if k != "train/seconds"} for r in read_log(tmp_path / "b")
    ]
