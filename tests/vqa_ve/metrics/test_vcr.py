"""VCR scoring (Q->A, QA->R, Q->AR by hand), the leaderboard CSV, and ``clipvil eval-vcr``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from fuzzing import corrupted_bytes, fuzz_settings, returns_or_data_error
from hypothesis import given

from envs.errors import DataError
from vqa_ve.commands import eval_vcr
from vqa_ve.data.vcr import VCRItem, write_vcr
from vqa_ve.metrics.vcr import (
    CSV_COLUMNS,
    VCRPrediction,
    argmax,
    read_vcr_predictions,
    vcr_scores,
    write_vcr_predictions,
)

#: The header in rowanz/r2c models/README.md, "Submitting to the leaderboard".
LEADERBOARD_HEADER = "annot_id,answer_0,answer_1,answer_2,answer_3," + ",".join(
    f"rationale_conditioned_on_a{i}_{j}" for i in range(4) for j in range(4)
)
CHOICES = (("a",),) * 4


def item(annot_id: str, answer: int, rationale: int) -> VCRItem:
    return VCRItem(
        annot_id=annot_id,
        img_fn="m/i.jpg",
        metadata_fn="m/i.json",
        objects=("person",),
        question=("Why", (0,), "?"),
        answer_choices=CHOICES,
        rationale_choices=CHOICES,
        answer_label=answer,
        rationale_label=rationale,
    )


def one_hot(index: int, high: float = 0.9) -> tuple[float, ...]:
    return tuple(high if j == index else 0.1 for j in range(4))


def prediction(annot_id: str, answer: int, rationales: tuple[int, ...]) -> VCRPrediction:
    """Picks ``answer``; given answer i, picks rationale ``rationales[i]``."""
    return VCRPrediction(annot_id, one_hot(answer), tuple(one_hot(r) for r in rationales))


#: By hand: q0 both right; q1 answer wrong, rationale (given the right answer 2) right;
#: q2 answer right, rationale wrong; q3 both wrong. Q->A 2/4, QA->R 2/4, Q->AR 1/4.
ITEMS = (item("val-0", 1, 3), item("val-1", 2, 0), item("val-2", 0, 1), item("val-3", 3, 3))
PREDICTIONS = {
    "val-0": prediction("val-0", 1, (0, 3, 0, 0)),
    "val-1": prediction("val-1", 0, (1, 1, 0, 1)),  # rationale given a0 is wrong: unused
    "val-2": prediction("val-2", 0, (2, 1, 1, 1)),  # right rationale only given a1..a3
    "val-3": prediction("val-3", 2, (3, 3, 3, 0)),
}


def test_scores_by_hand() -> None:
    assert vcr_scores(ITEMS, PREDICTIONS) == {"q2a": 50.0, "qa2r": 50.0, "q2ar": 25.0}
    assert vcr_scores(ITEMS[:1], PREDICTIONS) == {"q2a": 100.0, "qa2r": 100.0, "q2ar": 100.0}
    assert vcr_scores(ITEMS[3:], PREDICTIONS) == {"q2a": 0.0, "qa2r": 0.0, "q2ar": 0.0}


def test_ties_go_to_the_lowest_index() -> None:
    assert argmax((0.2, 0.5, 0.5, 0.1)) == 1
    assert argmax((1.0, 1.0, 1.0, 1.0)) == 0
    assert argmax((-3.0, -1.0, -2.0, -1.0)) == 1
    tied = VCRPrediction("val-0", (0.0,) * 4, ((0.0,) * 4,) * 4)
    assert vcr_scores([item("val-0", 0, 0)], {"val-0": tied})["q2ar"] == 100.0
    assert vcr_scores([item("val-0", 1, 0)], {"val-0": tied})["q2a"] == 0.0


def test_scoring_needs_labels_and_items() -> None:
    unlabelled = VCRItem(**{**ITEMS[0].__dict__, "answer_label": None, "rationale_label": None})
    with pytest.raises(ValueError, match="annot_id val-0: no labels"):
        vcr_scores([unlabelled], PREDICTIONS)
    with pytest.raises(ValueError, match="no items"):
        vcr_scores([], PREDICTIONS)


# ---------------------------------------------------------------------------------- CSV
def test_csv_has_the_leaderboard_header_and_reads_back(tmp_path: Path) -> None:
    assert ",".join(CSV_COLUMNS) == LEADERBOARD_HEADER
    path = tmp_path / "out" / "val.csv"
    exact = VCRPrediction("val-9", (0.1, 1 / 3, -2.5e-300, 7.0), ((1 / 7, 2.0, 3.0, 4.0),) * 4)
    write_vcr_predictions(path, [*PREDICTIONS.values(), exact])
    lines = path.read_text().splitlines()
    assert lines[0] == LEADERBOARD_HEADER and len(lines) == 6
    assert lines[1].split(",")[:3] == ["val-0", "0.1", "0.9"]
    read = read_vcr_predictions(path)
    assert list(read) == [*PREDICTIONS, "val-9"] and read["val-9"] == exact
    assert read_vcr_predictions(path, [*PREDICTIONS, "val-9"]) == read


def test_extra_columns_and_any_column_order_are_read(tmp_path: Path) -> None:
    columns = ["note", *reversed(CSV_COLUMNS)]
    row = {name: "0" for name in CSV_COLUMNS} | {"annot_id": "val-0", "answer_2": "5", "note": "x"}
    path = tmp_path / "p.csv"
    path.write_text(",".join(columns) + "\n" + ",".join(row[c] for c in columns) + "\n")
    assert read_vcr_predictions(path)["val-0"].answers == (0.0, 0.0, 5.0, 0.0)


def rows(**edits: str) -> list[list[str]]:
    table = [list(CSV_COLUMNS)]
    for i in range(3):
        table.append([f"val-{i}"] + ["0.5"] * (len(CSV_COLUMNS) - 1))
    for key, value in edits.items():  # "r2_answer_3": row 2, column answer_3
        row, column = key.split("_", 1)
        table[int(row[1:])][CSV_COLUMNS.index(column)] = value
    return table


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        (rows(r0_answer_2="answer_x"), "line 1: missing column 'answer_2'"),
        (rows(r0_answer_2="answer_1"), "line 1: column 'answer_1' appears twice"),
        (rows(r2_answer_3="high"), "line 3, answer_3: 'high' is not a number"),
        (rows(r3_rationale_conditioned_on_a2_1=""), "line 4, rationale_conditioned_on_a2_1: ''"),
        (rows(r1_answer_0="nan"), "line 2, answer_0: 'nan' is not a finite number"),
        (rows(r1_answer_0="-inf"), "line 2, answer_0: '-inf' is not a finite number"),
        (rows(r3_annot_id="val-1"), "line 4: duplicate annot_id val-1"),
        (rows(r2_annot_id=""), "line 3: empty annot_id"),
        (rows()[:1] + [["val-0", "1"]], "line 2: 2 fields, header has 21"),
        ([], "empty file"),
    ],
)
def test_csv_problems_are_one_line(tmp_path: Path, table: list[list[str]], problem: str) -> None:
    path = tmp_path / "p.csv"
    path.write_text("".join(",".join(row) + "\n" for row in table))
    with pytest.raises(DataError) as err:
        read_vcr_predictions(path)
    assert str(err.value).startswith(f"{path}: {problem}") and "\n" not in str(err.value)


def test_csv_annot_ids_must_match_the_annotations(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("".join(",".join(row) + "\n" for row in rows()))
    assert len(read_vcr_predictions(path, ["val-0", "val-1", "val-2"])) == 3
    with pytest.raises(DataError, match=r"p\.csv: line 4: unknown annot_id val-2"):
        read_vcr_predictions(path, ["val-0", "val-1"])
    with pytest.raises(DataError, match=r"p\.csv: no prediction for annot_id val-3 \(2 missing\)"):
        read_vcr_predictions(path, ["val-0", "val-1", "val-2", "val-3", "val-4"])


EXAMPLES = 20
HANG_SECONDS = 10
VALID_CSV = "".join(",".join(row) + "\n" for row in rows()).encode()


@fuzz_settings(EXAMPLES)
@given(data=corrupted_bytes(VALID_CSV))
def test_fuzzed_csv_gives_only_data_errors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(data)
    returns_or_data_error(
        lambda: read_vcr_predictions(path, ["val-0", "val-1", "val-2"]), path, HANG_SECONDS
    )


# ------------------------------------------------------------------------- eval-vcr
def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="clipvil eval-vcr")
    eval_vcr.configure(parser)
    return parser.parse_args(argv)


def test_eval_vcr_prints_and_writes_the_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    annotations, predictions = tmp_path / "val.jsonl", tmp_path / "p.csv"
    write_vcr(annotations, ITEMS)
    write_vcr_predictions(predictions, reversed(PREDICTIONS.values()))  # order is free
    out = tmp_path / "metrics" / "m.json"
    argv = ["--annotations", str(annotations), "--predictions", str(predictions)]
    assert eval_vcr.run(parse([*argv, "--out", str(out)])) == 0
    assert json.loads(out.read_text()) == {"q2a": 50.0, "qa2r": 50.0, "q2ar": 25.0}
    printed = capsys.readouterr().out
    assert "4 questions" in printed and "Q->AR   25.00" in printed and "QA->R   50.00" in printed
    assert eval_vcr.run(parse(argv)) == 0  # --out is optional


def test_eval_vcr_refuses_bad_input_and_writes_nothing(tmp_path: Path) -> None:
    annotations, predictions = tmp_path / "val.jsonl", tmp_path / "p.csv"
    write_vcr(annotations, ITEMS)
    write_vcr_predictions(predictions, list(PREDICTIONS.values())[:3])
    out = tmp_path / "m.json"
    args = parse(["--annotations", str(annotations), "--predictions", str(predictions)])
    args.out = str(out)
    with pytest.raises(DataError, match=r"p\.csv: no prediction for annot_id val-3"):
        eval_vcr.run(args)
    unlabelled = [VCRItem(**{**ITEMS[0].__dict__, "answer_label": None, "rationale_label": None})]
    write_vcr(annotations, unlabelled)
    with pytest.raises(DataError, match=r"val\.jsonl: record 1, annot_id val-0: no answer_label"):
        eval_vcr.run(args)
    assert not out.exists()
