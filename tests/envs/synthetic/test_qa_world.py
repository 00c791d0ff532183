"""QA data inside the synthetic world: the navigation files keep their bytes, the same
seed gives the same QA bytes, and a world reused without its QA gets it back."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from envs.constants import R2R_IMAGE_HEIGHT, R2R_IMAGE_WIDTH
from envs.synthetic.presets import PRESETS
from envs.synthetic.qa.captions import CAPTIONS_PER_IMAGE
from envs.synthetic.qa.writer import (
    COCO_DIR,
    QA_DIR,
    QA_MANIFEST,
    QA_SPLITS,
    QA_VERSION,
    build_qa,
    coco_captions_file,
    vqa_files,
    vqa_image_name,
)
from envs.synthetic.writer import build_world
from vln_agent.cli import main

#: The seed of the shared tiny world (tests/conftest.py).
TINY_WORLD_SEED = 0


def hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def world_without_qa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built through ``clipvil world --no-qa`` (the flag is tested on the way)."""
    out = tmp_path_factory.mktemp("world_without_qa")
    argv = ["world", "--out", str(out), "--preset", "tiny", "--workers", "1", "--no-qa"]
    assert main([*argv, "--seed", str(TINY_WORLD_SEED)]) == 0
    return out


def test_world_files_are_the_same_bytes_with_and_without_qa(
    tiny_synthetic_world: Path, world_without_qa: Path
):
    with_qa = hashes(tiny_synthetic_world)
    without = hashes(world_without_qa)
    assert not (world_without_qa / QA_DIR).exists()
    assert {k: v for k, v in with_qa.items() if not k.startswith(f"{QA_DIR}/")} == without


def test_same_seed_gives_the_same_qa_bytes(
    tiny_synthetic_world: Path, world_without_qa: Path, tmp_path: Path
):
    copy = tmp_path / "world"
    shutil.copytree(world_without_qa, copy)
    build_qa(copy, PRESETS["tiny"], TINY_WORLD_SEED)
    assert hashes(copy / QA_DIR) == hashes(tiny_synthetic_world / QA_DIR)


def test_reusing_a_world_writes_its_missing_qa(tiny_synthetic_world: Path, tmp_path: Path):
    copy = tmp_path / "world"
    shutil.copytree(tiny_synthetic_world, copy)
    shutil.rmtree(copy / QA_DIR)
    build_world(copy, preset="tiny", seed=TINY_WORLD_SEED, workers=1)
    assert (copy / QA_DIR / QA_MANIFEST).is_file()
    assert hashes(copy) == hashes(tiny_synthetic_world)


def test_qa_writer_imports_neither_torch_nor_vqa_ve():
    import subprocess
    import sys

    code = (
        "import sys, envs.synthetic.writer, envs.synthetic.qa.writer; "
        "bad = [m for m in ('torch', 'vqa_ve', 'vln_agent') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_captions_draw_nothing_from_the_other_qa_streams(
    tiny_synthetic_world: Path, world_without_qa: Path, tmp_path: Path, monkeypatch
):
    """Captions that draw no numbers leave every other QA file as it is; only their own
    files (and the manifest, whose counts stay equal) can change."""
    from envs.synthetic.qa import captions

    def fixed(scene, views, rng):
        return [[f"view {n}"] * captions.CAPTIONS_PER_IMAGE for n in range(len(views))]

    monkeypatch.setattr(captions, "view_captions", fixed)
    copy = tmp_path / "world"
    shutil.copytree(world_without_qa, copy)
    build_qa(copy, PRESETS["tiny"], TINY_WORLD_SEED)
    changed = hashes(copy / QA_DIR)
    original = hashes(tiny_synthetic_world / QA_DIR)
    coco = {k for k in original if k.startswith(f"{COCO_DIR}/")}
    assert len(coco) == len(QA_SPLITS)
    assert all(changed[k] != original[k] for k in coco)
    assert {k: v for k, v in changed.items() if k not in coco} == {
        k: v for k, v in original.items() if k not in coco
    }


def test_captions_files_list_the_vqa_images_and_match_the_manifest(tiny_synthetic_world: Path):
    qa = tiny_synthetic_world / QA_DIR
    manifest = json.loads((qa / QA_MANIFEST).read_text())
    assert manifest["version"] == QA_VERSION
    caption_ids: list[int] = []
    for split, (_, subtype, _) in QA_SPLITS.items():
        data = json.loads(coco_captions_file(qa, subtype).read_text())
        _, _, image_dir = vqa_files(qa, subtype)
        assert sorted(image["file_name"] for image in data["images"]) == sorted(
            p.name for p in image_dir.glob("*.jpg")
        )
        assert {(image["width"], image["height"]) for image in data["images"]} == {
            (R2R_IMAGE_WIDTH, R2R_IMAGE_HEIGHT)
        }
        assert all(
            image["file_name"] == vqa_image_name(subtype, image["id"]) for image in data["images"]
        )
        counts = manifest["counts"][split]
        assert counts["captions"] == len(data["annotations"])
        assert counts["captions"] == CAPTIONS_PER_IMAGE * counts["images"]
        caption_ids += [a["id"] for a in data["annotations"]]
    assert len(set(caption_ids)) == len(caption_ids)
