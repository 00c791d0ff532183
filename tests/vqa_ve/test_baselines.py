"""The majority-answer baselines, scored by the official metrics as a model is."""

from __future__ import annotations

import pytest

from vqa_ve.baselines import majority_predictions, most_common
from vqa_ve.datasets import load_split
from vqa_ve.training.evaluation import score

SPLITS = {"vqa": ("train2014", "val2014"), "snli-ve": ("train", "dev"), "vcr": ("train", "val")}


def test_most_common_breaks_ties_by_the_smallest_value():
    assert most_common(["b", "a", "b", "a", "c"]) == "a"
    assert most_common([3, 1, 3]) == 3
    with pytest.raises(ValueError, match="no training labels"):
        most_common([])


@pytest.mark.parametrize("task", ["vqa", "snli-ve", "vcr"])
def test_majority_predicts_the_training_majority_everywhere(tiny_synthetic_world, task):
    qa = tiny_synthetic_world / "qa"
    train, val = (load_split(task, qa, name) for name in SPLITS[task])
    predictions = majority_predictions(train, val)
    assert len(predictions) == len(val.records)
    if task == "vqa":
        answers = [r.annotation.multiple_choice_answer for r in train.records]
        assert set(predictions.values()) == {most_common(answers)}
        expected = (
            100
            * sum(
                min(1.0, sum(a.answer == most_common(answers) for a in r.annotation.answers) / 3)
                for r in val.records
            )
            / len(val.records)
        )  # the scene is the only annotator: 10 identical answers
        assert score(val, predictions)["accuracy"] == pytest.approx(expected, abs=0.01)
    elif task == "snli-ve":
        label = most_common(e.label for e in train.records)
        right = sum(e.label == label for e in val.records) / len(val.records)
        assert score(val, predictions)["accuracy"] == pytest.approx(100 * right)
    else:
        answer = most_common(item.answer_label for item in train.records)
        rationale = most_common(item.rationale_label for item in train.records)
        scores = score(val, predictions)
        right = [i.answer_label == answer for i in val.records]
        both = [
            r and i.rationale_label == rationale for r, i in zip(right, val.records, strict=True)
        ]
        assert scores["q2a"] == pytest.approx(100 * sum(right) / len(right))
        assert scores["q2ar"] == pytest.approx(100 * sum(both) / len(both))


def test_a_baseline_of_another_task_is_refused(tiny_synthetic_world):
    qa = tiny_synthetic_world / "qa"
    with pytest.raises(ValueError, match="cannot predict"):
        majority_predictions(load_split("vqa", qa, "train2014"), load_split("vcr", qa, "val"))
