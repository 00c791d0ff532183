"""The views pretraining sees: captioned views of a split's houses, their labels, their pixels.

* :func:`split_scans` - the houses of an R2R split (the scans of ``DIR/R2R_{split}.json``);
* :func:`load_captioned_views` - the records of ``DIR/captions.json`` in those houses::

      [{"scan", "viewpoint", "view_index", "split", "captions": [str, ...]}, ...]

* :func:`load_view_labels` - each view's room type and the object categories it shows
  (objects covering at least :data:`~envs.synthetic.captions.CAPTION_MIN_PIXELS` of the
  640 x 480 view, the threshold under which captions do not name an object either), read
  from ``DIR/scenes/{scan}.json``;
* :func:`with_category_captions` - extra short captions naming only a view's room type or
  one object it shows ("a kitchen", "a photo of a fridge", "a sofa in a lounge");
* :func:`render_view_cache` - the encoder inputs of the views,
  :func:`envs.views.render_encoder_views` (the very function the feature extractor uses),
  rendered once by worker processes into a uint8 ``[N, S, S, 3]`` ``.npy`` file that is
  memory-mapped on later runs.

Numpy only (no torch), so the rendering workers start quickly.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from envs.constants import (
    LEVEL_ELEVATION_INDEX,
    NUM_VIEWS,
    R2R_IMAGE_HEIGHT,
    R2R_IMAGE_WIDTH,
    VIEWS_PER_ELEVATION,
)
from envs.errors import DataError
from envs.fileio import make_output_dir, read_json
from envs.graph import NavGraphs
from envs.synthetic.captions import CAPTION_MIN_PIXELS
from envs.synthetic.phrasing import OBJECT_WORDS, pick, room_word, with_article
from envs.synthetic.scene import scene_path
from envs.synthetic.scene_facts import SceneFacts
from envs.synthetic.vocabulary import OBJECT_CATEGORIES, ROOM_TYPES
from envs.views import load_skybox_faces, render_encoder_views, skybox_dir

#: The image-caption pairs of a synthetic world (see :mod:`envs.synthetic.writer`).
CAPTIONS_FILE = "captions.json"
#: The world's manifest; its identity fields key the render cache.
MANIFEST_FILE = "manifest.json"
#: Bump when the rendered pixels of the same views would change.
RENDER_CACHE_VERSION = 1
#: Processes rendering views for the cache by default.
DEFAULT_RENDER_WORKERS = 2
#: Viewpoints handed to a rendering worker at a time.
RENDER_CHUNKSIZE = 4
#: Columns ``[start, stop)`` of the 640 x 480 view that the encoder's square input shows
#: (its centre square, see :func:`envs.views.render_encoder_views`).
ENCODER_COLUMNS = (
    (R2R_IMAGE_WIDTH - R2R_IMAGE_HEIGHT) // 2,
    (R2R_IMAGE_WIDTH + R2R_IMAGE_HEIGHT) // 2,
)


@dataclass(frozen=True)
class CaptionedView:
    """One view of ``captions.json``: where it is and its captions."""

    scan: str
    viewpoint: str
    #: Discretized view 0..35 (12 headings x 3 elevations).
    view_index: int
    captions: tuple[str, ...]

    @property
    def key(self) -> str:
        """``"{scan}_{viewpoint}_{view_index}"``, unique in a world."""
        return f"{self.scan}_{self.viewpoint}_{self.view_index}"

    @property
    def is_level(self) -> bool:
        """Whether the view looks horizontally (the middle of the three elevations)."""
        return self.view_index // VIEWS_PER_ELEVATION == LEVEL_ELEVATION_INDEX


@dataclass(frozen=True)
class ViewLabels:
    """What the scene file says a view shows."""

    #: The room type most of the view shows (one of ``ROOM_TYPES``).
    room_type: str
    #: Categories of the objects covering at least the pixel threshold, largest first.
    objects: tuple[str, ...]
    #: Pixels of the largest such object (0 when there is none).
    largest_pixels: int
    #: Category of the largest such object whose box centre lies in the encoder's centre
    #: square (:data:`ENCODER_COLUMNS`), or None: what the encoder input surely shows.
    largest_in_square: str | None = None

    @property
    def largest_object(self) -> str | None:
        """Category of the largest visible object, or None."""
        return self.objects[0] if self.objects else None


@dataclass(frozen=True)
class LabelSpace:
    """The classes of the supervised labels, in a fixed order."""

    room_types: tuple[str, ...] = ROOM_TYPES
    object_categories: tuple[str, ...] = OBJECT_CATEGORIES

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "room_types": list(self.room_types),
            "object_categories": list(self.object_categories),
        }

    def room_index(self, labels: Sequence[ViewLabels], source: str) -> np.ndarray:
        """``[N]`` int64 class index of each view's room type."""
        lookup = {name: i for i, name in enumerate(self.room_types)}
        try:
            return np.array([lookup[lab.room_type] for lab in labels], dtype=np.int64)
        except KeyError as err:
            raise DataError(source, f"unknown room type {err.args[0]!r}") from None

    def object_multi_hot(self, labels: Sequence[ViewLabels], source: str) -> np.ndarray:
        """``[N, C]`` float32: 1 where the view shows an object of category ``c``."""
        lookup = {name: i for i, name in enumerate(self.object_categories)}
        out = np.zeros((len(labels), len(self.object_categories)), dtype=np.float32)
        for row, lab in enumerate(labels):
            for category in lab.objects:
                if category not in lookup:
                    raise DataError(source, f"unknown object category {category!r}")
                out[row, lookup[category]] = 1.0
        return out

    def largest_object_index(self, labels: Sequence[ViewLabels]) -> np.ndarray:
        """``[N]`` int64 class of each view's largest object in the encoder's centre square
        (:attr:`ViewLabels.largest_in_square`), -1 when none."""
        lookup = {name: i for i, name in enumerate(self.object_categories)}
        return np.array([lookup.get(lab.largest_in_square, -1) for lab in labels], dtype=np.int64)


# ---------------------------------------------------------------------------- views


def split_scans(data_dir: str | os.PathLike[str], split: str) -> tuple[str, ...]:
    """The houses of an R2R split: sorted scans of ``DIR/R2R_{split}.json``."""
    path = Path(data_dir) / f"R2R_{split}.json"
    entries = read_json(path)
    if not isinstance(entries, list) or not entries:
        raise DataError(path, "expected a non-empty JSON list of R2R paths")
    try:
        return tuple(sorted({str(entry["scan"]) for entry in entries}))
    except (KeyError, TypeError):
        raise DataError(path, "R2R entries must be objects with a 'scan'") from None


def load_captioned_views(
    data_dir: str | os.PathLike[str], scans: Sequence[str]
) -> list[CaptionedView]:
    """The captioned views of ``DIR/captions.json`` in ``scans``, in file order."""
    path = Path(data_dir) / CAPTIONS_FILE
    records = read_json(path)
    if not isinstance(records, list):
        raise DataError(path, "expected a JSON list of caption records")
    wanted = set(scans)
    views = []
    for i, record in enumerate(records):
        view = _parse_caption_record(record, path, i)
        if view.scan in wanted:
            views.append(view)
    if not views:
        raise DataError(path, f"no captioned views in the {len(wanted)} requested houses")
    return views


def _parse_caption_record(record: object, path: Path, index: int) -> CaptionedView:
    try:
        captions = record["captions"]  # type: ignore[index]
        view = CaptionedView(
            scan=str(record["scan"]),  # type: ignore[index]
            viewpoint=str(record["viewpoint"]),  # type: ignore[index]
            view_index=int(record["view_index"]),  # type: ignore[index]
            captions=tuple(str(c) for c in captions),
        )
    except (KeyError, TypeError, ValueError):
        raise DataError(
            path, f"record {index}: expected scan, viewpoint, view_index and captions"
        ) from None
    if not 0 <= view.view_index < NUM_VIEWS or not view.captions or isinstance(captions, str):
        raise DataError(path, f"record {index}: bad view_index or empty captions")
    return view


# ---------------------------------------------------------------------------- labels


def view_labels(
    facts: SceneFacts, viewpoint: str, view_index: int, min_pixels: int = CAPTION_MIN_PIXELS
) -> ViewLabels:
    """The room type and visible object categories of one view (as the captions see it)."""
    view = facts.view(viewpoint, view_index)
    room = facts.rooms.get(int(view.get("room", facts.viewpoint(viewpoint)["room"])))
    if room is None:  # the view shows no room (-1): the viewpoint's own
        room = facts.room_of(viewpoint)
    try:
        visible = sorted(
            (s for s in view.get("objects", ()) if int(s["pixels"]) >= min_pixels),
            key=lambda s: (-int(s["pixels"]), int(s["id"])),
        )
        categories: list[str] = []
        for seen in visible:
            category = str(facts.objects[int(seen["id"])]["category"])
            if category not in categories:
                categories.append(category)
        room_type = str(room["type"])
        in_square = [s for s in visible if _box_centre_in_square(s["box"])]
        largest_in_square = (
            str(facts.objects[int(in_square[0]["id"])]["category"]) if in_square else None
        )
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(
            facts.source, f"malformed view {viewpoint!r}/{view_index} ({err!r})"
        ) from None
    largest = int(visible[0]["pixels"]) if visible else 0
    return ViewLabels(room_type, tuple(categories), largest, largest_in_square)


def _box_centre_in_square(box: Sequence[float]) -> bool:
    """Whether a view box ``[x0, y0, x1, y1]`` is centred in the encoder's square."""
    centre = 0.5 * (float(box[0]) + float(box[2]))
    return ENCODER_COLUMNS[0] <= centre < ENCODER_COLUMNS[1]


def load_view_labels(
    data_dir: str | os.PathLike[str],
    views: Sequence[CaptionedView],
    min_pixels: int = CAPTION_MIN_PIXELS,
) -> list[ViewLabels]:
    """Labels of ``views`` from ``DIR/scenes/{scan}.json`` (each scene read once)."""
    facts: dict[str, SceneFacts] = {}
    labels = []
    for view in views:
        if view.scan not in facts:
            facts[view.scan] = SceneFacts.from_scene(read_json(scene_path(data_dir, view.scan)))
        labels.append(view_labels(facts[view.scan], view.viewpoint, view.view_index, min_pixels))
    return labels


#: Templates of the category captions: a room alone, or one object (without its colour).
CATEGORY_ROOM_TEMPLATES = ("{a_room}", "a photo of {a_room}")
CATEGORY_OBJECT_TEMPLATES = ("{an_object}", "a photo of {an_object}", "{an_object} in {a_room}")


def category_captions(labels: ViewLabels, count: int, rng: np.random.Generator) -> list[str]:
    """``count`` short captions naming only the view's room type or one object it shows.

    The captions of ``captions.json`` always name an object with its colour and its room;
    these are the other style web alt-text has much of ("a photo of a kitchen"), so the
    embedding also groups views by category rather than mostly by colour.
    """
    templates = CATEGORY_ROOM_TEMPLATES + (CATEGORY_OBJECT_TEMPLATES if labels.objects else ())
    captions = []
    for _ in range(count):
        category = pick(rng, labels.objects) if labels.objects else ""
        room = room_word(labels.room_type, rng)
        obj = pick(rng, OBJECT_WORDS.get(category, (category,))) if category else ""
        template = pick(rng, templates)
        captions.append(
            template.format(a_room=with_article(room), an_object=with_article(obj) if obj else "")
        )
    return captions


def with_category_captions(
    views: Sequence[CaptionedView], labels: Sequence[ViewLabels], count: int, seed: int
) -> list[CaptionedView]:
    """``views`` with ``count`` :func:`category_captions` appended to each one's captions."""
    rng = np.random.default_rng([seed, count])
    return [
        replace(view, captions=view.captions + tuple(category_captions(label, count, rng)))
        for view, label in zip(views, labels, strict=True)
    ]


# ---------------------------------------------------------------------------- render cache


@dataclass(frozen=True)
class _RenderJob:
    """The views of one viewpoint to render (a worker's unit of work)."""

    data_dir: str
    scan: str
    viewpoint: str
    pose: np.ndarray
    views: tuple[int, ...]
    size: int


def _render_job(job: _RenderJob) -> np.ndarray:
    faces = load_skybox_faces(skybox_dir(job.data_dir, job.scan), job.viewpoint)
    return render_encoder_views(faces, job.pose, job.size, views=job.views)  # [V, S, S, 3]


def cache_path(
    cache_dir: str | os.PathLike[str],
    data_dir: str | os.PathLike[str],
    views: Sequence[CaptionedView],
    size: int,
) -> Path:
    """``cache_dir/views_{size}px_{digest}.npy``: the digest covers the world's identity
    (its manifest), the render version, the size and the list of views."""
    data_dir = Path(data_dir)
    manifest = data_dir / MANIFEST_FILE
    if manifest.is_file():
        data = read_json(manifest)
        identity = {k: data.get(k) for k in ("generator", "version", "seed", "preset_config")}
    else:
        identity = {"data_dir": str(data_dir.resolve())}
    digest = hashlib.sha1()
    digest.update(json.dumps([RENDER_CACHE_VERSION, identity, size], sort_keys=True).encode())
    digest.update("\n".join(v.key for v in views).encode())
    return Path(cache_dir) / f"views_{size}px_{len(views)}_{digest.hexdigest()[:16]}.npy"


def _read_cache(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The finished cache at ``path`` (memory-mapped), or None if absent or not as expected."""
    if not path.is_file():
        return None
    try:
        pixels = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return pixels if pixels.shape == shape and pixels.dtype == np.uint8 else None


def _render_jobs(
    data_dir: Path, views: Sequence[CaptionedView], size: int
) -> tuple[list[_RenderJob], list[list[int]]]:
    """One job per viewpoint, and the rows of the cache each job's views fill."""
    graphs = NavGraphs(data_dir)
    groups: dict[tuple[str, str], list[int]] = {}
    for row, view in enumerate(views):
        groups.setdefault((view.scan, view.viewpoint), []).append(row)
    jobs, rows = [], []
    for (scan, viewpoint), members in groups.items():
        graph = graphs[scan]
        ix = graph.index.get(viewpoint)
        if ix is None:
            raise DataError(graph.source or scan, f"unknown viewpoint {viewpoint!r}")
        indices = tuple(views[r].view_index for r in members)
        jobs.append(_RenderJob(str(data_dir), scan, viewpoint, graph.poses[ix], indices, size))
        rows.append(members)
    return jobs, rows


def _run_jobs(jobs: list[_RenderJob], workers: int) -> Iterator[np.ndarray]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_render_job, jobs)
        return
    context = multiprocessing.get_context("spawn")  # safe whatever the parent has imported
    with context.Pool(min(workers, len(jobs))) as pool:
        yield from pool.imap(_render_job, jobs, chunksize=RENDER_CHUNKSIZE)


def render_view_cache(
    data_dir: str | os.PathLike[str],
    views: Sequence[CaptionedView],
    size: int,
    cache_dir: str | os.PathLike[str],
    workers: int = DEFAULT_RENDER_WORKERS,
    progress: bool = True,
) -> np.ndarray:
    """uint8 ``[N, size, size, 3]`` encoder inputs of ``views`` (memory-mapped, read-only).

    Reuses a finished cache of the same world, size and views; otherwise renders into
    ``{cache}.partial`` and renames it when complete, so a cache file is never half-written.
    """
    data_dir = Path(data_dir)
    path = cache_path(cache_dir, data_dir, views, size)
    shape = (len(views), size, size, 3)
    cached = _read_cache(path, shape)
    if cached is not None:
        return cached
    jobs, rows = _render_jobs(data_dir, views, size)
    make_output_dir(path.parent)
    partial = path.with_name(path.name + ".partial")
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.uint8, shape=shape)
    try:
        with tqdm(total=len(views), desc="render views", unit="view", disable=not progress) as bar:
            for members, pixels in zip(rows, _run_jobs(jobs, workers), strict=True):
                out[members] = pixels
                bar.update(len(members))
        out.flush()
        del out
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return np.load(path, mmap_mode="r")


# ---------------------------------------------------------------------------- augmentation


def color_jitter(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Random brightness and contrast of each image (factors in ``1 +- strength``).

    uint8 ``[B, H, W, 3]`` -> uint8 ``[B, H, W, 3]``. No hue changes and no flips or shifts:
    captions name colours and left/right. ``strength = 0`` returns the pixels unchanged.
    """
    if strength <= 0.0:
        return pixels
    count = len(pixels)
    brightness = 1.0 + rng.uniform(-strength, strength, size=(count, 1, 1, 1))
    contrast = 1.0 + rng.uniform(-strength, strength, size=(count, 1, 1, 1))
    image = pixels.astype(np.float32)  # [B, H, W, 3]
    mean = image.mean(axis=(1, 2, 3), keepdims=True)  # [B, 1, 1, 1]
    image = ((image - mean) * contrast + mean) * brightness
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
