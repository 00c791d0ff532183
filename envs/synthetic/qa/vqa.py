"""VQA v2 questions and annotations about synthetic views, in the official layout.

Question types (VQA's ``question_type`` is the question's opening words):

* ``what room is`` "what room is this?" -> the room type the view mostly shows (other);
* ``is there a`` "is there a sofa?" -> yes / no; a "no" names a category the view shows
  nowhere (not even a sliver), drawn from the split's visible categories so that each
  category is asked with both answers;
* ``what color is the`` "what color is the sofa?" -> its colour (the category shown once);
* ``how many`` "how many chairs are there?" -> "0", "1", "2", ... (all of that category in
  view are large enough to count; "0": the view shows none at all);
* ``is the`` "is the lamp left of the sofa?" -> yes / no from the box centres (two
  categories shown once each, centres at least :data:`SIDE_MARGIN_PX` apart).

Every annotation has ten identical answers (``answer_confidence`` "yes"): the scene is
the single annotator. Answers are balanced per question type by :func:`balance`, so that
a blind majority-answer baseline stays near chance.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import numpy as np

from envs.synthetic.qa.views import QAView

ANSWERS_PER_QUESTION = 10
#: Box centres closer than this (pixels) are not asked about left / right.
SIDE_MARGIN_PX = 48
#: No answer of a question type keeps more than this multiple of the uniform share.
BALANCE_FACTOR = 1.5


def plural(category: str) -> str:
    """The plural of a category name ("bookshelf" -> "bookshelves")."""
    if category.endswith("f"):
        return category[:-1] + "ves"
    if category.endswith(("sh", "ch", "s")):
        return category + "es"
    return category + "s"


def view_questions(view: QAView, rng: np.random.Generator, absent: list[str]) -> list[dict]:
    """``{"question", "answer", "question_type", "answer_type"}`` for one view.

    ``absent`` are categories to draw a "no" presence question from (the split's
    visible categories, with repeats by frequency).
    """
    out = [_q("what room is this?", view.room_type, "what room is", "other")]
    counts = Counter(o.category for o in view.objects)
    if view.objects:
        present = view.objects[int(rng.integers(len(view.objects)))].category
        out.append(_q(f"is there a {present}?", "yes", "is there a", "yes/no"))
        choices = [c for c in absent if c not in view.any_categories]
        if choices:
            missing = choices[int(rng.integers(len(choices)))]
            out.append(_q(f"is there a {missing}?", "no", "is there a", "yes/no"))
    single = [o for o in view.objects if counts[o.category] == 1]
    if single:
        obj = single[int(rng.integers(len(single)))]
        out.append(
            _q(f"what color is the {obj.category}?", obj.color, "what color is the", "other")
        )
    # Count only where every object of the category in view is large enough to see.
    countable = sorted(c for c in counts if view.all_counts[c] == counts[c])
    if countable:
        c = countable[int(rng.integers(len(countable)))]
        out.append(_q(f"how many {plural(c)} are there?", str(counts[c]), "how many", "number"))
    choices = [c for c in absent if c not in view.any_categories]
    if choices:
        c = choices[int(rng.integers(len(choices)))]
        out.append(_q(f"how many {plural(c)} are there?", "0", "how many", "number"))
    pairs = [
        (a, b)
        for a in single
        for b in single
        if a.category != b.category and abs(_centre(a) - _centre(b)) >= SIDE_MARGIN_PX
    ]
    if pairs:
        a, b = pairs[int(rng.integers(len(pairs)))]
        answer = "yes" if _centre(a) < _centre(b) else "no"
        text = f"is the {a.category} left of the {b.category}?"
        out.append(_q(text, answer, "is the", "yes/no"))
    return out


def _centre(obj) -> float:
    return 0.5 * (obj.box[0] + obj.box[2])


def _q(question: str, answer: str, question_type: str, answer_type: str) -> dict:
    return {
        "question": question,
        "answer": answer,
        "question_type": question_type,
        "answer_type": answer_type,
    }


def balance(items: list[dict], rng: np.random.Generator) -> list[dict]:
    """Drop items so that within each question type no answer exceeds
    :data:`BALANCE_FACTOR` times the uniform share (yes / no: exactly 50 / 50)."""
    groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, item in enumerate(items):
        groups[item["question_type"]][item["answer"]].append(i)
    keep: set[int] = set()
    for by_answer in groups.values():
        sizes = sorted(len(v) for v in by_answer.values())
        if set(by_answer) <= {"yes", "no"}:
            cap = sizes[0] if len(sizes) == 2 else 0
        else:
            cap = max(1, math.ceil(BALANCE_FACTOR * sum(sizes) / len(sizes)))
            cap = min(cap, max(sizes[-2], 1) if len(sizes) > 1 else 0)
        for indices in by_answer.values():
            chosen = rng.permutation(indices)[:cap] if len(indices) > cap else indices
            keep.update(int(i) for i in chosen)
    return [item for i, item in enumerate(items) if i in keep]


def records(items: list[dict], data_subtype: str) -> tuple[dict, dict]:
    """The questions and annotations files of a split. ``items`` carry ``image_id`` and
    ``question_id`` besides :func:`view_questions`' fields."""
    info = {"description": "clipvil synthetic world (envs.synthetic.qa)", "version": "2.0"}
    license_ = {"name": "generated", "url": ""}
    questions = {
        "info": info,
        "task_type": "Open-Ended",
        "data_type": "mscoco",
        "data_subtype": data_subtype,
        "license": license_,
        "questions": [
            {
                "image_id": it["image_id"],
                "question": it["question"],
                "question_id": it["question_id"],
            }
            for it in items
        ],
    }
    annotations = {
        "info": info,
        "data_type": "mscoco",
        "data_subtype": data_subtype,
        "license": license_,
        "annotations": [
            {
                "question_id": it["question_id"],
                "image_id": it["image_id"],
                "question_type": it["question_type"],
                "answer_type": it["answer_type"],
                "multiple_choice_answer": it["answer"],
                "answers": [
                    {"answer": it["answer"], "answer_confidence": "yes", "answer_id": k + 1}
                    for k in range(ANSWERS_PER_QUESTION)
                ],
            }
            for it in items
        ],
    }
    return questions, annotations
