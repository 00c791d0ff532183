"""Pretraining on the synthetic world: data split, labels, render cache, both objectives,
checkpoints, exact resume, zero-shot metrics and one-line bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from envs.errors import DataError
from envs.fileio import read_json, write_json
from envs.graph import NavGraphs
from envs.synthetic.phrasing import COLOUR_WORDS, OBJECT_WORDS, ROOM_WORDS
from envs.synthetic.scene_facts import SceneFacts
from envs.synthetic.vocabulary import COLOUR_NAMES
from envs.views import load_skybox_faces, render_encoder_views, skybox_dir
from vln_agent.cli import main
from vln_agent.encoders import create_encoder, read_checkpoint_metadata, save_encoder
from vln_agent.pretrain import data as pretrain_data
from vln_agent.pretrain.config import PretrainConfig
from vln_agent.pretrain.data import (
    LabelSpace,
    ViewLabels,
    load_captioned_views,
    load_view_labels,
    render_view_cache,
    split_scans,
    view_labels,
    with_category_captions,
)
from vln_agent.pretrain.objectives import (
    ContrastiveObjective,
    SupervisedObjective,
)
from vln_agent.pretrain.train import Pretrainer, tokenize_captions
from vln_agent.pretrain.zeroshot import (
    EvalViews,
    accuracy,
    any_visible_accuracy,
    chance_levels,
    class_prompts,
    evaluate_checkpoint,
    object_prompt_sets,
    room_prompt_sets,
    zero_shot_logits,
)

#: A run small enough for a test: clipvil-tiny, 9 steps an epoch on the tiny world.
TINY_CONFIG = PretrainConfig(
    model="clipvil-tiny",
    epochs=2,
    batch_size=16,
    learning_rate=1e-3,
    warmup_steps=3,
    threads=1,
    render_workers=1,
    log_every=2,
    checkpoint_every=5,
    eval_split="",
    device="cpu",
)
#: The size limit of a shipped clipvil-small checkpoint.
MAX_SMALL_CHECKPOINT_BYTES = 25 * 2**20


def _trainer(world: Path, tmp: Path, kind: str = "clip", **changes) -> Pretrainer:
    config = PretrainConfig(**{**TINY_CONFIG.__dict__, **changes})
    return Pretrainer(
        kind, world, tmp / f"{kind}.pt", config, cache_dir=tmp / "cache", progress=False
    )


# ---------------------------------------------------------------------------- data


def test_training_views_come_from_train_houses_only(tiny_synthetic_world, tmp_path):
    train = split_scans(tiny_synthetic_world, "train")
    held_out = set(split_scans(tiny_synthetic_world, "val_unseen"))
    held_out |= set(split_scans(tiny_synthetic_world, "test"))
    assert train and held_out and not held_out & set(train)
    records = read_json(tiny_synthetic_world / "captions.json")
    trainer = _trainer(tiny_synthetic_world, tmp_path, epochs=1)
    used = {v.scan for v in trainer.views}
    assert used == set(train) and not used & held_out
    assert len(trainer.views) == sum(r["split"] == "train" for r in records)
    assert len(trainer.pixels) == len(trainer.views)


def _scene() -> dict:
    objects = [
        {"id": 0, "category": "sofa", "color": "blue", "size": "large", "room": 1},
        {"id": 1, "category": "lamp", "color": "white", "size": "medium", "room": 1},
        {"id": 2, "category": "plant", "color": "green", "size": "small", "room": 1},
    ]
    for obj in objects:
        obj["bounds"] = [0, 0, 0, 1, 1, 1]
    seen = [
        {"id": 1, "box": [600, 100, 640, 300], "pixels": 5000},  # largest, in a side strip
        {"id": 0, "box": [200, 200, 400, 400], "pixels": 3000},
        {"id": 2, "box": [300, 0, 320, 20], "pixels": 100},  # below the caption threshold
    ]
    return {
        "scan": "scanA",
        "rooms": [
            {"id": 0, "type": "hallway", "bounds": [0, 0, 2, 2]},
            {"id": 1, "type": "living room", "bounds": [2, 0, 6, 4]},
        ],
        "doors": [],
        "objects": objects,
        "viewpoints": [
            {
                "id": "vp",
                "room": 0,
                "position": [1, 1, 1.5],
                "views": [
                    {"view_index": 13, "room": 1, "objects": seen},
                    {"view_index": 14, "room": -1, "objects": []},
                ],
            }
        ],
    }


def test_labels_are_parsed_from_a_scene_file():
    facts = SceneFacts.from_scene(_scene())
    labels = view_labels(facts, "vp", 13)
    assert labels.room_type == "living room"  # the room the view shows, not the viewpoint's
    assert labels.objects == ("lamp", "sofa")  # largest first, the plant is too small
    assert labels.largest_object == "lamp" and labels.largest_pixels == 5000
    assert labels.largest_in_square == "sofa"  # the lamp lies outside the encoder's square
    empty = view_labels(facts, "vp", 14)
    assert empty.room_type == "hallway" and empty.objects == () and empty.largest_in_square is None
    space = LabelSpace()
    rooms = space.room_index([labels, empty], "test")
    assert [space.room_types[i] for i in rooms] == ["living room", "hallway"]
    multi_hot = space.object_multi_hot([labels, empty], "test")
    assert multi_hot.shape == (2, len(space.object_categories))
    assert {space.object_categories[i] for i in np.flatnonzero(multi_hot[0])} == {"lamp", "sofa"}
    assert multi_hot[1].sum() == 0
    assert space.largest_object_index([labels, empty]).tolist() == [
        space.object_categories.index("sofa"),
        -1,
    ]
    with pytest.raises(DataError, match="unknown room type 'living room'"):
        LabelSpace(room_types=("hallway",)).room_index([labels], "test")
    with pytest.raises(DataError, match="no view 20"):
        view_labels(facts, "vp", 20)


def test_labels_of_the_world_agree_with_its_captions(tiny_synthetic_world):
    views = load_captioned_views(tiny_synthetic_world, split_scans(tiny_synthetic_world, "train"))
    labels = load_view_labels(tiny_synthetic_world, views)
    with_objects = [(v, lab) for v, lab in zip(views, labels, strict=True) if lab.objects]
    assert with_objects
    for view, lab in with_objects:  # every caption names the largest visible object
        words = OBJECT_WORDS[lab.largest_object]
        assert all(any(w in caption for w in words) for caption in view.captions), view


def test_category_captions_name_only_the_room_or_a_visible_object(tiny_synthetic_world):
    views = load_captioned_views(tiny_synthetic_world, split_scans(tiny_synthetic_world, "train"))
    labels = load_view_labels(tiny_synthetic_world, views)
    extended = with_category_captions(views, labels, 3, seed=0)
    assert extended == with_category_captions(views, labels, 3, seed=0)  # seeded
    colours = set(COLOUR_NAMES) | {w for words in COLOUR_WORDS.values() for w in words}
    named_objects = 0
    for view, new, lab in zip(views, extended, labels, strict=True):
        assert new.key == view.key and new.captions[:3] == view.captions
        added = new.captions[3:]
        assert len(added) == 3
        rooms = ROOM_WORDS[lab.room_type]
        objects = [w for category in lab.objects for w in OBJECT_WORDS[category]]
        for caption in added:
            assert not set(caption.split()) & colours, caption
            in_room = any(caption.endswith(" " + w) for w in rooms)
            named = [w for w in objects if f" {w}" in caption]
            assert in_room or named, caption  # a room type or an object the view shows
            named_objects += bool(named)
        if not lab.objects:
            assert all(any(caption.endswith(" " + w) for w in rooms) for caption in added)
    assert named_objects > 0


def test_category_captions_join_the_contrastive_targets(tiny_synthetic_world, tmp_path):
    plain = _trainer(tiny_synthetic_world, tmp_path, epochs=1)
    extended = _trainer(tiny_synthetic_world, tmp_path, epochs=1, category_captions=2)
    tokens = extended.objective.caption_tokens  # [N, K + 2, L]
    assert tokens.shape[:2] == (len(plain.views), plain.objective.caption_tokens.shape[1] + 2)
    assert torch.equal(tokens[:, :3], plain.objective.caption_tokens[:, :3])
    with pytest.raises(ValueError, match="category_captions"):
        PretrainConfig(category_captions=-1)


def test_render_cache_holds_the_encoder_views_and_is_reused(
    tiny_synthetic_world, tmp_path, monkeypatch
):
    views = load_captioned_views(
        tiny_synthetic_world, split_scans(tiny_synthetic_world, "val_unseen")
    )
    views = views[:7]
    pixels = render_view_cache(tiny_synthetic_world, views, 32, tmp_path, workers=1, progress=False)
    assert pixels.shape == (7, 32, 32, 3) and pixels.dtype == np.uint8
    assert not list(tmp_path.glob("*.partial"))
    first = views[0]
    graph = NavGraphs(tiny_synthetic_world)[first.scan]
    faces = load_skybox_faces(skybox_dir(tiny_synthetic_world, first.scan), first.viewpoint)
    pose = graph.poses[graph.index[first.viewpoint]]
    expected = render_encoder_views(faces, pose, 32, views=[first.view_index])[0]
    np.testing.assert_array_equal(pixels[0], expected)

    def fail(job):
        raise AssertionError("a complete cache must be reused")

    monkeypatch.setattr(pretrain_data, "_render_job", fail)
    again = render_view_cache(tiny_synthetic_world, views, 32, tmp_path, workers=1, progress=False)
    np.testing.assert_array_equal(again, pixels)


# ---------------------------------------------------------------------------- objectives


@pytest.fixture
def fixed_batch(tiny_synthetic_world, tiny_encoder, tmp_path, one_torch_thread):
    views = load_captioned_views(tiny_synthetic_world, split_scans(tiny_synthetic_world, "train"))
    views = views[:8]
    pixels = render_view_cache(tiny_synthetic_world, views, 32, tmp_path, workers=1, progress=False)
    return views, tiny_encoder.pixels_to_input(np.array(pixels))  # [8, 3, 32, 32]


def _overfit(objective, images, targets, steps: int = 40) -> list[float]:
    optimizer = torch.optim.AdamW(objective.parameters(), lr=2e-3)
    objective.train()
    losses = []
    for _ in range(steps):
        parts, _ = objective(images, **targets)
        loss = sum(parts.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        objective.after_step()
        losses.append(float(loss.detach()))
    return losses


def test_contrastive_loss_overfits_a_fixed_batch(tiny_encoder, fixed_batch):
    views, images = fixed_batch
    objective = ContrastiveObjective(tiny_encoder, tokenize_captions(tiny_encoder, views))
    rows = np.arange(len(views))
    targets = objective.targets(rows, np.random.default_rng(0))
    assert targets["tokens"].shape == (8, tiny_encoder.context_length)
    losses = _overfit(objective, images, targets)
    assert losses[-1] < 0.3 * losses[0], losses
    assert float(tiny_encoder.model.logit_scale.detach().exp()) <= 100.0 + 1e-4


def test_trimmed_text_encoding_equals_the_full_one(tiny_encoder, one_torch_thread):
    tokens = tiny_encoder.tokenize(["a blue sofa in a living room", "a hall", "word " * 90])
    full = tiny_encoder.encode_text(tokens)
    torch.testing.assert_close(tiny_encoder.encode_text(tokens, trim_padding=True), full)
    short = tokens[:2]
    torch.testing.assert_close(
        tiny_encoder.encode_text(short, trim_padding=True), full[:2], atol=1e-5, rtol=1e-5
    )


def test_supervised_loss_overfits_a_fixed_batch(tiny_synthetic_world, tiny_encoder, fixed_batch):
    views, images = fixed_batch
    space = LabelSpace()
    labels = load_view_labels(tiny_synthetic_world, views)
    objective = SupervisedObjective(
        tiny_encoder,
        torch.from_numpy(space.room_index(labels, "t")),
        torch.from_numpy(space.object_multi_hot(labels, "t")),
        space,
    )
    targets = objective.targets(np.arange(len(views)), np.random.default_rng(0))
    losses = _overfit(objective, images, targets)
    assert losses[-1] < 0.3 * losses[0], losses


# ---------------------------------------------------------------------------- training


def test_clip_checkpoint_loads_through_create_encoder(tiny_synthetic_world, tmp_path):
    trainer = _trainer(tiny_synthetic_world, tmp_path, epochs=1, eval_split="val_unseen")
    metrics = trainer.train()
    assert metrics["epochs"] == 1 and metrics["eval"]["split"] == "val_unseen"
    out = tmp_path / "clip.pt"
    metadata = read_checkpoint_metadata(out)
    assert metadata["encoder_kind"] == "clip" and metadata["step"] == trainer.step
    assert metadata["train_config"]["model"] == "clipvil-tiny"
    loaded = create_encoder("clipvil-tiny", pretrained=out)
    images = trainer.encoder.pixels_to_input(np.array(trainer.pixels[:4]))
    # the checkpoint is fp16: compare with the trained weights rounded the same way
    reference = create_encoder("clipvil-tiny")
    reference.model.load_state_dict(
        {k: v.half().float() for k, v in trainer.encoder.model.state_dict().items()}
    )
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(images), reference.encode_image(images))
    log = (trainer.run_dir / "log.csv").read_text().splitlines()
    assert "eval/room_accuracy" in log[0] and len(log) > 2
    assert (trainer.run_dir / "tensorboard").is_dir()


def test_small_encoder_checkpoint_fits_the_size_limit(tmp_path, one_torch_thread):
    path = save_encoder(create_encoder("clipvil-small"), tmp_path / "small.pt", half=True)
    assert path.stat().st_size <= MAX_SMALL_CHECKPOINT_BYTES


def test_resume_continues_exactly(tiny_synthetic_world, tmp_path, one_torch_thread):
    whole = _trainer(tiny_synthetic_world, tmp_path / "whole")
    assert whole.total_steps == 2 * whole.steps_per_epoch
    expected = whole.train()
    interrupted = _trainer(tiny_synthetic_world, tmp_path / "resumed")
    assert interrupted.train(stop_at=whole.steps_per_epoch + 2) is None  # "killed" mid-epoch
    resumed = Pretrainer(
        "clip",
        tiny_synthetic_world,
        tmp_path / "resumed" / "clip.pt",
        TINY_CONFIG,
        cache_dir=tmp_path / "resumed" / "cache",
        resume=True,
        progress=False,
    )
    assert resumed.step == whole.steps_per_epoch + 2
    metrics = resumed.train()
    for key, value in whole.objective.state_dict().items():
        assert torch.equal(value, resumed.objective.state_dict()[key]), key
    assert metrics["train_loss"] == expected["train_loss"]
    whole_log = (whole.run_dir / "log.csv").read_text()
    assert (resumed.run_dir / "log.csv").read_text().count("\n") == whole_log.count("\n")


def test_resume_refuses_other_settings(tiny_synthetic_world, tmp_path, one_torch_thread):
    _trainer(tiny_synthetic_world, tmp_path, epochs=1).train(stop_at=2)
    changed = PretrainConfig(**{**TINY_CONFIG.__dict__, "epochs": 1, "learning_rate": 0.1})
    with pytest.raises(DataError, match="learning_rate"):
        Pretrainer(
            "clip",
            tiny_synthetic_world,
            tmp_path / "clip.pt",
            changed,
            cache_dir=tmp_path / "cache",
            resume=True,
            progress=False,
        )


def test_supervised_checkpoint_and_its_heads_in_zeroshot(tiny_synthetic_world, tmp_path):
    trainer = _trainer(tiny_synthetic_world, tmp_path, kind="supervised", epochs=1)
    trainer.train()
    out = tmp_path / "supervised.pt"
    metadata = read_checkpoint_metadata(out)
    assert metadata["encoder_kind"] == "supervised"
    assert metadata["label_names"] == LabelSpace().to_dict()
    assert set(metadata["heads"]) == {"room.weight", "room.bias", "objects.weight", "objects.bias"}
    results = evaluate_checkpoint(
        tiny_synthetic_world, out, "clipvil-tiny", "val_unseen", tmp_path / "cache", False
    )
    assert results["encoder_kind"] == "supervised"
    heads = results["linear_heads"]
    assert all(0.0 <= heads[k] <= 1.0 for k in ("room_accuracy", "object_accuracy"))


# ---------------------------------------------------------------------------- zero-shot


def test_zero_shot_metrics_on_known_scores():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.0, 0.0, 1.0]])
    assert accuracy(scores, np.array([0, 1, 1, -1])) == pytest.approx(2 / 3)  # -1: not scored
    assert np.isnan(accuracy(scores, np.array([-1, -1, -1, -1])))
    levels = chance_levels(np.array([0, 1, 1, 1, -1]), 3)
    assert levels == {"chance_uniform": pytest.approx(1 / 3), "chance_majority": 0.75}
    image = torch.tensor([[2.0, 0.0], [0.0, 0.5]])
    text = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    logits = zero_shot_logits(image, text)  # cosine similarities
    torch.testing.assert_close(logits[0], torch.tensor([1.0, 0.0, 2**-0.5]))
    assert accuracy(logits, np.array([0, 1])) == 1.0
    prompts = class_prompts(("office", "stairs", "kitchen"), {"stairs": ("staircase", "stairwell")})
    assert prompts == ["a photo of an office", "a photo of a staircase", "a photo of a kitchen"]
    stairs, office = room_prompt_sets(["stairs", "office"])
    assert stairs[0] == "a photo of a staircase" and "a photo of an office" in office
    (stove,) = object_prompt_sets(["stove"])  # 3 colours x 3 names
    assert len(stove) == 9 and "a photo of a white stove" in stove
    assert "a photo of a black oven" in stove


def test_any_visible_object_accuracy():
    classes = LabelSpace(("hallway",), ("sofa", "lamp", "plant"))
    labels = [
        ViewLabels("hallway", ("sofa", "lamp"), 900, "sofa"),
        ViewLabels("hallway", ("plant",), 900, "plant"),
        ViewLabels("hallway", (), 0, None),  # not scored
    ]
    data = EvalViews(
        split="x",
        views=[],
        labels=labels,
        pixels=np.zeros((3, 4, 4, 3), np.uint8),
        room=np.zeros(3, np.int64),
        largest_object=classes.largest_object_index(labels),
        level=np.ones(3, bool),
        classes=classes,
    )
    scores = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert accuracy(scores, data.largest_object) == 0.0  # the lamp is not the largest
    assert any_visible_accuracy(scores, data) == 0.5  # but it is visible


def test_zeroshot_command_writes_json(tiny_synthetic_world, tmp_path, capsys):
    trainer = _trainer(tiny_synthetic_world, tmp_path, epochs=1)
    trainer.train()
    out = tmp_path / "results" / "zeroshot.json"
    argv = ["zeroshot", "--data", str(tiny_synthetic_world), "--checkpoint", str(trainer.out)]
    argv += ["--model", "clipvil-tiny", "--out", str(out), "--threads", "1", "--no-progress"]
    assert main(argv) == 0
    results = json.loads(out.read_text())
    assert results["split"] == "val_unseen" and results["encoder_kind"] == "clip"
    assert results["room"]["classes"] == 9 and results["object"]["classes"] == 21
    assert 0 < results["object"]["views"] <= results["views"]
    assert "linear_heads" not in results
    assert "room type:" in capsys.readouterr().out


# ---------------------------------------------------------------------------- bad input


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


def test_missing_captions_is_a_one_line_error(tiny_synthetic_world, tmp_path, capsys):
    data = tmp_path / "world"
    data.mkdir()
    write_json(data / "R2R_train.json", read_json(tiny_synthetic_world / "R2R_train.json"))
    argv = ["pretrain-clip", "--data", str(data), "--out", str(tmp_path / "c.pt")]
    assert main([*argv, "--model", "clipvil-tiny", "--no-progress"]) == 2
    assert "captions.json: file not found" in _one_line_error(capsys)
    assert not (tmp_path / "c.pt").exists()


def test_corrupt_checkpoint_is_a_one_line_error(tiny_synthetic_world, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    argv = ["zeroshot", "--data", str(tiny_synthetic_world), "--checkpoint", str(bad)]
    assert main([*argv, "--model", "clipvil-tiny", "--no-progress"]) == 2
    assert "bad.pt" in _one_line_error(capsys)


def test_bad_settings_and_missing_state_are_one_line_errors(tiny_synthetic_world, tmp_path, capsys):
    settings = tmp_path / "settings.json"
    write_json(settings, {"epochs": 1, "learning_rat": 0.1})
    argv = ["pretrain-supervised", "--data", str(tiny_synthetic_world), "--out"]
    argv += [str(tmp_path / "s.pt"), "--no-progress", "--model", "clipvil-tiny"]
    assert main([*argv, "--config", str(settings)]) == 2
    assert "unknown pretraining setting 'learning_rat'" in _one_line_error(capsys)
    assert main([*argv, "--epochs", "0"]) == 2
    assert "epochs must be at least 1" in _one_line_error(capsys)
    assert main([*argv, "--resume", "--eval-split", "", "--batch-size", "16"]) == 2
    assert "latest.pt: checkpoint file not found" in _one_line_error(capsys)
    clip = ["pretrain-clip", *argv[1:], "--category-captions", "-1"]
    assert main(clip) == 2
    assert "category_captions must be >= 0" in _one_line_error(capsys)
