"""The views a world's QA data asks about: which ones, what they show, their images.

A :class:`QAView` is one of a viewpoint's 36 MatterSim views (640 x 480, see
:mod:`envs.synthetic.annotate`) with the scene facts the questions need: the type of the
room it mostly shows and its visible objects (category, colour, box, pixels).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from envs.constants import LEVEL_ELEVATION_INDEX, VIEWS_PER_ELEVATION
from envs.fileio import read_json
from envs.graph import connectivity_path
from envs.views import load_skybox_faces, render_views, skybox_dir

#: Objects covering fewer view pixels are too small to ask about (as captions.py names).
VISIBLE_MIN_PIXELS = 400
#: JPEG quality of the QA images.
QA_JPEG_QUALITY = 90


@dataclass(frozen=True)
class SeenObject:
    """An object as one view shows it."""

    id: int
    category: str
    color: str
    size: str
    #: Type of the room the object stands in.
    room_type: str
    #: [x0, y0, x1, y1] view pixels (x1, y1 exclusive).
    box: tuple[int, int, int, int]
    pixels: int


@dataclass(frozen=True)
class QAView:
    """One view to ask about, with what it shows."""

    scan: str
    viewpoint: str
    view_index: int
    room_type: str
    #: Objects at least :data:`VISIBLE_MIN_PIXELS` large, larger first.
    objects: tuple[SeenObject, ...]
    #: Category -> how many objects of it the view shows at all (however small).
    all_counts: dict[str, int]

    @property
    def any_categories(self) -> frozenset[str]:
        """Categories the view shows at all."""
        return frozenset(self.all_counts)


def _view_facts(scene: dict, vp: dict, view: dict) -> QAView | None:
    rooms = {int(r["id"]): r for r in scene["rooms"]}
    objects = {int(o["id"]): o for o in scene["objects"]}
    room = rooms.get(int(view["room"]))
    if room is None:
        return None
    seen = []
    for entry in view["objects"]:
        obj = objects[int(entry["id"])]
        if int(entry["pixels"]) >= VISIBLE_MIN_PIXELS:
            seen.append(
                SeenObject(
                    int(entry["id"]),
                    obj["category"],
                    obj["color"],
                    obj["size"],
                    rooms[int(obj["room"])]["type"],
                    tuple(int(v) for v in entry["box"]),
                    int(entry["pixels"]),
                )
            )
    seen.sort(key=lambda o: (-o.pixels, o.id))
    every: dict[str, int] = {}
    for entry in view["objects"]:
        category = objects[int(entry["id"])]["category"]
        every[category] = every.get(category, 0) + 1
    return QAView(
        scene["scan"], vp["id"], int(view["view_index"]), room["type"], tuple(seen), every
    )


def choose_views(scene: dict, rng: np.random.Generator, count: int) -> list[QAView]:
    """Up to ``count`` level views of distinct viewpoints of a scene, favouring views with
    objects, in scene order."""
    candidates = []
    for vp in scene["viewpoints"]:
        level = [
            v
            for v in vp["views"]
            if int(v["view_index"]) // VIEWS_PER_ELEVATION == LEVEL_ELEVATION_INDEX
        ]
        facts = [f for f in (_view_facts(scene, vp, v) for v in level) if f is not None]
        if facts:
            weights = np.array([1.0 + len(f.objects) for f in facts])
            candidates.append(facts[int(rng.choice(len(facts), p=weights / weights.sum()))])
    if len(candidates) > count:
        keep = sorted(rng.choice(len(candidates), size=count, replace=False).tolist())
        candidates = [candidates[i] for i in keep]
    return candidates


def _poses(data_dir: Path, scan: str) -> dict[str, np.ndarray]:
    entries = read_json(connectivity_path(data_dir, scan))
    return {e["image_id"]: np.asarray(e["pose"], dtype=float).reshape(4, 4) for e in entries}


def render_jpegs(data_dir: Path, views: list[QAView], shift=None) -> list[bytes]:
    """JPEG bytes of each view, rendered from the world's skybox files as MatterSim does.

    ``shift`` (an ``[H, W, 3] uint8 -> uint8`` function) changes the appearance first.
    """
    out = []
    poses: dict[str, dict[str, np.ndarray]] = {}
    for view in views:
        if view.scan not in poses:
            poses[view.scan] = _poses(data_dir, view.scan)
        faces = load_skybox_faces(skybox_dir(data_dir, view.scan), view.viewpoint)
        image = render_views(faces, poses[view.scan][view.viewpoint], views=[view.view_index])[0]
        if shift is not None:
            image = shift(image)
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=QA_JPEG_QUALITY)
        out.append(buffer.getvalue())
    return out
