"""The 36 discretized MatterSim views of a viewpoint, rendered from its skybox with numpy.

MatterSim draws a view by texturing a cube map with the viewpoint's six skybox faces and
looking at it through a pinhole camera. :func:`render_views` does the same on the CPU:

* camera: ``vfov`` is the vertical field of view and ``tan(hfov / 2) = tan(vfov / 2) * width
  / height``; a view with heading ``h`` (clockwise from +y) and elevation ``e`` (up is
  positive) looks along ``forward = (sin h cos e, cos h cos e, sin e)``, with ``right = (cos
  h, -sin h, 0)`` and ``up = right x forward``; pixel ``(row, col)`` (row 0 at the top) looks
  along ``forward + a * tan(hfov / 2) * right - b * tan(vfov / 2) * up`` with ``a = (col +
  0.5) / width * 2 - 1`` and ``b = (row + 0.5) / height * 2 - 1``;
* cube map: which face, and where in it, a world ray lands is :func:`envs.cubemap.lookup`
  (MatterSim's convention, the pose rotation orients the skybox);
* filtering: bilinear within a face, texel centres at ``(col + 0.5, row + 0.5) / size``,
  the 2 x 2 neighbourhood clamped to the face (no blending across faces), no mipmaps.

The per-pixel work is vectorized: the camera-frame pixel directions are cached per
``(width, height, vfov)``, one matmul per chunk of views takes them straight into cube
space, and the four bilinear taps are flat gathers from one packed texture.

Skybox files (Matterport3D, ``DIR/v1/scans/{scan}/matterport_skybox_images``):
``{viewpoint}_skybox{i}_sami.jpg`` for faces ``i = 0..5``, or MatterSim's own input
``{viewpoint}_skybox_small.jpg`` (the six faces at 512 x 512, side by side, f0..f5).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from envs.constants import (
    NUM_VIEWS,
    R2R_IMAGE_HEIGHT,
    R2R_IMAGE_WIDTH,
    R2R_VFOV,
    view_elevation,
    view_heading,
)
from envs.cubemap import NUM_FACES, lookup
from envs.errors import DataError
from envs.fileio import atomic_write

#: Side of a face in MatterSim's ``{viewpoint}_skybox_small.jpg``.
SKYBOX_SMALL_FACE_SIZE = 512
#: JPEG quality used by :func:`write_skybox_small`.
SKYBOX_JPEG_QUALITY = 95
#: Rays processed together; bounds the temporaries (~100 bytes a ray) and keeps them in cache.
CHUNK_RAYS = 1 << 15
_RGB = 3


# ---------------------------------------------------------------------------- skybox files


def skybox_dir(data_dir: str | os.PathLike[str], scan: str) -> Path:
    """Folder of a scan's skybox images: ``DIR/v1/scans/{scan}/matterport_skybox_images``."""
    return Path(data_dir) / "v1" / "scans" / scan / "matterport_skybox_images"


def skybox_face_path(directory: str | os.PathLike[str], viewpoint: str, face: int) -> Path:
    """Path of face ``face`` (0..5) of a viewpoint: ``{viewpoint}_skybox{face}_sami.jpg``."""
    return Path(directory) / f"{viewpoint}_skybox{face}_sami.jpg"


def skybox_small_path(directory: str | os.PathLike[str], viewpoint: str) -> Path:
    """Path of MatterSim's input image of a viewpoint: ``{viewpoint}_skybox_small.jpg``."""
    return Path(directory) / f"{viewpoint}_skybox_small.jpg"


def _read_rgb(path: Path) -> np.ndarray:
    """[H, W, 3] uint8 RGB pixels of an image file; :class:`DataError` if unreadable."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(path, f"cannot decode image ({err})") from None


def load_skybox_faces(directory: str | os.PathLike[str], viewpoint: str) -> np.ndarray:
    """[6, S, S, 3] uint8 RGB skybox faces of ``viewpoint``, face ``i`` as in the file names.

    Reads ``{viewpoint}_skybox{i}_sami.jpg`` (i = 0..5); when none of those exists, splits
    ``{viewpoint}_skybox_small.jpg`` into its six faces. A missing or corrupt image, a face
    that is not square, or faces of different sizes raise :class:`DataError` naming the file.
    """
    face_paths = [skybox_face_path(directory, viewpoint, i) for i in range(NUM_FACES)]
    small = skybox_small_path(directory, viewpoint)
    if not any(p.exists() for p in face_paths) and small.exists():
        return _split_skybox_small(_read_rgb(small), small)
    if not any(p.exists() for p in face_paths):
        raise DataError(face_paths[0], f"file not found (nor {small.name})")
    faces = [_read_rgb(p) for p in face_paths]
    size = faces[0].shape[0]
    for path, face in zip(face_paths, faces, strict=True):
        if face.shape[:2] != (size, size):
            h, w = face.shape[:2]
            raise DataError(path, f"face is {w}x{h}, expected {size}x{size} like face 0")
    return np.stack(faces)  # [6, S, S, 3]


def _split_skybox_small(image: np.ndarray, path: Path) -> np.ndarray:
    """[6, S, S, 3] faces of a ``skybox_small`` image ([S, 6 S, 3], faces left to right)."""
    height, width = image.shape[:2]
    if width != NUM_FACES * height:
        raise DataError(path, f"image is {width}x{height}, expected six square faces side by side")
    faces = image.reshape(height, NUM_FACES, height, _RGB)  # [S, 6, S, 3]
    return np.ascontiguousarray(faces.transpose(1, 0, 2, 3))  # [6, S, S, 3]


def write_skybox_small(
    faces: np.ndarray,
    path: str | os.PathLike[str],
    face_size: int = SKYBOX_SMALL_FACE_SIZE,
) -> None:
    """Write MatterSim's ``skybox_small`` image: faces resized to ``face_size``, f0..f5 in a row.

    The format follows the file extension (JPEG at quality 95 for ``.jpg``); the file is
    written atomically. Faces are resized with area averaging (box filter).
    """
    faces = _check_faces(faces)
    row = np.empty((face_size, NUM_FACES * face_size, _RGB), dtype=np.uint8)  # [s, 6 s, 3]
    for i, face in enumerate(faces):
        image = Image.fromarray(face)
        if face.shape[0] != face_size:
            image = image.resize((face_size, face_size), Image.Resampling.BOX)
        row[:, i * face_size : (i + 1) * face_size] = np.asarray(image)
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise DataError(path, f"unknown image extension {path.suffix!r}")
    # 4:4:4 chroma: subsampled chroma would bleed colour across the seams between faces.
    options = {"quality": SKYBOX_JPEG_QUALITY, "subsampling": 0} if fmt == "JPEG" else {}
    with atomic_write(path, "wb") as f:
        Image.fromarray(row).save(f, format=fmt, **options)


def _check_faces(faces: np.ndarray) -> np.ndarray:
    """Validate ``faces`` as uint8 [6, S, S, 3]; returns it as a C-contiguous array."""
    faces = np.asarray(faces)
    if (
        faces.dtype != np.uint8
        or faces.ndim != 4
        or faces.shape[0] != NUM_FACES
        or faces.shape[1] != faces.shape[2]
        or faces.shape[3] != _RGB
    ):
        raise ValueError(f"faces must be uint8 [6, S, S, 3], got {faces.dtype} {faces.shape}")
    return np.ascontiguousarray(faces)


# ---------------------------------------------------------------------------- camera


def camera_axes(views: Sequence[int]) -> np.ndarray:
    """[V, 3, 3] float64 world axes of discretized views: columns ``right, forward, up``."""
    heading = np.array([view_heading(v) for v in views], dtype=np.float64)  # [V]
    elevation = np.array([view_elevation(v) for v in views], dtype=np.float64)  # [V]
    sh, ch = np.sin(heading), np.cos(heading)
    se, ce = np.sin(elevation), np.cos(elevation)
    zero = np.zeros_like(heading)
    right = np.stack([ch, -sh, zero], axis=-1)  # [V, 3]
    forward = np.stack([sh * ce, ch * ce, se], axis=-1)  # [V, 3]
    up = np.cross(right, forward)  # [V, 3]: z = cos e > 0
    return np.stack([right, forward, up], axis=-1)  # [V, 3, 3]


@functools.lru_cache(maxsize=8)
def camera_pixel_directions(width: int, height: int, vfov: float) -> np.ndarray:
    """[3, height * width] float32 pixel ray directions in the camera frame (read-only).

    Rows are the components along ``right``, ``forward`` and ``up``; pixels are in
    row-major order, row 0 at the top. Rays are not normalized (forward component 1).
    """
    tan_v = math.tan(vfov / 2.0)
    tan_h = tan_v * width / height
    a = ((np.arange(width) + 0.5) / width * 2.0 - 1.0) * tan_h  # [W]
    b = ((np.arange(height) + 0.5) / height * 2.0 - 1.0) * tan_v  # [H]
    dirs = np.empty((3, height, width), dtype=np.float32)
    dirs[0] = a[None, :]
    dirs[1] = 1.0
    dirs[2] = -b[:, None]
    dirs = dirs.reshape(3, height * width)
    dirs.flags.writeable = False
    return dirs


# ---------------------------------------------------------------------------- cube lookup


@functools.cache
def _cube_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MatterSim's face-selection table, read off :func:`envs.cubemap.lookup` once.

    For a ray ``v`` in cube space (``v = -R^T d``) whose largest component is axis ``k``
    with sign ``sg``, let ``code = 2 k + (sg < 0)``. Returns ``face[code]`` and the
    coefficients ``s_coef[:, code]``, ``t_coef[:, code]`` ([3, 6], one entry +-1 per code)
    such that ``s = (s_coef[:, code] . v / |v_k| + 1) / 2`` and likewise ``t``. Probing
    ``lookup`` with the identity rotation (so ``v = -d``) keeps the convention in one place.
    """
    face = np.empty(2 * 3, dtype=np.int64)
    s_coef = np.zeros((3, 2 * 3), dtype=np.float32)  # [axis, code]
    t_coef = np.zeros((3, 2 * 3), dtype=np.float32)
    probe_offsets = (0.25, 0.125)  # distinct minor components identify the axes
    for axis in range(3):
        for negative in (0, 1):
            code = 2 * axis + negative
            minor = [k for k in range(3) if k != axis]
            v = np.zeros(3)
            v[axis] = -1.0 if negative else 1.0
            v[minor] = probe_offsets
            f, s, t = lookup(-v[None, :], np.eye(3))
            face[code] = f[0]
            for coef, coord in ((s_coef, s[0]), (t_coef, t[0])):
                signed = 2.0 * coord - 1.0  # = coefficient * v[minor axis]
                for k, offset in zip(minor, probe_offsets, strict=True):
                    if math.isclose(abs(signed), offset):
                        coef[k, code] = math.copysign(1.0, signed)
    for coef in (s_coef, t_coef):
        if not np.all(np.abs(coef).sum(axis=0) == 1):
            raise RuntimeError("envs.cubemap.lookup is not an axis-aligned cube-map convention")
    return face, s_coef, t_coef


def cube_texel_coordinates(
    cube_rays: np.ndarray, size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face and continuous texel coordinates of rays given in cube space.

    Args:
        cube_rays: [3, N] float32 rays ``v = -R^T d`` (any length).
        size: face side ``S`` in texels.

    Returns:
        face [N] int, x [N] and y [N] float32 with ``x = s * S - 0.5``, ``y = t * S - 0.5``
        (texel centres at integers), as :func:`envs.cubemap.lookup` gives ``s, t``.
    """
    face_of, s_coef, t_coef = _cube_tables()
    vx, vy, vz = cube_rays  # [N] each
    ax, ay, az = np.abs(vx), np.abs(vy), np.abs(vz)
    x_major = (ax >= ay) & (ax >= az)  # ties go to the lower axis, as argmax does
    y_major = ~x_major & (ay >= az)
    signed_major = np.where(x_major, vx, np.where(y_major, vy, vz))  # [N] v_k
    code = np.where(x_major, 0, np.where(y_major, 2, 4))  # [N] 2 k
    code += signed_major < 0
    half = np.float32(size / 2.0) / np.abs(signed_major)  # [N]
    centre = np.float32((size - 1) / 2.0)
    coords = []
    for coef in (s_coef, t_coef):
        numerator = coef[0].take(code) * vx  # [N]: coef[code] . v
        numerator += coef[1].take(code) * vy
        numerator += coef[2].take(code) * vz
        numerator *= half
        numerator += centre
        coords.append(numerator)
    return face_of.take(code), coords[0], coords[1]


# ---------------------------------------------------------------------------- sampling


def _pack_texture(faces: np.ndarray) -> np.ndarray:
    """[6 * S * S] uint32: each texel's R, G, B bytes (and a zero byte) in one word."""
    num, size = faces.shape[0], faces.shape[1]
    packed = np.zeros((num * size * size, 4), dtype=np.uint8)  # [6 S S, 4]
    packed[:, :_RGB] = faces.reshape(-1, _RGB)
    return packed.view(np.uint32).reshape(-1)


#: Bilinear weights are fixed point with this many fraction bits, as in GPU texture units.
WEIGHT_BITS = 8
_WEIGHT_ONE = 1 << WEIGHT_BITS
_RED_BLUE = np.uint32(0x00FF00FF)  # bytes 0 and 2 of a packed RGB0 texel
_BYTE = np.uint32(0xFF)
_LANE = np.uint32(0xFFFF)


def _lerp_row(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal stage of the filter on packed texels, scaled by 256 and not rounded.

    Returns ``red_blue`` [N] uint32 (red in bits 0-15, blue in bits 16-31: two 16-bit
    lanes that ``255 * 256`` cannot overflow) and ``green`` [N] uint32.
    """
    inverse = _WEIGHT_ONE - weight  # [N]
    red_blue = (a & _RED_BLUE) * inverse + (b & _RED_BLUE) * weight
    green = ((a >> 8) & _BYTE) * inverse + ((b >> 8) & _BYTE) * weight
    return red_blue, green


def _lerp_columns(top: np.ndarray, bottom: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Vertical stage on one channel scaled by 256: rounds once to [N] uint32 bytes."""
    total = top * (_WEIGHT_ONE - weight) + bottom * weight  # [N] channel * 2^16
    total += np.uint32(1 << (2 * WEIGHT_BITS - 1))
    total >>= 2 * WEIGHT_BITS
    return total


def sample_bilinear(
    texture: np.ndarray, size: int, face: np.ndarray, x: np.ndarray, y: np.ndarray
) -> np.ndarray:
    """[N] uint32 packed RGB0 bilinear samples, the 2 x 2 taps clamped to each ray's face.

    Args:
        texture: [6 * S * S] uint32 from :func:`_pack_texture`.
        size: face side ``S``.
        face: [N] face index; x, y: [N] float32 texel coordinates (centres at integers).

    As in GPU texture units, the weights are fixed point (8 fraction bits) and the result
    is rounded once; it is within 1 of the exact interpolation.
    """
    x0f, y0f = np.floor(x), np.floor(y)
    scale = np.float32(_WEIGHT_ONE)
    wx = ((x - x0f) * scale + 0.5).astype(np.uint32)  # [N] weight of the +1 column
    wy = ((y - y0f) * scale + 0.5).astype(np.uint32)  # [N] weight of the +1 row
    x0, y0 = x0f.astype(np.int32), y0f.astype(np.int32)  # [N], in [-1, S - 1]
    last = size - 1
    col0, col1 = np.maximum(x0, 0), np.minimum(x0 + 1, last)
    base = face.astype(np.int32) * (size * size)  # [N] first texel of the face
    row0 = np.maximum(y0, 0) * size + base  # [N] first texel of the upper row
    row1 = np.minimum(y0 + 1, last) * size + base
    top_rb, top_g = _lerp_row(texture.take(row0 + col0), texture.take(row0 + col1), wx)
    bottom_rb, bottom_g = _lerp_row(texture.take(row1 + col0), texture.take(row1 + col1), wx)
    red = _lerp_columns(top_rb & _LANE, bottom_rb & _LANE, wy)
    green = _lerp_columns(top_g, bottom_g, wy)
    blue = _lerp_columns(top_rb >> 16, bottom_rb >> 16, wy)
    return red | (green << 8) | (blue << 16)


# ---------------------------------------------------------------------------- render


def render_views(
    faces: np.ndarray,
    pose: np.ndarray,
    width: int = R2R_IMAGE_WIDTH,
    height: int = R2R_IMAGE_HEIGHT,
    vfov: float = R2R_VFOV,
    views: Sequence[int] | None = None,
) -> np.ndarray:
    """Render discretized views of a viewpoint as MatterSim does.

    Args:
        faces: [6, S, S, 3] uint8 RGB skybox faces (index as in the file names).
        pose: [4, 4] (or [3, 3]) the viewpoint's pose from the connectivity file; its
            rotation orients the skybox.
        width, height: output size in pixels; vfov: vertical field of view in radians.
        views: which of the 36 discretized views (default all, in order): view ``i`` has
            heading ``(i % 12) * 30`` degrees and elevation ``(i // 12 - 1) * 30`` degrees.

    Returns:
        [V, height, width, 3] uint8 RGB images.
    """
    faces = _check_faces(faces)
    views = tuple(range(NUM_VIEWS)) if views is None else tuple(int(v) for v in views)
    if any(not 0 <= v < NUM_VIEWS for v in views):
        raise ValueError(f"views must lie in [0, {NUM_VIEWS}), got {views}")
    pose = np.asarray(pose, dtype=np.float64)
    if pose.shape not in ((4, 4), (3, 3)):
        raise ValueError(f"pose must be a 4x4 (or 3x3) matrix, got shape {pose.shape}")
    if not views:
        return np.empty((0, height, width, _RGB), dtype=np.uint8)
    rotation = pose[:3, :3]
    size = faces.shape[1]
    texture = _pack_texture(faces)  # [6 S S]
    pixels = camera_pixel_directions(width, height, float(vfov))  # [3, P]
    # Camera frame -> cube space in one matrix per view: v = -R^T (axes @ c).
    to_cube = (-rotation.T @ camera_axes(views)).astype(np.float32)  # [V, 3, 3]
    num_pixels = height * width
    packed = np.empty((len(views), num_pixels), dtype=np.uint32)  # [V, P] RGB0 words
    step = max(1, CHUNK_RAYS // len(views))  # pixels per chunk, for every view at once
    for start in range(0, num_pixels, step):
        stop = min(start + step, num_pixels)
        rays = to_cube @ pixels[:, start:stop]  # [V, 3, n]
        rays = rays.transpose(1, 0, 2).reshape(3, -1)  # [3, V n]
        face, x, y = cube_texel_coordinates(rays, size)
        packed[:, start:stop] = sample_bilinear(texture, size, face, x, y).reshape(len(views), -1)
    rgb0 = packed.view(np.uint8).reshape(len(views), height, width, 4)  # [V, H, W, 4]
    return np.ascontiguousarray(rgb0[..., :_RGB])  # [V, H, W, 3]


# ---------------------------------------------------------------------------- encoder views

#: Most sub-pixels per output pixel side that :func:`render_encoder_views` averages.
MAX_SUPERSAMPLE = 4


def encoder_supersample(face_size: int, size: int, vfov: float = R2R_VFOV) -> int:
    """Sub-pixels per side that bring a ``size``-pixel view to the skybox's texel density.

    A face of ``face_size`` texels spans 90 degrees; a square view of ``size`` pixels spans
    ``vfov``. Rendering at the texel density and averaging blocks is what resizing the full
    640 x 480 view to the encoder's input does (CLIP-ViL's pipeline), without the aliasing
    of sampling a large face straight at a small size.
    """
    texels_across_view = face_size * vfov / (math.pi / 2)
    return int(min(MAX_SUPERSAMPLE, max(1, round(texels_across_view / size))))


def render_encoder_views(
    faces: np.ndarray,
    pose: np.ndarray,
    size: int,
    views: Sequence[int] | None = None,
    vfov: float = R2R_VFOV,
    supersample: int | None = None,
) -> np.ndarray:
    """The square encoder inputs of a viewpoint's discretized views: ``[V, size, size, 3]``.

    Each is the centre square of MatterSim's 640 x 480 view (same heading, elevation and
    vertical field of view, so the horizontal field of view equals ``vfov``), i.e. what
    CLIP's resize-shortest-side + centre-crop preprocessing keeps of it. Rendered at
    ``supersample`` times the size (default :func:`encoder_supersample`) and box-averaged.
    Returns uint8 RGB (never MatterSim's BGR).
    """
    faces = _check_faces(faces)
    factor = encoder_supersample(faces.shape[1], size, vfov) if supersample is None else supersample
    if factor < 1:
        raise ValueError(f"supersample must be >= 1, got {factor}")
    big = render_views(faces, pose, size * factor, size * factor, vfov, views)  # [V, fS, fS, 3]
    if factor == 1:
        return big
    blocks = big.reshape(big.shape[0], size, factor, size, factor, _RGB)
    mean = blocks.mean(axis=(2, 4), dtype=np.float32)  # [V, S, S, 3]
    return np.round(mean).astype(np.uint8)
