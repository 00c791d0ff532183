"""VCR files of the synthetic world: vqa_ve reads them with their images and metadata,
the right answers and rationales are true to the scene, labels are spread."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from envs.synthetic.qa.writer import QA_SPLITS, vcr_file, vcr_images
from vqa_ve.data.vcr import NUM_CHOICES, load_item_metadata, load_vcr, render_tokens

SPLITS = list(QA_SPLITS)


def _load(world: Path, split: str):
    qa = world / "qa"
    return load_vcr(vcr_file(qa, split), vcr_images(qa), require_labels=True, check_metadata=True)


@pytest.mark.parametrize("split", SPLITS)
def test_vqa_ve_reads_every_split_with_images_and_metadata(tiny_synthetic_world: Path, split):
    items = _load(tiny_synthetic_world, split)
    assert len(items) >= 12
    for item in items:
        assert len({render_tokens(c, item.objects) for c in item.answer_choices}) == NUM_CHOICES
        assert len({render_tokens(c, item.objects) for c in item.rationale_choices}) == NUM_CHOICES


def test_right_answers_are_true_to_the_scene(tiny_synthetic_world: Path):
    sources = {
        s["image_id"]: s
        for s in json.loads((tiny_synthetic_world / "qa" / "images.json").read_text())
    }
    qa = tiny_synthetic_world / "qa"
    for item in _load(tiny_synthetic_world, "train"):
        src = sources[int(Path(item.img_fn).stem)]
        scene = json.loads((tiny_synthetic_world / "scenes" / f"{src['scan']}.json").read_text())
        objects = {o["id"]: o for o in scene["objects"]}
        rooms = {r["id"]: r for r in scene["rooms"]}
        vp = next(v for v in scene["viewpoints"] if v["id"] == src["viewpoint"])
        view = vp["views"][src["view_index"]]
        boxes = load_item_metadata(item, vcr_images(qa)).boxes
        by_box = {tuple(e["box"]): objects[e["id"]] for e in view["objects"]}
        tagged = [by_box[tuple(int(v) for v in box[:4])] for box in boxes]
        assert [o["category"] for o in tagged] == list(item.objects)
        answer = item.answer_choices[item.answer_label]
        first = tagged[answer[0][0]]
        words = [t for t in answer if isinstance(t, str)]
        if item.question[1] == "color":
            assert words == ["is", first["color"], "."]
        elif item.question[1] == "kind":
            assert " ".join(words[3:-1]) == rooms[view["room"]]["type"]
        else:
            a, b = (boxes[t[0]] for t in answer if not isinstance(t, str))
            side = "left" if a[0] + a[2] < b[0] + b[2] else "right"
            assert words[3] == side


def test_labels_are_spread_over_the_four_positions(tiny_synthetic_world: Path):
    items = _load(tiny_synthetic_world, "train")
    for labels in (
        Counter(i.answer_label for i in items),
        Counter(i.rationale_label for i in items),
    ):
        assert max(labels.values()) / len(items) <= 0.45
