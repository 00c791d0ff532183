"""The scene annotation file ``DIR/scenes/{scan}.json``: the ground truth of one house.

Captions, instructions, labels and the VQA / SNLI-VE / VCR data are all generated from
this dict (see :mod:`envs.synthetic.scene_facts` for its reader)::

    {"scan": str,
     "rooms": [{"id", "type", "bounds": [xmin, ymin, xmax, ymax], "floor_material",
                "floor_color": [r, g, b], "wall_color": [r, g, b]}],
     "doors": [{"id", "rooms": [a, b], "center": [x, y], "width", "axis": "x" | "y"}],
     "objects": [{"id", "category", "color", "size", "room",
                  "bounds": [xmin, ymin, zmin, xmax, ymax, zmax]}],
     "viewpoints": [{"id", "room", "position": [x, y, z], "doorway",
                     "views": [{"view_index", "room", "objects": [{"id", "box", "pixels"}]}]}]}

Room bounds are the wall centre lines; a door's ``axis`` is the direction its width runs
along (the wall it is cut into); a viewpoint's ``position`` is its camera position (the
pose's translation, z = camera height above the floor at z = 0); view boxes are pixels of
the 640 x 480 view (see :mod:`envs.synthetic.annotate`).
"""

from __future__ import annotations

import os
from pathlib import Path

from envs.synthetic.house import House

SCENES_DIR = "scenes"
#: Decimals kept for coordinates in the scene file (0.1 mm).
COORD_DECIMALS = 4


def scene_path(data_dir: str | os.PathLike[str], scan: str) -> Path:
    """Where the scene of ``scan`` lives in a data root."""
    return Path(data_dir) / SCENES_DIR / f"{scan}.json"


def _round(values) -> list[float]:
    return [round(float(v), COORD_DECIMALS) for v in values]


def scene_dict(house: House, views: list[list[dict]]) -> dict:
    """The scene file of ``house``; ``views[k]`` is the views list of viewpoint ``k``."""
    plan = house.plan
    return {
        "scan": house.scan,
        "rooms": [
            {
                "id": r.id,
                "type": r.type,
                "bounds": _round(r.bounds),
                "floor_material": r.kind.floor_material,
                "floor_color": list(r.kind.floor),
                "wall_color": list(r.kind.wall),
            }
            for r in plan.rooms
        ],
        "doors": [
            {
                "id": d.id,
                "rooms": list(d.rooms),
                "center": _round(d.center),
                "width": round(d.width, COORD_DECIMALS),
                "axis": d.axis,
            }
            for d in plan.doors
        ],
        "objects": [
            {
                "id": o.id,
                "category": o.category,
                "color": o.color,
                "size": o.size,
                "room": o.room,
                "bounds": _round(o.bounds),
            }
            for o in house.objects
        ],
        "viewpoints": [
            {
                "id": v.id,
                "room": v.room,
                "position": [float(x) for x in v.position],
                "doorway": v.doorway,
                "views": views[k],
            }
            for k, v in enumerate(house.viewpoints)
        ],
    }
