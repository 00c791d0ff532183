"""``build_qa``: a world's VQA v2, SNLI-VE, VCR and COCO-caption data under ``DIR/qa/``,
in the released layouts.

::

    DIR/qa/vqa/v2_OpenEnded_mscoco_{subtype}_questions.json
    DIR/qa/vqa/v2_mscoco_{subtype}_annotations.json
    DIR/qa/vqa/{subtype}/COCO_{subtype}_{image_id:012d}.jpg
    DIR/qa/coco/annotations/captions_{subtype}.json   (5 captions of each VQA image)
    DIR/qa/snli_ve/snli_ve_{split}.jsonl
    DIR/qa/snli_ve/images/{image_id}.jpg
    DIR/qa/vcr/{split}.jsonl
    DIR/qa/vcr/vcr1images/synthetic_{scan}/{image_id:012d}.{jpg,json}
    DIR/qa/images.json               (image_id -> split, scan, viewpoint, view_index)
    DIR/qa/manifest.json             (written last: a directory with it is complete)

Splits (:data:`QA_SPLITS`): ``train`` asks about the R2R_train houses, ``val`` about the
val_unseen houses, and ``val_shift`` about the very views of ``val`` rendered under other
lighting (:func:`shift_appearance`: darker, lower contrast, a warm tint, a vignette), a
domain-shifted copy whose answers and captions are those of ``val``. Image ids are unique
across all splits and datasets share them (the same view has the same id in VQA and
SNLI-VE). The COCO captions files list the VQA images by their file names (no images of
their own), so their image keys are the VQA feature keys (:mod:`envs.synthetic.qa.captions`).

Everything is drawn from ``np.random.default_rng([seed, QA_STREAM, ...])``, a stream the
world's own files never use, so adding QA changes no other file of the world.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

from envs.constants import R2R_IMAGE_HEIGHT, R2R_IMAGE_WIDTH
from envs.fileio import atomic_write, read_json, write_json
from envs.synthetic.language import captions_for_view
from envs.synthetic.presets import WorldPreset
from envs.synthetic.qa import captions as coco_captions
from envs.synthetic.qa import snli_ve, vcr, vqa
from envs.synthetic.qa.views import QAView, choose_views, render_jpegs
from envs.synthetic.scene import scene_path

QA_DIR = "qa"
QA_MANIFEST = "manifest.json"
QA_IMAGES = "images.json"
QA_GENERATOR = "clipvil.synthetic-world.qa"
#: Bump when the same world and seed would give different QA files.
QA_VERSION = 3
#: Second entry of every QA seed: keeps QA draws apart from the world's own streams.
QA_STREAM = 0x51A
#: Folder of the COCO-style captions files under ``DIR/qa/`` (COCO's own layout below it).
COCO_DIR = "coco"
#: QA split -> (R2R split whose houses it asks about, VQA data_subtype, SNLI-VE split).
QA_SPLITS = {
    "train": ("train", "train2014", "train"),
    "val": ("val_unseen", "val2014", "dev"),
    "val_shift": ("val_unseen", "valshift2014", "dev_shift"),
}
#: Views asked about per house: few for the tiny preset (tests build it), more otherwise.
VIEWS_PER_HOUSE = {"tiny": 8}
DEFAULT_VIEWS_PER_HOUSE = 12


def qa_identity(preset: WorldPreset, seed: int) -> dict:
    """The QA manifest fields that decide whether existing QA files can be reused."""
    return {"generator": QA_GENERATOR, "version": QA_VERSION, "seed": seed, "preset": preset.name}


def vqa_files(qa_dir: Path, subtype: str) -> tuple[Path, Path, Path]:
    """(questions, annotations, image folder) of a VQA split."""
    root = qa_dir / "vqa"
    return (
        root / f"v2_OpenEnded_mscoco_{subtype}_questions.json",
        root / f"v2_mscoco_{subtype}_annotations.json",
        root / subtype,
    )


def vqa_image_name(subtype: str, image_id: int) -> str:
    """``COCO_{subtype}_{image_id:012d}.jpg``: a VQA image's file name."""
    return f"COCO_{subtype}_{image_id:012d}.jpg"


def coco_captions_file(qa_dir: Path, subtype: str) -> Path:
    """The COCO-style captions file of a VQA split's images."""
    return qa_dir / COCO_DIR / "annotations" / f"captions_{subtype}.json"


def snli_ve_file(qa_dir: Path, split: str) -> Path:
    return qa_dir / "snli_ve" / f"snli_ve_{split}.jsonl"


def snli_ve_images(qa_dir: Path) -> Path:
    return qa_dir / "snli_ve" / "images"


def vcr_file(qa_dir: Path, split: str) -> Path:
    return qa_dir / "vcr" / f"{split}.jsonl"


def vcr_images(qa_dir: Path) -> Path:
    return qa_dir / "vcr" / "vcr1images"


def vcr_image_stem(scan: str, image_id: int) -> str:
    """``img_fn`` without its suffix (relative to ``vcr1images/``)."""
    return f"synthetic_{scan}/{image_id:012d}"


def shift_appearance(image: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 under other lighting: gamma 1.4, contrast 0.8, warm tint, vignette.

    Hue order is kept (no channel swaps), so colour names stay what the scene says.
    """
    x = image.astype(np.float32) / 255.0
    x = x**1.4
    x = 0.5 + 0.8 * (x - 0.5)
    x = x * np.array([1.06, 1.0, 0.86], dtype=np.float32)
    h, w = x.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r2 = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2  # [H, W]
    x = x * (1.0 - 0.25 * np.clip(r2 / 2.0, 0.0, 1.0))[..., None]
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _split_scans(data_dir: Path, r2r_split: str) -> list[str]:
    return sorted({e["scan"] for e in read_json(data_dir / f"R2R_{r2r_split}.json")})


def _split_views(data_dir: Path, scans: list[str], split_index: int, seed: int, per_house: int):
    """(views, premises, captions) of a split: the chosen views, one caption of each (the
    SNLI-VE premise) and its COCO captions (drawn from their own stream)."""
    views: list[QAView] = []
    premises: list[str] = []
    captions: list[list[str]] = []
    for i, scan in enumerate(scans):
        scene = read_json(scene_path(data_dir, scan))
        rng = np.random.default_rng([seed, QA_STREAM, split_index, i])
        chosen = choose_views(scene, rng, per_house)
        views += chosen
        premises += [captions_for_view(scene, v.viewpoint, v.view_index, rng, 1)[0] for v in chosen]
        stream = [seed, QA_STREAM, coco_captions.CAPTION_STREAM, split_index, i]
        captions += coco_captions.view_captions(scene, chosen, np.random.default_rng(stream))
    return views, premises, captions


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(data)


def _vqa_split(views, image_ids, rng) -> list[dict]:
    pool = sorted(o.category for v in views for o in v.objects)
    items = []
    for view, image_id in zip(views, image_ids, strict=True):
        for k, q in enumerate(vqa.view_questions(view, rng, pool)):
            items.append({**q, "image_id": image_id, "question_id": image_id * 100 + k})
    return vqa.balance(items, rng)


def _snli_split(views, premises, image_ids, rng) -> list[dict]:
    pools = snli_ve.split_pools(views)
    items = []
    for view, premise, image_id in zip(views, premises, image_ids, strict=True):
        for pair in snli_ve.view_pairs(view, rng, pools):
            items.append({**pair, "premise": premise, "image_id": image_id})
    return snli_ve.balance(items, rng)


def _vcr_split(views, image_ids, rng, split: str) -> list[dict]:
    drafts = []
    for view, image_id in zip(views, image_ids, strict=True):
        drafts += [(view, image_id, item) for item in vcr.view_items(view, rng)]
    answers = [item["answer"] for _, _, item in drafts]
    rationales = [item["rationale"] for _, _, item in drafts]
    records = []
    for view, image_id, item in drafts:
        n = len(view.objects)
        a = vcr.choices(item, answers, vcr.answer_tokens, n, item["answer"], rng)
        r = vcr.choices(item, rationales, vcr.rationale_tokens, n, item["rationale"], rng)
        if a is None or r is None:
            continue
        stem = vcr_image_stem(view.scan, image_id)
        records.append(
            {
                "objects": [o.category for o in view.objects],
                "img_fn": f"{stem}.jpg",
                "metadata_fn": f"{stem}.json",
                "question": item["question"],
                "answer_choices": a[0],
                "answer_label": a[1],
                "rationale_choices": r[0],
                "rationale_label": r[1],
                "annot_id": f"{split}-{len(records)}",
            }
        )
    return records


def _write_split(qa_dir: Path, split: str, views, premises, image_ids, jpegs, rng) -> dict:
    """Write one split of the three datasets and its images; return its counts."""
    _, subtype, snli_split = QA_SPLITS[split]
    questions, annotations, image_dir = vqa_files(qa_dir, subtype)
    items = _vqa_split(views, image_ids, rng)
    q_file, a_file = vqa.records(items, subtype)
    write_json(questions, q_file, indent=None)
    write_json(annotations, a_file, indent=None)
    pairs = _snli_split(views, premises, image_ids, rng)
    with atomic_write(snli_ve_file(qa_dir, snli_split)) as f:
        for n, pair in enumerate(pairs):
            f.write(json.dumps(snli_ve.record(pair, pair["image_id"], n)) + "\n")
    vcr_items = _vcr_split(views, image_ids, rng, split)
    with atomic_write(vcr_file(qa_dir, split)) as f:
        f.writelines(json.dumps(record) + "\n" for record in vcr_items)
    for view, image_id, jpeg in zip(views, image_ids, jpegs, strict=True):
        _write_bytes(image_dir / vqa_image_name(subtype, image_id), jpeg)
        _write_bytes(snli_ve_images(qa_dir) / f"{image_id}.jpg", jpeg)
        stem = vcr_images(qa_dir) / vcr_image_stem(view.scan, image_id)
        _write_bytes(stem.with_suffix(".jpg"), jpeg)
        meta = vcr.metadata(view, R2R_IMAGE_WIDTH, R2R_IMAGE_HEIGHT)
        write_json(stem.with_suffix(".json"), meta, indent=None)
    return {"vqa_questions": len(items), "snli_ve_pairs": len(pairs), "vcr_items": len(vcr_items)}


def _write_captions(qa_dir: Path, subtype: str, image_ids, captions) -> int:
    """Write the COCO captions file of a VQA split's images; return its caption count."""
    images = [(image_id, vqa_image_name(subtype, image_id)) for image_id in image_ids]
    data = coco_captions.records(images, captions, R2R_IMAGE_WIDTH, R2R_IMAGE_HEIGHT)
    write_json(coco_captions_file(qa_dir, subtype), data, indent=None)
    return len(data["annotations"])


def build_qa(data_dir: str | os.PathLike[str], preset: WorldPreset, seed: int) -> dict:
    """Write ``DIR/qa/`` for the finished world in ``data_dir``; return the QA manifest.

    Existing QA files of the same identity are kept; others are replaced.
    """
    data_dir = Path(data_dir)
    qa_dir = data_dir / QA_DIR
    identity = qa_identity(preset, seed)
    manifest_path = qa_dir / QA_MANIFEST
    if manifest_path.is_file():
        existing = read_json(manifest_path)
        if all(existing.get(k) == v for k, v in identity.items()):
            return existing
    if qa_dir.exists():
        shutil.rmtree(qa_dir)
    per_house = VIEWS_PER_HOUSE.get(preset.name, DEFAULT_VIEWS_PER_HOUSE)
    counts: dict[str, dict] = {}
    next_id = 1
    cache: dict[str, tuple] = {}
    sources: list[dict] = []
    for split_index, (split, (r2r_split, subtype, _)) in enumerate(QA_SPLITS.items()):
        scans = _split_scans(data_dir, r2r_split)
        if r2r_split not in cache:
            cache[r2r_split] = _split_views(data_dir, scans, split_index, seed, per_house)
        # val_shift reuses val's views, premises and captions (only its images differ)
        views, premises, captions = cache[r2r_split]
        shift = shift_appearance if split == "val_shift" else None
        jpegs = render_jpegs(data_dir, views, shift=shift)
        image_ids = list(range(next_id, next_id + len(views)))
        next_id += len(views)
        sources += [
            {"image_id": i, "split": split, "scan": v.scan, "viewpoint": v.viewpoint}
            | {"view_index": v.view_index}
            for i, v in zip(image_ids, views, strict=True)
        ]
        # val_shift asks val's questions (same draws) about the shifted images.
        qa_rng = np.random.default_rng(
            [seed, QA_STREAM, 2 * len(QA_SPLITS), int(r2r_split == "train")]
        )
        counts[split] = {
            "houses": len(scans),
            "images": len(views),
            **_write_split(qa_dir, split, views, premises, image_ids, jpegs, qa_rng),
            "captions": _write_captions(qa_dir, subtype, image_ids, captions),
        }
    write_json(qa_dir / QA_IMAGES, sources, indent=None)
    manifest = {**identity, "splits": {s: list(v) for s, v in QA_SPLITS.items()}, "counts": counts}
    write_json(manifest_path, manifest)
    return manifest
