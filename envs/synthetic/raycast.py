"""Ray casting a house onto cube-map faces: which surface each pixel's ray hits first.

Each face is cast with the rays :func:`envs.cubemap.face_pixel_directions` gives for its
pixels, so faces follow MatterSim's cube-map convention exactly. A ray hits the floor
(z = 0), the ceiling, or the nearest box or vertical cylinder of
:class:`~envs.synthetic.solids.Solids`. To keep this fast in numpy, each solid is tested
only on the pixel rectangle its (near-clipped) corners project to, and floor-to-ceiling
walls on side faces (whose pixel columns are vertical) are cast once per column in plan.
:func:`cast_face` returns the hits with their normals, object ids and rooms; colouring is
:mod:`envs.synthetic.render`'s job.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from envs.cubemap import face_pixel_directions
from envs.synthetic.solids import NO_OBJECT, Solids

#: Depth (m) in front of a face's plane where solids are clipped; every surface a viewpoint
#: sees is farther (viewpoints stay >= 0.3 m from walls and objects).
NEAR_DEPTH = 0.05
#: How far off a wall surface (m) its room is looked up.
WALL_PROBE = 0.06
_EPS = 1e-6
#: Surface kinds of a hit.
FLOOR, CEILING, PRIMITIVE = 0, 1, 2


@dataclass(frozen=True)
class Hits:
    """What the rays of one face hit, flattened to K = S * S pixels in row-major order."""

    #: [K] FLOOR, CEILING or PRIMITIVE.
    kind: np.ndarray
    #: [K] primitive index (boxes first, then cylinders; -1 for floor and ceiling).
    prim: np.ndarray
    #: [K] distance along the unit ray; [K, 3] hit points; [K, 3] outward unit normals.
    t: np.ndarray
    points: np.ndarray
    normals: np.ndarray
    #: [K] object id (-1: floor, wall or ceiling) and room id of the surface seen.
    objects: np.ndarray
    rooms: np.ndarray


@functools.lru_cache(maxsize=16)
def _face_directions(face: int, size: int, rotation: tuple[tuple[float, ...], ...]) -> np.ndarray:
    """[S, S, 3] float32 pixel rays of a face (cached: the id cube reuses one rotation)."""
    dirs = face_pixel_directions(face, size, np.array(rotation)).astype(np.float32)
    dirs.flags.writeable = False
    return dirs


def face_basis(face: int, rotation: np.ndarray) -> np.ndarray:
    """[3, 3] orthonormal ``A`` with pixel rays ``d ~ A @ (sc, tc, 1)``, sc, tc in [-1, 1].

    ``sc`` grows with the column and ``tc`` with the row; recovered from
    :func:`face_pixel_directions` on a 2 x 2 face, whose rays are ``A @ (+-0.5, +-0.5, 1)``
    normalized by ``sqrt(1.5)``.
    """
    d = face_pixel_directions(face, 2, rotation) * np.sqrt(1.5)  # [2, 2, 3]
    return np.stack([d[0, 1] - d[0, 0], d[1, 0] - d[0, 0], 0.5 * (d[0, 0] + d[1, 1])], axis=1)


#: Corner index pairs of the 12 edges of a box (corner i has bit 0/1/2 set for hi x/y/z).
_BOX_EDGES = np.array([(i, i | bit) for i in range(8) for bit in (1, 2, 4) if not i & bit])


def _pixel_rects(
    lo: np.ndarray, hi: np.ndarray, origin: np.ndarray, basis: np.ndarray, size: int
) -> np.ndarray:
    """[P, 4] (row0, row1, col0, col1) pixel rectangles bounding boxes ``[lo, hi]`` on a face.

    The box is first clipped to the half-space at least :data:`NEAR_DEPTH` in front of the
    camera (no surface is nearer: viewpoints keep their distance from walls and objects),
    so boxes behind the face get an empty rectangle and boxes beside it a tight one.
    """
    bits = np.array([[i & 1, i & 2, i & 4] for i in range(8)]) > 0  # [8, 3]
    corners = np.where(bits[None], hi[:, None], lo[:, None])  # [P, 8, 3]
    q = (corners - origin) @ basis  # [P, 8, 3]: (sc * depth, tc * depth, depth)
    qa, qb = q[:, _BOX_EDGES[:, 0]], q[:, _BOX_EDGES[:, 1]]  # [P, 12, 3]
    da, db = qa[..., 2] - NEAR_DEPTH, qb[..., 2] - NEAR_DEPTH
    crosses = da * db < 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        cut = qa + (da / (da - db))[..., None] * (qb - qa)  # [P, 12, 3], depth NEAR_DEPTH
    points = np.concatenate([q, cut], axis=1)  # [P, 20, 3]
    valid = np.concatenate([q[..., 2] >= NEAR_DEPTH, crosses], axis=1)  # [P, 20]
    with np.errstate(divide="ignore", invalid="ignore"):
        sc = points[..., 0] / points[..., 2]
        tc = points[..., 1] / points[..., 2]
    bounds = []
    for v in (tc, sc):
        pixel_lo = np.where(valid, v, np.inf).min(axis=1)
        pixel_hi = np.where(valid, v, -np.inf).max(axis=1)
        bounds += [
            np.ceil((pixel_lo + 1.0) * 0.5 * size - 0.5),
            np.floor((pixel_hi + 1.0) * 0.5 * size - 0.5) + 1,
        ]
    return np.clip(np.stack(bounds, axis=1), 0, size).astype(np.int64)


def _cast_boxes(solids: Solids, which: np.ndarray, origin, inv, rects, t_best, prim) -> None:
    """Update nearest hit distance ``t_best`` [S, S] and primitive ``prim`` with boxes ``which``."""
    lo_rel = solids.box_lo - origin  # [P, 3]
    hi_rel = solids.box_hi - origin
    inv_x, inv_y, inv_z = inv[..., 0], inv[..., 1], inv[..., 2]  # [S, S] each
    nonempty = (rects[:, 1] > rects[:, 0]) & (rects[:, 3] > rects[:, 2])
    for p in np.flatnonzero(nonempty & which):
        r0, r1, c0, c1 = rects[p]
        ix, iy, iz = inv_x[r0:r1, c0:c1], inv_y[r0:r1, c0:c1], inv_z[r0:r1, c0:c1]  # [h, w]
        (lx, ly, lz), (hx, hy, hz) = lo_rel[p], hi_rel[p]
        tx1, tx2, ty1, ty2, tz1, tz2 = lx * ix, hx * ix, ly * iy, hy * iy, lz * iz, hz * iz
        t_near = np.maximum(
            np.maximum(np.minimum(tx1, tx2), np.minimum(ty1, ty2)), np.minimum(tz1, tz2)
        )
        t_far = np.minimum(
            np.minimum(np.maximum(tx1, tx2), np.maximum(ty1, ty2)), np.maximum(tz1, tz2)
        )
        best = t_best[r0:r1, c0:c1]
        hit = (t_near <= t_far) & (t_near > 0.0) & (t_near < best)
        best[hit] = t_near[hit]
        prim[r0:r1, c0:c1][hit] = p


def _vertical_columns(basis: np.ndarray) -> bool:
    """Whether the face's pixel columns are vertical lines (side faces of an upright pose)."""
    return abs(basis[2, 1]) > 1.0 - 1e-5 and abs(basis[2, 0]) < 1e-5 and abs(basis[2, 2]) < 1e-5


def _cast_wall_columns(
    solids: Solids, which: np.ndarray, origin, basis, size, t_best, prim
) -> None:
    """Floor-to-ceiling walls on a face with vertical columns, one 2-D cast per column.

    Every pixel of a column looks along the same plan direction ``h`` [2], so the nearest
    wall in plan, at ray parameter ``s`` along ``h``, is shared by the column; a pixel's
    ray ``A @ (sc, tc, 1)`` (length ``sqrt(sc^2 + tc^2 + 1)``) reaches it at distance
    ``s * sqrt(sc^2 + tc^2 + 1)``; the floor or ceiling is nearer where the wall is not seen.
    """
    walls = np.flatnonzero(which)
    coords = (np.arange(size) + 0.5) / size * 2.0 - 1.0  # [S] sc of each column, tc of each row
    h = coords[:, None] * basis[:2, 0] + basis[:2, 2]  # [S, 2]
    with np.errstate(divide="ignore"):
        inv = 1.0 / np.where(h == 0.0, 1e-12, h)  # [S, 2]
    t1 = (solids.box_lo[walls, None, :2] - origin[:2]) * inv  # [W, S, 2]
    t2 = (solids.box_hi[walls, None, :2] - origin[:2]) * inv
    t_near = np.minimum(t1, t2).max(axis=2)  # [W, S]
    t_far = np.maximum(t1, t2).min(axis=2)
    s = np.where((t_near <= t_far) & (t_near > 0.0), t_near, np.inf)
    nearest = np.argmin(s, axis=0)  # [S]
    s_hit = s[nearest, np.arange(size)]  # [S]
    t_wall = s_hit[None, :] * np.sqrt(coords[None, :] ** 2 + coords[:, None] ** 2 + 1.0)  # [S, S]
    hit = t_wall < t_best
    t_best[hit] = t_wall[hit]
    prim[hit] = np.broadcast_to(walls[nearest][None, :], (size, size))[hit]


def _cast_cylinders(solids: Solids, origin, dirs, rects, t_best, prim) -> None:
    """Update ``t_best`` and ``prim`` with the vertical cylinders (primitive index P + c)."""
    for c in np.flatnonzero((rects[:, 1] > rects[:, 0]) & (rects[:, 3] > rects[:, 2])):
        r0, r1, c0, c1 = rects[c]
        d = dirs[r0:r1, c0:c1]  # [h, w, 3]
        px, py = origin[0] - solids.cyl_center[c, 0], origin[1] - solids.cyl_center[c, 1]
        radius, (z0, z1) = solids.cyl_radius[c], solids.cyl_z[c]
        a = d[..., 0] ** 2 + d[..., 1] ** 2  # [h, w]
        b = 2.0 * (px * d[..., 0] + py * d[..., 1])
        disc = b * b - 4.0 * a * (px * px + py * py - radius * radius)
        with np.errstate(divide="ignore", invalid="ignore"):
            t_side = (-b - np.sqrt(np.maximum(disc, 0.0))) / (2.0 * a)
            z_side = origin[2] + t_side * d[..., 2]
            t = np.where(
                (disc >= 0) & (t_side > 0) & (z_side >= z0) & (z_side <= z1), t_side, np.inf
            )
            cap_z = z1 if origin[2] > z1 else z0
            t_cap = (cap_z - origin[2]) / d[..., 2]
        cx, cy = px + t_cap * d[..., 0], py + t_cap * d[..., 1]
        on_cap = (
            (t_cap > 0)
            & (cx * cx + cy * cy <= radius * radius)
            & ((origin[2] > z1) | (origin[2] < z0))
        )
        t = np.minimum(t, np.where(on_cap, t_cap, np.inf))
        best = t_best[r0:r1, c0:c1]
        hit = t < best
        best[hit] = t[hit]
        prim[r0:r1, c0:c1][hit] = solids.num_boxes + c


def _normals(solids: Solids, points: np.ndarray, prim: np.ndarray) -> np.ndarray:
    """[K, 3] outward unit normals at hit ``points`` [K, 3] on primitives ``prim`` [K]."""
    normals = np.zeros_like(points)
    is_box = prim < solids.num_boxes
    if is_box.any():
        p, k = points[is_box], prim[is_box]
        to_lo, to_hi = np.abs(p - solids.box_lo[k]), np.abs(p - solids.box_hi[k])  # [K, 3]
        gap = np.minimum(to_lo, to_hi)  # [K, 3] distance to the nearer face of each axis
        axis = np.where(
            (gap[:, 0] <= gap[:, 1]) & (gap[:, 0] <= gap[:, 2]),
            0,
            np.where(gap[:, 1] <= gap[:, 2], 1, 2),
        )
        rows = np.arange(len(p))
        n = np.zeros_like(p)
        n[rows, axis] = np.where(to_lo[rows, axis] <= to_hi[rows, axis], -1.0, 1.0)
        normals[is_box] = n
    if (~is_box).any():
        p, c = points[~is_box], prim[~is_box] - solids.num_boxes
        radial = p[:, :2] - solids.cyl_center[c]  # [K, 2]
        dist = np.linalg.norm(radial, axis=1)
        z0, z1 = solids.cyl_z[c, 0], solids.cyl_z[c, 1]
        on_side = np.abs(dist - solids.cyl_radius[c]) < np.minimum(
            np.abs(p[:, 2] - z1), np.abs(p[:, 2] - z0)
        )
        n = np.zeros_like(p)
        n[:, :2] = np.where(on_side[:, None], radial / np.maximum(dist, _EPS)[:, None], 0.0)
        n[:, 2] = np.where(
            on_side, 0.0, np.where(np.abs(p[:, 2] - z1) < np.abs(p[:, 2] - z0), 1.0, -1.0)
        )
        normals[~is_box] = n
    return normals


def _identify(solids: Solids, kind, prim, points, normals) -> tuple[np.ndarray, np.ndarray]:
    """``(objects [K] int32, rooms [K] int16)`` of every hit.

    Floor and ceiling take the room under the hit; objects their own room; walls the room
    on the side the ray came from (looked up just off the surface along its normal).
    """
    objects = np.full(len(kind), NO_OBJECT, dtype=np.int32)
    hit = kind == PRIMITIVE
    objects[hit] = np.concatenate([solids.box_object, solids.cyl_object])[prim[hit]]
    probe = points[:, :2] + np.where(
        (hit & (objects == NO_OBJECT))[:, None], normals[:, :2] * WALL_PROBE, 0.0
    )
    rooms = solids.room_map.lookup(probe[:, 0], probe[:, 1])
    on_object = objects != NO_OBJECT
    rooms[on_object] = solids.object_room[objects[on_object]]
    return objects, rooms


def cast_face(
    solids: Solids,
    origin: np.ndarray,
    rotation: np.ndarray,
    face: int,
    size: int,
    columns: bool = True,
    ids_only: bool = False,
) -> Hits:
    """Cast the rays of face ``face`` (``size`` x ``size`` pixels) from camera ``origin``.

    ``columns=False`` tests walls pixel by pixel even on side faces (slower, same result).
    ``ids_only=True`` skips the normals that only shading needs (they stay zero on floor,
    ceiling and objects; walls need theirs to find their room).
    """
    origin = np.asarray(origin, dtype=np.float32)
    dirs = _face_directions(face, size, tuple(map(tuple, np.asarray(rotation, dtype=np.float64))))
    with np.errstate(divide="ignore"):
        inv = 1.0 / np.where(dirs == 0.0, np.float32(1e-12), dirs)  # [S, S, 3]
        t_floor = np.where(dirs[..., 2] < 0, -origin[2] * inv[..., 2], np.inf)  # [S, S]
        t_ceiling = np.where(
            dirs[..., 2] > 0, (solids.ceiling_height - origin[2]) * inv[..., 2], np.inf
        )
    t_best = np.minimum(t_floor, t_ceiling).astype(np.float32)
    prim = np.full((size, size), -1, dtype=np.int64)
    basis = face_basis(face, rotation)
    generic = np.ones(solids.num_boxes, dtype=bool)
    if columns and _vertical_columns(basis):
        _cast_wall_columns(solids, solids.box_full_height, origin, basis, size, t_best, prim)
        generic = ~solids.box_full_height
    rects = _pixel_rects(solids.box_lo, solids.box_hi, origin, basis, size)
    _cast_boxes(solids, generic, origin, inv, rects, t_best, prim)
    cyl_lo = np.concatenate(
        [solids.cyl_center - solids.cyl_radius[:, None], solids.cyl_z[:, :1]], axis=1
    )
    cyl_hi = np.concatenate(
        [solids.cyl_center + solids.cyl_radius[:, None], solids.cyl_z[:, 1:]], axis=1
    )
    _cast_cylinders(
        solids, origin, dirs, _pixel_rects(cyl_lo, cyl_hi, origin, basis, size), t_best, prim
    )
    kind = np.where(prim >= 0, PRIMITIVE, np.where(t_floor <= t_ceiling, FLOOR, CEILING)).reshape(
        -1
    )  # [K]
    t = np.where(np.isfinite(t_best), t_best, 0.0).reshape(-1)
    points = origin + t[:, None] * dirs.reshape(-1, 3)  # [K, 3]
    prim = prim.reshape(-1)
    normals = np.zeros_like(points)
    if not ids_only:
        normals[kind == FLOOR, 2], normals[kind == CEILING, 2] = 1.0, -1.0
    solid = kind == PRIMITIVE
    if ids_only:
        boxes = np.where(solid, prim, 0) < solids.num_boxes
        solid &= boxes & (solids.box_object[np.where(solid & boxes, prim, 0)] == NO_OBJECT)  # walls
    normals[solid] = _normals(solids, points[solid], prim[solid])
    objects, rooms = _identify(solids, kind, prim, points, normals)
    return Hits(kind, prim, t, points, normals, objects, rooms)
