"""A house as arrays for the ray caster: boxes, cylinders, and a raster map of rooms.

Walls and lintels are boxes with object id -1 (their colour depends on the room whose
side is seen, looked up in :class:`RoomMap`); furniture parts carry their object id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.synthetic.furnish import Furniture
from envs.synthetic.layout import Floorplan
from envs.synthetic.parts import BOX, CYLINDER, object_parts
from envs.synthetic.vocabulary import ROOMS

#: Cell size of the room raster map (metres), and the margin around the plan.
ROOM_MAP_RESOLUTION = 0.05
ROOM_MAP_MARGIN = 0.5
NO_ROOM = -1
NO_OBJECT = -1
#: Floor materials in the order of their integer codes.
MATERIAL_CODES: tuple[str, ...] = ("wooden", "tiled", "carpeted", "stone")


@dataclass(frozen=True)
class RoomMap:
    """Which room each plan cell belongs to (``NO_ROOM`` outside the house)."""

    origin: tuple[float, float]
    resolution: float
    #: [NX, NY] int16 room ids.
    cells: np.ndarray

    @classmethod
    def from_plan(cls, plan: Floorplan) -> RoomMap:
        xmin, ymin, xmax, ymax = plan.bounds()
        origin = (xmin - ROOM_MAP_MARGIN, ymin - ROOM_MAP_MARGIN)
        nx = int(np.ceil((xmax - xmin + 2 * ROOM_MAP_MARGIN) / ROOM_MAP_RESOLUTION))
        ny = int(np.ceil((ymax - ymin + 2 * ROOM_MAP_MARGIN) / ROOM_MAP_RESOLUTION))
        xs = origin[0] + (np.arange(nx) + 0.5) * ROOM_MAP_RESOLUTION  # [NX] cell centres
        ys = origin[1] + (np.arange(ny) + 0.5) * ROOM_MAP_RESOLUTION  # [NY]
        cells = np.full((nx, ny), NO_ROOM, dtype=np.int16)
        for room in plan.rooms:
            rx0, ry0, rx1, ry1 = room.bounds
            in_x = (xs >= rx0) & (xs < rx1)
            in_y = (ys >= ry0) & (ys < ry1)
            cells[np.ix_(in_x, in_y)] = room.id
        return cls(origin, ROOM_MAP_RESOLUTION, cells)

    def lookup(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Room id at plan points (any matching shapes); ``NO_ROOM`` outside."""
        ix = np.floor((x - self.origin[0]) / self.resolution).astype(np.int64)
        iy = np.floor((y - self.origin[1]) / self.resolution).astype(np.int64)
        inside = (ix >= 0) & (ix < self.cells.shape[0]) & (iy >= 0) & (iy < self.cells.shape[1])
        out = np.full(np.shape(x), NO_ROOM, dtype=np.int16)
        out[inside] = self.cells[ix[inside], iy[inside]]
        return out


@dataclass(frozen=True)
class Solids:
    """Everything the ray caster draws, as float32 arrays indexed by primitive."""

    #: [P, 3] box corners; [P, 3] colours (sRGB, 0 for walls); [P] object ids (-1 walls).
    box_lo: np.ndarray
    box_hi: np.ndarray
    box_color: np.ndarray
    box_object: np.ndarray
    #: [P] bool: a wall run from floor to ceiling (drawn column by column on side faces).
    box_full_height: np.ndarray
    #: [P] 0 or 1: the plan axis (x or y) along which a box is longer (a wall's direction).
    box_long_axis: np.ndarray
    #: [C, 2] cylinder axis (x, y); [C] radius; [C, 2] (zmin, zmax); [C, 3] colour; [C] object.
    cyl_center: np.ndarray
    cyl_radius: np.ndarray
    cyl_z: np.ndarray
    cyl_color: np.ndarray
    cyl_object: np.ndarray
    #: Per room id: [R, 3] floor, wall and ceiling colours, [R] material code, [R, 2] centre.
    floor_color: np.ndarray
    wall_color: np.ndarray
    ceiling_color: np.ndarray
    material: np.ndarray
    room_center: np.ndarray
    #: [O] room id of each object id.
    object_room: np.ndarray
    room_map: RoomMap
    ceiling_height: float

    @property
    def num_boxes(self) -> int:
        return len(self.box_lo)


def _room_tables(plan: Floorplan) -> dict[str, np.ndarray]:
    count = max(r.id for r in plan.rooms) + 1
    tables = {
        "floor_color": np.zeros((count, 3), np.float32),
        "wall_color": np.zeros((count, 3), np.float32),
        "ceiling_color": np.zeros((count, 3), np.float32),
        "material": np.zeros(count, np.int64),
        "room_center": np.zeros((count, 2), np.float32),
    }
    for room in plan.rooms:
        kind = ROOMS[room.type]
        tables["floor_color"][room.id] = kind.floor
        tables["wall_color"][room.id] = kind.wall
        tables["ceiling_color"][room.id] = kind.ceiling
        tables["material"][room.id] = MATERIAL_CODES.index(kind.floor_material)
        tables["room_center"][room.id] = room.center
    return tables


def build_solids(plan: Floorplan, objects: tuple[Furniture, ...]) -> Solids:
    """The renderable geometry of a furnished plan."""
    boxes = [(w.bounds, (0.0, 0.0, 0.0), NO_OBJECT) for w in plan.walls]
    cylinders = []
    for obj in objects:
        for part in object_parts(obj):
            if part.shape == BOX:
                boxes.append((part.bounds, part.color, part.object_id))
            elif part.shape == CYLINDER:
                cylinders.append((part.bounds, part.color, part.object_id))
    box_bounds = np.array([b for b, _, _ in boxes], np.float32).reshape(-1, 6)
    cyl_bounds = np.array([b for b, _, _ in cylinders], np.float32).reshape(-1, 6)
    object_room = np.array([o.room for o in objects], np.int16)
    extent = box_bounds[:, 3:] - box_bounds[:, :3]  # [P, 3]
    full_height = np.zeros(len(boxes), dtype=bool)
    full_height[: len(plan.walls)] = [not w.lintel for w in plan.walls]
    return Solids(
        box_lo=box_bounds[:, :3],
        box_hi=box_bounds[:, 3:],
        box_color=np.array([c for _, c, _ in boxes], np.float32).reshape(-1, 3),
        box_object=np.array([i for _, _, i in boxes], np.int32),
        box_full_height=full_height,
        box_long_axis=np.where(extent[:, 0] >= extent[:, 1], 0, 1),
        cyl_center=0.5 * (cyl_bounds[:, 0:2] + cyl_bounds[:, 3:5]),
        cyl_radius=0.5
        * np.minimum(cyl_bounds[:, 3] - cyl_bounds[:, 0], cyl_bounds[:, 4] - cyl_bounds[:, 1]),
        cyl_z=cyl_bounds[:, [2, 5]],
        cyl_color=np.array([c for _, c, _ in cylinders], np.float32).reshape(-1, 3),
        cyl_object=np.array([i for _, _, i in cylinders], np.int32),
        object_room=object_room,
        room_map=RoomMap.from_plan(plan),
        ceiling_height=plan.ceiling_height,
        **_room_tables(plan),
    )
