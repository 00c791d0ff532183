"""Drawing a house onto the six skybox faces of a viewpoint (pure numpy).

:mod:`envs.synthetic.raycast` finds what each pixel's ray hits; here the hits are
coloured by room (floor with a per-material pattern, walls with door frames and skirting,
ceiling with a light panel) or by object part, and shaded with a Lambert model: ambient
light plus a key and a fill light, so that the sides of a box differ, and a slight
darkening with distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.cubemap import NUM_FACES, upright_rotation
from envs.synthetic.raycast import CEILING, FLOOR, PRIMITIVE, Hits, cast_face
from envs.synthetic.solids import NO_OBJECT, NO_ROOM, Solids
from envs.synthetic.textures import floor_pattern

#: Lighting: ambient term, key and fill lights (unit directions towards the light) and weights.
AMBIENT = 0.55
KEY_LIGHT = np.array([0.55, 0.25, 0.8]) / np.linalg.norm([0.55, 0.25, 0.8])
FILL_LIGHT = np.array([-0.3, -0.85, -0.43]) / np.linalg.norm([-0.3, -0.85, -0.43])
KEY_WEIGHT, FILL_WEIGHT = 0.4, 0.2
#: Brightness lost per metre of distance (a hint of depth), and the least factor.
DISTANCE_FALLOFF, MIN_DISTANCE_FACTOR = 0.015, 0.8
#: Colour of door frames and skirting boards, and the skirting height (m).
TRIM_COLOR = (238.0, 236.0, 230.0)
SKIRTING_HEIGHT = 0.08
#: Radius (m) and colour of the light panel at the centre of each ceiling.
LIGHT_PANEL_RADIUS = 0.3
LIGHT_PANEL_COLOR = (255.0, 253.0, 240.0)
#: Colour where a ray finds nothing known (never in a closed house).
VOID_COLOR = (128.0, 128.0, 128.0)


@dataclass(frozen=True)
class Skybox:
    """The six rendered faces of a viewpoint and what each pixel shows."""

    #: [6, S, S, 3] uint8 sRGB faces in Matterport's order.
    images: np.ndarray
    #: [6, S, S] int32 object id per pixel (-1: floor, wall or ceiling).
    objects: np.ndarray
    #: [6, S, S] int16 room id per pixel (the room of the surface seen).
    rooms: np.ndarray


def shading(normals: np.ndarray) -> np.ndarray:
    """[K] Lambert brightness of surfaces with unit ``normals`` [K, 3]."""
    key = np.maximum(normals @ KEY_LIGHT, 0.0)
    fill = np.maximum(normals @ FILL_LIGHT, 0.0)
    return AMBIENT + KEY_WEIGHT * key + FILL_WEIGHT * fill


def _wall_colors(solids: Solids, hits: Hits, wall: np.ndarray) -> np.ndarray:
    """[W, 3] colours of the wall hits ``wall`` [K] bool: the room's wall colour, or trim."""
    rooms, normals, points, prim = (
        hits.rooms[wall],
        hits.normals[wall],
        hits.points[wall],
        hits.prim[wall],
    )
    colors = np.where((rooms >= 0)[:, None], solids.wall_color[np.maximum(rooms, 0)], VOID_COLOR)
    long_axis = solids.box_long_axis[prim]  # [W]
    jamb = np.abs(normals[np.arange(len(prim)), long_axis]) > 0.5  # end face of a wall run
    trim = jamb | (normals[:, 2] < -0.5) | (points[:, 2] < SKIRTING_HEIGHT)
    return np.where(trim[:, None], TRIM_COLOR, colors)


def surface_colors(solids: Solids, hits: Hits) -> np.ndarray:
    """[K, 3] unshaded sRGB colour of every hit."""
    colors = np.empty_like(hits.points)
    r = np.maximum(hits.rooms, 0)
    floor = hits.kind == FLOOR
    pattern = floor_pattern(solids.material[r[floor]], hits.points[floor, 0], hits.points[floor, 1])
    colors[floor] = solids.floor_color[r[floor]] * pattern[:, None]
    ceiling = hits.kind == CEILING
    gap = np.linalg.norm(hits.points[ceiling, :2] - solids.room_center[r[ceiling]], axis=1)
    panel = (gap < LIGHT_PANEL_RADIUS)[:, None]
    colors[ceiling] = np.where(panel, LIGHT_PANEL_COLOR, solids.ceiling_color[r[ceiling]])
    colors[(hits.kind != PRIMITIVE) & (hits.rooms == NO_ROOM)] = VOID_COLOR
    on_object = hits.objects != NO_OBJECT
    colors[on_object] = np.concatenate([solids.box_color, solids.cyl_color])[hits.prim[on_object]]
    wall = (hits.kind == PRIMITIVE) & ~on_object
    colors[wall] = _wall_colors(solids, hits, wall)
    return colors


def render_face(solids: Solids, origin: np.ndarray, rotation: np.ndarray, face: int, size: int):
    """One face: ``(image [S, S, 3] uint8, objects [S, S] int32, rooms [S, S] int16)``."""
    hits = cast_face(solids, origin, rotation, face, size)
    light = shading(hits.normals) * np.maximum(1.0 - DISTANCE_FALLOFF * hits.t, MIN_DISTANCE_FACTOR)
    image = np.clip(surface_colors(solids, hits) * light[:, None] + 0.5, 0, 255).astype(np.uint8)
    return (
        image.reshape(size, size, 3),
        hits.objects.reshape(size, size),
        hits.rooms.reshape(size, size),
    )


def render_skybox(solids: Solids, pose: np.ndarray, size: int) -> Skybox:
    """The six faces of the viewpoint with 4 x 4 camera ``pose`` (Matterport's convention)."""
    pose = np.asarray(pose, dtype=np.float64)
    origin, rotation = pose[:3, 3], pose[:3, :3]
    faces = [render_face(solids, origin, rotation, f, size) for f in range(NUM_FACES)]
    return Skybox(
        images=np.stack([f[0] for f in faces]),
        objects=np.stack([f[1] for f in faces]),
        rooms=np.stack([f[2] for f in faces]),
    )


def render_id_cube(
    solids: Solids, position: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Object and room ids ``([6, S, S] int32, [6, S, S] int16)`` of a world-aligned cube.

    The cube has rotation ``upright_rotation(0)`` whatever the viewpoint's pose, so that
    the mapping from view pixels to cube texels is the same at every viewpoint.
    """
    rotation = upright_rotation(0.0)
    hits = [cast_face(solids, position, rotation, f, size, ids_only=True) for f in range(NUM_FACES)]
    return (
        np.stack([h.objects.reshape(size, size) for h in hits]),
        np.stack([h.rooms.reshape(size, size) for h in hits]),
    )
