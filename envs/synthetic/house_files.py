"""Everything one house contributes to a world: its files, its paths and its captions.

:func:`build_house_files` is the unit of work of the world writer (one call per house,
possibly in a worker process). All its randomness comes from the house's own seed
(:func:`house_seed`), split into independent streams for the geometry, the paths, the
instructions and the captions, so the result does not depend on which process ran it
or in which order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from envs.constants import LEVEL_ELEVATION_INDEX, NUM_VIEWS, VIEWS_PER_ELEVATION
from envs.cubemap import NUM_FACES
from envs.fileio import atomic_write, write_json
from envs.graph import connectivity_path
from envs.synthetic.annotate import annotate_views
from envs.synthetic.house import House, generate_house
from envs.synthetic.language import captions_for_view, instructions_for_path
from envs.synthetic.paths import SampledPath, sample_paths
from envs.synthetic.presets import WorldPreset
from envs.synthetic.render import render_id_cube, render_skybox
from envs.synthetic.scene import scene_dict, scene_path
from envs.synthetic.solids import build_solids

#: The splits that own houses (val_seen paths live in train houses).
HOUSE_SPLITS = ("train", "val_unseen", "test")
JPEG_QUALITY = 90
#: Face size of the world-aligned id cube the view annotations are read from (0.47 deg per
#: texel, about one annotation cell of 4 x 4 view pixels).
ID_CUBE_SIZE = 192
#: Weight of a level view, relative to an up or down view, when choosing views to caption.
LEVEL_VIEW_WEIGHT = 3.0


@dataclass(frozen=True)
class HouseTask:
    """Which house to build, and where."""

    out_dir: str
    split: str
    index: int
    seed: int
    preset: WorldPreset


def house_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    """The seed of house ``index`` of ``split`` in a world of seed ``seed``."""
    return np.random.SeedSequence([seed, HOUSE_SPLITS.index(split), index])


def skybox_path(data_dir: str | os.PathLike[str], scan: str, viewpoint: str, face: int) -> Path:
    """Matterport's path of skybox face ``face`` of a viewpoint."""
    name = f"{viewpoint}_skybox{face}_sami.jpg"
    return Path(data_dir) / "v1" / "scans" / scan / "matterport_skybox_images" / name


def _write_jpeg(path: Path, image: np.ndarray) -> None:
    with atomic_write(path, "wb") as f:
        Image.fromarray(image).save(f, format="JPEG", quality=JPEG_QUALITY)


def render_house(house: House, out_dir: str, face_size: int) -> list[list[dict]]:
    """Render and write every viewpoint's skybox; return each viewpoint's view annotations."""
    solids = build_solids(house.plan, house.objects)
    views = []
    for ix, vp in enumerate(house.viewpoints):
        pose = house.graph.poses[ix]
        skybox = render_skybox(solids, pose, face_size)
        for face in range(NUM_FACES):
            _write_jpeg(skybox_path(out_dir, house.scan, vp.id, face), skybox.images[face])
        objects, rooms = render_id_cube(solids, pose[:3, 3], ID_CUBE_SIZE)
        views.append(annotate_views(objects, rooms))
    return views


def _path_records(scene: dict, split: str, paths: list[SampledPath], rng, count: int) -> list[dict]:
    records = []
    for p in paths:
        texts = instructions_for_path(scene, list(p.path), p.heading, rng, count=count)
        record = {"distance": p.distance, "scan": scene["scan"], "path": list(p.path)}
        record.update({"heading": p.heading, "instructions": list(texts)})
        records.append({"split": split, "record": record})
    return records


def _caption_views(views: list[dict], rng: np.random.Generator, count: int) -> list[int]:
    """Indices of ``count`` views to caption, favouring level views and views with objects."""
    level = np.array([i // VIEWS_PER_ELEVATION == LEVEL_ELEVATION_INDEX for i in range(NUM_VIEWS)])
    weights = np.where(level, LEVEL_VIEW_WEIGHT, 1.0) * (
        1.0 + np.array([len(v["objects"]) for v in views])
    )
    chosen = rng.choice(
        NUM_VIEWS, size=min(count, NUM_VIEWS), replace=False, p=weights / weights.sum()
    )
    return sorted(int(i) for i in chosen)


def _caption_records(
    scene: dict, split: str, rng: np.random.Generator, preset: WorldPreset
) -> list[dict]:
    records = []
    for vp in scene["viewpoints"]:
        for view_index in _caption_views(vp["views"], rng, preset.captions_per_viewpoint):
            texts = captions_for_view(
                scene, vp["id"], view_index, rng, count=preset.captions_per_view
            )
            records.append(
                {
                    "scan": scene["scan"],
                    "viewpoint": vp["id"],
                    "view_index": view_index,
                    "split": split,
                    "captions": list(texts),
                }
            )
    return records


def build_house_files(task: HouseTask) -> dict:
    """Generate, render and write one house; return its paths, captions and counts.

    Writes ``connectivity/{scan}_connectivity.json``, ``scenes/{scan}.json`` and the
    skyboxes. The returned ``paths`` are ``{"split", "record"}`` with R2R records that
    still lack their ``path_id`` (the writer numbers them across the whole world).
    """
    preset = task.preset
    layout_seed, path_seed, language_seed, caption_seed = house_seed(
        task.seed, task.split, task.index
    ).spawn(4)
    extra = preset.val_seen_paths_per_house if task.split == "train" else 0
    wanted = preset.paths_per_house + extra
    house = generate_house(np.random.default_rng(layout_seed), preset.rooms, wanted)
    write_json(connectivity_path(task.out_dir, house.scan), house.connectivity, indent=None)
    scene = scene_dict(house, render_house(house, task.out_dir, preset.face_size))
    write_json(scene_path(task.out_dir, house.scan), scene, indent=None)
    sampled = sample_paths(np.random.default_rng(path_seed), house.graph, house.path_pairs, wanted)
    language_rng = np.random.default_rng(language_seed)
    count = preset.instructions_per_path
    paths = _path_records(scene, task.split, sampled[: preset.paths_per_house], language_rng, count)
    paths += _path_records(
        scene, "val_seen", sampled[preset.paths_per_house :], language_rng, count
    )
    captions = _caption_records(scene, task.split, np.random.default_rng(caption_seed), preset)
    return {
        "scan": house.scan,
        "split": task.split,
        "paths": paths,
        "captions": captions,
        "viewpoints": len(house.viewpoints),
        "edges": int(np.triu(house.graph.adjacency | house.graph.adjacency.T).sum()),
        "images": len(house.viewpoints) * NUM_FACES,
    }
