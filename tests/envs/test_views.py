"""The 36 MatterSim views rendered from skybox faces, and reading/writing skybox images.

The camera is modelled here a second time, straight from MatterSim's conventions (heading
clockwise from +y, elevation up, row 0 at the top), and world rays are looked up with
:func:`envs.cubemap.lookup` in float64: the renderer must agree with both.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from envs.constants import (
    NUM_VIEWS,
    R2R_VFOV,
    VIEWS_PER_ELEVATION,
    view_elevation,
    view_heading,
)
from envs.cubemap import FACE_DOWN, FACE_UP, NUM_FACES, face_directions, lookup, upright_rotation
from envs.errors import DataError
from envs.graph import NavGraphs
from envs.views import (
    MAX_SUPERSAMPLE,
    SKYBOX_SMALL_FACE_SIZE,
    camera_axes,
    cube_texel_coordinates,
    encoder_supersample,
    load_skybox_faces,
    render_encoder_views,
    render_views,
    skybox_dir,
    skybox_face_path,
    skybox_small_path,
    write_skybox_small,
)

#: One distinct colour per face.
FACE_COLOURS = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255]],
    dtype=np.uint8,
)
YAW = 1.0  # radians: no level view centre lies within 12 degrees of a face edge
LEVEL_VIEWS = range(VIEWS_PER_ELEVATION, 2 * VIEWS_PER_ELEVATION)
UP_VIEWS = range(2 * VIEWS_PER_ELEVATION, NUM_VIEWS)
DOWN_VIEWS = range(VIEWS_PER_ELEVATION)


# ---------------------------------------------------------------------------- helpers


def view_frame(view: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, forward, up) world vectors of a discretized view, written out by hand."""
    h, e = view_heading(view), view_elevation(view)
    forward = np.array([math.sin(h) * math.cos(e), math.cos(h) * math.cos(e), math.sin(e)])
    right = np.array([math.cos(h), -math.sin(h), 0.0])
    up = np.array([-math.sin(h) * math.sin(e), -math.cos(h) * math.sin(e), math.cos(e)])
    return right, forward, up


def pixel_rays(view: int, width: int, height: int, rows=None, cols=None) -> np.ndarray:
    """[len(rows), len(cols), 3] float64 world rays through pixel centres of a view."""
    rows = np.arange(height) if rows is None else np.asarray(rows)
    cols = np.arange(width) if cols is None else np.asarray(cols)
    tan_v = math.tan(R2R_VFOV / 2)
    tan_h = tan_v * width / height
    a = ((cols + 0.5) / width * 2 - 1) * tan_h  # [C]
    b = ((rows + 0.5) / height * 2 - 1) * tan_v  # [R]
    right, forward, up = view_frame(view)
    return forward + a[None, :, None] * right - b[:, None, None] * up


def project(direction: np.ndarray, view: int, width: int, height: int) -> tuple[float, float]:
    """(col, row) where a world direction appears in a view (pixel centres at integers)."""
    right, forward, up = view_frame(view)
    depth = direction @ forward
    if depth <= 0:
        return math.inf, math.inf
    tan_v = math.tan(R2R_VFOV / 2)
    tan_h = tan_v * width / height
    a = direction @ right / depth / tan_h
    b = -(direction @ up) / depth / tan_v
    return (a + 1) / 2 * width - 0.5, (b + 1) / 2 * height - 0.5


def unambiguous(rays: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """[...] bool: the ray's cube face is clear (not within 1e-4 of a face edge)."""
    v = np.sort(np.abs(rays @ rotation), axis=-1)  # cube-space |components|, ascending
    return v[..., 2] - v[..., 1] > 1e-4 * v[..., 2]


def uniform_faces(size: int = 8) -> np.ndarray:
    return np.broadcast_to(FACE_COLOURS[:, None, None, :], (NUM_FACES, size, size, 3)).copy()


def marker_faces(rotation, directions, colours, size=512, radius=2.5) -> np.ndarray:
    """Black faces with a round blob of ``colour`` centred where each direction hits."""
    faces = np.zeros((NUM_FACES, size, size, 3), dtype=np.uint8)
    centres = (np.arange(size) + 0.5)[None, :]
    for direction, colour in zip(directions, colours, strict=True):
        face, s, t = lookup(np.asarray(direction, dtype=float), rotation)
        cx, cy = float(s) * size, float(t) * size
        assert min(cx, cy, size - cx, size - cy) > 4 * radius, "marker too close to a face edge"
        blob = (centres - cx) ** 2 + (centres.T - cy) ** 2 <= radius**2  # [S, S] row, col
        faces[int(face)][blob] = colour
    return faces


def direction(heading_deg: float, elevation_deg: float) -> np.ndarray:
    h, e = math.radians(heading_deg), math.radians(elevation_deg)
    return np.array([math.sin(h) * math.cos(e), math.cos(h) * math.cos(e), math.sin(e)])


def centroid(weights: np.ndarray) -> tuple[float, float]:
    """(col, row) centre of mass of a [H, W] weight image."""
    rows, cols = np.indices(weights.shape)
    total = weights.sum()
    return float((cols * weights).sum() / total), float((rows * weights).sum() / total)


@pytest.fixture(scope="module")
def real_pose(real_data_dir) -> np.ndarray:
    """The pose of the first viewpoint of the first scan: real, tilted by about 1 degree."""
    graphs = NavGraphs(real_data_dir)
    pose = graphs[graphs.scans[0]].poses[0]
    tilt = math.degrees(math.acos(-pose[2, 1]))  # angle between -R[:, 1] and world up
    assert 0.5 < tilt < 5.0
    return pose


# ---------------------------------------------------------------------------- camera


def test_camera_axes_follow_mattersim_conventions():
    axes = camera_axes(range(NUM_VIEWS))  # [36, 3, 3] columns right, forward, up
    for view in range(NUM_VIEWS):
        for got, want in zip(axes[view].T, view_frame(view), strict=True):
            np.testing.assert_allclose(got, want, atol=1e-12)
    level_north, level_east = axes[VIEWS_PER_ELEVATION], axes[VIEWS_PER_ELEVATION + 3]
    np.testing.assert_allclose(level_north, np.eye(3), atol=1e-12)  # right +x, fwd +y, up +z
    np.testing.assert_allclose(level_east[:, 1], [1, 0, 0], atol=1e-12)  # heading 90: +x
    np.testing.assert_allclose(level_east[:, 0], [0, -1, 0], atol=1e-12)  # right turns clockwise
    assert np.all(axes[:, 2, 2] > 0)  # the camera's up has positive z at every elevation


def test_fast_cube_lookup_matches_cubemap_lookup():
    rng = np.random.default_rng(0)
    size = 1024
    for _ in range(5):
        rotation = np.linalg.qr(rng.normal(size=(3, 3)))[0]
        rays = rng.normal(size=(20000, 3))
        face, s, t = lookup(rays, rotation)
        cube = (-rays @ rotation).T.astype(np.float32)  # [3, N] v = -R^T d
        got_face, x, y = cube_texel_coordinates(cube, size)
        clear = unambiguous(rays, rotation)
        assert clear.mean() > 0.99
        np.testing.assert_array_equal(got_face[clear], face[clear])
        np.testing.assert_allclose(x[clear], s[clear] * size - 0.5, atol=2e-3)
        np.testing.assert_allclose(y[clear], t[clear] * size - 0.5, atol=2e-3)


# ---------------------------------------------------------------------------- uniform faces


@pytest.mark.parametrize("pose_kind", ["upright", "real"])
def test_uniform_faces_every_pixel_shows_its_face(pose_kind, real_pose):
    rotation = upright_rotation(YAW) if pose_kind == "upright" else real_pose[:3, :3]
    pose = np.eye(4)
    pose[:3, :3] = rotation
    width, height = 160, 120
    images = render_views(uniform_faces(), pose, width, height)
    assert images.shape == (NUM_VIEWS, height, width, 3) and images.dtype == np.uint8
    for view in range(NUM_VIEWS):
        rays = pixel_rays(view, width, height)  # [H, W, 3]
        face = lookup(rays, rotation)[0]
        clear = unambiguous(rays, rotation)
        assert clear.mean() > 0.99
        np.testing.assert_array_equal(images[view][clear], FACE_COLOURS[face[clear]])


@pytest.mark.parametrize("pose_kind", ["upright", "real"])
def test_uniform_faces_view_centres_and_steep_rows(pose_kind, real_pose):
    rotation = upright_rotation(YAW) if pose_kind == "upright" else real_pose[:3, :3]
    width, height = 640, 480
    images = render_views(uniform_faces(), rotation)  # R2R defaults: 640 x 480, vfov 60
    assert images.shape == (NUM_VIEWS, height, width, 3)
    side_faces = [f for f in range(NUM_FACES) if f not in (FACE_UP, FACE_DOWN)]
    side_dirs = face_directions(rotation)[side_faces]  # [4, 3]
    side_headings = np.arctan2(side_dirs[:, 0], side_dirs[:, 1])
    centre = (height // 2, width // 2)
    for view in range(NUM_VIEWS):
        ray = pixel_rays(view, width, height, [centre[0]], [centre[1]])[0, 0]
        want = int(lookup(ray, rotation)[0])
        assert tuple(images[view][centre]) == tuple(FACE_COLOURS[want])
        if view in LEVEL_VIEWS:  # the side face whose heading is closest to the view's
            gap = np.angle(np.exp(1j * (side_headings - view_heading(view))))
            assert want == side_faces[int(np.argmin(np.abs(gap)))]
        else:  # +-30 degree centres still look at a side face (elevation < 45 degrees)
            assert want in side_faces
    # Rows looking steeper than 45 degrees see the ceiling / floor: the middle of the top
    # row of an up view is ~60 degrees up; upright, the whole top row is >= 46 degrees up.
    for view in UP_VIEWS:
        assert tuple(images[view][0, width // 2]) == tuple(FACE_COLOURS[FACE_UP])
        if pose_kind == "upright":
            assert np.all(images[view][0] == FACE_COLOURS[FACE_UP])
    for view in DOWN_VIEWS:
        assert tuple(images[view][-1, width // 2]) == tuple(FACE_COLOURS[FACE_DOWN])
        if pose_kind == "upright":
            assert np.all(images[view][-1] == FACE_COLOURS[FACE_DOWN])


# ---------------------------------------------------------------------------- markers


def test_marker_appears_where_the_view_looks_and_nowhere_else(real_pose):
    rotation = real_pose[:3, :3]
    target = direction(100.0, 8.0)  # heading 100 degrees, 8 degrees up
    faces = marker_faces(rotation, [target], [(255, 255, 255)])
    width, height = 320, 240
    images = render_views(faces, real_pose, width, height)
    margin = 8  # the blob is ~4 px wide: keep it clear of the image borders
    seen = []
    for view in range(NUM_VIEWS):
        col, row = project(target, view, width, height)
        inside = margin <= col <= width - 1 - margin and margin <= row <= height - 1 - margin
        outside = not (
            -margin <= col <= width - 1 + margin and -margin <= row <= height - 1 + margin
        )
        assert inside or outside, f"view {view}: marker too close to the border to judge"
        weights = images[view, :, :, 0].astype(float)  # [H, W]
        if outside:
            assert weights.max() == 0, f"view {view} should not see the marker"
            continue
        seen.append(view)
        got_col, got_row = centroid(weights)
        assert abs(got_col - col) < 1.0 and abs(got_row - row) < 1.0, (view, got_col, col)
        rows, cols = np.nonzero(weights)
        assert np.hypot(cols - col, rows - row).max() < margin  # one compact blob
    # Heading 100 is within the +-37.6 degree horizontal half-field of headings 90 and 120
    # only; 8 degrees up is inside the level (-30..30) and up (0..60) views, not the down ones.
    assert seen == [15, 16, 27, 28]


def test_views_are_not_mirrored():
    rotation = upright_rotation(0.3)
    east = 3 + VIEWS_PER_ELEVATION  # level view at heading 90 degrees
    right_of_centre, above_centre = direction(95.0, 0.0), direction(90.0, 5.0)
    faces = marker_faces(rotation, [right_of_centre, above_centre], [(255, 0, 0), (0, 255, 0)])
    width, height = 320, 240
    image = render_views(faces, rotation, width, height, views=[east])[0]
    red_col, red_row = centroid(image[:, :, 0].astype(float))
    green_col, green_row = centroid(image[:, :, 1].astype(float))
    mid_col, mid_row = (width - 1) / 2, (height - 1) / 2
    assert red_col > mid_col + 10 and abs(red_row - mid_row) < 1  # turning right = clockwise
    assert green_row < mid_row - 10 and abs(green_col - mid_col) < 1  # row 0 is the top


# ---------------------------------------------------------------------------- filtering


def test_bilinear_within_a_face_and_clamped_at_its_edges(real_pose):
    size, step = 16, 16
    faces = np.empty((NUM_FACES, size, size, 3), dtype=np.uint8)
    faces[..., 0] = np.arange(size)[None, None, :] * step  # R: horizontal gradient
    faces[..., 1] = np.arange(size)[None, :, None] * step  # G: vertical gradient
    faces[..., 2] = np.arange(NUM_FACES)[:, None, None] * 40  # B: which face
    rotation = real_pose[:3, :3]
    width, height = 160, 120
    images = render_views(faces, real_pose, width, height).astype(int)
    clamped_pixels = 0
    for view in range(NUM_VIEWS):
        rays = pixel_rays(view, width, height)
        face, s, t = lookup(rays, rotation)
        clear = unambiguous(rays, rotation)
        x, y = s * size - 0.5, t * size - 0.5  # texel centres at integers
        want_r = np.clip(x, 0, size - 1) * step
        want_g = np.clip(y, 0, size - 1) * step
        got = images[view]
        assert np.abs(got[..., 0] - np.round(want_r))[clear].max() <= 1
        assert np.abs(got[..., 1] - np.round(want_g))[clear].max() <= 1
        np.testing.assert_array_equal(got[..., 2][clear], face[clear] * 40)  # no face blending
        # Beyond the outer texel centres the edge texel is repeated exactly.
        low, high = clear & (x < 0), clear & (x > size - 1)
        assert np.all(got[..., 0][low] == 0) and np.all(got[..., 0][high] == (size - 1) * step)
        clamped_pixels += low.sum() + high.sum()
    assert clamped_pixels > 1000


def test_view_subset_and_bad_arguments():
    rng = np.random.default_rng(1)
    faces = rng.integers(0, 256, size=(NUM_FACES, 32, 32, 3), dtype=np.uint8)
    rotation = upright_rotation(YAW)
    full = render_views(faces, rotation, 64, 48)
    np.testing.assert_array_equal(
        render_views(faces, rotation, 64, 48, views=[30, 5]), full[[30, 5]]
    )
    assert render_views(faces, rotation, 64, 48, views=[]).shape == (0, 48, 64, 3)
    with pytest.raises(ValueError, match="pose"):
        render_views(faces, rotation.ravel(), 64, 48)
    with pytest.raises(ValueError, match="views"):
        render_views(faces, rotation, 64, 48, views=[NUM_VIEWS])
    with pytest.raises(ValueError, match="faces"):
        render_views(faces[:5], rotation, 64, 48)
    with pytest.raises(ValueError, match="faces"):
        render_views(faces.astype(np.float32), rotation, 64, 48)


def test_importing_views_leaves_torch_out():
    code = "import sys, envs.views; sys.exit('torch' in sys.modules)"
    root = Path(__file__).resolve().parents[2]
    assert subprocess.run([sys.executable, "-c", code], cwd=root).returncode == 0


# ---------------------------------------------------------------------------- skybox files


def smooth_faces(size: int) -> np.ndarray:
    """Faces with gentle gradients and a distinct colour each (JPEG keeps them well)."""
    ramp = np.linspace(0, 60, size)
    faces = np.empty((NUM_FACES, size, size, 3), dtype=np.uint8)
    base = FACE_COLOURS.astype(float) * 0.7
    faces[:] = np.clip(base[:, None, None, :] + ramp[None, :, None, None], 0, 255).astype(np.uint8)
    return faces


def write_faces(directory: Path, viewpoint: str, faces: np.ndarray) -> None:
    for i, face in enumerate(faces):
        Image.fromarray(face).save(skybox_face_path(directory, viewpoint, i), quality=95)


def test_skybox_paths():
    assert skybox_dir("/data", "scanA") == Path("/data/v1/scans/scanA/matterport_skybox_images")
    assert skybox_face_path("/d", "vp", 3) == Path("/d/vp_skybox3_sami.jpg")
    assert skybox_small_path("/d", "vp") == Path("/d/vp_skybox_small.jpg")


def test_load_sami_faces(tmp_path):
    faces = smooth_faces(32)
    write_faces(tmp_path, "vp", faces)
    loaded = load_skybox_faces(tmp_path, "vp")
    assert loaded.shape == (NUM_FACES, 32, 32, 3) and loaded.dtype == np.uint8
    assert np.abs(loaded.astype(int) - faces).max() <= 4


def test_skybox_small_round_trip(tmp_path):
    faces = smooth_faces(SKYBOX_SMALL_FACE_SIZE)
    png = tmp_path / "layout.png"  # lossless: the layout must be exact
    write_skybox_small(faces, png)
    row = np.asarray(Image.open(png))
    assert row.shape == (SKYBOX_SMALL_FACE_SIZE, NUM_FACES * SKYBOX_SMALL_FACE_SIZE, 3)
    for i in range(NUM_FACES):
        cols = slice(i * SKYBOX_SMALL_FACE_SIZE, (i + 1) * SKYBOX_SMALL_FACE_SIZE)
        np.testing.assert_array_equal(row[:, cols], faces[i])
    write_skybox_small(faces, skybox_small_path(tmp_path, "vp"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout.png", "vp_skybox_small.jpg"]
    loaded = load_skybox_faces(tmp_path, "vp")  # no sami faces: reads skybox_small
    assert loaded.shape == faces.shape
    assert np.abs(loaded.astype(int) - faces).max() <= 4


def test_skybox_small_resizes_faces_and_sami_faces_take_precedence(tmp_path):
    small = uniform_faces(64)
    write_skybox_small(small, skybox_small_path(tmp_path, "vp"))
    loaded = load_skybox_faces(tmp_path, "vp")
    assert loaded.shape == (NUM_FACES, SKYBOX_SMALL_FACE_SIZE, SKYBOX_SMALL_FACE_SIZE, 3)
    colours = loaded.reshape(NUM_FACES, -1, 3).mean(axis=1)
    assert np.abs(colours - FACE_COLOURS).max() < 4
    sami = smooth_faces(16)
    write_faces(tmp_path, "vp", sami)
    assert load_skybox_faces(tmp_path, "vp").shape == (NUM_FACES, 16, 16, 3)


def test_bad_skybox_images_name_the_file(tmp_path):
    with pytest.raises(DataError) as err:
        load_skybox_faces(tmp_path, "vp")
    assert err.value.path == str(skybox_face_path(tmp_path, "vp", 0))
    assert "vp_skybox_small.jpg" in str(err.value)

    write_faces(tmp_path, "vp", smooth_faces(16))
    cases = {
        2: lambda p: p.write_bytes(b"not a jpeg at all"),  # corrupt
        4: lambda p: p.unlink(),  # missing
        3: lambda p: Image.fromarray(smooth_faces(8)[3]).save(p),  # other size
        1: lambda p: Image.fromarray(np.zeros((16, 12, 3), np.uint8)).save(p),  # not square
    }
    for face, damage in cases.items():
        path = skybox_face_path(tmp_path, "vp", face)
        damage(path)
        with pytest.raises(DataError) as err:
            load_skybox_faces(tmp_path, "vp")
        assert err.value.path == str(path)
        assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
        Image.fromarray(smooth_faces(16)[face]).save(path)  # repair for the next case
    assert load_skybox_faces(tmp_path, "vp").shape == (NUM_FACES, 16, 16, 3)


def test_bad_skybox_small_names_the_file(tmp_path):
    path = skybox_small_path(tmp_path, "vp")
    Image.fromarray(np.zeros((16, 80, 3), np.uint8)).save(path)  # 5 faces, not 6
    with pytest.raises(DataError, match="six square faces") as err:
        load_skybox_faces(tmp_path, "vp")
    assert err.value.path == str(path)
    path.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DataError, match="cannot decode") as err:
        load_skybox_faces(tmp_path, "vp")
    assert err.value.path == str(path)


# ---------------------------------------------------------------------------- encoder views


def test_encoder_supersample_matches_texel_density():
    # A 60-degree view of a 256-texel face spans ~171 texels: 2x for 112 px, 1x for 224 px.
    assert encoder_supersample(256, 112) == 2
    assert encoder_supersample(256, 224) == 1
    # Real 1024-px Matterport faces at CLIP's 224 px: ~683 texels, 3x.
    assert encoder_supersample(1024, 224) == 3
    assert encoder_supersample(4096, 32) == MAX_SUPERSAMPLE


def test_encoder_views_are_the_centre_square_of_the_mattersim_view(real_pose):
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(NUM_FACES, 32, 32, 3), dtype=np.uint8)
    square = render_encoder_views(faces, real_pose, 48, views=[3, 17], supersample=1)
    # The same camera at 64 x 48 (4:3) shows the square view in its middle 48 columns,
    # because a square view's horizontal field of view equals the vertical one.
    wide = render_views(faces, real_pose, width=64, height=48, views=[3, 17])
    assert square.shape == (2, 48, 48, 3) and square.dtype == np.uint8
    # Column 8 + j of the 64-px view and column j of the square one look along the same ray.
    np.testing.assert_array_equal(square, wide[:, :, 8:56])


def test_encoder_views_supersampling_averages_blocks(real_pose):
    rng = np.random.default_rng(1)
    faces = rng.integers(0, 256, size=(NUM_FACES, 64, 64, 3), dtype=np.uint8)
    small = render_encoder_views(faces, real_pose, 16, views=[0], supersample=2)
    big = render_views(faces, real_pose, 32, 32, views=[0]).astype(np.float32)
    expected = np.round(big.reshape(1, 16, 2, 16, 2, 3).mean(axis=(2, 4)))
    np.testing.assert_array_equal(small, expected.astype(np.uint8))
    with pytest.raises(ValueError):
        render_encoder_views(faces, real_pose, 16, supersample=0)
