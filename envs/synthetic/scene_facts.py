"""Read-only lookups over a synthetic scene dict, and the plane geometry language needs.

A scene is the JSON the world writer stores at ``DIR/scenes/{scan}.json``::

    {"scan": str,
     "rooms": [{"id", "type", "bounds": [xmin, ymin, xmax, ymax], "floor_material",
                "floor_color", "wall_color"}],
     "doors": [{"id", "rooms": [a, b], "center": [x, y], "width", "axis"}],
     "objects": [{"id", "category", "color", "size", "room",
                  "bounds": [xmin, ymin, zmin, xmax, ymax, zmax]}],
     "viewpoints": [{"id", "room", "position": [x, y, z], "doorway",
                     "views": [{"view_index", "room", "objects": [{"id", "box", "pixels"}]}]}]}

Headings are radians clockwise from +y (heading 0 looks along +y, pi/2 along +x), as in
R2R, so a positive signed change of heading is a turn to the right.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envs.errors import DataError

#: A doorway viewpoint belongs to a door whose centre is at most this far (m).
DOOR_SNAP_M = 1.0
#: Points inside a step sampled to find the rooms it walks through.
STEP_SAMPLES = 9
#: Inside-margins equal to this many decimals (metres) count as ties.
MARGIN_DECIMALS = 3
#: Points sampled along a segment when measuring its distance to a box.
SEGMENT_SAMPLES = 21

_SCENE_KEYS = ("rooms", "doors", "objects", "viewpoints")


@dataclass(frozen=True)
class SceneFacts:
    """Index of a scene dict by id (the dicts themselves are shared, not copied)."""

    scan: str
    rooms: dict[int, dict]
    objects: dict[int, dict]
    viewpoints: dict[str, dict]
    #: The pairs of room ids that a door joins.
    door_pairs: frozenset[frozenset[int]]
    #: The door dicts.
    doors: tuple[dict, ...]

    @classmethod
    def from_scene(cls, scene: dict) -> SceneFacts:
        """Index ``scene``; raise :class:`DataError` when a required key is missing."""
        scan = str(scene.get("scan", "?")) if isinstance(scene, dict) else "?"
        source = scene_source(scan)
        if not isinstance(scene, dict):
            raise DataError(source, "scene must be a JSON object")
        missing = [k for k in _SCENE_KEYS if k not in scene]
        if missing:
            raise DataError(source, f"scene lacks keys {missing}")
        try:
            rooms = {int(r["id"]): r for r in scene["rooms"]}
            objects = {int(o["id"]): o for o in scene["objects"]}
            viewpoints = {str(v["id"]): v for v in scene["viewpoints"]}
            pairs = frozenset(frozenset(int(i) for i in d["rooms"]) for d in scene["doors"])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(source, f"malformed scene entry ({err!r})") from None
        return cls(scan, rooms, objects, viewpoints, pairs, tuple(scene["doors"]))

    @property
    def source(self) -> str:
        """The file this scene comes from, for error messages."""
        return scene_source(self.scan)

    def viewpoint(self, vp_id: str) -> dict:
        """The viewpoint dict of ``vp_id`` (DataError when the scene has none)."""
        try:
            return self.viewpoints[vp_id]
        except KeyError:
            raise DataError(self.source, f"unknown viewpoint {vp_id!r}") from None

    def room_of(self, vp_id: str) -> dict:
        """The room dict a viewpoint stands in."""
        room_id = int(self.viewpoint(vp_id)["room"])
        try:
            return self.rooms[room_id]
        except KeyError:
            raise DataError(
                self.source, f"viewpoint {vp_id!r} is in unknown room {room_id}"
            ) from None

    def xy(self, vp_id: str) -> np.ndarray:
        """Plan position ``[2]`` of a viewpoint."""
        return np.asarray(self.viewpoint(vp_id)["position"][:2], dtype=float)

    def view(self, vp_id: str, view_index: int) -> dict:
        """View ``view_index`` of a viewpoint (looked up by its ``view_index`` field)."""
        for view in self.viewpoint(vp_id).get("views", ()):
            if int(view["view_index"]) == view_index:
                return view
        raise DataError(self.source, f"viewpoint {vp_id!r} has no view {view_index}")

    def view_pixels(self, vp_id: str, view_indices: Sequence[int]) -> dict[int, int]:
        """Object id -> pixels summed over the given views of a viewpoint (visible ones only)."""
        wanted = set(view_indices)
        totals: dict[int, int] = {}
        for view in self.viewpoint(vp_id).get("views", ()):
            if int(view["view_index"]) in wanted:
                for seen in view.get("objects", ()):
                    oid = int(seen["id"])
                    totals[oid] = totals.get(oid, 0) + int(seen["pixels"])
        return totals

    def has_door(self, room_a: int, room_b: int) -> bool:
        """Whether a door joins the two rooms."""
        return frozenset((room_a, room_b)) in self.door_pairs

    def door_room(self, vp_id: str, room_id: int) -> dict | None:
        """The room behind the door nearest a doorway viewpoint, seen from ``room_id``."""
        xy = self.xy(vp_id)
        near = [
            d for d in self.doors if np.linalg.norm(np.asarray(d["center"][:2]) - xy) <= DOOR_SNAP_M
        ]
        if not near:
            return None
        door = min(near, key=lambda d: float(np.linalg.norm(np.asarray(d["center"][:2]) - xy)))
        others = [int(r) for r in door["rooms"] if int(r) != room_id]
        return self.rooms.get(others[0]) if others else None

    def rooms_between(self, vp_a: str, vp_b: str) -> list[int]:
        """Room ids walked through on the straight step ``vp_a -> vp_b``, in order.

        The step starts in ``vp_a``'s room and ends in ``vp_b``'s; in between, each of
        :data:`STEP_SAMPLES` points lies in the room that holds it deepest (ties go to a
        room with doors to both ends, the hallway when walking from door to door, then to
        the end rooms).
        """
        first, last = int(self.viewpoint(vp_a)["room"]), int(self.viewpoint(vp_b)["room"])
        src, dst = self.xy(vp_a), self.xy(vp_b)
        sequence = [first]
        for t in np.linspace(0.0, 1.0, STEP_SAMPLES + 2)[1:-1]:
            room = self._room_at(src + t * (dst - src), first, last)
            if room != sequence[-1]:
                sequence.append(room)
        if sequence[-1] != last:
            sequence.append(last)
        return sequence

    def _room_at(self, point: np.ndarray, first: int, last: int) -> int:
        """The room holding ``point`` deepest.

        Points on a wall line (doorway viewpoints stand in door openings) tie; a room with
        doors to both ends wins, then the rooms the step starts or ends in.
        """

        def key(room_id: int) -> tuple[float, bool, bool]:
            margin = round(inside_margin(self.rooms[room_id], point), MARGIN_DECIMALS)
            hub = self.has_door(first, room_id) and self.has_door(room_id, last)
            return margin, hub, room_id in (first, last)

        return max(self.rooms, key=key)


def scene_source(scan: str) -> str:
    """Where the writer stores the scene of ``scan`` (relative to the data root)."""
    return f"scenes/{scan}.json"


def heading_between(src: np.ndarray, dst: np.ndarray) -> float:
    """Heading in [0, 2 pi) of the direction ``src -> dst`` (clockwise from +y)."""
    dx, dy = dst - src
    return math.atan2(dx, dy) % (2.0 * math.pi)


def signed_turn(from_heading: float, to_heading: float) -> float:
    """Turn in [-pi, pi) from one heading to another: positive = right (clockwise)."""
    return (to_heading - from_heading + math.pi) % (2.0 * math.pi) - math.pi


def inside_margin(room: dict, point: np.ndarray) -> float:
    """Distance (m) from ``point`` to the nearest wall of ``room``; negative outside it."""
    xmin, ymin, xmax, ymax = (float(v) for v in room["bounds"])
    return min(point[0] - xmin, xmax - point[0], point[1] - ymin, ymax - point[1])


def footprint(obj: dict) -> tuple[np.ndarray, np.ndarray]:
    """Plan rectangle ``(lo [2], hi [2])`` of an object's 3-D bounds."""
    b = obj["bounds"]
    return np.asarray(b[0:2], dtype=float), np.asarray(b[3:5], dtype=float)


def footprint_centre(obj: dict) -> np.ndarray:
    """Plan centre ``[2]`` of an object."""
    lo, hi = footprint(obj)
    return 0.5 * (lo + hi)


def segment_box_distance(src: np.ndarray, dst: np.ndarray, obj: dict) -> float:
    """Distance (m) in plan between the segment ``src -> dst`` and an object's footprint."""
    lo, hi = footprint(obj)
    t = np.linspace(0.0, 1.0, SEGMENT_SAMPLES)[:, None]  # [S, 1]
    points = src[None, :] + t * (dst - src)[None, :]  # [S, 2]
    gap = np.maximum(np.maximum(lo[None, :] - points, points - hi[None, :]), 0.0)  # [S, 2]
    return float(np.min(np.hypot(gap[:, 0], gap[:, 1])))


def relative_side(src: np.ndarray, dst: np.ndarray, point: np.ndarray) -> tuple[float, float]:
    """``(along, lateral)`` of ``point`` in the frame of the walk ``src -> dst``.

    ``along`` is metres ahead of ``src`` along the walking direction; ``lateral`` is metres
    to the right of it (negative: to the left).
    """
    heading = heading_between(src, dst)
    forward = np.array([math.sin(heading), math.cos(heading)])  # [2]
    right = np.array([forward[1], -forward[0]])  # [2], heading + 90 degrees
    offset = point - src  # [2]
    return float(offset @ forward), float(offset @ right)
