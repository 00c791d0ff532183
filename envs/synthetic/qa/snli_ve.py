"""SNLI-VE pairs about synthetic views: a caption premise, a hypothesis, a gold label.

Two hypothesis templates, each with all three labels, so that the same hypothesis text
appears with different labels on different images:

* ``the {object} is {colour}.`` entailment: the view shows one object of that category
  and it has that colour; contradiction: it has another colour; neutral: the view shows
  no object of that category at all, so the image cannot settle its colour;
* ``the {object} is in a {room}.`` entailment: the view shows one object of that category,
  standing in the room the view shows, of that type; contradiction: of another type;
  neutral: the view shows no such object.

The texts of false and neutral hypotheses are drawn from pairs true elsewhere in the split
(:func:`split_pools`: a contradiction keeps the object and takes a value the split pairs
with it elsewhere), and :func:`balance` keeps the three labels equal per
template, so a hypothesis-only baseline stays near chance.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from envs.synthetic.qa.views import QAView

LABEL_LETTER = {"entailment": "e", "neutral": "n", "contradiction": "c"}
COLOUR_TEMPLATE = "the {object} is {colour}."
ROOM_TEMPLATE = "the {object} is in a {room}."


def _pick(rng: np.random.Generator, options: list) -> object:
    return options[int(rng.integers(len(options)))]


def split_pools(views: list[QAView]) -> dict[str, list[tuple[str, str]]]:
    """Template -> the ``(category, value)`` pairs true of some view of the split (with
    repeats by frequency): the texts false and neutral hypotheses are drawn from, so that
    each text is as likely under every label."""
    colour, room = [], []
    for view in views:
        colour += [(o.category, o.color) for o in view.objects]
        room += [(o.category, o.room_type) for o in view.objects if o.room_type == view.room_type]
    return {COLOUR_TEMPLATE: sorted(colour), ROOM_TEMPLATE: sorted(room)}


def _false_value(pool: list[tuple[str, str]], category: str, truth: str, rng) -> str | None:
    """A value other than ``truth``, as the pool pairs it with ``category`` (else any)."""
    same = [v for c, v in pool if c == category and v != truth]
    other = same or [v for _, v in pool if v != truth]
    return _pick(rng, other) if other else None


def view_pairs(
    view: QAView, rng: np.random.Generator, pools: dict[str, list[tuple[str, str]]]
) -> list[dict]:
    """``{"hypothesis", "label", "template"}`` for one view (``pools``: :func:`split_pools`)."""
    counts = Counter(o.category for o in view.objects)
    single = [o for o in view.objects if counts[o.category] == 1 == view.all_counts[o.category]]
    in_room = [o for o in single if o.room_type == view.room_type]
    out = []
    for template, objects in ((COLOUR_TEMPLATE, single), (ROOM_TEMPLATE, in_room)):
        pool = pools[template]
        if objects:
            obj = _pick(rng, objects)
            truth = obj.color if template == COLOUR_TEMPLATE else view.room_type
            if rng.random() < 0.5:
                out.append(_pair(template, obj.category, truth, "entailment"))
            elif (value := _false_value(pool, obj.category, truth, rng)) is not None:
                out.append(_pair(template, obj.category, value, "contradiction"))
        absent = [(c, v) for c, v in pool if c not in view.any_categories]
        if absent:
            out.append(_pair(template, *_pick(rng, absent), "neutral"))
    return out


def _pair(template: str, category: str, value: str, label: str) -> dict:
    text = template.format(object=category, colour=value, room=value)
    return {"hypothesis": text, "label": label, "template": template}


def _cap(groups: dict[str, dict[str, list[int]]], cap, rng) -> set[int]:
    keep: set[int] = set()
    for by_label in groups.values():
        limit = cap(sorted(len(v) for v in by_label.values()))
        for indices in by_label.values():
            keep.update(int(i) for i in rng.permutation(indices)[:limit])
    return keep


def _groups(items: list[dict], key: str) -> dict[str, dict[str, list[int]]]:
    groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, item in enumerate(items):
        groups[item[key]][item["label"]].append(i)
    return groups


def balance(items: list[dict], rng: np.random.Generator) -> list[dict]:
    """Two passes: per hypothesis text, no label more than one above the text's
    second most frequent label (a text seen with one label only keeps one pair); then,
    per template, equally many pairs of each label (the rarest label's count)."""
    keep = _cap(_groups(items, "hypothesis"), lambda n: 1 + (n[-2] if len(n) > 1 else 0), rng)
    items = [item for i, item in enumerate(items) if i in keep]
    groups = _groups(items, "template")
    for by_label in groups.values():
        for label in LABEL_LETTER:
            by_label.setdefault(label, [])
    keep = _cap(groups, lambda n: n[0], rng)
    return [item for i, item in enumerate(items) if i in keep]


def record(item: dict, image_id: int, number: int) -> dict:
    """One released-format line (fields in the order of ``snli_ve_*.jsonl``)."""
    name = f"{image_id}.jpg"
    return {
        "Flikr30kID": name,
        "captionID": f"{name}#0",
        "gold_label": item["label"],
        "pairID": f"{name}#0r{number}{LABEL_LETTER[item['label']]}",
        "sentence1": item["premise"],
        "sentence2": item["hypothesis"],
    }
