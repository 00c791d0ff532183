"""What each of the 36 MatterSim views of a viewpoint shows: its room and visible objects.

The views are R2R's: 640 x 480 pixels, 60 degree vertical field of view, view ``i`` at
heading :func:`~envs.constants.view_heading` and elevation
:func:`~envs.constants.view_elevation` in world coordinates. Each view pixel's ray is
looked up in the viewpoint's cube map with :func:`envs.cubemap.lookup` (as the view
renderer does), here in per-pixel object and room buffers that the ray caster draws for
a world-aligned cube (so the lookup is computed once, not per viewpoint), on a grid
:data:`ANNOTATION_STRIDE` times coarser than the view. Occlusion is thus the renderer's
own. Boxes are ``[x0, y0, x1, y1]`` in view pixels (``x1``, ``y1`` exclusive),
``pixels`` the object's pixel count at full resolution.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from envs.constants import (
    NUM_VIEWS,
    R2R_IMAGE_HEIGHT,
    R2R_IMAGE_WIDTH,
    R2R_VFOV,
    view_elevation,
    view_heading,
)
from envs.cubemap import lookup, upright_rotation

#: View pixels per annotation cell along each axis (640 x 480 -> 160 x 120).
ANNOTATION_STRIDE = 4
#: Fewest annotation cells an object must cover to count as visible (16 view pixels each).
MIN_OBJECT_CELLS = 2


def view_ray_directions(
    view_index: int, width: int, height: int, vfov: float = R2R_VFOV
) -> np.ndarray:
    """[height, width, 3] unit world rays through the pixel centres of view ``view_index``.

    Heading is clockwise from +y, elevation up; image x runs to the right, y down.
    """
    heading, elevation = view_heading(view_index), view_elevation(view_index)
    ch, sh, ce, se = math.cos(heading), math.sin(heading), math.cos(elevation), math.sin(elevation)
    forward = np.array([sh * ce, ch * ce, se])
    right = np.array([ch, -sh, 0.0])
    up = np.array([-sh * se, -ch * se, ce])
    focal = 0.5 * height / math.tan(0.5 * vfov)
    xs = np.arange(width) + 0.5 - 0.5 * width  # [W]
    ys = 0.5 * height - (np.arange(height) + 0.5)  # [H]
    rays = focal * forward + xs[None, :, None] * right + ys[:, None, None] * up  # [H, W, 3]
    return rays / np.linalg.norm(rays, axis=-1, keepdims=True)


@functools.lru_cache(maxsize=2)
def view_cube_index(cube_size: int, stride: int = ANNOTATION_STRIDE) -> np.ndarray:
    """[36, H/stride, W/stride] flat index of each view cell into a world-aligned cube.

    The cube has rotation ``upright_rotation(0)`` (see
    :func:`envs.synthetic.render.render_id_cube`); each cell takes the texel its centre
    ray falls in, found with :func:`envs.cubemap.lookup`. Computed once per size.
    """
    width, height = R2R_IMAGE_WIDTH // stride, R2R_IMAGE_HEIGHT // stride
    rays = np.stack(
        [view_ray_directions(i, width, height) for i in range(NUM_VIEWS)]
    )  # [36, h, w, 3]
    face, s, t = lookup(rays.reshape(-1, 3), upright_rotation(0.0))
    col = np.minimum((s * cube_size).astype(np.int64), cube_size - 1)
    row = np.minimum((t * cube_size).astype(np.int64), cube_size - 1)
    return ((face * cube_size + row) * cube_size + col).reshape(rays.shape[:3])


def _dominant_rooms(rooms: np.ndarray) -> np.ndarray:
    """[36] the most frequent room id of each view (-1 when it shows no room)."""
    out = np.full(len(rooms), -1, dtype=np.int64)
    for v, view in enumerate(rooms.reshape(len(rooms), -1)):
        known = view[view >= 0]
        if len(known):
            out[v] = int(np.bincount(known).argmax())
    return out


def annotate_views(objects: np.ndarray, rooms: np.ndarray) -> list[dict]:
    """The scene file's ``views`` list of a viewpoint.

    ``objects`` and ``rooms`` are the [6, S, S] id buffers of its world-aligned cube
    (:func:`envs.synthetic.render.render_id_cube`).
    """
    index = view_cube_index(objects.shape[-1])  # [36, h, w]
    view_objects, view_rooms = objects.reshape(-1)[index], rooms.reshape(-1)[index]  # [36, h, w]
    dominant = _dominant_rooms(view_rooms)
    views = [{"view_index": i, "room": int(dominant[i]), "objects": []} for i in range(NUM_VIEWS)]
    v_idx, rows, cols = np.nonzero(view_objects >= 0)
    if not len(v_idx):
        return views
    ids = view_objects[v_idx, rows, cols]
    keys = v_idx.astype(np.int64) * (int(ids.max()) + 1) + ids  # one key per (view, object)
    order = np.argsort(keys, kind="stable")
    keys, rows, cols, v_idx, ids = keys[order], rows[order], cols[order], v_idx[order], ids[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    counts = np.diff(np.r_[starts, len(keys)])
    boxes = (
        np.stack(
            [
                np.minimum.reduceat(cols, starts),
                np.minimum.reduceat(rows, starts),
                np.maximum.reduceat(cols, starts) + 1,
                np.maximum.reduceat(rows, starts) + 1,
            ],
            axis=1,
        )
        * ANNOTATION_STRIDE
    )  # [K, 4] view pixels
    for k in np.flatnonzero(counts >= MIN_OBJECT_CELLS):
        views[int(v_idx[starts[k]])]["objects"].append(
            {
                "id": int(ids[starts[k]]),
                "box": [int(x) for x in boxes[k]],
                "pixels": int(counts[k]) * ANNOTATION_STRIDE**2,
            }
        )
    return views
