"""SNLI-VE pairs about synthetic views: a caption premise, a hypothesis, a gold label.

Two hypothesis templates, each with all three labels, so that the same hypothesis text
appears with different labels on different images:

* ``the {object} is {colour}.`` entailment: the view shows one object of that category
  and it has that colour; contradiction: it has another colour; neutral: the view shows
  no object of that category at all, so the image cannot settle its colour;
* ``the {object} is in a {room}.`` entailment: the view shows one object of that category,
  standing in the room the view shows, of that type; contradiction: of another type;
  neutral: the view shows no such object.

Colours, categories and rooms of the false and neutral hypotheses are drawn from the
split's own entailment hypotheses, and :func:`balance` keeps the three labels equal per
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


def view_pairs(
    view: QAView,
    rng: np.random.Generator,
    colours: list[str],
    rooms: list[str],
    categories: list[str],
) -> list[dict]:
    """``{"hypothesis", "label", "template"}`` for one view; ``colours``, ``rooms`` and
    ``categories`` are the split's pools (with repeats by frequency) for false and
    neutral hypotheses."""
    counts = Counter(o.category for o in view.objects)
    single = [o for o in view.objects if counts[o.category] == 1 == view.all_counts[o.category]]
    absent = [c for c in categories if c not in view.any_categories]
    out = []
    if single:
        obj = _pick(rng, single)
        if rng.random() < 0.5:
            out.append(_pair(COLOUR_TEMPLATE, obj.category, obj.color, "entailment"))
        else:
            other = [c for c in colours if c != obj.color]
            if other:
                out.append(_pair(COLOUR_TEMPLATE, obj.category, _pick(rng, other), "contradiction"))
        in_view_room = [o for o in single if o.room_type == view.room_type]
        if in_view_room:
            obj = _pick(rng, in_view_room)
            if rng.random() < 0.5:
                out.append(_pair(ROOM_TEMPLATE, obj.category, view.room_type, "entailment"))
            else:
                other = [r for r in rooms if r != view.room_type]
                if other:
                    out.append(
                        _pair(ROOM_TEMPLATE, obj.category, _pick(rng, other), "contradiction")
                    )
    if absent:
        out.append(_pair(COLOUR_TEMPLATE, _pick(rng, absent), _pick(rng, colours), "neutral"))
        out.append(_pair(ROOM_TEMPLATE, _pick(rng, absent), _pick(rng, rooms), "neutral"))
    return out


def _pair(template: str, category: str, value: str, label: str) -> dict:
    text = template.format(object=category, colour=value, room=value)
    return {"hypothesis": text, "label": label, "template": template}


def balance(items: list[dict], rng: np.random.Generator) -> list[dict]:
    """Keep, per template, equally many pairs of each label (the rarest label's count)."""
    groups: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, item in enumerate(items):
        groups[item["template"]][item["label"]].append(i)
    keep: set[int] = set()
    for by_label in groups.values():
        cap = min(len(by_label[label]) for label in LABEL_LETTER)
        for indices in by_label.values():
            keep.update(int(i) for i in rng.permutation(indices)[:cap])
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
