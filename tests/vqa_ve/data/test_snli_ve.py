"""SNLI-VE loader, writers and accuracy on hand-written lines of the released format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fuzzing import corrupted_bytes, fuzz_settings, returns_or_data_error
from hypothesis import given
from hypothesis import strategies as st

from envs.errors import DataError
from vqa_ve.data.snli_ve import (
    LABELS,
    SNLIVEExample,
    accuracy,
    check_images,
    image_path,
    load_snli_ve,
    read_predictions,
    write_predictions,
    write_snli_ve,
)

#: Two lines as the released files spell them (Flikr30kID with ".jpg", SNLI's extra fields).
RELEASED = [
    {
        "annotator_labels": ["neutral"],
        "captionID": "3416050480.jpg#4",
        "gold_label": "neutral",
        "pairID": "3416050480.jpg#4r1n",
        "sentence1": "A person on a horse jumps over a broken down airplane.",
        "sentence2": "A person is training his horse for a competition.",
        "Flikr30kID": "3416050480.jpg",
    },
    {
        "captionID": "3416050480.jpg#4",
        "gold_label": "-",
        "pairID": "3416050480.jpg#4r1c",
        "sentence1": "A person on a horse jumps over a broken down airplane.",
        "sentence2": "A person is at a diner, ordering an omelette.",
        "Flikr30kID": "3416050480.jpg",
    },
    {
        "captionID": "2267923837.jpg#2",
        "gold_label": "entailment",
        "pairID": "2267923837.jpg#2r1e",
        "sentence1": "Children smiling and waving at camera",
        "sentence2": "There are children present",
        "Flickr30K_ID": "2267923837",
    },
]


def write_lines(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_loads_released_lines_and_counts_no_consensus(tmp_path: Path) -> None:
    split = load_snli_ve(write_lines(tmp_path / "dev.jsonl", RELEASED))
    assert split.skipped == 1
    assert split.examples == (
        SNLIVEExample(
            pair_id="3416050480.jpg#4r1n",
            image_id="3416050480",
            hypothesis="A person is training his horse for a competition.",
            premise="A person on a horse jumps over a broken down airplane.",
            label="neutral",
            caption_id="3416050480.jpg#4",
        ),
        SNLIVEExample(
            pair_id="2267923837.jpg#2r1e",
            image_id="2267923837",
            hypothesis="There are children present",
            premise="Children smiling and waving at camera",
            label="entailment",
            caption_id="2267923837.jpg#2",
        ),
    )
    assert [e.label_id for e in split.examples] == [1, 0]
    assert LABELS == ("entailment", "neutral", "contradiction")


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        ({"gold_label": "yes"}, "line 1 (pairID p1): unknown gold_label 'yes'"),
        ({"sentence2": None}, "line 1 (pairID p1): missing field 'sentence2'"),
        ({"Flikr30kID": None}, "line 1 (pairID p1): missing field 'Flikr30kID'"),
        ({"sentence1": 3}, "line 1 (pairID p1): sentence1 is int, expected a string"),
        (
            {"Flikr30kID": "../x.jpg"},
            "line 1 (pairID p1): Flikr30kID '../x.jpg' is not a Flickr30k image id",
        ),
        ({"pairID": None}, "line 1: missing field 'pairID'"),
    ],
)
def test_bad_line_is_one_line_error(tmp_path: Path, edit: dict, problem: str) -> None:
    record = {**RELEASED[0], "pairID": "p1", **edit}
    record = {k: v for k, v in record.items() if v is not None}
    path = write_lines(tmp_path / "bad.jsonl", [record])
    with pytest.raises(DataError) as info:
        load_snli_ve(path)
    assert str(info.value).startswith(f"{path}: {problem}")
    assert "\n" not in str(info.value)


def test_duplicate_pair_id_names_both_lines(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "dup.jsonl", [RELEASED[0], RELEASED[2], RELEASED[0]])
    with pytest.raises(DataError, match=r"line 3 \(pairID 3416050480.jpg#4r1n\): duplicate "):
        load_snli_ve(path)
    with pytest.raises(DataError, match="first on line 1"):
        load_snli_ve(path)


def test_malformed_json_and_non_objects_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(RELEASED[0]) + "\n\n{oops\n")
    with pytest.raises(DataError, match=r"broken.jsonl: line 3, column 2: malformed JSON"):
        load_snli_ve(path)
    with pytest.raises(DataError, match="line 1: expected a JSON object"):
        load_snli_ve(write_lines(tmp_path / "list.jsonl", [[1, 2]]))


def test_writer_round_trips(tmp_path: Path) -> None:
    split = load_snli_ve(write_lines(tmp_path / "in.jsonl", RELEASED))
    write_snli_ve(tmp_path / "out.jsonl", split.examples)
    again = load_snli_ve(tmp_path / "out.jsonl")
    assert again.examples == split.examples and again.skipped == 0
    first = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[0])
    assert first["Flikr30kID"] == "3416050480.jpg"


def test_image_paths_and_existence_check(tmp_path: Path) -> None:
    examples = load_snli_ve(write_lines(tmp_path / "in.jsonl", RELEASED)).examples
    images = tmp_path / "flickr30k_images"
    images.mkdir()
    assert image_path(images, "3416050480") == images / "3416050480.jpg"
    (images / "3416050480.jpg").write_bytes(b"jpeg")
    with pytest.raises(DataError) as info:
        check_images(images, examples)
    assert str(info.value) == (
        f"{images / '2267923837.jpg'}: image of pairID 2267923837.jpg#2r1e not found"
    )
    (images / "2267923837.jpg").write_bytes(b"jpeg")
    check_images(images, examples)


def test_predictions_round_trip_and_accuracy(tmp_path: Path) -> None:
    examples = load_snli_ve(write_lines(tmp_path / "in.jsonl", RELEASED)).examples
    predicted = {"3416050480.jpg#4r1n": "neutral", "2267923837.jpg#2r1e": "contradiction"}
    write_predictions(tmp_path / "pred.jsonl", predicted)
    assert read_predictions(tmp_path / "pred.jsonl") == predicted
    assert accuracy(examples, predicted) == 0.5
    assert accuracy(examples, {"3416050480.jpg#4r1n": "neutral"}) == 0.5  # missing: wrong
    assert accuracy(examples, {e.pair_id: e.label for e in examples}) == 1.0
    with pytest.raises(ValueError):
        accuracy([], predicted)
    with pytest.raises(ValueError):
        write_predictions(tmp_path / "x.jsonl", {"p": "-"})


def test_bad_predictions_are_one_line_errors(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "p.jsonl", [{"pairID": "a", "gold_label": "maybe"}])
    with pytest.raises(DataError, match=r"line 1 \(pairID a\): unknown predicted label 'maybe'"):
        read_predictions(path)
    path = write_lines(
        tmp_path / "p.jsonl",
        [{"pairID": "a", "gold_label": "neutral"}, {"pairID": "a", "gold_label": "neutral"}],
    )
    with pytest.raises(DataError, match="line 2 .*duplicate pairID"):
        read_predictions(path)


ORIGINAL = "".join(json.dumps(r) + "\n" for r in RELEASED).encode()


@fuzz_settings(20)
@given(data=corrupted_bytes(ORIGINAL))
def test_fuzzed_file_loads_or_raises_one_line_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(data)
    returns_or_data_error(lambda: load_snli_ve(path), path, seconds=10)
    returns_or_data_error(lambda: read_predictions(path), path, seconds=10)


texts = st.text(max_size=20)
examples = st.builds(
    SNLIVEExample,
    pair_id=texts,
    image_id=st.from_regex(r"[0-9]{1,10}", fullmatch=True),
    hypothesis=texts,
    premise=texts,
    label=st.sampled_from(LABELS),
    caption_id=texts,
)


@fuzz_settings(20)
@given(drawn=st.lists(examples, max_size=5, unique_by=lambda e: e.pair_id))
def test_any_examples_round_trip(tmp_path: Path, drawn: list[SNLIVEExample]) -> None:
    path = tmp_path / "round.jsonl"
    write_snli_ve(path, drawn)
    assert load_snli_ve(path).examples == tuple(drawn)


def test_line_separators_inside_strings_stay_in_the_string(tmp_path: Path) -> None:
    """JSON leaves U+2028 / U+0085 raw inside strings; only "\\n" ends a JSON Lines line."""
    record = {**RELEASED[0], "sentence2": "a\u2028b\x85c"}
    path = tmp_path / "sep.jsonl"
    path.write_text(json.dumps(record, ensure_ascii=False) + "\r\n", encoding="utf-8")
    assert load_snli_ve(path).examples[0].hypothesis == "a\u2028b\x85c"
