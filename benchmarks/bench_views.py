"""Views per second of :func:`envs.views.render_views` against a plain per-view baseline.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_views [--repeats 5] [--face-size 512]

Both renderers draw the same views from random 512 x 512 faces with a real-looking
(tilted) pose; the table gives medians over the repetitions, and the largest difference
between the two outputs (bilinear rounding: at most 1 expected).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from envs.constants import NUM_VIEWS, R2R_VFOV, view_elevation, view_heading
from envs.cubemap import lookup, upright_rotation
from envs.views import render_views

#: Output sizes measured: R2R's 640 x 480 and a CLIP-friendly 298 x 224 (same vfov).
SIZES = ((640, 480), (298, 224))


def render_views_plain(
    faces: np.ndarray,
    pose: np.ndarray,
    width: int,
    height: int,
    vfov: float = R2R_VFOV,
    views: Sequence[int] = range(NUM_VIEWS),
) -> np.ndarray:
    """The straightforward renderer: everything in float64, recomputed view by view."""
    rotation = np.asarray(pose, dtype=np.float64)[:3, :3]
    size = faces.shape[1]
    tan_v = math.tan(vfov / 2)
    tan_h = tan_v * width / height
    out = np.empty((len(views), height, width, 3), dtype=np.uint8)
    for i, view in enumerate(views):
        h, e = view_heading(view), view_elevation(view)
        forward = np.array([math.sin(h) * math.cos(e), math.cos(h) * math.cos(e), math.sin(e)])
        right = np.array([math.cos(h), -math.sin(h), 0.0])
        up = np.cross(right, forward)
        cols, rows = np.meshgrid(np.arange(width), np.arange(height))  # [H, W]
        a = ((cols + 0.5) / width * 2 - 1) * tan_h
        b = ((rows + 0.5) / height * 2 - 1) * tan_v
        rays = forward + a[..., None] * right - b[..., None] * up  # [H, W, 3]
        face, s, t = lookup(rays, rotation)
        x, y = s * size - 0.5, t * size - 0.5
        x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
        fx, fy = (x - x0)[..., None], (y - y0)[..., None]  # [H, W, 1]

        def texel(r: np.ndarray, c: np.ndarray, face: np.ndarray = face) -> np.ndarray:
            return faces[face, np.clip(r, 0, size - 1), np.clip(c, 0, size - 1)].astype(float)

        top = texel(y0, x0) * (1 - fx) + texel(y0, x0 + 1) * fx
        bottom = texel(y0 + 1, x0) * (1 - fx) + texel(y0 + 1, x0 + 1) * fx
        out[i] = np.round(top * (1 - fy) + bottom * fy).astype(np.uint8)
    return out


def median_seconds(fn: Callable[[], np.ndarray], repeats: int) -> tuple[float, np.ndarray]:
    """Median wall time of ``fn`` over ``repeats`` runs (after one warm-up), and its output."""
    result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--face-size", type=int, default=512, help="skybox face side")
    parser.add_argument(
        "--baseline-views", type=int, default=4, help="views drawn by the (slow) baseline"
    )
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, size=(6, args.face_size, args.face_size, 3), dtype=np.uint8)
    pose = np.eye(4)
    tilt = np.linalg.qr(np.eye(3) + 0.02 * rng.normal(size=(3, 3)))[0]
    pose[:3, :3] = tilt @ upright_rotation(0.4)  # Matterport-like: upright, slightly tilted
    subset = list(range(0, NUM_VIEWS, NUM_VIEWS // args.baseline_views))[: args.baseline_views]

    print(
        f"faces {args.face_size}x{args.face_size}, median of {args.repeats} runs; the plain "
        f"renderer draws views {subset}, its s/viewpoint is scaled to {NUM_VIEWS} views"
    )
    print(f"{'output':>9}  {'renderer':<22} {'s/viewpoint':>11} {'views/s':>8} {'speed-up':>8}")
    for width, height in SIZES:
        fast_s, fast = median_seconds(
            lambda w=width, h=height: render_views(faces, pose, w, h), args.repeats
        )
        plain_s, plain = median_seconds(
            lambda w=width, h=height: render_views_plain(faces, pose, w, h, views=subset),
            max(1, args.repeats // 2),
        )
        plain_per_view = plain_s / len(subset)
        fast_per_view = fast_s / NUM_VIEWS
        diff = int(np.abs(fast[subset].astype(int) - plain).max())
        size = f"{width}x{height}"
        print(
            f"{size:>9}  {'plain (per view)':<22} {plain_per_view * NUM_VIEWS:>11.3f} "
            f"{1 / plain_per_view:>8.1f} {1.0:>8.1f}"
        )
        print(
            f"{size:>9}  {'render_views':<22} {fast_s:>11.3f} {1 / fast_per_view:>8.1f} "
            f"{plain_per_view / fast_per_view:>8.1f}   (max |diff| {diff})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
