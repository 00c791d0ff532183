"""The layout of a synthetic house (``DIR/scenes/{scan}.json``), as a top-down map needs it.

The synthetic world writes one scenes file per house (rooms, doors and objects in metres)::

    {"scan": str,
     "rooms": [{"id": int, "type": str, "bounds": [xmin, ymin, xmax, ymax],
                "floor_color": [r, g, b], "wall_color": [r, g, b], ...}],
     "doors": [{"id": int, "rooms": [a, b], "center": [x, y], "width": float,
                "axis": "x" | "y"}],
     "objects": [{"id": int, "category": str, "color": str, "room": int,
                  "bounds": [xmin, ymin, zmin, xmax, ymax, zmax], ...}],
     "viewpoints": [...]}

Only the keys a map draws are read and checked (other keys are left to their readers);
viewpoint positions come from the connectivity file. Real Matterport scans have no scenes
file. Bad content raises :class:`~envs.errors.DataError` naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from envs.errors import DataError
from envs.fileio import read_json
from envs.synthetic.vocabulary import COLOURS

SCENES_DIR = "scenes"
#: Door axes: the direction along which the door opening spans.
DOOR_AXES = ("x", "y")
_RGB_SIZE = 3
_BOX_2D_SIZE = 4
_BOX_3D_SIZE = 6
_POINT_2D_SIZE = 2


@dataclass(frozen=True)
class SceneRoom:
    """A room: an axis-aligned rectangle ``(xmin, ymin, xmax, ymax)`` in metres."""

    id: int
    type: str
    bounds: tuple[float, float, float, float]
    #: sRGB 0..255.
    floor_color: tuple[int, int, int]
    wall_color: tuple[int, int, int]


@dataclass(frozen=True)
class SceneDoor:
    """A doorway of ``width`` metres centred on ``center``, spanning along ``axis``."""

    id: int
    rooms: tuple[int, int]
    center: tuple[float, float]
    width: float
    axis: str


@dataclass(frozen=True)
class SceneObject:
    """An object's footprint ``(xmin, ymin, xmax, ymax)`` and its colour name."""

    id: int
    category: str
    color: str
    footprint: tuple[float, float, float, float]


@dataclass(frozen=True)
class Scene:
    """The layout of a synthetic house, as far as a top-down map needs it."""

    scan: str
    rooms: tuple[SceneRoom, ...]
    doors: tuple[SceneDoor, ...]
    objects: tuple[SceneObject, ...]
    source: str = ""


def scene_path(data_dir: str | os.PathLike[str], scan: str) -> Path:
    """``DIR/scenes/{scan}.json``."""
    return Path(data_dir) / SCENES_DIR / f"{scan}.json"


def _numbers(value: object, size: int, what: str, source: str) -> tuple[float, ...]:
    if (
        not isinstance(value, list)
        or len(value) != size
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise DataError(source, f"{what} must be a list of {size} numbers")
    return tuple(float(v) for v in value)


def _require_key(item: object, key: str, what: str, source: str) -> object:
    """``item[key]``; :class:`DataError` when ``item`` is no JSON object or lacks ``key``."""
    if not isinstance(item, dict):
        raise DataError(source, f"{what} is not an object")
    if key not in item:
        raise DataError(source, f"{what} is missing key {key!r}")
    return item[key]


def _rgb(value: object, what: str, source: str) -> tuple[int, int, int]:
    r, g, b = (int(round(c)) for c in _numbers(value, _RGB_SIZE, what, source))
    return r, g, b


def _parse_room(item: object, i: int, source: str) -> SceneRoom:
    what = f"rooms[{i}]"
    xmin, ymin, xmax, ymax = _numbers(
        _require_key(item, "bounds", what, source), _BOX_2D_SIZE, f"{what}.bounds", source
    )
    return SceneRoom(
        id=int(_require_key(item, "id", what, source)),  # type: ignore[call-overload]
        type=str(_require_key(item, "type", what, source)),
        bounds=(xmin, ymin, xmax, ymax),
        floor_color=_rgb(
            _require_key(item, "floor_color", what, source), f"{what}.floor_color", source
        ),
        wall_color=_rgb(
            _require_key(item, "wall_color", what, source), f"{what}.wall_color", source
        ),
    )


def _parse_door(item: object, i: int, source: str) -> SceneDoor:
    what = f"doors[{i}]"
    axis = _require_key(item, "axis", what, source)
    if axis not in DOOR_AXES:
        raise DataError(source, f"{what}.axis must be 'x' or 'y', not {axis!r}")
    rooms = _numbers(_require_key(item, "rooms", what, source), 2, f"{what}.rooms", source)
    cx, cy = _numbers(
        _require_key(item, "center", what, source), _POINT_2D_SIZE, f"{what}.center", source
    )
    (width,) = _numbers([_require_key(item, "width", what, source)], 1, f"{what}.width", source)
    return SceneDoor(
        id=int(_require_key(item, "id", what, source)),  # type: ignore[call-overload]
        rooms=(int(rooms[0]), int(rooms[1])),
        center=(cx, cy),
        width=width,
        axis=str(axis),
    )


def _parse_object(item: object, i: int, source: str) -> SceneObject:
    what = f"objects[{i}]"
    color = _require_key(item, "color", what, source)
    if color not in COLOURS:
        raise DataError(source, f"{what}.color {color!r} is not a colour of the vocabulary")
    box = _numbers(
        _require_key(item, "bounds", what, source), _BOX_3D_SIZE, f"{what}.bounds", source
    )
    xmin, ymin, _, xmax, ymax, _ = box  # [xmin, ymin, zmin, xmax, ymax, zmax]
    return SceneObject(
        id=int(_require_key(item, "id", what, source)),  # type: ignore[call-overload]
        category=str(_require_key(item, "category", what, source)),
        color=str(color),
        footprint=(xmin, ymin, xmax, ymax),
    )


def parse_scene(data: object, scan: str, source: str) -> Scene:
    """Validate the decoded JSON of a scenes file and keep what a map draws."""
    if not isinstance(data, dict):
        raise DataError(source, "expected a JSON object")
    parsed = {}
    for key in ("rooms", "doors", "objects"):
        items = data.get(key, [])
        if not isinstance(items, list):
            raise DataError(source, f"{key!r} must be a list")
        parsed[key] = items
    try:
        return Scene(
            scan=str(data.get("scan", scan)),
            rooms=tuple(_parse_room(r, i, source) for i, r in enumerate(parsed["rooms"])),
            doors=tuple(_parse_door(d, i, source) for i, d in enumerate(parsed["doors"])),
            objects=tuple(_parse_object(o, i, source) for i, o in enumerate(parsed["objects"])),
            source=source,
        )
    except DataError:
        raise
    except (TypeError, ValueError) as err:
        raise DataError(source, f"an id is not an integer ({err})") from None


def load_scene(data_dir: str | os.PathLike[str], scan: str) -> Scene | None:
    """The scene layout of ``scan``, or ``None`` when the data root has none (real scans)."""
    path = scene_path(data_dir, scan)
    if not path.exists():
        return None
    return parse_scene(read_json(path), scan, str(path))
