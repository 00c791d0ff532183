"""MatterSim's cube-map convention: which skybox face, and which pixel, a world ray hits.

Matterport skyboxes are six square faces ``{viewpoint}_skybox{i}_sami.jpg``. With ``R`` the
3x3 rotation of the viewpoint's pose (connectivity file), face ``i`` looks along the world
direction ``FACE_DIRECTIONS[i]`` below (face 0 is the ceiling, 5 the floor, 1..4 run
clockwise seen from above). A world direction ``d`` is looked up in the cube at
``v = -R^T d``; MatterSim loads the faces as the OpenGL cube map
``+x=2, -x=4, +y=0, -y=5, +z=1, -z=3`` and OpenGL picks the face and texture coordinates
(s, t) from ``v`` with the table of the OpenGL specification (section "Cube Map Texture
Selection"); texture row 0 is the first image row. Both the view renderer
(:mod:`envs.views`) and the synthetic world's renderer use this module, so the
convention is written once.
"""

from __future__ import annotations

import numpy as np

NUM_FACES = 6
#: Face index of the ceiling (looks up) and of the floor (looks down).
FACE_UP, FACE_DOWN = 0, 5

#: Face index for each OpenGL cube-map target, keyed by (axis, sign) of ``v``.
#: axis 0 = x, 1 = y, 2 = z.
_FACE_OF_AXIS = {(0, +1): 2, (0, -1): 4, (1, +1): 0, (1, -1): 5, (2, +1): 1, (2, -1): 3}

# For each face: the cube-space axis and sign it looks along, and how (sc, tc) are
# formed from v (OpenGL spec table 8.19): sc = s_sign * v[s_axis], tc = t_sign * v[t_axis].
#                face: (major_axis, major_sign, s_axis, s_sign, t_axis, t_sign)
_FACE_TABLE = {
    2: (0, +1, 2, -1, 1, -1),  # +x
    4: (0, -1, 2, +1, 1, -1),  # -x
    0: (1, +1, 0, +1, 2, +1),  # +y
    5: (1, -1, 0, +1, 2, -1),  # -y
    1: (2, +1, 0, +1, 1, -1),  # +z
    3: (2, -1, 0, -1, 1, -1),  # -z
}


def face_directions(rotation: np.ndarray) -> np.ndarray:
    """[6, 3] world direction that the centre of each face looks along.

    ``f0 = -R[:,1]`` (up), ``f5 = +R[:,1]`` (down), ``f1 = -R[:,2]``, ``f2 = -R[:,0]``,
    ``f3 = +R[:,2]``, ``f4 = +R[:,0]``.
    """
    r = np.asarray(rotation, dtype=np.float64)
    return np.stack([-r[:, 1], -r[:, 2], -r[:, 0], r[:, 2], r[:, 0], r[:, 1]])


def lookup(
    directions: np.ndarray, rotation: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where world rays hit the cube.

    Args:
        directions: [..., 3] world ray directions (need not be unit length).
        rotation: [3, 3] the viewpoint pose's rotation.

    Returns:
        face [...] int (0..5), s [...] and t [...] float in [0, 1]: the texture coordinates
        in that face; column = s * size, row = t * size (texel centres at +0.5).
    """
    d = np.asarray(directions, dtype=np.float64)
    v = -d @ np.asarray(rotation, dtype=np.float64)  # [..., 3]: v = -R^T d, row-vector form
    absv = np.abs(v)
    major = np.argmax(absv, axis=-1)  # [...]: 0, 1 or 2
    sign = np.where(np.take_along_axis(v, major[..., None], -1)[..., 0] >= 0, 1, -1)
    face = np.empty(major.shape, dtype=np.int64)
    s = np.empty(major.shape, dtype=np.float64)
    t = np.empty(major.shape, dtype=np.float64)
    for (axis, axis_sign), f in _FACE_OF_AXIS.items():
        mask = (major == axis) & (sign == axis_sign)
        if not mask.any():
            continue
        _, _, s_axis, s_sign, t_axis, t_sign = _FACE_TABLE[f]
        vm = v[mask]
        ma = absv[mask][:, axis]
        face[mask] = f
        s[mask] = (s_sign * vm[:, s_axis] / ma + 1.0) * 0.5
        t[mask] = (t_sign * vm[:, t_axis] / ma + 1.0) * 0.5
    return face, s, t


def face_pixel_directions(face: int, size: int, rotation: np.ndarray) -> np.ndarray:
    """[size, size, 3] unit world direction through the centre of each pixel of a face.

    The inverse of :func:`lookup`: ``lookup(face_pixel_directions(f, n, R), R)`` gives
    face ``f`` and ``(s, t) = ((col + 0.5) / n, (row + 0.5) / n)``.
    """
    axis, axis_sign, s_axis, s_sign, t_axis, t_sign = _FACE_TABLE[face]
    centres = (np.arange(size, dtype=np.float64) + 0.5) / size * 2.0 - 1.0  # sc, tc in (-1, 1)
    tc, sc = np.meshgrid(centres, centres, indexing="ij")  # [size, size]: row -> tc, col -> sc
    v = np.empty((size, size, 3), dtype=np.float64)
    v[..., axis] = axis_sign
    v[..., s_axis] = s_sign * sc
    v[..., t_axis] = t_sign * tc
    d = -v @ np.asarray(rotation, dtype=np.float64).T  # d = -R v
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def upright_rotation(yaw: float) -> np.ndarray:
    """A Matterport-like camera rotation: upright (``-R[:,1]`` = world up), turned by ``yaw``.

    Real Matterport poses are close to this form with small tilts; the synthetic world
    uses it exactly. ``yaw`` rotates the skybox about the world z axis (radians,
    counter-clockwise seen from above).
    """
    c, s = np.cos(yaw), np.sin(yaw)
    yaw_matrix = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    base = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # columns e_x, -e_z, e_y
    return yaw_matrix @ base
