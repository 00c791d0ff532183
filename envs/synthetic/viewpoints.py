"""Panorama viewpoints of a furnished house, and the Matterport connectivity between them.

Every door gets a viewpoint in its opening; each room gets a few more, spread out by
farthest-point sampling over the free floor, at least :data:`MIN_SPACING` apart. Two
viewpoints are *unobstructed* (a navigation edge) when they are at most
:data:`MAX_EDGE_LENGTH` apart and a body can walk the straight line between them: it
passes no wall (lintels are above head height) and no standing object. They are *visible*
to each other when no wall is in the way, at any distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.cubemap import upright_rotation
from envs.synthetic.furnish import RUG, Furniture
from envs.synthetic.layout import Floorplan, Room

#: Least distance between two viewpoints, and the longest navigation edge (metres).
MIN_SPACING = 1.5
MAX_EDGE_LENGTH = 4.0
#: Least distance from a room viewpoint to a wall centre line.
WALL_MARGIN = 0.4
#: Floor area per room viewpoint (a room gets ``round(area / AREA_PER_VIEWPOINT)``, at least 1).
AREA_PER_VIEWPOINT = 4.0
#: Spacing of the candidate grid for room viewpoints.
CANDIDATE_STEP = 0.2
#: Radius of a walking body: walls and objects are grown by it for the edge test.
BODY_RADIUS = 0.15
#: Clearance between a room viewpoint and an object's footprint.
OBJECT_MARGIN = 0.35
#: Objects whose bottom is below this height (m) and top above ``OBSTACLE_MIN_TOP`` block walking.
OBSTACLE_MAX_BOTTOM = 1.0
OBSTACLE_MIN_TOP = 0.3
#: Range of the camera height above the floor (Matterport's tripod, ~1.5 m).
CAMERA_HEIGHT = (1.48, 1.58)
#: Decimals kept in the poses written to the connectivity files.
POSE_DECIMALS = 6
IMAGE_ID_BYTES = 16


@dataclass(frozen=True)
class Viewpoint:
    """A panorama location: camera position (x, y, z) with z = camera height above the floor."""

    id: str
    room: int
    position: tuple[float, float, float]
    doorway: bool
    #: Rotation of the skybox about the vertical axis (radians).
    yaw: float

    @property
    def height(self) -> float:
        return self.position[2]

    def pose(self) -> np.ndarray:
        """[4, 4] camera pose: upright rotation turned by ``yaw``, translation = position."""
        pose = np.eye(4)
        pose[:3, :3] = upright_rotation(self.yaw)
        pose[:3, 3] = self.position
        return np.round(pose, POSE_DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0


def obstacles(objects: tuple[Furniture, ...]) -> list[Furniture]:
    """Objects that block walking (rugs and things hanging high on walls do not)."""
    return [
        o
        for o in objects
        if o.category != RUG
        and o.bounds[2] < OBSTACLE_MAX_BOTTOM
        and o.bounds[5] > OBSTACLE_MIN_TOP
    ]


def _make(rng: np.random.Generator, room: int, xy: tuple[float, float], doorway: bool) -> Viewpoint:
    height = round(float(rng.uniform(*CAMERA_HEIGHT)), POSE_DECIMALS)
    yaw = float(rng.uniform(0.0, 2.0 * math.pi))
    position = (round(float(xy[0]), POSE_DECIMALS), round(float(xy[1]), POSE_DECIMALS), height)
    return Viewpoint(rng.bytes(IMAGE_ID_BYTES).hex(), room, position, doorway, yaw)


def _candidates(rng: np.random.Generator, room: Room, blockers: np.ndarray) -> np.ndarray:
    """[K, 2] jittered grid points on the room's free floor."""
    xmin, ymin, xmax, ymax = room.bounds
    xs = np.arange(xmin + WALL_MARGIN, xmax - WALL_MARGIN + 1e-9, CANDIDATE_STEP)
    ys = np.arange(ymin + WALL_MARGIN, ymax - WALL_MARGIN + 1e-9, CANDIDATE_STEP)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    points = np.stack([gx.ravel(), gy.ravel()], axis=1)  # [K, 2]
    points = points + rng.uniform(-0.4, 0.4, size=points.shape) * CANDIDATE_STEP
    points = np.clip(
        points, [xmin + WALL_MARGIN, ymin + WALL_MARGIN], [xmax - WALL_MARGIN, ymax - WALL_MARGIN]
    )
    if len(blockers):
        lo, hi = (
            blockers[None, :, :2] - OBJECT_MARGIN,
            blockers[None, :, 2:] + OBJECT_MARGIN,
        )  # [1, B, 2]
        inside = np.all((points[:, None, :] > lo) & (points[:, None, :] < hi), axis=2)  # [K, B]
        points = points[~inside.any(axis=1)]
    return points


def _spread(points: np.ndarray, taken: np.ndarray, count: int, first: int) -> list[np.ndarray]:
    """Farthest-point sampling of up to ``count`` points, none closer than MIN_SPACING."""
    chosen: list[np.ndarray] = []
    if len(taken):
        nearest = np.min(np.linalg.norm(points[:, None] - taken[None], axis=2), axis=1)  # [K]
    else:
        nearest = np.full(len(points), np.inf)
    pick = first
    while len(chosen) < count and len(points):
        if nearest[pick] < MIN_SPACING:
            break
        chosen.append(points[pick])
        nearest = np.minimum(nearest, np.linalg.norm(points - points[pick], axis=1))
        pick = int(np.argmax(nearest))
    return chosen


def place_viewpoints(
    rng: np.random.Generator, plan: Floorplan, objects: tuple[Furniture, ...]
) -> list[Viewpoint]:
    """Door viewpoints first (a door too near an earlier one gets none), then room by room."""
    viewpoints: list[Viewpoint] = []
    for door in plan.doors:
        viewpoint = _make(rng, door.rooms[1], door.center, True)
        if all(math.dist(v.position[:2], door.center) >= MIN_SPACING for v in viewpoints):
            viewpoints.append(viewpoint)
    blockers = np.array(
        [[o.bounds[0], o.bounds[1], o.bounds[3], o.bounds[4]] for o in obstacles(objects)]
    )
    blockers = blockers.reshape(-1, 4)
    for room in plan.rooms:
        points = _candidates(rng, room, blockers)
        if not len(points):
            continue
        taken = np.array([v.position[:2] for v in viewpoints]).reshape(-1, 2)
        count = max(1, round(room.area / AREA_PER_VIEWPOINT))
        first = int(rng.integers(len(points)))
        for xy in _spread(points, taken, count, first):
            viewpoints.append(_make(rng, room.id, (xy[0], xy[1]), False))
    return viewpoints


def segments_hit_boxes(starts: np.ndarray, ends: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """[P] bool: whether segment ``starts[p] -> ends[p]`` ([P, 2]) crosses any plan box ([B, 4]).

    Slab test (Liang-Barsky) of every segment against every box ``(xmin, ymin, xmax, ymax)``.
    """
    if not len(boxes):
        return np.zeros(len(starts), dtype=bool)
    d = (ends - starts)[:, None, :]  # [P, 1, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (boxes[None, :, :2] - starts[:, None, :]) / d  # [P, B, 2]
        t2 = (boxes[None, :, 2:] - starts[:, None, :]) / d
    # A segment parallel to a slab is inside it for all t, or for none.
    parallel = d == 0.0  # [P, 1, 2]
    inside = (starts[:, None, :] > boxes[None, :, :2]) & (starts[:, None, :] < boxes[None, :, 2:])
    t_in = np.where(parallel, np.where(inside, -np.inf, np.inf), np.minimum(t1, t2))
    t_out = np.where(parallel, np.where(inside, np.inf, -np.inf), np.maximum(t1, t2))
    enter, leave = t_in.max(axis=2), t_out.min(axis=2)  # [P, B]
    return np.any((enter < leave) & (leave > 0.0) & (enter < 1.0), axis=1)


def connectivity(
    viewpoints: list[Viewpoint], plan: Floorplan, objects: tuple[Furniture, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """``(unobstructed [N, N], visible [N, N])`` symmetric bool matrices, empty diagonals."""
    xy = np.array([v.position[:2] for v in viewpoints])  # [N, 2]
    walls = np.array(
        [[w.bounds[0], w.bounds[1], w.bounds[3], w.bounds[4]] for w in plan.walls if not w.lintel]
    )
    grown_walls = walls + np.array([-1, -1, 1, 1]) * BODY_RADIUS
    blocks = np.array(
        [[o.bounds[0], o.bounds[1], o.bounds[3], o.bounds[4]] for o in obstacles(objects)]
    )
    grown_blocks = blocks.reshape(-1, 4) + np.array([-1, -1, 1, 1]) * BODY_RADIUS
    i, j = np.triu_indices(len(viewpoints), k=1)
    visible_pairs = ~segments_hit_boxes(xy[i], xy[j], walls)
    length = np.linalg.norm(xy[i] - xy[j], axis=1)
    walkable = ~segments_hit_boxes(xy[i], xy[j], np.concatenate([grown_walls, grown_blocks]))
    unobstructed_pairs = walkable & (length <= MAX_EDGE_LENGTH)
    n = len(viewpoints)
    visible, unobstructed = np.zeros((n, n), dtype=bool), np.zeros((n, n), dtype=bool)
    visible[i, j] = visible[j, i] = visible_pairs
    unobstructed[i, j] = unobstructed[j, i] = unobstructed_pairs
    return unobstructed, visible


def connectivity_entries(
    viewpoints: list[Viewpoint], unobstructed: np.ndarray, visible: np.ndarray
) -> list[dict]:
    """The ``{scan}_connectivity.json`` list, in Matterport's format."""
    return [
        {
            "image_id": v.id,
            "pose": [float(x) for x in v.pose().ravel()],
            "included": True,
            "visible": [bool(x) for x in visible[k]],
            "unobstructed": [bool(x) for x in unobstructed[k]],
            "height": v.height,
        }
        for k, v in enumerate(viewpoints)
    ]
