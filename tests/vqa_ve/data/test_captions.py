"""COCO captions files: the loader on a hand-written file and on every malformed case, and
the synthetic world's captions files read back, keyed like its VQA images."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from envs.errors import DataError
from envs.synthetic.qa.captions import CAPTIONS_PER_IMAGE
from envs.synthetic.qa.writer import QA_DIR, QA_SPLITS, coco_captions_file, vqa_files
from vqa_ve.data.captions import Caption, load_coco_captions
from vqa_ve.data.vqa import load_vqa_questions, vqa_image_path

SUBTYPES = [subtype for _, subtype, _ in QA_SPLITS.values()]

#: A small file in the released layout (extra keys included), captions not in image order.
GOOD = {
    "info": {"description": "hand-written", "year": 2014},
    "licenses": [{"id": 1, "name": "x", "url": ""}],
    "images": [
        {"license": 1, "file_name": "COCO_train2014_000000000009.jpg", "id": 9, "width": 640},
        {"file_name": "COCO_train2014_000000000001.jpg", "id": 1, "height": 480},
        {"file_name": "COCO_train2014_000000000005.jpg", "id": 5},
    ],
    "annotations": [
        {"image_id": 9, "id": 90, "caption": "A dog on a sofa."},
        {"image_id": 1, "id": 10, "caption": "  a kitchen with a white fridge \n"},
        {"image_id": 9, "id": 91, "caption": "a brown dog"},
        {"image_id": 1, "id": 11, "caption": "a fridge"},
    ],
}


def _write(tmp_path: Path, data: object, name: str = "captions_train2014.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def test_loads_keys_order_and_stems(tmp_path: Path):
    path = _write(tmp_path, GOOD)
    loaded = load_coco_captions(path)
    assert loaded.path == path
    assert loaded.captions == (
        Caption(90, "COCO_train2014_000000000009", "A dog on a sofa."),
        Caption(10, "COCO_train2014_000000000001", "a kitchen with a white fridge"),
        Caption(91, "COCO_train2014_000000000009", "a brown dog"),
        Caption(11, "COCO_train2014_000000000001", "a fridge"),
    )
    # image 5 has no caption: it is not a key
    assert loaded.image_ids == ("COCO_train2014_000000000001", "COCO_train2014_000000000009")
    assert loaded.by_image() == {
        "COCO_train2014_000000000009": ("A dog on a sofa.", "a brown dog"),
        "COCO_train2014_000000000001": ("a kitchen with a white fridge", "a fridge"),
    }


def _set(where: str, key: str, value: object) -> Callable[[dict], None]:
    """Set ``data[list][index][key]`` (``where`` is ``"images.0"``); value ``...`` deletes it."""
    name, index = where.split(".")

    def change(data: dict) -> None:
        record = data[name][int(index)]
        if value is ...:
            del record[key]
        else:
            record[key] = value

    return change


def _drop(key: str) -> Callable[[dict], None]:
    return lambda data: data.pop(key)


MALFORMED: dict[str, tuple[Callable[[dict], None] | str | list, str]] = {
    "not json": ('{"images": [', "malformed JSON"),
    "top level a list": ([GOOD], "top level: expected an object"),
    "no images": (_drop("images"), "top level: missing 'images'"),
    "no annotations": (_drop("annotations"), "top level: missing 'annotations'"),
    "images not a list": (lambda d: d.update(images={}), "'images' must be a list"),
    "image not an object": (lambda d: d["images"].append(3), "images[3]: expected an object"),
    "image without id": (_set("images.1", "id", ...), "images[1]: missing 'id'"),
    "image id a string": (_set("images.1", "id", "1"), "images[1]: 'id' must be an integer"),
    "image id a bool": (_set("images.1", "id", True), "images[1]: 'id' must be an integer"),
    "image without file_name": (_set("images.0", "file_name", ...), "missing 'file_name'"),
    "file_name not a string": (_set("images.0", "file_name", 9), "'file_name' must be a string"),
    "duplicate image id": (_set("images.2", "id", 9), "image id 9: appears twice in images"),
    "duplicate stem": (
        _set("images.2", "file_name", "COCO_train2014_000000000001.png"),
        "image id 5: file_name stem 'COCO_train2014_000000000001' is also image id 1",
    ),
    "caption without image_id": (_set("annotations.2", "image_id", ...), "missing 'image_id'"),
    "caption without id": (_set("annotations.2", "id", ...), "annotations[2]: missing 'id'"),
    "caption without text": (_set("annotations.2", "caption", ...), "missing 'caption'"),
    "caption not a string": (_set("annotations.2", "caption", ["a"]), "must be a string"),
    "caption id a float": (_set("annotations.0", "id", 90.0), "'id' must be an integer"),
    "unknown image": (_set("annotations.3", "image_id", 7), "image_id 7 is not in images"),
    "empty caption": (_set("annotations.1", "caption", " \t\n"), "caption id 10: empty caption"),
    "duplicate caption id": (_set("annotations.3", "id", 90), "caption id 90: appears twice"),
    "no captions": (lambda d: d.update(annotations=[]), "annotations: no captions"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_is_a_one_line_data_error_naming_it(tmp_path: Path, case: str):
    change, expected = MALFORMED[case]
    if callable(change):
        data = copy.deepcopy(GOOD)
        change(data)
    else:
        data = change
    path = _write(tmp_path, data)
    with pytest.raises(DataError) as caught:
        load_coco_captions(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert expected in message


def test_missing_file_is_a_data_error(tmp_path: Path):
    with pytest.raises(DataError, match="file not found"):
        load_coco_captions(tmp_path / "captions_val2014.json")


@pytest.mark.parametrize("subtype", SUBTYPES)
def test_world_captions_cover_every_vqa_image_five_times(tiny_synthetic_world: Path, subtype):
    qa = tiny_synthetic_world / QA_DIR
    captions = load_coco_captions(coco_captions_file(qa, subtype))
    by_image = captions.by_image()
    assert all(len(texts) == CAPTIONS_PER_IMAGE for texts in by_image.values())
    assert all(text for texts in by_image.values() for text in texts)
    questions, _, image_dir = vqa_files(qa, subtype)
    jpegs = {path.stem for path in image_dir.glob("*.jpg")}
    asked = {
        vqa_image_path("", subtype, q.image_id).stem
        for q in load_vqa_questions(questions).questions
    }
    assert set(captions.image_ids) == jpegs == asked
    assert len({c.caption_id for c in captions.captions}) == len(captions.captions)


def test_world_shifted_captions_are_val_captions(tiny_synthetic_world: Path):
    qa = tiny_synthetic_world / QA_DIR
    val = load_coco_captions(coco_captions_file(qa, "val2014")).by_image()
    shift = load_coco_captions(coco_captions_file(qa, "valshift2014")).by_image()
    # same views in the same order, under other image ids
    assert list(shift.values()) == list(val.values())
    assert set(shift).isdisjoint(val)
    train = load_coco_captions(coco_captions_file(qa, "train2014")).by_image()
    assert set(train).isdisjoint(val)
