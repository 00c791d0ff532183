"""Procedural floor patterns: brightness factors per floor material, as functions of (x, y).

Wooden floors have planks with seams, tiled floors square tiles with grout, carpet a fine
speckle, stone large slabs in a running bond. Patterns are pure functions of the world
position (an integer hash, no random state), so every viewpoint sees the same floor.
"""

from __future__ import annotations

import numpy as np

from envs.synthetic.solids import MATERIAL_CODES

#: Plank width and length (m); tile side; carpet speckle size; stone slab size.
PLANK_WIDTH, PLANK_LENGTH = 0.15, 1.2
TILE_SIDE = 0.4
CARPET_CELL = 0.03
SLAB_SIZE = (0.8, 0.5)
#: Width of seams and grout lines, as a fraction of the cell.
PLANK_SEAM, TILE_GROUT, SLAB_JOINT = 0.06, 0.05, 0.03
#: Brightness of seams / grout relative to the surface.
SEAM_FACTOR, GROUT_FACTOR, JOINT_FACTOR = 0.72, 0.8, 0.7


def hash01(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A deterministic pseudo-random value in [0, 1) for each integer pair (any shapes)."""
    a = np.asarray(a, dtype=np.int64).astype(np.uint32)
    b = np.asarray(b, dtype=np.int64).astype(np.uint32)
    h = a * np.uint32(73856093) ^ b * np.uint32(19349663)
    h = (h ^ (h >> np.uint32(13))) * np.uint32(1274126177)
    h = h ^ (h >> np.uint32(16))
    return h.astype(np.float32) / np.float32(2.0**32)


def _wood(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    row = np.floor(y / PLANK_WIDTH)
    along = x / PLANK_LENGTH + hash01(row, 7)  # staggered plank ends
    plank = np.floor(along)
    factor = 0.88 + 0.14 * hash01(row, plank)
    seam = (y / PLANK_WIDTH - row < PLANK_SEAM) | (along - plank < PLANK_SEAM / 8)
    return np.where(seam, SEAM_FACTOR, factor)


def _tiles(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    u, v = x / TILE_SIDE, y / TILE_SIDE
    fu, fv = u - np.floor(u), v - np.floor(v)
    factor = 0.96 + 0.06 * hash01(np.floor(u), np.floor(v))
    return np.where((fu < TILE_GROUT) | (fv < TILE_GROUT), GROUT_FACTOR, factor)


def _carpet(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return 0.9 + 0.1 * hash01(np.floor(x / CARPET_CELL), np.floor(y / CARPET_CELL))


def _stone(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    row = np.floor(y / SLAB_SIZE[1])
    along = x / SLAB_SIZE[0] + 0.5 * (row % 2)  # running bond
    slab = np.floor(along)
    factor = 0.85 + 0.18 * hash01(slab, row)
    joint = (along - slab < SLAB_JOINT) | (y / SLAB_SIZE[1] - row < SLAB_JOINT * 1.6)
    return np.where(joint, JOINT_FACTOR, factor)


_PATTERNS = {"wooden": _wood, "tiled": _tiles, "carpeted": _carpet, "stone": _stone}


def floor_pattern(material: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Brightness factor (about 0.7-1.05) of the floor at (x, y) for material codes ``material``.

    All three arrays have the same shape [K]; codes index :data:`MATERIAL_CODES`.
    """
    factor = np.ones(np.shape(x), dtype=np.float32)
    for code, name in enumerate(MATERIAL_CODES):
        mask = material == code
        if mask.any():
            factor[mask] = _PATTERNS[name](x[mask], y[mask])
    return factor
