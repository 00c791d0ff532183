"""Renderer and view annotations: geometry, colours, occlusion, agreement with envs.views."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from envs.constants import (
    NUM_VIEWS,
    R2R_IMAGE_HEIGHT,
    R2R_IMAGE_WIDTH,
    R2R_VFOV,
    view_elevation,
    view_heading,
)
from envs.cubemap import FACE_DOWN, NUM_FACES, face_pixel_directions, lookup, upright_rotation
from envs.graph import NavGraphs
from envs.synthetic.annotate import ANNOTATION_STRIDE, annotate_views, view_ray_directions
from envs.synthetic.house import generate_house
from envs.synthetic.house_files import ID_CUBE_SIZE, skybox_path
from envs.synthetic.raycast import cast_face, face_basis
from envs.synthetic.render import render_id_cube, render_skybox
from envs.synthetic.solids import build_solids
from envs.views import render_views

SIZE = 48


@pytest.fixture(scope="module")
def house():
    return generate_house(np.random.default_rng([7, 0]), (5, 6), 8)


@pytest.fixture(scope="module")
def solids(house):
    return build_solids(house.plan, house.objects)


def test_face_basis_reproduces_the_cubemap_rays():
    rotation = upright_rotation(0.7)
    coords = (np.arange(SIZE) + 0.5) / SIZE * 2.0 - 1.0
    tc, sc = np.meshgrid(coords, coords, indexing="ij")
    for face in range(NUM_FACES):
        basis = face_basis(face, rotation)
        np.testing.assert_allclose(basis.T @ basis, np.eye(3), atol=1e-12)
        rays = np.stack([sc, tc, np.ones_like(sc)], axis=-1) @ basis.T  # [S, S, 3]
        rays /= np.linalg.norm(rays, axis=-1, keepdims=True)
        np.testing.assert_allclose(rays, face_pixel_directions(face, SIZE, rotation), atol=1e-12)


def test_view_rays_follow_mattersim_heading_and_elevation():
    for view in (0, 14, 29):
        rays = view_ray_directions(view, 65, 48)  # column 32 is the centre column
        h, e = view_heading(view), view_elevation(view)
        centre = rays[23:25, 32].mean(axis=0)
        expected = [math.sin(h) * math.cos(e), math.cos(h) * math.cos(e), math.sin(e)]
        np.testing.assert_allclose(centre / np.linalg.norm(centre), expected, atol=1e-9)
        right = np.array([math.cos(h), -math.sin(h), 0.0])
        assert rays[24, -1] @ right > rays[24, 0] @ right  # x grows to the right
        assert rays[0, 32, 2] > rays[-1, 32, 2]  # row 0 is the top
        top_angle = math.acos(np.clip(rays[0, 32] @ rays[-1, 32], -1, 1))
        assert top_angle == pytest.approx(2 * math.atan(math.tan(R2R_VFOV / 2) * 47 / 48), abs=1e-9)


def test_column_casting_matches_casting_every_pixel(house, solids):
    pose = house.graph.poses[3]
    for face in range(NUM_FACES):
        fast = cast_face(solids, pose[:3, 3], pose[:3, :3], face, SIZE)
        slow = cast_face(solids, pose[:3, 3], pose[:3, :3], face, SIZE, columns=False)
        assert (fast.prim == slow.prim).mean() > 0.995
        assert (fast.kind == slow.kind).mean() > 0.995
        np.testing.assert_allclose(np.median(np.abs(fast.t - slow.t)), 0.0, atol=1e-4)


def test_nearest_surface_occludes(house, solids):
    """Down the middle of a level view, hit distances match a brute-force scan of all boxes."""
    pose = house.graph.poses[0]
    origin, rotation = pose[:3, 3], pose[:3, :3]
    hits = cast_face(solids, origin, rotation, 1, SIZE)
    dirs = face_pixel_directions(1, SIZE, rotation).reshape(-1, 3)
    for k in range(0, SIZE * SIZE, 97):
        d = dirs[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (solids.box_lo - origin) / d, (solids.box_hi - origin) / d  # [P, 3]
        near = np.minimum(t1, t2).max(axis=1)
        far = np.maximum(t1, t2).min(axis=1)
        box_t = np.where((near <= far) & (near > 0), near, np.inf).min()
        plane_t = -origin[2] / d[2] if d[2] < 0 else (solids.ceiling_height - origin[2]) / d[2]
        if len(solids.cyl_radius) == 0 or hits.prim[k] < solids.num_boxes:
            assert hits.t[k] == pytest.approx(min(box_t, plane_t), rel=1e-4)


def test_floor_below_a_viewpoint_has_its_rooms_floor_colour(tiny_world):
    """The centre of the floor face shows the room's floor colour, shaded (never an object)."""
    checked = 0
    for scene_file in sorted((tiny_world / "scenes").glob("*.json")):
        scene = json.loads(scene_file.read_text())
        rooms = {r["id"]: r for r in scene["rooms"]}
        for vp in scene["viewpoints"]:
            x, y, _ = vp["position"]
            on_object = any(
                b[0] < x < b[3] and b[1] < y < b[4] for b in (o["bounds"] for o in scene["objects"])
            )
            if vp["doorway"] or on_object:
                continue
            face = np.asarray(
                Image.open(skybox_path(tiny_world, scene["scan"], vp["id"], FACE_DOWN)), float
            )
            size = face.shape[0]
            pixel = np.median(
                face[size // 2 - 2 : size // 2 + 2, size // 2 - 2 : size // 2 + 2], axis=(0, 1)
            )
            floor = np.array(rooms[vp["room"]]["floor_color"], float)
            scale = pixel @ floor / (floor @ floor)  # least-squares shading factor
            assert 0.5 < scale < 1.05
            assert np.abs(pixel - scale * floor).max() < 16, (pixel, floor)
            checked += 1
    assert checked >= 10


def test_skybox_files_are_square_jpegs(tiny_world):
    graphs = NavGraphs(tiny_world)
    scan = next(iter(graphs))
    vp = graphs[scan].viewpoint_ids[0]
    size = json.loads((tiny_world / "manifest.json").read_text())["face_size"]
    for face in range(NUM_FACES):
        image = Image.open(skybox_path(tiny_world, scan, vp, face))
        assert image.format == "JPEG" and image.mode == "RGB" and image.size == (size, size)


def _project(points: np.ndarray, view: int) -> np.ndarray | None:
    """Pixel (x, y) of world offsets ``points`` [N, 3] in view ``view`` (None if any is behind)."""
    h, e = view_heading(view), view_elevation(view)
    forward = np.array([math.sin(h) * math.cos(e), math.cos(h) * math.cos(e), math.sin(e)])
    right = np.array([math.cos(h), -math.sin(h), 0.0])
    up = np.cross(right, forward)
    depth = points @ forward
    if (depth <= 0.05).any():
        return None
    focal = 0.5 * R2R_IMAGE_HEIGHT / math.tan(0.5 * R2R_VFOV)
    x = R2R_IMAGE_WIDTH / 2 + focal * (points @ right) / depth
    y = R2R_IMAGE_HEIGHT / 2 - focal * (points @ up) / depth
    return np.stack([x, y], axis=1)


def test_view_annotations_lie_inside_the_image_and_the_objects_projection(tiny_world):
    tolerance = 2 * ANNOTATION_STRIDE
    checked = 0
    for scene_file in sorted((tiny_world / "scenes").glob("*.json")):
        scene = json.loads(scene_file.read_text())
        objects = {o["id"]: o for o in scene["objects"]}
        room_ids = {r["id"] for r in scene["rooms"]}
        for vp in scene["viewpoints"]:
            assert [v["view_index"] for v in vp["views"]] == list(range(NUM_VIEWS))
            for view in vp["views"]:
                assert view["room"] in room_ids
                for seen in view["objects"]:
                    x0, y0, x1, y1 = seen["box"]
                    assert 0 <= x0 < x1 <= R2R_IMAGE_WIDTH and 0 <= y0 < y1 <= R2R_IMAGE_HEIGHT
                    assert 0 < seen["pixels"] <= (x1 - x0) * (y1 - y0)
                    b = objects[seen["id"]]["bounds"]
                    corners = np.array(
                        [[b[i], b[j], b[k]] for i in (0, 3) for j in (1, 4) for k in (2, 5)]
                    )
                    xy = _project(corners - np.array(vp["position"]), view["view_index"])
                    if xy is None:
                        continue
                    assert x0 >= xy[:, 0].min() - tolerance and x1 <= xy[:, 0].max() + tolerance
                    assert y0 >= xy[:, 1].min() - tolerance and y1 <= xy[:, 1].max() + tolerance
                    checked += 1
    assert checked > 100


def test_annotations_agree_with_views_rendered_from_the_skybox(house, solids):
    """Paint object ids into the (randomly turned) skybox, render views with envs.views:
    the painted pixels of each object fall inside its annotated box."""
    ix = 5
    pose = house.graph.poses[ix]
    skybox = render_skybox(solids, pose, 128)
    views = annotate_views(*render_id_cube(solids, pose[:3, 3], ID_CUBE_SIZE))
    palette = (
        np.random.default_rng(0)
        .integers(40, 255, size=(len(house.objects) + 1, 3))
        .astype(np.uint8)
    )
    palette[-1] = 0  # not an object
    painted = palette[skybox.objects]  # [6, S, S, 3]: object -1 -> black
    width, height = R2R_IMAGE_WIDTH // ANNOTATION_STRIDE, R2R_IMAGE_HEIGHT // ANNOTATION_STRIDE
    rendered = render_views(painted, pose, width, height)  # [36, h, w, 3]
    matched = 0
    for view in views:
        for seen in view["objects"]:
            if seen["pixels"] < 400:
                continue
            mask = (rendered[view["view_index"]] == palette[seen["id"]]).all(axis=-1)
            rows, cols = np.nonzero(mask)
            assert len(rows) > 0
            x0, y0, x1, y1 = (np.array(seen["box"]) / ANNOTATION_STRIDE).tolist()
            assert (
                cols.min() >= x0 - 2
                and cols.max() < x1 + 2
                and rows.min() >= y0 - 2
                and rows.max() < y1 + 2
            )
            if seen["pixels"] >= 8000:  # filtering blends colours on edges: thin parts vanish
                assert 0.35 < mask.sum() * ANNOTATION_STRIDE**2 / seen["pixels"] < 1.3
            matched += 1
    assert matched >= 5


def _ids_along(cube: np.ndarray, rays: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """[N] id in a [6, S, S] cube of the texel each ray falls in."""
    size = cube.shape[-1]
    face, s, t = lookup(rays, rotation)
    return cube[
        face,
        np.minimum((t * size).astype(int), size - 1),
        np.minimum((s * size).astype(int), size - 1),
    ]


def test_id_cube_agrees_with_the_rendered_skybox(house, solids):
    """The world-aligned id cube and the turned skybox see the same object along a ray."""
    pose = house.graph.poses[2]
    skybox = render_skybox(solids, pose, 96)
    objects, _ = render_id_cube(solids, pose[:3, 3], 96)
    rays = np.random.default_rng(1).normal(size=(4000, 3))
    in_skybox = _ids_along(skybox.objects, rays, pose[:3, :3])
    in_id_cube = _ids_along(objects, rays, upright_rotation(0.0))
    assert (in_skybox >= 0).mean() > 0.05  # objects are in sight
    assert (in_skybox == in_id_cube).mean() > 0.97
