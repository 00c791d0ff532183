"""VQA v2 files: official layout read and written exactly, joins, images, results,
the answer vocabulary and soft scores, one-line errors, fuzzed loaders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fuzzing import corrupted_bytes, fuzz_settings, returns_or_data_error
from hypothesis import given
from hypothesis import strategies as st

from envs.errors import DataError
from vqa_ve.data.vqa import (
    SOFT_SCORE_LEAVE_ONE_OUT,
    SOFT_SCORE_MIN_COUNT_OVER_3,
    AnswerVocabulary,
    VQAAnnotation,
    VQAAnnotationFile,
    VQAAnswer,
    VQAQuestion,
    VQAQuestionFile,
    build_answer_vocabulary,
    load_vqa,
    load_vqa_annotations,
    load_vqa_questions,
    read_vqa_results,
    soft_score,
    soft_scores,
    vqa_image_path,
    write_vqa_annotations,
    write_vqa_questions,
    write_vqa_results,
)
from vqa_ve.metrics.vqa import question_accuracy

INFO = {"description": "tiny", "version": "2.0", "year": 2017}
LICENSE = {"name": "CC BY 4.0", "url": "http://creativecommons.org/licenses/by/4.0/"}


def _answers(*groups: tuple[str, int]) -> tuple[VQAAnswer, ...]:
    words = [word for word, count in groups for _ in range(count)]
    return tuple(VQAAnswer(word, "yes", i + 1) for i, word in enumerate(words))


QUESTIONS = VQAQuestionFile(
    info=INFO,
    task_type="Open-Ended",
    data_type="mscoco",
    data_subtype="val2014",
    license=LICENSE,
    questions=(
        VQAQuestion(image_id=42, question="Is the dog asleep?", question_id=42000),
        VQAQuestion(image_id=42, question="How many dogs?", question_id=42001),
        VQAQuestion(image_id=7, question="What color is the car?", question_id=7000),
    ),
)
ANNOTATIONS = VQAAnnotationFile(
    info=INFO,
    data_type="mscoco",
    data_subtype="val2014",
    license=LICENSE,
    annotations=(
        VQAAnnotation(42000, 42, "is the", "yes/no", "yes", _answers(("yes", 10))),
        VQAAnnotation(42001, 42, "how many", "number", "2", _answers(("2", 7), ("two", 3))),
        VQAAnnotation(7000, 7, "what color is the", "other", "red", _answers(("red", 9), ("a", 1))),
    ),
)


@pytest.fixture
def split(tmp_path: Path) -> tuple[Path, Path]:
    questions, annotations = tmp_path / "q.json", tmp_path / "a.json"
    write_vqa_questions(questions, QUESTIONS)
    write_vqa_annotations(annotations, ANNOTATIONS)
    return questions, annotations


def test_round_trip_is_exact(split: tuple[Path, Path]) -> None:
    questions, annotations = split
    assert load_vqa_questions(questions) == QUESTIONS
    assert load_vqa_annotations(annotations) == ANNOTATIONS


def test_written_files_have_the_official_layout(split: tuple[Path, Path]) -> None:
    questions = json.loads(split[0].read_text())
    assert list(questions) == [
        *("info", "task_type", "data_type", "data_subtype", "license", "questions"),
    ]
    assert questions["questions"][0] == {
        "image_id": 42,
        "question": "Is the dog asleep?",
        "question_id": 42000,
    }
    annotations = json.loads(split[1].read_text())
    assert list(annotations) == ["info", "data_type", "data_subtype", "license", "annotations"]
    record = annotations["annotations"][1]
    assert list(record) == [
        *("question_id", "image_id", "question_type", "answer_type"),
        *("multiple_choice_answer", "answers"),
    ]
    assert record["answers"][9] == {"answer": "two", "answer_confidence": "yes", "answer_id": 10}


def test_join_pairs_by_question_id_and_test_split_has_none(split: tuple[Path, Path]) -> None:
    examples = load_vqa(*split)
    assert [e.question.question_id for e in examples] == [42000, 42001, 7000]
    assert all(e.annotation.question_id == e.question.question_id for e in examples)
    assert [e.annotation for e in load_vqa(split[0])] == [None, None, None]


def _edit(path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    ("which", "edit", "message"),
    [
        (0, lambda d: d["questions"][1].pop("question"), "question_id 42001: missing 'question'"),
        (0, lambda d: d["questions"][0].update(image_id="42"), "'image_id' must be an integer"),
        (0, lambda d: d["questions"][0].update(question_id=True), "questions[0]: 'question_id'"),
        (0, lambda d: d["questions"].append(d["questions"][0]), "question_id 42000: appears twice"),
        (0, lambda d: d.pop("data_subtype"), "top level: missing 'data_subtype'"),
        (1, lambda d: d["annotations"][2]["answers"].pop(), "7000: 9 answers, expected 10"),
        (1, lambda d: d["annotations"][2].update(image_id=8), "7000: image_id 8 differs from"),
        (1, lambda d: d["annotations"].pop(), "question_id 7000: no annotation"),
        (1, lambda d: d["annotations"][0].update(question_id=5), "question_id 5: not in the q"),
        (1, lambda d: d["annotations"][1]["answers"][0].update(answer_id=2), "share an answer_id"),
        (1, lambda d: d["annotations"][1]["answers"][3].pop("answer"), "42001 answers[3]: missing"),
        (1, lambda d: d.update(data_subtype="train2014"), "data_subtype 'train2014' differs"),
        (1, lambda d: d.update(annotations={}), "'annotations' must be a list"),
    ],
)
def test_bad_files_are_one_line_errors(split, which, edit, message) -> None:  # type: ignore[no-untyped-def]
    path = _edit(split[which], edit)
    with pytest.raises(DataError) as caught:
        load_vqa(*split)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_not_an_object_and_malformed_json(tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_text("[1, 2]")
    with pytest.raises(DataError, match="top level: expected an object, got list"):
        load_vqa_questions(path)
    path.write_text('{"questions": [')
    with pytest.raises(DataError, match="line 1, column 16: malformed JSON"):
        load_vqa_questions(path)


def test_image_paths(tmp_path: Path) -> None:
    assert vqa_image_path(tmp_path, "val2014", 42).name == "COCO_val2014_000000000042.jpg"
    assert vqa_image_path("x", "test-dev2015", 1) == Path("x/COCO_test2015_000000000001.jpg")
    with pytest.raises(DataError, match="image_id 42: image file not found"):
        vqa_image_path(tmp_path, "val2014", 42, must_exist=True)
    (tmp_path / "COCO_val2014_000000000042.jpg").write_bytes(b"jpeg")
    assert vqa_image_path(tmp_path, "val2014", 42, must_exist=True).is_file()


def test_results_round_trip_in_order(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    write_vqa_results(path, {7000: "red", 42000: "yes", 42001: "2"})
    assert json.loads(path.read_text())[0] == {"question_id": 7000, "answer": "red"}
    assert read_vqa_results(path, [42000, 42001, 7000]) == {7000: "red", 42000: "yes", 42001: "2"}


@pytest.mark.parametrize(
    ("results", "message"),
    [
        ([{"question_id": 1, "answer": "a"}], "question_id 2: no answer (2 questions unanswered)"),
        ([{"question_id": 9, "answer": "a"}], "question_id 9: not a question of the split"),
        ([{"question_id": 1, "answer": "a"}] * 2, "question_id 1: answered twice"),
        ([{"question_id": 1, "answer": 3}], "question_id 1: 'answer' must be a string, got 3"),
        ([{"answer": "a"}], "results[0]: missing 'question_id'"),
        ({"question_id": 1}, "expected a list of results, got dict"),
    ],
)
def test_bad_results_are_one_line_errors(tmp_path: Path, results: object, message: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    with pytest.raises(DataError) as caught:
        read_vqa_results(path, [1, 2, 3])
    assert str(caught.value) == f"{path}: {message}"


@pytest.mark.parametrize("count", range(11))
def test_leave_one_out_soft_score_is_the_metric_credit(count: int) -> None:
    humans = ["cat"] * count + ["dog"] * (10 - count)
    assert soft_score(count, 10, SOFT_SCORE_LEAVE_ONE_OUT) == pytest.approx(
        question_accuracy("cat", humans)
    )


def test_soft_score_tables() -> None:
    loo = [soft_score(c, 10, SOFT_SCORE_LEAVE_ONE_OUT) for c in range(6)]
    assert loo == pytest.approx([0.0, 0.3, 0.6, 0.9, 1.0, 1.0])  # bottom-up top-down's table
    third = [soft_score(c, 10, SOFT_SCORE_MIN_COUNT_OVER_3) for c in range(5)]
    assert third == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0, 1.0])
    with pytest.raises(ValueError, match="unknown soft-score rule"):
        soft_score(1, 10, "max")


def test_soft_scores_count_normalised_answers() -> None:
    annotation = ANNOTATIONS.annotations[1]  # 7 x "2", 3 x "two"
    assert soft_scores(annotation) == {"2": 1.0}
    annotation = ANNOTATIONS.annotations[2]  # 9 x "red", 1 x "a" (an article: empty answer)
    assert soft_scores(annotation) == pytest.approx({"red": 1.0, "": 0.3})


def test_vocabulary_top_k_targets_and_file(tmp_path: Path) -> None:
    def ann(mc: str) -> VQAAnnotation:
        return VQAAnnotation(1, 1, "what", "other", mc, _answers((mc, 2), ("blue", 8)))

    annotations = [ann(a) for a in ["Red", "red.", "blue", "Blue", "two", "2", "green", "cat"]]
    vocabulary = build_answer_vocabulary(annotations, size=3)
    assert vocabulary.answers == ("2", "blue", "red")  # counts 2, 2, 2; ties alphabetical
    assert vocabulary.index("The Red.") == 2 and vocabulary.index("green") is None
    assert vocabulary.targets(annotations[0]) == pytest.approx({2: 0.6, 1: 1.0})
    path = tmp_path / "answers.json"
    vocabulary.save(path)
    assert AnswerVocabulary.load(path) == vocabulary
    path.write_text(json.dumps({"version": 1, "answers": ["a", "a"]}))
    with pytest.raises(DataError, match="an answer appears twice"):
        AnswerVocabulary.load(path)
    path.write_text(json.dumps({"version": 1, "answers": ["a", 3]}))
    with pytest.raises(DataError, match=r"answers\[1\]: expected a string"):
        AnswerVocabulary.load(path)


def _bytes_of(write, record) -> bytes:  # type: ignore[no-untyped-def]
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "f.json"
        write(path, record)
        return path.read_bytes()


QUESTIONS_BYTES = _bytes_of(write_vqa_questions, QUESTIONS)
ANNOTATIONS_BYTES = _bytes_of(write_vqa_annotations, ANNOTATIONS)
RESULTS_BYTES = _bytes_of(write_vqa_results, {42000: "yes", 42001: "2", 7000: "red"})


@fuzz_settings(20)
@given(data=corrupted_bytes(QUESTIONS_BYTES))
def test_fuzzed_questions_load_or_raise_one_line_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz_questions.json"
    path.write_bytes(data)
    returns_or_data_error(lambda: load_vqa_questions(path), path, seconds=10)


@fuzz_settings(20)
@given(data=corrupted_bytes(ANNOTATIONS_BYTES))
def test_fuzzed_annotations_load_or_raise_one_line_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz_annotations.json"
    path.write_bytes(data)
    returns_or_data_error(lambda: load_vqa_annotations(path), path, seconds=10)


@fuzz_settings(20)
@given(data=corrupted_bytes(RESULTS_BYTES))
def test_fuzzed_results_read_or_raise_one_line_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz_results.json"
    path.write_bytes(data)
    returns_or_data_error(lambda: read_vqa_results(path, [42000, 42001, 7000]), path, seconds=10)


def test_vqa_modules_import_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, vqa_ve.data.vqa, vqa_ve.metrics.vqa, vqa_ve.commands.eval_vqa; "
        "print('torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every key / index path inside a JSON value (the root excluded)."""
    children = value.items() if isinstance(value, dict) else enumerate(value)  # type: ignore[arg-type]
    found = []
    for key, child in children:
        found.append((*prefix, key))
        if isinstance(child, dict | list):
            found += _paths(child, (*prefix, key))
    return found


@fuzz_settings(20)
@given(data=st.data())
def test_any_field_replaced_by_any_json_gives_only_data_errors(tmp_path: Path, data) -> None:  # type: ignore[no-untyped-def]
    original = data.draw(st.sampled_from([QUESTIONS_BYTES, ANNOTATIONS_BYTES, RESULTS_BYTES]))
    document = json.loads(original)
    *parents, last = data.draw(st.sampled_from(_paths(document)))
    target = document
    for key in parents:
        target = target[key]
    target[last] = data.draw(JSON_VALUES)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(document))
    for load in (load_vqa_questions, load_vqa_annotations):
        returns_or_data_error(lambda: load(path), path, seconds=10)  # noqa: B023
    returns_or_data_error(lambda: read_vqa_results(path, [42000, 42001, 7000]), path, seconds=10)
