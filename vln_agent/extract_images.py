"""Image-folder features: encode every image of a folder into an HDF5 file keyed by image id.

What CLIP-ViL's VQA / SNLI-VE features are: per image, the CLIP grid features before pooling
(:meth:`~vln_agent.encoders.CLIPEncoder.encode_image_grid`: ViT patch tokens after
``ln_post``, ResNet ``layer4``), here stored beside the pooled, projected embedding
(:meth:`~vln_agent.encoders.CLIPEncoder.encode_image`). Images are the ``.jpg`` / ``.jpeg`` /
``.png`` files of the folder and its subfolders (COCO's ``val2014/``, Flickr30k's
``flickr30k_images/``, VCR's ``vcr1images/<movie>/``), keyed by their file stem
(``COCO_val2014_000000000042``, ``3416050480``), each prepared by the encoder's own
``preprocess`` (open_clip's ``preprocess_val``: resize the short side, centre crop, normalize).

Layout (root attribute ``layout``):

* ``"image-pooled"``: dataset ``"{image_id}"`` of shape ``[E]``;
* ``"image-grid"``: the same, plus ``"{image_id}.grid"`` of shape ``[h * w, C]`` (row-major
  grid cells; root attributes ``grid_height``, ``grid_width``, ``grid_dim``).

Root attributes also record the encoder as panorama files do (:mod:`vln_agent.extract`:
model, kind, weights and their SHA-256, image size, precision; ``feature_dim`` is ``E``).

Pipeline and safety are the panorama pipeline's: ``workers`` threads decode and preprocess,
the calling thread encodes fixed batches of the sorted image list, the
:class:`~envs.features.hdf5.HDF5FeatureWriter` writes ``out.partial`` and renames it when
complete; a killed run resumes, re-encoding whole any batch it left incomplete, so a resumed
file holds the same bytes as one written in a single run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from envs.errors import DataError
from envs.features.hdf5 import (
    FEATURE_DIM_ATTR,
    READ_ERRORS,
    WRITER_DTYPES,
    AttrValue,
    HDF5FeatureWriter,
    open_hdf5,
    read_root_attrs,
)
from envs.features.store import shape_text
from vln_agent.encoders import CLIPEncoder
from vln_agent.encoders.pos_embed import grid_shape
from vln_agent.extract import (
    CHANNEL_ORDER,
    FEATURE_KIND,
    PREFETCH_PER_WORKER,
    ordered_map,
    weights_attrs,
)
from vln_agent.extract_defaults import DEFAULT_IMAGE_BATCH_SIZE, DEFAULT_WORKERS

#: Image files encoded (lower-case suffixes).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
#: Suffix of an image's grid dataset (its pooled one is the bare id).
GRID_SUFFIX = ".grid"
#: ``layout`` attribute values.
POOLED_LAYOUT = "image-pooled"
GRID_LAYOUT = "image-grid"
#: What PIL raises on a file it cannot decode.
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


@dataclass(frozen=True)
class ImageExtractResult:
    """What :func:`extract_image_features` did."""

    path: Path
    #: Images in the file.
    images: int
    #: Images encoded by this call (fewer when a partial file was resumed).
    encoded: int
    feature_dim: int
    #: ``(h * w, C)`` of the grid datasets; None without ``grid``.
    grid_shape: tuple[int, ...] | None


def list_images(image_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """``{image id: path}`` of the images in ``image_dir`` and its subfolders, sorted by id.

    Ids are file stems, so they must be unique across the subfolders: VCR's
    ``vcr1images/<movie>/<movie>_<time>@<n>.jpg`` are (its stems repeat the movie), and so
    are COCO's and Flickr30k's flat folders. Hidden files and folders are left out.

    Raises:
        DataError: the folder is missing or holds no images, two files share an id, or an
            id ends in :data:`GRID_SUFFIX`.
    """
    folder = Path(image_dir)
    if not folder.is_dir():
        raise DataError(folder, "image folder not found")
    images: dict[str, Path] = {}
    for root, folders, files in os.walk(folder):
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue  # hidden files: macOS "._x.jpg" resource forks and the like
            if path.stem in images:
                raise DataError(
                    path, f"image id {path.stem} also names {images[path.stem].relative_to(folder)}"
                )
            if path.stem.endswith(GRID_SUFFIX):
                raise DataError(path, f"image ids may not end in {GRID_SUFFIX!r}")
            images[path.stem] = path
    if not images:
        raise DataError(folder, f"no images ({', '.join(IMAGE_SUFFIXES)}) in the folder or below")
    return dict(sorted(images.items()))


def load_image(path: Path) -> Image.Image:
    """The RGB image of a file (a one-line :class:`DataError` when it cannot be decoded)."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except IMAGE_ERRORS as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(path, f"cannot read image ({first})") from None


def image_grid_dims(encoder: CLIPEncoder) -> tuple[int, int, int]:
    """``(h, w, C)`` of the grid features of one image at the encoder's input size."""
    height, width = grid_shape(encoder.image_size, encoder.grid_stride)
    probe = torch.zeros(1, 3, *encoder.image_size)  # [1, 3, H, W]
    with torch.inference_mode():
        channels = encoder.encode_image_grid(probe).shape[-1]  # [1, h, w, C]
    return height, width, int(channels)


def extract_image_features(
    image_dir: str | os.PathLike[str],
    encoder: CLIPEncoder,
    out: str | os.PathLike[str],
    *,
    grid: bool = False,
    batch_size: int = DEFAULT_IMAGE_BATCH_SIZE,
    workers: int = DEFAULT_WORKERS,
    dtype: str = "float32",
    progress: bool = True,
    limit: int | None = None,
    attrs: Mapping[str, AttrValue] | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> ImageExtractResult:
    """Write the features of every image in ``image_dir`` to ``out`` (HDF5, see the module).

    Args:
        image_dir: Folder of ``.jpg`` / ``.png`` images.
        encoder: The image encoder (its device and precision are used as they are).
        out: The HDF5 file; written as ``out.partial``, renamed when complete; a partial
            file of an interrupted run with the same settings is resumed.
        grid: Store ``[h * w, C]`` grid features too (``layout`` ``"image-grid"``).
        batch_size: Images per encoder batch.
        workers: Threads that decode and preprocess (0: in the calling thread).
        dtype: ``"float32"`` or ``"float16"`` storage.
        progress: Show a tqdm bar (images).
        limit: Only the first ``limit`` images in id order (quick checks, interruptions).
        attrs: Extra root attributes (:func:`~vln_agent.encoders.create_encoder_of_kind`'s).
        on_batch: Called with the number of images in the file after each batch is written.

    Raises:
        DataError: A missing or empty folder, an image that cannot be decoded (naming it), a
            partial file written with other settings.
    """
    if batch_size < 1 or workers < 0 or (limit is not None and limit < 0):
        raise ValueError("batch_size must be >= 1, workers and limit >= 0")
    if dtype not in WRITER_DTYPES:
        raise ValueError(f"dtype must be one of {WRITER_DTYPES}, got {dtype!r}")
    images = list(list_images(image_dir).items())[:limit]
    record: dict[str, AttrValue] = {
        "model_name": encoder.model_name,
        "image_size": int(encoder.image_size[0]),
        "feature": FEATURE_KIND,
        "channel_order": CHANNEL_ORDER,
        "precision": encoder.precision,
        "layout": GRID_LAYOUT if grid else POOLED_LAYOUT,
        **(attrs or {}),
    }
    shapes: dict[str, tuple[int, ...]] = {"": (encoder.embed_dim,)}
    if grid:
        rows, columns, channels = image_grid_dims(encoder)
        record.update(grid_height=rows, grid_width=columns, grid_dim=channels)
        shapes[GRID_SUFFIX] = (rows * columns, channels)
    record.update(weights_attrs(encoder.model_name, record))
    writer = HDF5FeatureWriter(
        out,
        encoder.embed_dim,
        dtype=dtype,
        resume=True,
        flush_every=batch_size * len(shapes),
        attrs=record,
        shapes=shapes,
    )
    done = writer.done()
    names = [""] + ([GRID_SUFFIX] if grid else [])
    batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
    todo = [b for b in batches if any(f"{key}{n}" not in done for key, _ in b for n in names)]
    remaining = sum(len(batch) for batch in todo)
    bar = tqdm(
        total=len(images),
        initial=len(images) - remaining,
        desc="images",
        unit="img",
        disable=not progress,
    )
    kept = len(images) - remaining

    def advance(count: int) -> None:
        nonlocal kept
        kept += count
        bar.update(count)
        if on_batch is not None:
            on_batch(kept)

    with writer, bar:
        _run_pipeline(encoder, writer, todo, grid, workers, advance)
    grid_dims = shapes.get(GRID_SUFFIX)
    return ImageExtractResult(Path(out), len(images), remaining, encoder.embed_dim, grid_dims)


def encode_images(encoder: CLIPEncoder, inputs: torch.Tensor, grid: bool) -> list[np.ndarray]:
    """``[B, 3, H, W]`` -> ``[pooled [B, E]]`` (+ ``grid [B, h * w, C]``), float32 numpy."""
    with torch.inference_mode():
        if not grid:
            return [encoder.encode_image(inputs).cpu().numpy()]  # [B, E]
        pooled, cells = encoder.encode_image_and_grid(inputs)  # [B, E], [B, h, w, C]
        return [pooled.cpu().numpy(), cells.flatten(1, 2).cpu().numpy()]  # [B, h*w, C]


def _run_pipeline(
    encoder: CLIPEncoder,
    writer: HDF5FeatureWriter,
    batches: Sequence[Sequence[tuple[str, Path]]],
    grid: bool,
    workers: int,
    advance: Callable[[int], None],
) -> None:
    """Decode and preprocess (``workers`` threads) -> encode and write (this thread)."""

    def prepare(item: tuple[str, Path]) -> torch.Tensor:
        return encoder.preprocess(load_image(item[1]))  # [3, H, W]

    items = [item for batch in batches for item in batch]
    pool = ThreadPoolExecutor(workers, "clipvil-images") if workers else None
    was_training = encoder.training
    encoder.eval()
    try:
        inputs = (
            ordered_map(pool, prepare, items, workers * PREFETCH_PER_WORKER)
            if pool is not None
            else map(prepare, items)
        )
        for batch in batches:
            images = torch.stack([next(inputs) for _ in batch])  # [B, 3, H, W]
            outputs = encode_images(encoder, images, grid)
            for index, (image_id, _) in enumerate(batch):
                writer.add_dataset(image_id, outputs[0][index])  # [E]
                if grid:
                    writer.add_dataset(f"{image_id}{GRID_SUFFIX}", outputs[1][index])  # [h*w, C]
            advance(len(batch))
    finally:
        encoder.train(was_training)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class ImageFeatures:
    """The read side of an image feature file (see the module): arrays by image id.

    ``features[image_id]`` is the file's main feature: the grid ``[h * w, C]`` of an
    ``"image-grid"`` file, the pooled ``[E]`` of an ``"image-pooled"`` one; :meth:`pooled`
    and :meth:`grid` ask for one explicitly. Arrays come back float32. Opening reads the
    root attributes only; every failure is a one-line :class:`DataError` naming the file.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._file = open_hdf5(self.path)
        try:
            self.attrs = read_root_attrs(self._file)
            self.layout = self.attrs.get("layout")
            if self.layout not in (POOLED_LAYOUT, GRID_LAYOUT):
                raise DataError(
                    self.path,
                    f"layout is {self.layout!r}, expected {POOLED_LAYOUT!r} or {GRID_LAYOUT!r} "
                    "(not an image feature file of clipvil features --images)",
                )
            self.feature_dim = _positive_attr(self.path, self.attrs, FEATURE_DIM_ATTR)
            self.grid_shape: tuple[int, int] | None = None
            if self.layout == GRID_LAYOUT:
                rows = _positive_attr(self.path, self.attrs, "grid_height")
                columns = _positive_attr(self.path, self.attrs, "grid_width")
                self.grid_shape = (
                    rows * columns,
                    _positive_attr(self.path, self.attrs, "grid_dim"),
                )
        except BaseException:
            self._file.close()
            raise

    def image_ids(self) -> list[str]:
        """The image ids in the file, sorted."""
        with self._reading("the file's index"):
            return sorted(name for name in self._file if not name.endswith(GRID_SUFFIX))

    def __contains__(self, image_id: object) -> bool:
        with self._reading("the file's index"):
            return isinstance(image_id, str) and image_id in self._file

    def __len__(self) -> int:
        return len(self.image_ids())

    def __getitem__(self, image_id: str) -> np.ndarray:
        return self.grid(image_id) if self.layout == GRID_LAYOUT else self.pooled(image_id)

    def pooled(self, image_id: str) -> np.ndarray:
        """float32 ``[E]`` pooled embedding of ``image_id``."""
        return self._read(image_id, image_id, (self.feature_dim,))

    def grid(self, image_id: str) -> np.ndarray:
        """float32 ``[h * w, C]`` grid features of ``image_id`` (an ``"image-grid"`` file)."""
        if self.grid_shape is None:
            raise DataError(self.path, f"has no grid features (layout {self.layout}): use --grid")
        return self._read(image_id, f"{image_id}{GRID_SUFFIX}", self.grid_shape)

    def _read(self, image_id: str, name: str, shape: tuple[int, ...]) -> np.ndarray:
        with self._reading(f"features of {name}"):
            dataset = self._file.get(name)
            if not isinstance(dataset, h5py.Dataset):
                raise DataError(self.path, f"no features for image {image_id}")
            if dataset.dtype.kind != "f":
                raise DataError(
                    self.path, f"features of {name} are {dataset.dtype}, expected floats"
                )
            if dataset.shape != shape:
                raise DataError(
                    self.path,
                    f"features of {name} have shape {shape_text(dataset.shape)}, "
                    f"expected {shape_text(shape)}",
                )
            return dataset[()].astype(np.float32, copy=False)

    @contextlib.contextmanager
    def _reading(self, what: str) -> Iterator[None]:
        try:
            yield
        except DataError:
            raise
        except READ_ERRORS as err:
            first = str(err).strip().splitlines()
            reason = f"{type(err).__name__}: {first[0]}" if first else type(err).__name__
            raise DataError(self.path, f"{what} cannot be read ({reason})") from None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ImageFeatures:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _positive_attr(path: Path, attrs: Mapping[str, AttrValue], key: str) -> int:
    value = attrs.get(key)
    if not isinstance(value, int | float) or not float(value).is_integer() or value <= 0:
        raise DataError(path, f"root attribute {key} is {value!r}, expected a positive integer")
    return int(value)


def open_image_features(path: str | os.PathLike[str]) -> ImageFeatures:
    """Open an image feature file of ``clipvil features --images`` (see :class:`ImageFeatures`)."""
    return ImageFeatures(path)
