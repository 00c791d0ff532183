"""SNLI-VE files of the synthetic world: vqa_ve reads them, labels are true to the scene
and balanced per template, and hypothesis texts recur with different labels."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from envs.synthetic.qa.views import VISIBLE_MIN_PIXELS
from envs.synthetic.qa.writer import QA_SPLITS, snli_ve_file, snli_ve_images
from vqa_ve.data.snli_ve import LABELS, check_images, load_snli_ve

SPLITS = [split for _, _, split in QA_SPLITS.values()]


def _load(world: Path, split: str):
    return load_snli_ve(snli_ve_file(world / "qa", split)).examples


@pytest.mark.parametrize("split", SPLITS)
def test_vqa_ve_reads_every_split_and_its_images(tiny_synthetic_world: Path, split: str):
    examples = _load(tiny_synthetic_world, split)
    assert len(examples) >= 12
    check_images(snli_ve_images(tiny_synthetic_world / "qa"), examples)


def _template(hypothesis: str) -> str:
    return "room" if " is in a " in hypothesis else "colour"


@pytest.mark.parametrize("split", SPLITS)
def test_labels_are_balanced_per_template(tiny_synthetic_world: Path, split: str):
    counts: dict[str, Counter] = defaultdict(Counter)
    for example in _load(tiny_synthetic_world, split):
        counts[_template(example.hypothesis)][example.label] += 1
    for by_label in counts.values():
        assert set(by_label) == set(LABELS)
        assert len(set(by_label.values())) == 1


def test_labels_are_true_to_the_scene(tiny_synthetic_world: Path):
    sources = {
        s["image_id"]: s
        for s in json.loads((tiny_synthetic_world / "qa" / "images.json").read_text())
    }
    for example in _load(tiny_synthetic_world, "train"):
        src = sources[int(example.image_id)]
        scene = json.loads((tiny_synthetic_world / "scenes" / f"{src['scan']}.json").read_text())
        objects = {o["id"]: o for o in scene["objects"]}
        rooms = {r["id"]: r for r in scene["rooms"]}
        vp = next(v for v in scene["viewpoints"] if v["id"] == src["viewpoint"])
        view = vp["views"][src["view_index"]]
        m = re.fullmatch(r"the (.+) is (?:in a )?(.+)\.", example.hypothesis)
        seen = [objects[e["id"]] for e in view["objects"] if objects[e["id"]]["category"] == m[1]]
        if example.label == "neutral":
            assert not seen
            continue
        (obj,) = seen
        entry = next(e for e in view["objects"] if e["id"] == obj["id"])
        assert entry["pixels"] >= VISIBLE_MIN_PIXELS
        value = (
            rooms[view["room"]]["type"] if _template(example.hypothesis) == "room" else obj["color"]
        )
        assert (value == m[2]) == (example.label == "entailment"), example.hypothesis


def test_hypothesis_only_baseline_is_near_chance(tiny_synthetic_world: Path):
    """Train's majority label per hypothesis text (else overall) on dev: measured 0.33."""
    by_text: dict[str, Counter] = defaultdict(Counter)
    overall: Counter = Counter()
    for e in _load(tiny_synthetic_world, "train"):
        by_text[e.hypothesis][e.label] += 1
        overall[e.label] += 1
    dev = _load(tiny_synthetic_world, "dev")
    hits = sum((by_text.get(e.hypothesis) or overall).most_common(1)[0][0] == e.label for e in dev)
    assert hits / len(dev) <= 0.5
