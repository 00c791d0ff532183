"""Words for the synthetic world's language: synonyms, noun phrases, articles, wall tones.

The tables here are the surface forms :mod:`envs.synthetic.language` draws from when it
writes navigation instructions and captions. Every synonym list starts with the word of
:mod:`envs.synthetic.vocabulary` itself (or its most common spelling), so a consumer can
check a mention by looking for any word of the list.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from envs.synthetic.scene_facts import footprint
from envs.synthetic.vocabulary import OBJECTS

#: Room type -> the names an instruction or caption may use for it.
ROOM_WORDS: dict[str, tuple[str, ...]] = {
    "bedroom": ("bedroom", "guest bedroom"),
    "bathroom": ("bathroom", "washroom", "restroom"),
    "kitchen": ("kitchen", "kitchen area"),
    "living room": ("living room", "lounge", "family room", "sitting room", "den"),
    "dining room": ("dining room", "dining area", "eating area"),
    "office": ("office", "study", "home office", "workroom"),
    "hallway": ("hallway", "hall", "corridor", "passage", "passageway"),
    "laundry room": ("laundry room", "laundry", "utility room"),
    "stairs": ("staircase", "stairwell", "stair hall", "landing"),
}

#: Object category -> the nouns that may name it.
OBJECT_WORDS: dict[str, tuple[str, ...]] = {
    "bed": ("bed",),
    "sofa": ("sofa", "couch", "settee"),
    "armchair": ("armchair", "easy chair", "lounge chair"),
    "table": ("table",),
    "chair": ("chair", "seat"),
    "desk": ("desk", "work desk", "writing desk"),
    "fridge": ("fridge", "refrigerator"),
    "stove": ("stove", "cooker", "oven"),
    "counter": ("counter", "kitchen counter", "countertop"),
    "toilet": ("toilet", "toilet bowl"),
    "sink": ("sink", "basin", "washbasin"),
    "bathtub": ("bathtub", "tub", "bath"),
    "plant": ("plant", "potted plant", "houseplant", "pot plant"),
    "tv": ("tv", "television", "tv screen", "flat screen"),
    "bookshelf": ("bookshelf", "bookcase", "shelf", "bookshelves"),
    "lamp": ("lamp", "floor lamp", "standing lamp"),
    "rug": ("rug", "carpet", "mat", "area rug"),
    "painting": ("painting", "picture", "framed picture", "artwork"),
    "washing machine": ("washing machine", "washer", "laundry machine"),
    "wardrobe": ("wardrobe", "closet", "cupboard", "armoire"),
    "dresser": ("dresser", "chest of drawers", "bureau"),
}

#: Colour name of the scene -> the words for it (the name itself first).
COLOUR_WORDS: dict[str, tuple[str, ...]] = {"grey": ("grey", "gray")}

#: Size word of the scene -> adjectives for it (none for the nominal size).
SIZE_WORDS: dict[str, tuple[str, ...]] = {
    "small": ("small", "little"),
    "medium": (),
    "large": ("large", "big"),
}

#: Floor material of the scene -> adjectives for the floor.
FLOOR_WORDS: dict[str, tuple[str, ...]] = {
    "wooden": ("wooden", "wood", "hardwood"),
    "tiled": ("tiled", "tile"),
    "carpeted": ("carpeted",),
    "stone": ("stone", "grey stone"),
}

#: Names for wall paint; a wall colour is named by its nearest tone (sRGB, 0..255).
WALL_TONES: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 242),
    "light grey": (208, 208, 200),
    "grey": (150, 150, 150),
    "beige": (230, 215, 190),
    "cream": (240, 230, 180),
    "lavender": (200, 190, 220),
    "light blue": (195, 225, 240),
    "teal": (150, 200, 210),
    "sage green": (180, 200, 180),
    "terracotta": (190, 120, 100),
    "taupe": (170, 160, 150),
    "pink": (235, 190, 200),
    "dark grey": (80, 80, 85),
}

#: A footprint closer than this (m) to a wall line stands against that wall.
WALL_GAP_M = 0.35
#: A footprint farther than this from every wall stands in the middle of the room.
MIDDLE_GAP_M = 1.0

_VOWEL_SOUNDS = ("a", "e", "i", "o", "u")
#: Words that start with a vowel letter but a consonant sound ("a utility room").
_CONSONANT_SOUND_PREFIXES = ("uti", "uni", "use")


def pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    """One of ``options``, drawn uniformly with ``rng``."""
    return options[int(rng.integers(len(options)))]


def chance(rng: np.random.Generator, probability: float) -> bool:
    """True with the given probability (one draw from ``rng``)."""
    return bool(rng.random() < probability)


def room_word(room_type: str, rng: np.random.Generator) -> str:
    """A name for a room type (the type itself when it has no synonyms)."""
    return pick(rng, ROOM_WORDS.get(room_type, (room_type,)))


def object_phrase(obj: dict, rng: np.random.Generator, size_probability: float = 0.4) -> str:
    """``"[size] colour noun"`` for a scene object, e.g. ``"large blue couch"``.

    The colour is always there; the size only for non-nominal sizes, and then with
    ``size_probability``.
    """
    noun = pick(rng, OBJECT_WORDS.get(obj["category"], (obj["category"],)))
    sizes = SIZE_WORDS.get(obj.get("size", "medium"), ())
    colour = pick(rng, COLOUR_WORDS.get(obj["color"], (obj["color"],)))
    words = [colour, noun]
    if sizes and chance(rng, size_probability):
        words.insert(0, pick(rng, sizes))
    return " ".join(words)


def object_place(obj: dict, room: dict) -> str | None:
    """Where an object stands in its room: "on the wall", "in the corner", "against the
    wall", "in the middle of the room", or None when none of these fits."""
    lo, hi = footprint(obj)
    xmin, ymin, xmax, ymax = (float(v) for v in room["bounds"])
    gaps = (lo[0] - xmin, xmax - hi[0], lo[1] - ymin, ymax - hi[1])
    near_x, near_y = min(gaps[:2]) < WALL_GAP_M, min(gaps[2:]) < WALL_GAP_M
    kind = OBJECTS.get(obj["category"])
    if kind is not None and kind.elevation > 0.0 and (near_x or near_y):
        return "on the wall"
    if near_x and near_y:
        return "in the corner"
    if near_x or near_y:
        return "against the wall"
    if min(gaps) > MIDDLE_GAP_M:
        return "in the middle of the room"
    return None


def room_look(room: dict, rng: np.random.Generator) -> str | None:
    """``"with lavender walls"`` or ``"with the tiled floor"`` (None without colours)."""
    options = []
    if "wall_color" in room:
        options.append(f"with {wall_tone(room['wall_color'])} walls")
    if "floor_material" in room:
        options.append(f"with the {floor_phrase(room['floor_material'], rng)} floor")
    return pick(rng, options) if options else None


def floor_phrase(material: str, rng: np.random.Generator) -> str:
    """An adjective for a floor material, e.g. ``"hardwood"``."""
    return pick(rng, FLOOR_WORDS.get(material, (material,)))


def with_article(phrase: str) -> str:
    """``"a blue bed"``, ``"an orange sofa"`` (by the first letter, good for this vocabulary)."""
    lower = phrase.lower()
    vowel = lower[:1] in _VOWEL_SOUNDS and not lower.startswith(_CONSONANT_SOUND_PREFIXES)
    return ("an " if vowel else "a ") + phrase


def join_list(items: Sequence[str]) -> str:
    """``"a, b and c"``."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def wall_tone(rgb: Sequence[float]) -> str:
    """The name of the wall tone nearest to ``rgb`` (Euclidean distance in sRGB)."""
    names = list(WALL_TONES)
    table = np.array([WALL_TONES[n] for n in names], dtype=float)  # [T, 3]
    gaps = np.linalg.norm(table - np.asarray(rgb, dtype=float)[None, :], axis=1)  # [T]
    return names[int(np.argmin(gaps))]
