"""Image captions in MS-COCO's released format (``annotations/captions_{subtype}.json``).

Format (https://cocodataset.org/#format-data, read by cocodataset/cocoapi's
``PythonAPI/pycocotools/coco.py``): one JSON object

- ``"images": [{"id": int, "file_name": str, ...}]`` (``width``, ``height``, ``license``,
  ``coco_url``, ... are allowed and ignored);
- ``"annotations": [{"image_id": int, "id": int, "caption": str}]``, about five per image,
  ``id`` unique across the file;
- other top-level keys (``info``, ``licenses``) are allowed and ignored.

Image keys are file stems (``COCO_train2014_000000000001`` for
``COCO_train2014_000000000001.jpg``): the keys ``clipvil features --images`` writes, so one
feature file from ``clipvil features --images DIR/train2014`` serves the captions and the
VQA questions of the same images (:func:`vqa_ve.data.vqa.vqa_image_path` names them alike).

The synthetic world writes its QA images' captions in this format
(:mod:`envs.synthetic.qa.writer`)::

    DIR/qa/coco/annotations/captions_{train2014,val2014,valshift2014}.json

their ``file_name`` the VQA images under ``DIR/qa/vqa/{subtype}/``, five captions each.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from envs.errors import DataError
from envs.fileio import read_json

PathLike = str | os.PathLike[str]

#: Fields of an ``images`` entry that are read, with their JSON types.
IMAGE_FIELDS = (("id", int), ("file_name", str))
#: Fields of an ``annotations`` entry, with their JSON types.
CAPTION_FIELDS = (("image_id", int), ("id", int), ("caption", str))
_TYPE_NAMES = {int: "an integer", str: "a string", list: "a list"}
_MISSING = object()


@dataclass(frozen=True)
class Caption:
    """One entry of ``annotations``, its image named by feature key."""

    #: ``id``: unique within the file.
    caption_id: int
    #: The stem of the image's ``file_name`` (the key ``clipvil features --images`` writes).
    image_id: str
    #: ``caption``, whitespace stripped at both ends (never empty).
    text: str


@dataclass(frozen=True)
class CaptionSet:
    """The captions of one file, in file order."""

    #: The file they were read from.
    path: Path
    captions: tuple[Caption, ...]

    @property
    def image_ids(self) -> tuple[str, ...]:
        """The distinct image keys that have captions, sorted."""
        return tuple(sorted({caption.image_id for caption in self.captions}))

    def by_image(self) -> dict[str, tuple[str, ...]]:
        """Image key -> its caption texts (in file order); images in first-caption order."""
        grouped: dict[str, list[str]] = {}
        for caption in self.captions:
            grouped.setdefault(caption.image_id, []).append(caption.text)
        return {image_id: tuple(texts) for image_id, texts in grouped.items()}


def _fields(
    record: Any, fields: Sequence[tuple[str, type]], path: PathLike, where: str
) -> dict[str, Any]:
    """The ``fields`` of a JSON object, each of its exact JSON type (a bool is no integer)."""
    if type(record) is not dict:
        raise DataError(path, f"{where}: expected an object, got {type(record).__name__}")
    values = {}
    for key, kind in fields:
        value = record.get(key, _MISSING)
        if value is _MISSING:
            raise DataError(path, f"{where}: missing {key!r}")
        if type(value) is not kind:
            raise DataError(
                path, f"{where}: {key!r} must be {_TYPE_NAMES[kind]}, got {value!r:.60}"
            )
        values[key] = value
    return values


def _image_keys(images: list, path: PathLike) -> dict[int, str]:
    """Image id -> feature key (file stem); ids and keys unique."""
    keys: dict[int, str] = {}
    owners: dict[str, int] = {}
    for position, record in enumerate(images):
        fields = _fields(record, IMAGE_FIELDS, path, f"images[{position}]")
        image_id, key = fields["id"], PurePosixPath(fields["file_name"]).stem
        if image_id in keys:
            raise DataError(path, f"image id {image_id}: appears twice in images")
        if key in owners:
            raise DataError(
                path, f"image id {image_id}: file_name stem {key!r} is also image id {owners[key]}"
            )
        keys[image_id] = key
        owners[key] = image_id
    return keys


def load_coco_captions(path: PathLike) -> CaptionSet:
    """Read a COCO captions file; every problem is a one-line :class:`DataError` naming it.

    Raises for: not JSON, no top-level object, missing or non-list ``images`` /
    ``annotations``, an entry missing a field or with a field of the wrong type, a
    duplicate image id (or two images with one file stem), a duplicate caption id, a
    caption of an image not in ``images``, a caption that is empty after stripping, and a
    file with no captions.
    """
    path = Path(path)
    lists = _fields(read_json(path), (("images", list), ("annotations", list)), path, "top level")
    keys = _image_keys(lists["images"], path)
    captions: list[Caption] = []
    seen: set[int] = set()
    for position, record in enumerate(lists["annotations"]):
        fields = _fields(record, CAPTION_FIELDS, path, f"annotations[{position}]")
        caption_id, image_id = fields["id"], fields["image_id"]
        where = f"caption id {caption_id}"
        if caption_id in seen:
            raise DataError(path, f"{where}: appears twice in annotations")
        if image_id not in keys:
            raise DataError(path, f"{where}: image_id {image_id} is not in images")
        text = fields["caption"].strip()
        if not text:
            raise DataError(path, f"{where}: empty caption")
        seen.add(caption_id)
        captions.append(Caption(caption_id, keys[image_id], text))
    if not captions:
        raise DataError(path, "annotations: no captions")
    return CaptionSet(path, tuple(captions))
