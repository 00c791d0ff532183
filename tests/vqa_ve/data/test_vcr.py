"""VCR's release format: the jsonl and metadata loaders, the writer, rendering, the sub-tasks."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fuzzing import corrupted_bytes, fuzz_settings, returns_or_data_error
from hypothesis import given
from hypothesis import strategies as st

from envs.errors import DataError
from vqa_ve.data.vcr import (
    IMAGES_DIR,
    VCRItem,
    VCRMetadata,
    item_record,
    load_item_metadata,
    load_vcr,
    load_vcr_metadata,
    q2a_examples,
    qa2r_example,
    qa2r_examples,
    render_tokens,
    write_vcr,
    write_vcr_metadata,
)

#: Shaped like the release's train-0 (rowanz/r2c dataloaders/vcr.py), cut short.
RECORD: dict[str, Any] = {
    "movie": "3015_CHARLIE_ST_CLOUD",
    "objects": ["person", "person", "person", "car"],
    "img_fn": "lsmdc_3015/3015_00.23.57@0.jpg",
    "metadata_fn": "lsmdc_3015/3015_00.23.57@0.json",
    "question": ["Does", [2], "feel", "comfortable", "?"],
    "answer_choices": [
        ["Yes", "because", [0, 1], "smile", "."],
        ["No", "she", "does", "not", "."],
        ["Yes", ",", "she", "is", "cold", "."],
        ["Yes", [3], "is", "warm", "."],
    ],
    "answer_label": 1,
    "rationale_choices": [
        ["There", "is", "snow", "."],
        ["She", "is", "standing", "with", "her", "arms", "crossed", "."],
        ["She", "is", "sitting", "rigidly", "."],
        [[2], "is", "laying", "in", "bed", "."],
    ],
    "rationale_label": 1,
    "img_id": "train-0",
    "annot_id": "train-0",
}
METADATA = {
    "boxes": [[1.0, 2.0, 30.5, 40.0, 0.99], [5, 5, 9, 9, 0.5], [0, 0, 1, 1, 0.7], [2, 2, 8, 9, 1]],
    "segms": [[[[1, 2], [30, 2], [30, 40]]], [[[5, 5], [9, 9], [5, 9]]], [], [[[2, 2], [8, 9]]]],
    "width": 640,
    "height": 360,
    "names": ["person", "person", "person", "car"],
}


def records(count: int = 2) -> list[dict[str, Any]]:
    out = []
    for i in range(count):
        record = copy.deepcopy(RECORD)
        record["annot_id"] = f"val-{i}"
        out.append(record)
    return out


def write_lines(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


@pytest.fixture
def val(tmp_path: Path) -> Path:
    return write_lines(tmp_path / "val.jsonl", records())


def images_root(tmp_path: Path, metadata: dict[str, Any] = METADATA) -> Path:
    root = tmp_path / IMAGES_DIR
    (root / "lsmdc_3015").mkdir(parents=True)
    (root / RECORD["img_fn"]).write_bytes(b"\xff\xd8\xff")
    (root / RECORD["metadata_fn"]).write_text(json.dumps(metadata))
    return root


# ------------------------------------------------------------------------------ loading
def test_load_reads_every_field(val: Path) -> None:
    first, second = load_vcr(val)
    assert first.annot_id == "val-0" and second.annot_id == "val-1"
    assert first.objects == ("person", "person", "person", "car")
    assert first.question == ("Does", (2,), "feel", "comfortable", "?")
    assert first.answer_choices[0] == ("Yes", "because", (0, 1), "smile", ".")
    assert len(first.answer_choices) == len(first.rationale_choices) == 4
    assert (first.answer_label, first.rationale_label) == (1, 1)
    assert first.img_fn == RECORD["img_fn"] and first.metadata_fn == RECORD["metadata_fn"]


def test_test_split_has_no_labels_and_cannot_be_scored(tmp_path: Path) -> None:
    lines = records(1)
    del lines[0]["answer_label"], lines[0]["rationale_label"]
    path = write_lines(tmp_path / "test.jsonl", lines)
    (item,) = load_vcr(path)
    assert item.answer_label is None and item.rationale_label is None
    with pytest.raises(DataError, match=r"test\.jsonl: record 1, annot_id val-0: no answer_label"):
        load_vcr(path, require_labels=True)


def bad(tmp_path: Path, edit: dict[str, Any], drop: str | None = None) -> str:
    lines = records(2)
    lines[1].update(edit)
    if drop:
        del lines[1][drop]
    path = write_lines(tmp_path / "val.jsonl", lines)
    with pytest.raises(DataError) as err:
        load_vcr(path)
    message = str(err.value)
    assert message.startswith(f"{path}: record 2, annot_id val-1: ") and "\n" not in message
    return message


def test_an_object_index_out_of_range_is_named(tmp_path: Path) -> None:
    message = bad(tmp_path, {"question": ["Is", [0, 4], "happy", "?"]})
    assert "question token 1: object index 4 out of range (the item has 4 objects)" in message
    assert "answer_choices[3] token 0: object index -1" in bad(
        tmp_path, {"answer_choices": [["a"], ["b"], ["c"], [[-1], "d"]]}
    )


@pytest.mark.parametrize("label", [4, -1, True, "1", 1.0, None])
def test_labels_must_be_0_to_3(tmp_path: Path, label: Any) -> None:
    assert "answer_label" in bad(tmp_path, {"answer_label": label})
    assert "rationale_label" in bad(tmp_path, {"rationale_label": label})


def test_four_choices_each(tmp_path: Path) -> None:
    assert "answer_choices: expected 4 choices, got 3" in bad(
        tmp_path, {"answer_choices": [["a"], ["b"], ["c"]]}
    )
    assert "rationale_choices: expected 4 choices, got 5" in bad(
        tmp_path, {"rationale_choices": [["a"]] * 5}
    )


def test_malformed_fields(tmp_path: Path) -> None:
    assert "missing field 'question'" in bad(tmp_path, {}, drop="question")
    assert "both answer_label and rationale_label, or neither" in bad(
        tmp_path, {}, drop="rationale_label"
    )
    assert "objects: expected a list of category names" in bad(tmp_path, {"objects": [1]})
    assert "question token 0: expected a string or a list" in bad(tmp_path, {"question": [3]})
    for escape in ["/etc/passwd", "../x.jpg", "a/../../x.jpg"]:
        assert "expected a path inside the images folder" in bad(tmp_path, {"img_fn": escape})


def test_duplicate_and_missing_annot_ids(tmp_path: Path) -> None:
    lines = records(2)
    lines[1]["annot_id"] = "val-0"
    path = write_lines(tmp_path / "val.jsonl", lines)
    with pytest.raises(DataError, match="record 2: duplicate annot_id val-0"):
        load_vcr(path)
    del lines[1]["annot_id"]
    write_lines(path, lines)
    with pytest.raises(DataError, match="record 2: annot_id: expected a non-empty string"):
        load_vcr(path)
    path.write_text("\n")
    with pytest.raises(DataError, match="no annotations"):
        load_vcr(path)


def test_files_must_exist_under_the_images_root(tmp_path: Path, val: Path) -> None:
    root = images_root(tmp_path)
    assert len(load_vcr(val, images_root=root, check_metadata=True)) == 2
    (root / RECORD["img_fn"]).unlink()
    with pytest.raises(DataError, match=r"val\.jsonl: annot_id val-0: img_fn .*@0\.jpg not found"):
        load_vcr(val, images_root=root)


def test_one_box_per_object(tmp_path: Path, val: Path) -> None:
    metadata = copy.deepcopy(METADATA)
    del metadata["boxes"][3], metadata["segms"][3]
    root = images_root(tmp_path, metadata)
    assert len(load_vcr(val, images_root=root)) == 2  # existence only
    with pytest.raises(DataError, match=r"@0\.json: annot_id val-0: 3 boxes for 4 objects"):
        load_vcr(val, images_root=root, check_metadata=True)


def test_metadata_loader(tmp_path: Path) -> None:
    root = images_root(tmp_path)
    item = load_vcr(write_lines(tmp_path / "v.jsonl", records(1)))[0]
    metadata = load_item_metadata(item, root)
    assert metadata.boxes[0] == (1.0, 2.0, 30.5, 40.0, 0.99)
    assert metadata.segms[0] == (((1.0, 2.0), (30.0, 2.0), (30.0, 40.0)),)
    assert metadata.segms[2] == ()
    assert (metadata.width, metadata.height) == (640, 360)


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ({"boxes": [[0, 0, 1, 1]] * 4}, r"boxes\[0\]: expected \[x1, y1, x2, y2, score\]"),
        ({"boxes": [[5, 0, 1, 1, 1]] * 4}, r"boxes\[0\] .*: expected x1 <= x2"),
        ({"boxes": [[0, 0, 1, 1, 1]] * 3}, "boxes and segms: expected two lists with one entry"),
        ({"boxes": [[0, 0, 10**400, 1, 1]] * 4}, r"boxes\[0\]: expected \[x1"),
        ({"width": 0}, "width 0: expected a positive integer"),
        ({"segms": [[[[1, 2, 3]]]] * 4}, r"segms\[0\]: expected polygons of \[x, y\] points"),
    ],
)
def test_metadata_problems(tmp_path: Path, edit: dict[str, Any], problem: str) -> None:
    path = tmp_path / "m.json"
    path.write_text(json.dumps({**METADATA, **edit}))
    with pytest.raises(DataError, match=f"^{path}: {problem}"):
        load_vcr_metadata(path)
    path.write_text(json.dumps({k: v for k, v in METADATA.items() if k != "height"}))
    with pytest.raises(DataError, match="missing key 'height'"):
        load_vcr_metadata(path)


# ------------------------------------------------------------------------------ writing
def test_written_annotations_read_back_the_same(tmp_path: Path, val: Path) -> None:
    items = load_vcr(val)
    unlabelled = VCRItem(**{**items[0].__dict__, "annot_id": "test-0"})
    unlabelled = VCRItem(**{**unlabelled.__dict__, "answer_label": None, "rationale_label": None})
    out = tmp_path / "out" / "val.jsonl"
    write_vcr(out, [*items, unlabelled])
    assert load_vcr(out) == (*items, unlabelled)
    first, *_, last = (json.loads(line) for line in out.read_text().splitlines())
    release_order = [k for k in RECORD if k not in ("movie", "img_id")]
    assert list(first) == release_order
    assert "answer_label" not in last and "rationale_label" not in last
    assert item_record(items[0])["question"] == RECORD["question"]


def test_the_writer_refuses_what_the_reader_would(tmp_path: Path, val: Path) -> None:
    good = load_vcr(val)[0]
    broken = VCRItem(**{**good.__dict__, "question": ("Is", (9,), "?")})
    out = tmp_path / "written.jsonl"
    problem = "record 2, annot_id val-0: question token 1: object index 9 out of range"
    with pytest.raises(ValueError, match=problem):
        write_vcr(out, [good, broken])
    assert not out.exists()


def test_written_metadata_reads_back_the_same(tmp_path: Path) -> None:
    root = images_root(tmp_path)
    metadata = load_vcr_metadata(root / RECORD["metadata_fn"])
    out = tmp_path / "written" / "x.json"
    write_vcr_metadata(out, metadata)
    assert load_vcr_metadata(out) == metadata
    assert set(json.loads(out.read_text())) == {"boxes", "segms", "width", "height"}
    empty = VCRMetadata(boxes=(), segms=(), width=4, height=3)
    write_vcr_metadata(out, empty)
    assert load_vcr_metadata(out) == empty


# ----------------------------------------------------------------- rendering, sub-tasks
def test_render_tokens_tags_objects_by_category_and_index() -> None:
    objects = ("person", "person", "horse")
    tokens = ("Are", (0, 1), "riding", (2,), "?")
    assert render_tokens(tokens, objects) == "Are person0 and person1 riding horse2?"
    assert render_tokens(("Yes", ",", "he", "is", "n't", "."), objects) == "Yes, he isn't."
    assert render_tokens((), objects) == ""


def test_q2a_and_qa2r_examples(val: Path) -> None:
    items = load_vcr(val)
    (q2a, _), (qa2r, _) = q2a_examples(items), qa2r_examples(items)
    item = items[0]
    assert q2a.task == "q2a" and q2a.context == item.question
    assert q2a.choices == item.answer_choices and q2a.label == item.answer_label == 1
    assert qa2r.task == "qa2r" and qa2r.choices == item.rationale_choices and qa2r.label == 1
    assert qa2r.context == item.question + item.answer_choices[1]  # the right answer appended
    assert qa2r_example(item, 3).context[-4:] == ((3,), "is", "warm", ".")
    assert (qa2r.objects, qa2r.img_fn) == (item.objects, item.img_fn)
    unlabelled = VCRItem(**{**item.__dict__, "answer_label": None, "rationale_label": None})
    assert qa2r_example(unlabelled, 0).label is None
    with pytest.raises(ValueError, match="annot_id val-0: QA->R needs an answer"):
        qa2r_example(unlabelled)


# ------------------------------------------------------------------------------ fuzzing
#: Examples per property (``$CLIPVIL_FUZZ_EXAMPLES`` for a deep run) and the hang bound.
EXAMPLES = 20
HANG_SECONDS = 10
VALID_JSONL = "".join(json.dumps(r) + "\n" for r in records(2)).encode()
VALID_METADATA = json.dumps(METADATA).encode()


@fuzz_settings(EXAMPLES)
@given(data=corrupted_bytes(VALID_JSONL))
def test_fuzzed_annotations_give_only_data_errors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "val.jsonl"
    path.write_bytes(data)
    returns_or_data_error(lambda: load_vcr(path), path, HANG_SECONDS)


JSON_VALUES = st.none() | st.booleans() | st.integers(-5, 10) | st.floats() | st.text(max_size=3)


@fuzz_settings(EXAMPLES)
@given(key=st.sampled_from(sorted(RECORD)), value=JSON_VALUES | st.lists(JSON_VALUES, max_size=5))
def test_fuzzed_fields_give_only_data_errors(tmp_path: Path, key: str, value: Any) -> None:
    lines = records(2)
    lines[1][key] = value
    path = write_lines(tmp_path / "val.jsonl", lines)
    returns_or_data_error(lambda: load_vcr(path), path, HANG_SECONDS)


@fuzz_settings(EXAMPLES)
@given(data=corrupted_bytes(VALID_METADATA))
def test_fuzzed_metadata_gives_only_data_errors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "meta.json"
    path.write_bytes(data)
    returns_or_data_error(lambda: load_vcr_metadata(path), path, HANG_SECONDS)


@fuzz_settings(EXAMPLES)
@given(
    key=st.sampled_from(["boxes", "segms", "width", "height"]),
    value=JSON_VALUES | st.lists(JSON_VALUES | st.lists(JSON_VALUES, max_size=6), max_size=5),
)
def test_fuzzed_metadata_fields_give_only_data_errors(tmp_path: Path, key: str, value: Any) -> None:
    path = tmp_path / "meta.json"
    path.write_text(json.dumps({**METADATA, key: value}))
    returns_or_data_error(lambda: load_vcr_metadata(path), path, HANG_SECONDS)
