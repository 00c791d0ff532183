"""Furnishing a floor plan: typical objects per room type, placed without overlaps.

Each room gets the objects its :class:`~envs.synthetic.vocabulary.RoomKind` requires and a
few of its optional ones, each with a random size word and colour. Wall-standing objects
(beds, sofas, shelves, paintings) are put against a wall facing into the room; the others
stand free. Nothing blocks a doorway; a rug may lie under other objects, nothing else
overlaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.synthetic.layout import WALL_THICKNESS, Door, Floorplan, Room
from envs.synthetic.vocabulary import COLOUR_NAMES, OBJECTS, SIZE_NAMES, SIZES, ObjectKind

#: Probability of each size word, in SIZE_NAMES order (small, medium, large).
SIZE_WEIGHTS = (0.3, 0.45, 0.25)
#: Plan clearance kept between two objects, and between a free object and a wall.
OBJECT_CLEARANCE = 0.15
WALL_CLEARANCE = 0.25
#: Gap between a wall-standing object and the wall surface.
WALL_GAP = 0.02
#: Depth of the keep-clear zone on both sides of a door, and extra width beyond its edges.
DOOR_ZONE_DEPTH = 1.0
DOOR_ZONE_MARGIN = 0.15
#: Most optional objects per room, and placement attempts per object.
MAX_OPTIONAL = 4
PLACEMENT_ATTEMPTS = 40
RUG = "rug"
SMALL = "small"
#: Unit vectors of the four facing directions (into the room, away from the wall).
FACINGS = {"+x": (1.0, 0.0), "-x": (-1.0, 0.0), "+y": (0.0, 1.0), "-y": (0.0, -1.0)}

Box = tuple[float, float, float, float, float, float]


@dataclass(frozen=True)
class Furniture:
    """A placed object: what it is and the axis-aligned box it fills."""

    id: int
    category: str
    color: str
    size: str
    room: int
    bounds: Box
    #: Direction its front faces (``"+x"``, ``"-x"``, ``"+y"``, ``"-y"``): away from the
    #: wall for wall-standing objects, random for the others.
    facing: str

    @property
    def kind(self) -> ObjectKind:
        return OBJECTS[self.category]


def _box(center: tuple[float, float], facing: str, dims: np.ndarray, zmin: float) -> Box:
    """Box of an object of ``dims = (width, depth, height)`` centred at ``center``.

    Its width runs across the facing direction, its depth along it.
    """
    along_x = facing in ("+y", "-y")
    half_x, half_y = (dims[0] / 2, dims[1] / 2) if along_x else (dims[1] / 2, dims[0] / 2)
    cx, cy = center
    return (cx - half_x, cy - half_y, zmin, cx + half_x, cy + half_y, zmin + dims[2])


def _against_wall(
    rng: np.random.Generator, room: Room, dims: np.ndarray, zmin: float
) -> tuple[Box, str]:
    """A random spot along one of the room's walls, facing into the room."""
    xmin, ymin, xmax, ymax = room.bounds
    inner = WALL_THICKNESS / 2 + WALL_GAP
    facing = list(FACINGS)[rng.integers(len(FACINGS))]
    half_w, half_d = dims[0] / 2, dims[1] / 2
    if facing in ("+y", "-y"):
        cx = rng.uniform(xmin + inner + half_w, max(xmin + inner + half_w, xmax - inner - half_w))
        cy = ymin + inner + half_d if facing == "+y" else ymax - inner - half_d
    else:
        cy = rng.uniform(ymin + inner + half_w, max(ymin + inner + half_w, ymax - inner - half_w))
        cx = xmin + inner + half_d if facing == "+x" else xmax - inner - half_d
    return _box((cx, cy), facing, dims, zmin), facing


def _free_standing(
    rng: np.random.Generator, room: Room, dims: np.ndarray, zmin: float
) -> tuple[Box, str]:
    """A random spot inside the room, away from the walls, with a random facing."""
    xmin, ymin, xmax, ymax = room.bounds
    facing = list(FACINGS)[rng.integers(len(FACINGS))]
    margin = WALL_THICKNESS / 2 + WALL_CLEARANCE + max(dims[0], dims[1]) / 2
    cx = rng.uniform(xmin + margin, max(xmin + margin, xmax - margin))
    cy = rng.uniform(ymin + margin, max(ymin + margin, ymax - margin))
    return _box((cx, cy), facing, dims, zmin), facing


def _plan_overlap(a: Box, b: Box, clearance: float) -> bool:
    return (
        a[0] < b[3] + clearance
        and b[0] < a[3] + clearance
        and a[1] < b[4] + clearance
        and b[1] < a[4] + clearance
    )


def _fits(box: Box, category: str, room: Room, placed: list[Furniture], zones: list[Box]) -> bool:
    """Inside the room, clear of door zones and of other objects (rugs excepted)."""
    xmin, ymin, xmax, ymax = room.bounds
    inner = WALL_THICKNESS / 2
    if (
        box[0] < xmin + inner
        or box[1] < ymin + inner
        or box[3] > xmax - inner
        or box[4] > ymax - inner
    ):
        return False
    if any(_plan_overlap(box, zone, 0.0) for zone in zones):
        return False
    for other in placed:
        if (other.category == RUG) != (category == RUG):
            continue  # a rug lies under things
        vertical = box[2] < other.bounds[5] and other.bounds[2] < box[5]
        if vertical and _plan_overlap(box, other.bounds, OBJECT_CLEARANCE):
            return False
    return True


def door_zones(doors: tuple[Door, ...]) -> list[Box]:
    """Keep-clear boxes (full height) in front of and behind every door."""
    zones = []
    for door in doors:
        half = door.width / 2 + DOOR_ZONE_MARGIN
        cx, cy = door.center
        if door.axis == "x":
            zones.append(
                (cx - half, cy - DOOR_ZONE_DEPTH, 0.0, cx + half, cy + DOOR_ZONE_DEPTH, 9.0)
            )
        else:
            zones.append(
                (cx - DOOR_ZONE_DEPTH, cy - half, 0.0, cx + DOOR_ZONE_DEPTH, cy + half, 9.0)
            )
    return zones


def _room_categories(rng: np.random.Generator, room: Room) -> list[str]:
    kind = room.kind
    count = int(rng.integers(1, min(MAX_OPTIONAL, len(kind.optional)) + 1)) if kind.optional else 0
    optional = [kind.optional[i] for i in rng.choice(len(kind.optional), size=count, replace=False)]
    return [*kind.required, *optional]


def _attributes(rng: np.random.Generator, kind: ObjectKind) -> tuple[str, str, np.ndarray]:
    """Random (size word, colour name, scaled dimensions) of an object."""
    size = SIZE_NAMES[rng.choice(len(SIZE_NAMES), p=SIZE_WEIGHTS)]
    palette = kind.colours or COLOUR_NAMES
    colour = palette[rng.integers(len(palette))]
    return size, colour, np.asarray(kind.dimensions) * SIZES[size]


def furnish(rng: np.random.Generator, plan: Floorplan) -> tuple[Furniture, ...]:
    """Objects for every room of ``plan``; an object that finds no free spot is left out."""
    zones = door_zones(plan.doors)
    placed: list[Furniture] = []
    for room in plan.rooms:
        for category in _room_categories(rng, room):
            kind = OBJECTS[category]
            size, colour, dims = _attributes(rng, kind)
            place = _against_wall if kind.against_wall else _free_standing
            for attempt in range(PLACEMENT_ATTEMPTS):
                if attempt == PLACEMENT_ATTEMPTS // 2 and size != SMALL:
                    size, dims = SMALL, np.asarray(kind.dimensions) * SIZES[SMALL]  # retry smaller
                box, facing = place(rng, room, dims, kind.elevation)
                if _fits(box, category, room, placed, zones):
                    placed.append(
                        Furniture(len(placed), category, colour, size, room.id, box, facing)
                    )
                    break
    return tuple(placed)
