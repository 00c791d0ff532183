"""Floor plans of synthetic houses: rectangular rooms on both sides of a hallway.

A house is one floor. Room 0 is a hallway running along x; the other rooms sit in two
rows, above (+y) and below (-y) it, each with a door onto the hallway; neighbouring rooms
in a row sometimes share a door, and open-plan pairs (kitchen, dining and living room)
share a wide opening. Walls are thin boxes centred on the room boundaries, with the door
openings cut out and a lintel above each door. The plan is finally turned by a multiple
of 90 degrees and moved by a random offset, as Matterport's coordinates are arbitrary.

Coordinates are metres, z up, the floor at z = 0.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from envs.synthetic.vocabulary import ROOMS, RoomKind

WALL_THICKNESS = 0.1
#: Height of the top of an ordinary door, and of a wide open-plan opening.
DOOR_HEIGHT = 2.1
OPENING_HEIGHT = 2.3
#: (min, max) width of an ordinary door and of an open-plan opening.
DOOR_WIDTH = (0.9, 1.2)
OPENING_WIDTH = (1.6, 2.4)
#: (min, max) ceiling height of a house.
CEILING_HEIGHT = (2.5, 3.0)
#: Least distance between a door's edge and the corner of a room.
DOOR_CORNER_MARGIN = 0.4
#: Rooms every house has (when it has enough rooms), and where the others come from.
CORE_ROOMS = ("living room", "kitchen", "bedroom", "bathroom")
EXTRA_ROOMS = ("bedroom", "bedroom", "bathroom", "dining room", "office", "laundry room", "stairs")
#: Neighbouring room pairs that share a wide opening instead of a door.
OPEN_PLAN = frozenset(
    frozenset(pair)
    for pair in (
        ("kitchen", "dining room"),
        ("living room", "dining room"),
        ("living room", "kitchen"),
    )
)
#: Chance that other neighbouring rooms in a row share a door.
SIDE_DOOR_PROBABILITY = 0.3
#: Range of the random offset of the whole plan (metres).
PLAN_OFFSET = 8.0
HALLWAY = "hallway"
_COORD_DIGITS = 6


@dataclass(frozen=True)
class Room:
    """A rectangular room; ``bounds`` are the wall centre lines ``(xmin, ymin, xmax, ymax)``."""

    id: int
    type: str
    bounds: tuple[float, float, float, float]

    @property
    def kind(self) -> RoomKind:
        return ROOMS[self.type]

    @property
    def area(self) -> float:
        xmin, ymin, xmax, ymax = self.bounds
        return (xmax - xmin) * (ymax - ymin)

    @property
    def center(self) -> tuple[float, float]:
        xmin, ymin, xmax, ymax = self.bounds
        return (0.5 * (xmin + xmax), 0.5 * (ymin + ymax))


@dataclass(frozen=True)
class Door:
    """An opening in the wall between two rooms.

    ``axis`` is the axis the opening's width runs along, i.e. the direction of the wall
    it is cut into: a door with ``axis == "x"`` lies in a wall of constant y and is walked
    through along y.
    """

    id: int
    rooms: tuple[int, int]
    center: tuple[float, float]
    width: float
    axis: str
    height: float


@dataclass(frozen=True)
class Wall:
    """A wall run or a door lintel: the box ``(xmin, ymin, zmin, xmax, ymax, zmax)``."""

    bounds: tuple[float, float, float, float, float, float]
    lintel: bool = False


@dataclass(frozen=True)
class Floorplan:
    """Rooms, doors and walls of one house."""

    rooms: tuple[Room, ...]
    doors: tuple[Door, ...]
    walls: tuple[Wall, ...]
    ceiling_height: float

    def bounds(self) -> tuple[float, float, float, float]:
        """``(xmin, ymin, xmax, ymax)`` of the whole plan (wall centre lines)."""
        b = np.array([r.bounds for r in self.rooms])  # [R, 4]
        return (
            float(b[:, 0].min()),
            float(b[:, 1].min()),
            float(b[:, 2].max()),
            float(b[:, 3].max()),
        )


def choose_room_types(rng: np.random.Generator, count: int) -> list[str]:
    """``count`` room types (hallway excluded): the core rooms first, then random extras."""
    types = list(CORE_ROOMS[:count])
    while len(types) < count:
        types.append(EXTRA_ROOMS[rng.integers(len(EXTRA_ROOMS))])
    rng.shuffle(types)
    return types


def _room_rows(rng: np.random.Generator, types: list[str], hall_width: float) -> list[Room]:
    """The rooms of both rows (ids from 1), left to right, above and below the hallway."""
    split = len(types) // 2 + int(len(types) % 2 == 1 and rng.random() < 0.5)
    rooms: list[Room] = []
    for row, row_types in enumerate((types[:split], types[split:])):
        x = 0.0
        for name in row_types:
            lo, hi = ROOMS[name].side
            width, depth = rng.uniform(lo, hi), rng.uniform(lo, hi)
            ymin, ymax = (hall_width, hall_width + depth) if row == 0 else (-depth, 0.0)
            rooms.append(Room(len(rooms) + 1, name, (x, ymin, x + width, ymax)))
            x += width
    return rooms


def _hallway_doors(rng: np.random.Generator, rooms: list[Room], hall_width: float) -> list[Door]:
    """One door from every room onto the hallway (room 0)."""
    doors = []
    for room in rooms:
        xmin, ymin, xmax, _ = room.bounds
        width = rng.uniform(*DOOR_WIDTH)
        slack = max(0.0, (xmax - xmin) - width - 2 * DOOR_CORNER_MARGIN)
        cx = xmin + DOOR_CORNER_MARGIN + width / 2 + rng.uniform(0.0, slack)
        cy = hall_width if ymin >= hall_width else 0.0
        doors.append(Door(len(doors), (0, room.id), (cx, cy), width, "x", DOOR_HEIGHT))
    return doors


def _side_doors(rng: np.random.Generator, rooms: list[Room], first_id: int) -> list[Door]:
    """Doors (or open-plan openings) between neighbouring rooms of the same row."""
    doors = []
    for left, right in zip(rooms, rooms[1:], strict=False):
        if left.bounds[2] != right.bounds[0]:
            continue  # the last room of the upper row and the first of the lower one
        ymin = max(left.bounds[1], right.bounds[1])
        ymax = min(left.bounds[3], right.bounds[3])
        open_plan = frozenset((left.type, right.type)) in OPEN_PLAN
        if not open_plan and rng.random() >= SIDE_DOOR_PROBABILITY:
            continue
        lo, hi = OPENING_WIDTH if open_plan else DOOR_WIDTH
        width = min(rng.uniform(lo, hi), ymax - ymin - 2 * DOOR_CORNER_MARGIN)
        if width < DOOR_WIDTH[0]:
            continue
        slack = max(0.0, (ymax - ymin) - width - 2 * DOOR_CORNER_MARGIN)
        cy = ymin + DOOR_CORNER_MARGIN + width / 2 + rng.uniform(0.0, slack)
        height = OPENING_HEIGHT if open_plan else DOOR_HEIGHT
        doors.append(
            Door(
                first_id + len(doors), (left.id, right.id), (left.bounds[2], cy), width, "y", height
            )
        )
    return doors


def _subtract(
    intervals: list[tuple[float, float]], cut: tuple[float, float]
) -> list[tuple[float, float]]:
    """Remove the open interval ``cut`` from a list of intervals."""
    out = []
    for a, b in intervals:
        if cut[1] <= a or cut[0] >= b:
            out.append((a, b))
            continue
        if cut[0] > a:
            out.append((a, cut[0]))
        if cut[1] < b:
            out.append((cut[1], b))
    return out


def _union(intervals: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Merge overlapping or touching intervals."""
    merged: list[tuple[float, float]] = []
    for a, b in sorted(intervals):
        if merged and a <= merged[-1][1] + 1e-9:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def build_walls(rooms: list[Room], doors: list[Door], height: float) -> list[Wall]:
    """Wall boxes along every room boundary, doors cut out, lintels above the doors.

    Boundary lines are keyed by (axis, coordinate): ``"x"`` lines have constant y and run
    along x. Each merged run is lengthened by half a wall thickness at both ends so that
    corners close, then the door openings are removed from it.
    """
    lines: dict[tuple[str, float], list[tuple[float, float]]] = defaultdict(list)
    for room in rooms:
        xmin, ymin, xmax, ymax = room.bounds
        edges = (("x", ymin, xmin, xmax), ("x", ymax, xmin, xmax))
        edges += (("y", xmin, ymin, ymax), ("y", xmax, ymin, ymax))
        for axis, coord, a, b in edges:
            lines[(axis, round(coord, _COORD_DIGITS))].append((a, b))
    half = WALL_THICKNESS / 2
    walls = []
    for (axis, coord), runs in sorted(lines.items()):
        runs = [(a - half, b + half) for a, b in _union(runs)]
        for door in doors:
            along, across = (door.center[0], door.center[1]) if axis == "x" else door.center[::-1]
            if door.axis == axis and round(across, _COORD_DIGITS) == coord:
                cut = (along - door.width / 2, along + door.width / 2)
                runs = _subtract(runs, cut)
                walls.append(Wall(_wall_box(axis, coord, cut, door.height, height), lintel=True))
        walls.extend(Wall(_wall_box(axis, coord, run, 0.0, height)) for run in runs)
    return walls


def _wall_box(
    axis: str, coord: float, run: tuple[float, float], zmin: float, zmax: float
) -> tuple[float, float, float, float, float, float]:
    half = WALL_THICKNESS / 2
    if axis == "x":
        return (run[0], coord - half, zmin, run[1], coord + half, zmax)
    return (coord - half, run[0], zmin, coord + half, run[1], zmax)


def _transform(rooms: list[Room], doors: list[Door], swap: bool, offset: np.ndarray):
    """Swap x and y when ``swap`` (a mirror-turn of the plan), then move by ``offset``."""
    ox, oy = float(offset[0]), float(offset[1])

    def point(x: float, y: float) -> tuple[float, float]:
        return (y + ox, x + oy) if swap else (x + ox, y + oy)

    new_rooms = []
    for r in rooms:
        x0, y0 = point(r.bounds[0], r.bounds[1])
        x1, y1 = point(r.bounds[2], r.bounds[3])
        new_rooms.append(Room(r.id, r.type, (x0, y0, x1, y1)))
    flip = {"x": "y", "y": "x"}
    new_doors = [
        Door(d.id, d.rooms, point(*d.center), d.width, flip[d.axis] if swap else d.axis, d.height)
        for d in doors
    ]
    return new_rooms, new_doors


def generate_floorplan(rng: np.random.Generator, num_rooms: int) -> Floorplan:
    """A random single-floor plan with ``num_rooms`` rooms (hallway included, at least 3)."""
    types = choose_room_types(rng, num_rooms - 1)
    hall_width = rng.uniform(*ROOMS[HALLWAY].side)
    rooms = _room_rows(rng, types, hall_width)
    length = max(r.bounds[2] for r in rooms)
    hallway = Room(0, HALLWAY, (0.0, 0.0, length, hall_width))
    doors = _hallway_doors(rng, rooms, hall_width)
    doors += _side_doors(rng, rooms, first_id=len(doors))
    offset = rng.uniform(-PLAN_OFFSET, PLAN_OFFSET, size=2)
    all_rooms, doors = _transform([hallway, *rooms], doors, bool(rng.random() < 0.5), offset)
    ceiling = float(rng.uniform(*CEILING_HEIGHT))
    walls = build_walls(all_rooms, doors, ceiling)
    return Floorplan(tuple(all_rooms), tuple(doors), tuple(walls), ceiling)
