"""VCR items about synthetic views: questions, 4 answers, 4 rationales, object tags.

An item's ``objects`` are the view's visible objects (larger first), with their boxes in
the image's metadata JSON (``[x1, y1, x2, y2, 1.0]``, the box as a polygon for
``segms``). Tokens that name objects are lists of 0-based indices into ``objects``.
Three templates, each with its answer and its rationale (the visual evidence):

* colour: "What color is [0] ?" -> "[0] is red ." because "The whole surface of [0]
  shows the same red colour ." (an object whose category the view shows once);
* room: "What kind of room is [0] in ?" -> "[0] is in a kitchen ." because "[1] is a
  fridge , which is only found in a kitchen ." ([1] a visible object of a category that
  only that room type holds, standing in the same room);
* side: "Is [0] to the left or the right of [1] ?" -> "[0] is to the left of [1] ."
  because "[0] is nearer the left edge of the picture than [1] ."

Wrong choices are other items' answers (and rationales) of the same split, their object
tags rewritten to this item's objects, as VCR's adversarial matching re-tags the
answers it borrows; items of the same template first, and never a choice that reads
like the right one. The right choice's position is uniform over the four.
"""

from __future__ import annotations

import numpy as np

from envs.synthetic.qa.views import QAView
from envs.synthetic.vocabulary import ROOMS

NUM_CHOICES = 4
#: Box centres closer than this (pixels) are not asked about left / right.
SIDE_MARGIN_PX = 48


def _distinctive(room_type: str) -> set[str]:
    """Categories that rooms of ``room_type`` always hold and no other room type holds."""
    others = {c for name, kind in ROOMS.items() if name != room_type for c in kind.required}
    others |= {c for name, kind in ROOMS.items() if name != room_type for c in kind.optional}
    return set(ROOMS[room_type].required) - others


def answer_tokens(key: tuple, tags: tuple[int, ...]) -> list:
    kind, value = key
    if kind == "colour":
        return [[tags[0]], "is", value, "."]
    if kind == "room":
        return [[tags[0]], "is", "in", "a", *value.split(), "."]
    return [[tags[0]], "is", "to", "the", value, "of", [tags[1]], "."]


def rationale_tokens(key: tuple, tags: tuple[int, ...]) -> list:
    kind, value = key
    if kind == "colour":
        return [
            "The",
            "whole",
            "surface",
            "of",
            [tags[0]],
            "shows",
            "the",
            "same",
            value,
            "colour",
            ".",
        ]
    if kind == "room":
        room, category = value
        return [[tags[1]], "is", "a", *category.split(), ",", "which", "is", "only", "found",
                "in", "a", *room.split(), "."]  # fmt: skip
    return [[tags[0]], "is", "nearer", "the", value, "edge", "of", "the", "picture", "than",
            [tags[1]], "."]  # fmt: skip


def view_items(view: QAView, rng: np.random.Generator) -> list[dict]:
    """``{"template", "question", "tags", "answer", "rationale"}`` (keys, not tokens yet)."""
    objs = view.objects
    counts = {c: sum(o.category == c for o in objs) for c in view.all_counts}
    single = [
        i for i, o in enumerate(objs) if counts[o.category] == 1 == view.all_counts[o.category]
    ]
    out = []
    if single:
        i = single[int(rng.integers(len(single)))]
        out.append(
            _item("colour", ["What", "color", "is", [i], "?"], (i,), objs[i].color, objs[i].color)
        )
    in_room = [i for i, o in enumerate(objs) if o.room_type == view.room_type]
    evidence = [i for i in in_room if objs[i].category in _distinctive(view.room_type)]
    if evidence:
        e = evidence[int(rng.integers(len(evidence)))]
        others = [i for i in in_room if i != e] or [e]
        i = others[int(rng.integers(len(others)))]
        question = ["What", "kind", "of", "room", "is", [i], "in", "?"]
        out.append(
            _item("room", question, (i, e), view.room_type, (view.room_type, objs[e].category))
        )
    pairs = [
        (a, b)
        for a in single
        for b in single
        if a != b and abs(_centre(objs[a]) - _centre(objs[b])) >= SIDE_MARGIN_PX
    ]
    if pairs:
        a, b = pairs[int(rng.integers(len(pairs)))]
        side = "left" if _centre(objs[a]) < _centre(objs[b]) else "right"
        question = ["Is", [a], "to", "the", "left", "or", "the", "right", "of", [b], "?"]
        out.append(_item("side", question, (a, b), side, side))
    return out


def _centre(obj) -> float:
    return 0.5 * (obj.box[0] + obj.box[2])


def _item(template: str, question: list, tags: tuple, answer, rationale) -> dict:
    return {
        "template": template,
        "question": question,
        "tags": tags,
        "answer": (template, answer),
        "rationale": (template, rationale),
    }


def _tags_for(key: tuple, item: dict, num_objects: int) -> tuple[int, ...] | None:
    """This item's tags for a borrowed choice of kind ``key[0]`` (None: too few objects)."""
    tags = list(item["tags"])
    for extra in range(num_objects):
        if len(tags) >= 2:
            break
        if extra not in tags:
            tags.append(extra)
    return tuple(tags) if key[0] == "colour" or len(tags) >= 2 else None


def choices(
    item: dict, pool: list[tuple], render, num_objects: int, right: tuple, rng: np.random.Generator
) -> tuple[list, int] | None:
    """Four token lists (the right one at a uniform position) and that position, or None
    when the pool cannot give three different wrong ones."""
    right_tokens = render(right, item["tags"])
    same = [k for k in pool if k[0] == right[0]]
    other = [k for k in pool if k[0] != right[0]]
    wrong: list[list] = []
    for group in (same, other):
        for index in rng.permutation(len(group)):
            if len(wrong) == NUM_CHOICES - 1:
                break
            tags = _tags_for(group[index], item, num_objects)
            if tags is None:
                continue
            tokens = render(group[index], tags)
            if tokens != right_tokens and tokens not in wrong:
                wrong.append(tokens)
    if len(wrong) < NUM_CHOICES - 1:
        return None
    label = int(rng.integers(NUM_CHOICES))
    wrong.insert(label, right_tokens)
    return wrong, label


def metadata(view: QAView, width: int, height: int) -> dict:
    """The image's metadata JSON (release layout)."""
    boxes = [[float(v) for v in o.box] + [1.0] for o in view.objects]
    segms = [[[[x0, y0], [x1, y0], [x1, y1], [x0, y1]]] for x0, y0, x1, y1, _ in boxes]
    return {"boxes": boxes, "segms": segms, "width": width, "height": height}
