"""Words for the synthetic world's language: synonyms, noun phrases, articles, wall tones.

The tables here are the surface forms :mod:`envs.synthetic.language` draws from when it
writes navigation instructions and captions. Every synonym list starts with the word of
:mod:`envs.synthetic.vocabulary` itself (or its most common spelling), so a consumer can
check a mention by looking for any word of the list.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Room type -> the names an instruction or caption may use for it.
ROOM_WORDS: dict[str, tuple[str, ...]] = {
    "bedroom": ("bedroom",),
    "bathroom": ("bathroom", "washroom"),
    "kitchen": ("kitchen",),
    "living room": ("living room", "lounge", "family room"),
    "dining room": ("dining room", "dining area"),
    "office": ("office", "study"),
    "hallway": ("hallway", "hall", "corridor"),
    "laundry room": ("laundry room", "laundry", "utility room"),
    "stairs": ("staircase", "stairwell", "stair hall"),
}

#: Object category -> the nouns that may name it.
OBJECT_WORDS: dict[str, tuple[str, ...]] = {
    "bed": ("bed",),
    "sofa": ("sofa", "couch"),
    "armchair": ("armchair", "easy chair"),
    "table": ("table",),
    "chair": ("chair",),
    "desk": ("desk", "work desk"),
    "fridge": ("fridge", "refrigerator"),
    "stove": ("stove", "cooker", "oven"),
    "counter": ("counter", "kitchen counter", "countertop"),
    "toilet": ("toilet",),
    "sink": ("sink", "basin"),
    "bathtub": ("bathtub", "tub", "bath"),
    "plant": ("plant", "potted plant", "houseplant"),
    "tv": ("tv", "television", "tv screen"),
    "bookshelf": ("bookshelf", "bookcase", "shelf"),
    "lamp": ("lamp", "floor lamp", "standing lamp"),
    "rug": ("rug", "carpet", "mat"),
    "painting": ("painting", "picture", "framed picture"),
    "washing machine": ("washing machine", "washer"),
    "wardrobe": ("wardrobe", "closet", "cupboard"),
    "dresser": ("dresser", "chest of drawers"),
}

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
    words = [obj["color"], noun]
    if sizes and chance(rng, size_probability):
        words.insert(0, pick(rng, sizes))
    return " ".join(words)


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
