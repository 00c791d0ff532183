"""The official VQA accuracy (GT-Vision-Lab/VQA vqaEval.py), on cases computed by hand."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from envs.errors import DataError
from vqa_ve.commands import eval_vqa
from vqa_ve.data.vqa import (
    VQAAnnotation,
    VQAAnnotationFile,
    VQAAnswer,
    VQAQuestion,
    VQAQuestionFile,
    write_vqa_annotations,
    write_vqa_questions,
    write_vqa_results,
)
from vqa_ve.metrics.vqa import (
    accuracy_summary,
    evaluate_vqa,
    normalize_answer,
    process_digit_article,
    process_punctuation,
    question_accuracy,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("yes.", "yes"),
        ("10.5", "10.5"),  # a period before a digit stays
        ("5.", "5"),
        ("a.m.", "am"),
        ("1,000", "1000"),  # a comma between digits: every mark is deleted
        ("red,blue", "red blue"),  # otherwise a mark touching no space becomes a space
        ("red, blue", "red blue"),  # a mark touching a space is deleted
        ("t-shirt", "t shirt"),
        ("1,000 (approx)", "1000 approx"),
        ("don't", "don't"),  # the apostrophe is no mark in the current vqaEval
        ("what?!", "what  "),
    ],
)
def test_process_punctuation(raw: str, expected: str) -> None:
    assert process_punctuation(raw) == expected


def test_period_strip_stops_after_32_periods_as_official() -> None:
    # re.UNICODE (32) is passed as sub's count in vqaEval.py
    assert process_punctuation("." * 40) == "." * 8


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Two", "2"),
        ("none", "0"),
        ("a dog", "dog"),
        ("The  Red   Car", "red car"),
        ("dont", "don't"),
        ("Im", "im"),  # capitalised table keys never match after lower-casing
        ("somebody'd", "somebodyd"),  # as the official table has it
        ("eleven", "eleven"),
    ],
)
def test_process_digit_article(raw: str, expected: str) -> None:
    assert process_digit_article(raw) == expected


def test_normalize_answer_chains_all_steps() -> None:
    assert normalize_answer("  The Two dogs.\n") == "2 dogs"


def _humans(*groups: tuple[str, int]) -> list[str]:
    answers = [answer for answer, count in groups for _ in range(count)]
    assert len(answers) == 10
    return answers


@pytest.mark.parametrize(
    ("matches", "expected"),
    # mean over 10 leave-one-out subsets of min(1, m/3):
    # m=1: 9 subsets keep 1 match -> 9 * (1/3) / 10 = 0.3
    # m=2: 2 * (1/3) + 8 * (2/3) -> 0.6 ; m=3: 3 * (2/3) + 7 * 1 -> 0.9 ; m>=4 -> 1
    [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0), (10, 1.0)],
)
def test_leave_one_out_accuracy(matches: int, expected: float) -> None:
    humans = _humans(("cat", matches), ("dog", 10 - matches))
    assert question_accuracy("cat", humans) == pytest.approx(expected)


def test_number_word_matches_digit_when_humans_disagree() -> None:
    humans = _humans(("2", 3), ("two", 1), ("3", 6))
    assert question_accuracy("two", humans) == pytest.approx(1.0)  # 4 matches after processing


def test_punctuation_article_and_contraction_matches() -> None:
    humans = _humans(("yes", 2), ("no", 8))
    assert question_accuracy("yes.", humans) == pytest.approx(0.6)
    humans = _humans(("dog", 1), ("a dog", 1), ("cat", 8))
    assert question_accuracy("the dog", humans) == pytest.approx(0.6)
    humans = _humans(("don't", 3), ("dont", 1), ("yes", 6))
    assert question_accuracy("dont", humans) == pytest.approx(1.0)


def test_identical_answers_skip_processing() -> None:
    humans = ["yes"] * 10
    assert question_accuracy("yes", humans) == 1.0
    assert question_accuracy("yes.", humans) == 0.0  # no normalisation: "yes." != "yes"
    assert question_accuracy(" yes\n", humans) == 1.0  # whitespace is always cleaned
    assert question_accuracy("2", ["two"] * 10) == 0.0


def test_no_humans_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        question_accuracy("yes", [])


def _annotation(qid: int, qtype: str, atype: str, humans: list[str]) -> VQAAnnotation:
    answers = tuple(VQAAnswer(a, "yes", i + 1) for i, a in enumerate(humans))
    return VQAAnnotation(qid, 1, qtype, atype, humans[0], answers)


def test_evaluate_vqa_aggregates_on_0_100_scale() -> None:
    annotations = [
        _annotation(1, "is the", "yes/no", ["yes"] * 10),
        _annotation(2, "how many", "number", _humans(("2", 1), ("3", 9))),
        _annotation(3, "is the", "yes/no", _humans(("no", 2), ("yes", 8))),
    ]
    predictions = {1: "yes", 2: "two", 3: "no"}
    # accuracies 1.0, 0.3, 0.6
    assert evaluate_vqa(annotations, predictions) == {
        "overall": round(100 * (1.0 + 0.3 + 0.6) / 3, 2),
        "perQuestionType": {"is the": 80.0, "how many": 30.0},
        "perAnswerType": {"yes/no": 80.0, "number": 30.0},
    }
    assert evaluate_vqa(annotations, predictions)["overall"] == 63.33


def test_accuracy_summary_needs_questions() -> None:
    with pytest.raises(ValueError, match="no questions"):
        accuracy_summary([])


# ------------------------------------------------------------------------- eval-vqa
def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="clipvil eval-vqa")
    eval_vqa.configure(parser)
    return parser.parse_args(argv)


def _split(folder: Path) -> list[str]:
    info, license = {"description": "tiny"}, {"name": "CC BY 4.0"}
    humans = [["yes"] * 10, _humans(("2", 1), ("3", 9)), _humans(("no", 2), ("yes", 8))]
    questions = VQAQuestionFile(
        info,
        "Open-Ended",
        "mscoco",
        "val2014",
        license,
        tuple(VQAQuestion(image_id=1, question="?", question_id=qid) for qid in (1, 2, 3)),
    )
    annotations = VQAAnnotationFile(
        info,
        "mscoco",
        "val2014",
        license,
        (
            _annotation(1, "is the", "yes/no", humans[0]),
            _annotation(2, "how many", "number", humans[1]),
            _annotation(3, "is the", "yes/no", humans[2]),
        ),
    )
    write_vqa_questions(folder / "q.json", questions)
    write_vqa_annotations(folder / "a.json", annotations)
    write_vqa_results(folder / "r.json", {3: "no", 1: "yes", 2: "two"})  # any order
    return ["--questions", str(folder / "q.json"), "--annotations", str(folder / "a.json")]


def test_eval_vqa_writes_and_prints_the_official_metrics(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*_split(tmp_path), "--results", str(tmp_path / "r.json")]
    out = tmp_path / "metrics" / "m.json"
    assert eval_vqa.run(parse([*argv, "--out", str(out)])) == 0
    assert json.loads(out.read_text()) == {
        "overall": 63.33,
        "perQuestionType": {"is the": 80.0, "how many": 30.0},
        "perAnswerType": {"yes/no": 80.0, "number": 30.0},
    }
    printed = capsys.readouterr().out
    assert printed.splitlines() == [
        "questions      3",
        "overall    63.33",
        "number     30.00",
        "yes/no     80.00",
    ]
    assert eval_vqa.run(parse(argv)) == 0  # --out is optional


def test_eval_vqa_refuses_incomplete_results_and_writes_nothing(tmp_path: Path) -> None:
    argv = _split(tmp_path)
    write_vqa_results(tmp_path / "r.json", {1: "yes", 3: "no"})
    out = tmp_path / "m.json"
    args = parse([*argv, "--results", str(tmp_path / "r.json"), "--out", str(out)])
    with pytest.raises(DataError, match=r"r\.json: question_id 2: no answer"):
        eval_vqa.run(args)
    assert not out.exists()


def test_eval_vqa_help_shows_every_default() -> None:
    parser = argparse.ArgumentParser()
    eval_vqa.configure(parser)
    help_text = " ".join(parser.format_help().split())
    assert help_text.count("(required; no default)") == 3
    assert "(default: print only)" in help_text
