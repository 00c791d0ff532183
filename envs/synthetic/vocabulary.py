"""What the synthetic world is made of: room types, object categories, colours, sizes.

One table for the house generator, the renderer, the language generator and the
scene-annotation consumers (captions, VQA / SNLI-VE / VCR data), so a word and the
thing it names are defined together.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Colour name -> sRGB (0..255). Object colours are drawn from this table.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (196, 40, 36),
    "orange": (230, 126, 34),
    "yellow": (236, 204, 40),
    "green": (46, 148, 64),
    "blue": (40, 84, 190),
    "purple": (128, 60, 160),
    "pink": (232, 128, 170),
    "brown": (120, 78, 44),
    "black": (28, 28, 30),
    "white": (236, 236, 232),
    "grey": (128, 128, 128),
}

#: Size words and the scale factor applied to an object's nominal dimensions.
SIZES: dict[str, float] = {"small": 0.75, "medium": 1.0, "large": 1.3}


@dataclass(frozen=True)
class ObjectKind:
    """A category of object: nominal size (metres) and where it stands."""

    name: str
    #: Nominal (width, depth, height) in metres at size "medium".
    dimensions: tuple[float, float, float]
    #: True when it stands against a wall (sofa, bookshelf), False when free-standing.
    against_wall: bool = False
    #: Height of its bottom above the floor (paintings, tvs hang on walls).
    elevation: float = 0.0
    #: Colours it may take (all of COLOURS when empty).
    colours: tuple[str, ...] = ()


OBJECTS: dict[str, ObjectKind] = {
    k.name: k
    for k in (
        ObjectKind("bed", (1.6, 2.0, 0.55), against_wall=True),
        ObjectKind("sofa", (2.0, 0.9, 0.85), against_wall=True),
        ObjectKind("armchair", (0.9, 0.9, 0.9)),
        ObjectKind("table", (1.4, 0.9, 0.75)),
        ObjectKind("chair", (0.5, 0.5, 0.95)),
        ObjectKind("desk", (1.3, 0.7, 0.75), against_wall=True),
        ObjectKind(
            "fridge", (0.8, 0.7, 1.8), against_wall=True, colours=("white", "grey", "black", "red")
        ),
        ObjectKind("stove", (0.8, 0.7, 0.9), against_wall=True, colours=("white", "grey", "black")),
        ObjectKind("counter", (1.8, 0.6, 0.9), against_wall=True),
        ObjectKind(
            "toilet", (0.45, 0.7, 0.8), against_wall=True, colours=("white", "grey", "black")
        ),
        ObjectKind("sink", (0.6, 0.5, 0.9), against_wall=True, colours=("white", "grey")),
        ObjectKind(
            "bathtub", (0.8, 1.7, 0.6), against_wall=True, colours=("white", "grey", "blue")
        ),
        ObjectKind("plant", (0.5, 0.5, 1.2), colours=("green",)),
        ObjectKind(
            "tv", (1.2, 0.12, 0.7), against_wall=True, elevation=0.9, colours=("black", "grey")
        ),
        ObjectKind("bookshelf", (1.0, 0.4, 1.9), against_wall=True),
        ObjectKind("lamp", (0.4, 0.4, 1.6)),
        ObjectKind("rug", (2.0, 1.4, 0.02)),
        ObjectKind("painting", (1.0, 0.06, 0.7), against_wall=True, elevation=1.2),
        ObjectKind(
            "washing machine", (0.6, 0.6, 0.85), against_wall=True, colours=("white", "grey")
        ),
        ObjectKind("wardrobe", (1.2, 0.6, 2.0), against_wall=True),
        ObjectKind("dresser", (1.0, 0.5, 0.9), against_wall=True),
    )
}


@dataclass(frozen=True)
class RoomKind:
    """A room type: its look and the objects it typically holds."""

    name: str
    #: Floor, wall and ceiling colours (sRGB): what makes room types look different.
    floor: tuple[int, int, int]
    wall: tuple[int, int, int]
    ceiling: tuple[int, int, int]
    #: Floor material name (words for captions).
    floor_material: str
    #: Objects it always has, and objects it may have.
    required: tuple[str, ...]
    optional: tuple[str, ...]
    #: (min, max) side length in metres.
    side: tuple[float, float] = (3.0, 5.5)


ROOMS: dict[str, RoomKind] = {
    k.name: k
    for k in (
        RoomKind(
            "bedroom",
            (150, 110, 80),
            (200, 190, 220),
            (240, 240, 240),
            "wooden",
            ("bed",),
            ("wardrobe", "dresser", "lamp", "rug", "painting", "plant", "chair"),
        ),
        RoomKind(
            "bathroom",
            (220, 225, 230),
            (150, 200, 210),
            (250, 250, 250),
            "tiled",
            ("toilet", "sink"),
            ("bathtub", "plant", "rug"),
            side=(2.2, 3.5),
        ),
        RoomKind(
            "kitchen",
            (200, 200, 190),
            (240, 230, 180),
            (250, 250, 245),
            "tiled",
            ("fridge", "stove"),
            ("counter", "table", "chair", "plant", "sink"),
        ),
        RoomKind(
            "living room",
            (140, 90, 60),
            (230, 215, 190),
            (245, 245, 240),
            "wooden",
            ("sofa",),
            ("armchair", "tv", "rug", "lamp", "plant", "bookshelf", "painting", "table"),
        ),
        RoomKind(
            "dining room",
            (110, 70, 50),
            (190, 120, 100),
            (240, 235, 230),
            "wooden",
            ("table", "chair"),
            ("chair", "painting", "plant", "lamp", "dresser"),
        ),
        RoomKind(
            "office",
            (90, 90, 100),
            (180, 200, 180),
            (240, 240, 240),
            "carpeted",
            ("desk", "chair"),
            ("bookshelf", "lamp", "plant", "painting", "armchair"),
        ),
        RoomKind(
            "hallway",
            (170, 150, 120),
            (210, 210, 200),
            (245, 245, 245),
            "wooden",
            (),
            ("painting", "plant", "rug", "lamp"),
            side=(1.8, 3.0),
        ),
        RoomKind(
            "laundry room",
            (180, 190, 200),
            (200, 230, 240),
            (250, 250, 250),
            "tiled",
            ("washing machine",),
            ("sink", "plant"),
            side=(2.2, 3.2),
        ),
        RoomKind(
            "stairs",
            (120, 120, 120),
            (170, 160, 150),
            (235, 235, 235),
            "stone",
            (),
            ("painting", "plant"),
            side=(2.0, 3.0),
        ),
    )
}

ROOM_TYPES: tuple[str, ...] = tuple(ROOMS)
OBJECT_CATEGORIES: tuple[str, ...] = tuple(OBJECTS)
COLOUR_NAMES: tuple[str, ...] = tuple(COLOURS)
SIZE_NAMES: tuple[str, ...] = tuple(SIZES)
