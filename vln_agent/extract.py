"""Panorama features: encode the 36 discretized views of every viewpoint into an HDF5 file.

What CLIP-ViL's VLN features are: for each viewpoint, the pooled, projected image embedding
(:meth:`~vln_agent.encoders.CLIPEncoder.encode_image`) of each of its 36 MatterSim views,
stored in the HAMT / DUET layout (dataset ``f"{scan}_{viewpoint}"`` of shape ``[36, E]``,
see :mod:`envs.features.hdf5`). The views are rendered from the skyboxes with
:func:`envs.views.render_encoder_views` (the centre square CLIP's preprocessing keeps).

Viewpoints are those CLIP-ViL's extractor visits: the *included* viewpoints of each scan, in
the order of its connectivity file, scans in ``scans.txt`` order (or as given).

Channel order: the views are RGB, what CLIP was trained on. CLIP-ViL's extractor passed
MatterSim's frames (BGR) straight to CLIP's preprocessing, so its released features saw red
and blue swapped; features written here differ from those by that swap too.

Pipeline: ``workers`` threads load and decode the skyboxes, render the views and normalize
them (numpy releases the GIL in its large operations); the calling thread encodes
``batch_size`` viewpoints at a time; one more thread writes the HDF5 file. The three overlap,
so the encoder is rarely idle. Batches are fixed slices of the viewpoint list, and a batch
that a killed run left incomplete is encoded again whole, so a resumed file is bit-equal to
one written in a single run.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from tqdm import tqdm

from envs.constants import NUM_VIEWS
from envs.cubemap import NUM_FACES
from envs.errors import DataError
from envs.features.hdf5 import WRITER_DTYPES, AttrValue, HDF5FeatureWriter
from envs.features.provenance import NO_WEIGHTS, WEIGHTS_SHA256_ATTR
from envs.features.store import feature_key
from envs.fileio import file_sha256
from envs.graph import NavGraphs
from envs.views import (
    load_skybox_faces,
    render_encoder_views,
    skybox_dir,
    skybox_face_path,
    skybox_small_path,
)
from vln_agent.encoders import CLIPEncoder
from vln_agent.encoders.weights import resolve_pretrained
from vln_agent.extract_defaults import DEFAULT_BATCH_SIZE, DEFAULT_WORKERS

#: Viewpoints each worker may have ready or in progress ahead of the encoder.
PREFETCH_PER_WORKER = 2
#: What the features are, recorded in the file.
FEATURE_KIND = "encode_image"
CHANNEL_ORDER = "RGB"

_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Viewpoint:
    """One panorama to encode."""

    scan: str
    viewpoint: str
    #: [4, 4] float64 camera pose from the connectivity file (orients the skybox).
    pose: np.ndarray

    @property
    def key(self) -> str:
        return feature_key(self.scan, self.viewpoint)


@dataclass(frozen=True)
class ExtractResult:
    """What :func:`extract_features` did."""

    path: Path
    #: Viewpoints in the file.
    viewpoints: int
    #: Viewpoints encoded by this call (fewer when a partial file was resumed).
    encoded: int
    feature_dim: int


def list_viewpoints(
    data_dir: str | os.PathLike[str], scans: Sequence[str] | None = None
) -> list[Viewpoint]:
    """The included viewpoints of ``scans`` (default: all of ``DIR/connectivity``), in order."""
    graphs = NavGraphs(data_dir)
    selected = graphs.scans if scans is None else tuple(scans)
    viewpoints = []
    for scan in selected:
        graph = graphs[scan]
        for ix in np.flatnonzero(graph.included):
            viewpoints.append(Viewpoint(scan, graph.viewpoint_ids[ix], graph.poses[ix]))
    return viewpoints


def check_skyboxes(data_dir: str | os.PathLike[str], viewpoints: Iterable[Viewpoint]) -> None:
    """Fail fast, before any encoding, when a viewpoint's skybox files are missing.

    A viewpoint needs its six ``_skybox{i}_sami.jpg`` faces or MatterSim's
    ``_skybox_small.jpg``; the :class:`DataError` names the first missing file.
    """
    for item in viewpoints:
        directory = skybox_dir(data_dir, item.scan)
        faces = [skybox_face_path(directory, item.viewpoint, i) for i in range(NUM_FACES)]
        present = [path.is_file() for path in faces]
        if all(present):
            continue
        small = skybox_small_path(directory, item.viewpoint)
        if not any(present) and small.is_file():
            continue
        missing = faces[present.index(False)]
        also = "" if any(present) else f" (nor {small.name})"
        raise DataError(missing, f"skybox image not found{also}")


def weights_attrs(model_name: str, attrs: Mapping[str, AttrValue]) -> dict[str, str]:
    """``{"pretrained_sha256": ...}`` of the weight file ``attrs["pretrained"]`` names (a
    path, or a pretrained tag found in the local cache); empty when ``attrs`` already has
    one, or names no weights (a random init)."""
    pretrained = attrs.get("pretrained")
    if WEIGHTS_SHA256_ATTR in attrs or not isinstance(pretrained, str):
        return {}
    if pretrained in ("", NO_WEIGHTS):
        return {}
    if Path(pretrained).is_file():
        return {WEIGHTS_SHA256_ATTR: file_sha256(pretrained)}
    source = resolve_pretrained(model_name, pretrained)
    return {WEIGHTS_SHA256_ATTR: file_sha256(source.path)} if source.path else {}


def render_viewpoint(data_dir: str | os.PathLike[str], item: Viewpoint, size: int) -> np.ndarray:
    """uint8 ``[36, size, size, 3]`` RGB encoder views of one viewpoint."""
    faces = load_skybox_faces(skybox_dir(data_dir, item.scan), item.viewpoint)  # [6, S, S, 3]
    return render_encoder_views(faces, item.pose, size)  # [36, size, size, 3]


def extract_features(
    data_dir: str | os.PathLike[str],
    encoder: CLIPEncoder,
    out: str | os.PathLike[str],
    scans: Sequence[str] | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int = DEFAULT_WORKERS,
    dtype: str = "float32",
    progress: bool = True,
    limit: int | None = None,
    attrs: Mapping[str, AttrValue] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> ExtractResult:
    """Write the ``[36, E]`` ``encode_image`` features of every viewpoint to ``out`` (HDF5).

    Args:
        data_dir: Data root with ``connectivity/`` and ``v1/scans/{scan}/matterport_skybox_images``.
        encoder: The image encoder (its device and precision are used as they are).
        out: The HDF5 file; written as ``out.partial`` and renamed when complete. An
            existing ``out.partial`` from an interrupted run with the same settings is
            resumed (its complete batches are kept).
        scans: Scans to encode (default: all).
        batch_size: Viewpoints per encoder batch (``36 * batch_size`` images).
        workers: Threads that decode and render (0: all in the calling thread, no overlap).
        dtype: ``"float32"`` or ``"float16"`` storage.
        progress: Show a tqdm bar (viewpoints).
        limit: Only the first ``limit`` viewpoints (quick checks).
        attrs: Extra root attributes recorded in the file (e.g. the weights used, the
            encoder kind: :func:`~vln_agent.encoders.create_encoder_of_kind`'s); the model
            name, image size, feature kind, channel order and precision are added, and the
            SHA-256 of the weight file ``attrs["pretrained"]`` names (a file or a cached
            tag), so that the file's provenance survives moving the weights
            (:mod:`envs.features.provenance`).
        on_batch: Called with the number of viewpoints in the file after each batch is
            written (from the writing thread's results, in the calling thread).

    Raises:
        DataError: Missing scans or skybox files, unreadable images, a partial file
            written with other settings.
    """
    if batch_size < 1 or workers < 0 or (limit is not None and limit < 0):
        raise ValueError("batch_size must be >= 1, workers and limit >= 0")
    if dtype not in WRITER_DTYPES:
        raise ValueError(f"dtype must be one of {WRITER_DTYPES}, got {dtype!r}")
    height, width = encoder.image_size
    if height != width:
        raise ValueError(f"views are square: the encoder's image size is {height}x{width}")
    viewpoints = list_viewpoints(data_dir, scans)[:limit]
    check_skyboxes(data_dir, viewpoints)
    record = {
        "model_name": encoder.model_name,
        "image_size": int(height),
        "feature": FEATURE_KIND,
        "channel_order": CHANNEL_ORDER,
        "precision": encoder.precision,
        **(attrs or {}),
    }
    record.update(weights_attrs(encoder.model_name, record))
    writer = HDF5FeatureWriter(
        out, encoder.embed_dim, dtype=dtype, resume=True, flush_every=batch_size, attrs=record
    )
    done = writer.done()
    batches = [viewpoints[i : i + batch_size] for i in range(0, len(viewpoints), batch_size)]
    todo = [batch for batch in batches if any(item.key not in done for item in batch)]
    remaining = sum(len(batch) for batch in todo)
    bar = tqdm(
        total=len(viewpoints),
        initial=len(viewpoints) - remaining,
        desc="viewpoints",
        unit="vp",
        disable=not progress,
    )
    with writer, bar:
        _run_pipeline(data_dir, encoder, writer, todo, workers, bar, on_batch)
    return ExtractResult(Path(out), len(viewpoints), remaining, encoder.embed_dim)


def _run_pipeline(
    data_dir: str | os.PathLike[str],
    encoder: CLIPEncoder,
    writer: HDF5FeatureWriter,
    batches: Sequence[Sequence[Viewpoint]],
    workers: int,
    bar: tqdm,
    on_batch: Callable[[int], None] | None,
) -> None:
    """Render (``workers`` threads) -> encode (this thread) -> write (one thread)."""
    size = encoder.image_size[0]
    mean = np.asarray(encoder.preprocess_cfg["mean"], dtype=np.float32)  # [3]
    std = np.asarray(encoder.preprocess_cfg["std"], dtype=np.float32)  # [3]

    def prepare(item: Viewpoint) -> torch.Tensor:
        pixels = render_viewpoint(data_dir, item, size)  # [36, H, W, 3] uint8
        return pixels_to_input(pixels, mean, std)  # [36, 3, H, W]

    def write(batch: Sequence[Viewpoint], features: np.ndarray) -> int:
        for item, views in zip(batch, features, strict=True):
            writer.add(item.scan, item.viewpoint, views)  # [36, E]
        bar.update(len(batch))
        return len(writer)

    items = [item for batch in batches for item in batch]
    render_pool = ThreadPoolExecutor(workers, "clipvil-render") if workers else None
    write_pool = ThreadPoolExecutor(1, "clipvil-write")
    pending: Future[int] | None = None
    try:
        inputs = (
            ordered_map(render_pool, prepare, items, workers * PREFETCH_PER_WORKER)
            if render_pool is not None
            else map(prepare, items)
        )
        was_training = encoder.training
        encoder.eval()
        try:
            for batch in batches:
                images = torch.cat([next(inputs) for _ in batch])  # [B * 36, 3, H, W]
                with torch.inference_mode():
                    features = encoder.encode_image(images).cpu().numpy()  # [B * 36, E]
                features = features.reshape(len(batch), NUM_VIEWS, -1)  # [B, 36, E]
                if pending is not None:
                    _report(pending.result(), on_batch)
                pending = write_pool.submit(write, batch, features)
            if pending is not None:
                finished, pending = pending, None
                _report(finished.result(), on_batch)
        finally:
            encoder.train(was_training)
    finally:
        if pending is not None:  # let a started write finish: the partial file stays whole
            pending.exception()
        write_pool.shutdown(wait=True)
        if render_pool is not None:
            render_pool.shutdown(wait=True, cancel_futures=True)


def pixels_to_input(pixels: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    """:meth:`CLIPEncoder.pixels_to_input` in numpy: the same float32 operations in the same
    order, so the same bits and the same (channels-last) strides, without torch's intra-op
    threads (a worker thread's OpenMP team would spin against the encoder's on a small CPU).

    uint8 ``[N, H, W, 3]`` -> float32 ``[N, 3, H, W]``, ``(pixels / 255 - mean) / std``.
    """
    hwc = pixels.astype(np.float32)  # [N, H, W, 3]
    hwc /= np.float32(255.0)
    hwc -= mean
    hwc /= std
    return torch.from_numpy(hwc).permute(0, 3, 1, 2)  # [N, 3, H, W] view


def _report(count: int, on_batch: Callable[[int], None] | None) -> None:
    if on_batch is not None:
        on_batch(count)


def ordered_map(
    executor: Executor, fn: Callable[[_T], _R], items: Sequence[_T], depth: int
) -> Iterator[_R]:
    """``map(fn, items)`` run on ``executor``, in order, at most ``depth`` items ahead."""
    queue: collections.deque[Future[_R]] = collections.deque()
    upcoming = iter(items)
    for item in upcoming:
        queue.append(executor.submit(fn, item))
        if len(queue) >= max(1, depth):
            break
    while queue:
        result = queue.popleft().result()
        for item in upcoming:
            queue.append(executor.submit(fn, item))
            break
        yield result
