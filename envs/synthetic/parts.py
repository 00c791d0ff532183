"""What furniture looks like: each category as a few boxes and vertical cylinders.

A part is given in fractions of the object's box in its own frame: ``u`` across its width
(0 = left, 1 = right), ``v`` along its depth from the back (0, the wall side) to the front
(1), ``z`` up. All parts stay inside the object's box, so the scene's ``bounds`` are the
exact extent of what is drawn. Each part has a colour *role*: the object's named colour,
a darker or lighter shade of it, or a fixed material (white linen, a terracotta pot ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.synthetic.furnish import Furniture
from envs.synthetic.vocabulary import COLOURS

BOX, CYLINDER = "box", "cylinder"
#: Fixed colours of materials that do not take the object's colour (sRGB).
MATERIALS: dict[str, tuple[int, int, int]] = {
    "linen": (236, 234, 226),
    "metal": (150, 150, 155),
    "dark": (30, 30, 32),
    "wood": (125, 85, 50),
    "pot": (170, 92, 60),
    "canvas": (215, 190, 120),
}
#: Shade factors of the "dark" and "light" roles.
DARK_FACTOR, LIGHT_FACTOR = 0.65, 1.2

Fractions = tuple[float, float, float, float, float, float]  # u0, u1, v0, v1, z0, z1


@dataclass(frozen=True)
class PartSpec:
    """One part of a category: shape, fractions of the object box, colour role."""

    shape: str
    fractions: Fractions
    role: str = "main"


def _legs(top: float, size: float = 0.07) -> tuple[PartSpec, ...]:
    """Four legs at the corners, up to height fraction ``top``."""
    return tuple(
        PartSpec(BOX, (u, u + size, v, v + size, 0.0, top), "dark")
        for u in (0.02, 0.98 - size)
        for v in (0.02, 0.98 - size)
    )


def _shelves(count: int) -> tuple[PartSpec, ...]:
    """Sides, back and ``count + 1`` boards of an open shelf."""
    boards = tuple(
        PartSpec(BOX, (0.0, 1.0, 0.0, 1.0, k / count * 0.97, k / count * 0.97 + 0.03))
        for k in range(count + 1)
    )
    sides = (
        PartSpec(BOX, (0.0, 0.06, 0.0, 1.0, 0.0, 1.0)),
        PartSpec(BOX, (0.94, 1.0, 0.0, 1.0, 0.0, 1.0)),
    )
    return (*sides, PartSpec(BOX, (0.0, 1.0, 0.0, 0.1, 0.0, 1.0), "dark"), *boards)


_WHOLE = PartSpec(BOX, (0.0, 1.0, 0.0, 1.0, 0.0, 1.0))
_SOFA = (
    PartSpec(BOX, (0.0, 1.0, 0.0, 1.0, 0.0, 0.5)),
    PartSpec(BOX, (0.0, 1.0, 0.0, 0.25, 0.5, 1.0), "dark"),
    PartSpec(BOX, (0.0, 0.12, 0.25, 1.0, 0.5, 0.72)),
    PartSpec(BOX, (0.88, 1.0, 0.25, 1.0, 0.5, 0.72)),
)

RECIPES: dict[str, tuple[PartSpec, ...]] = {
    "bed": (
        PartSpec(BOX, (0.0, 1.0, 0.0, 0.06, 0.0, 1.0), "dark"),
        PartSpec(BOX, (0.0, 1.0, 0.06, 1.0, 0.0, 0.45), "dark"),
        PartSpec(BOX, (0.02, 0.98, 0.07, 0.99, 0.45, 0.75)),
        PartSpec(BOX, (0.12, 0.88, 0.08, 0.24, 0.75, 0.88), "linen"),
    ),
    "sofa": _SOFA,
    "armchair": _SOFA,
    "table": (PartSpec(BOX, (0.0, 1.0, 0.0, 1.0, 0.93, 1.0)), *_legs(0.93)),
    "desk": (
        PartSpec(BOX, (0.0, 1.0, 0.0, 1.0, 0.93, 1.0)),
        PartSpec(BOX, (0.65, 1.0, 0.05, 0.95, 0.0, 0.93), "dark"),
        *_legs(0.93)[:2],
    ),
    "chair": (
        PartSpec(BOX, (0.0, 1.0, 0.0, 1.0, 0.45, 0.52)),
        PartSpec(BOX, (0.0, 1.0, 0.0, 0.14, 0.52, 1.0)),
        *_legs(0.45),
    ),
    "fridge": (
        PartSpec(BOX, (0.0, 1.0, 0.0, 0.97, 0.0, 1.0)),
        PartSpec(BOX, (0.02, 0.98, 0.97, 1.0, 0.0, 0.6), "light"),
        PartSpec(BOX, (0.02, 0.98, 0.97, 1.0, 0.62, 1.0), "light"),
        PartSpec(BOX, (0.82, 0.88, 0.97, 1.0, 0.3, 0.9), "metal"),
    ),
    "stove": (
        PartSpec(BOX, (0.0, 1.0, 0.0, 0.97, 0.0, 0.95)),
        PartSpec(BOX, (0.0, 1.0, 0.0, 1.0, 0.95, 1.0), "dark"),
        PartSpec(BOX, (0.15, 0.85, 0.97, 1.0, 0.2, 0.7), "dark"),
    ),
    "counter": (
        PartSpec(BOX, (0.0, 1.0, 0.0, 0.95, 0.0, 0.94)),
        PartSpec(BOX, (0.0, 1.0, 0.0, 1.0, 0.94, 1.0), "light"),
    ),
    "toilet": (
        PartSpec(BOX, (0.05, 0.95, 0.0, 0.28, 0.0, 1.0)),
        PartSpec(BOX, (0.15, 0.85, 0.28, 1.0, 0.0, 0.55)),
        PartSpec(BOX, (0.1, 0.9, 0.3, 1.0, 0.55, 0.6), "light"),
    ),
    "sink": (
        PartSpec(BOX, (0.0, 1.0, 0.0, 1.0, 0.0, 0.85), "dark"),
        PartSpec(BOX, (0.0, 1.0, 0.0, 1.0, 0.85, 1.0)),
    ),
    "bathtub": (_WHOLE, PartSpec(BOX, (0.0, 1.0, 0.0, 1.0, 0.92, 1.0), "light")),
    "plant": (
        PartSpec(CYLINDER, (0.25, 0.75, 0.25, 0.75, 0.0, 0.3), "pot"),
        PartSpec(CYLINDER, (0.0, 1.0, 0.0, 1.0, 0.3, 1.0)),
    ),
    "tv": (
        PartSpec(BOX, (0.0, 1.0, 0.0, 1.0, 0.0, 1.0)),
        PartSpec(BOX, (0.04, 0.96, 0.5, 1.0, 0.06, 0.94), "dark"),
    ),
    "bookshelf": _shelves(4),
    "lamp": (
        PartSpec(CYLINDER, (0.25, 0.75, 0.25, 0.75, 0.0, 0.04), "metal"),
        PartSpec(CYLINDER, (0.46, 0.54, 0.46, 0.54, 0.0, 0.75), "metal"),
        PartSpec(CYLINDER, (0.0, 1.0, 0.0, 1.0, 0.72, 1.0)),
    ),
    "rug": (_WHOLE,),
    "painting": (
        PartSpec(BOX, (0.0, 1.0, 0.0, 0.6, 0.0, 1.0)),
        PartSpec(BOX, (0.1, 0.9, 0.0, 1.0, 0.12, 0.88), "canvas"),
    ),
    "washing machine": (_WHOLE, PartSpec(BOX, (0.25, 0.75, 0.96, 1.0, 0.3, 0.75), "dark")),
    "wardrobe": (
        PartSpec(BOX, (0.0, 1.0, 0.0, 0.95, 0.0, 1.0), "dark"),
        PartSpec(BOX, (0.02, 0.49, 0.95, 1.0, 0.02, 0.98)),
        PartSpec(BOX, (0.51, 0.98, 0.95, 1.0, 0.02, 0.98)),
    ),
    "dresser": (
        PartSpec(BOX, (0.0, 1.0, 0.0, 0.95, 0.0, 1.0), "dark"),
        *(PartSpec(BOX, (0.03, 0.97, 0.95, 1.0, z, z + 0.28)) for z in (0.05, 0.36, 0.67)),
    ),
}


@dataclass(frozen=True)
class Part:
    """A drawn solid of an object: a box, or a vertical cylinder inscribed in its box."""

    shape: str
    #: ``(xmin, ymin, zmin, xmax, ymax, zmax)`` in world coordinates.
    bounds: tuple[float, float, float, float, float, float]
    #: sRGB colour (0..255).
    color: tuple[float, float, float]
    object_id: int


def part_color(role: str, named: tuple[int, int, int]) -> tuple[float, float, float]:
    """Colour of a part with colour ``role`` on an object of colour ``named``."""
    base = np.asarray(named, dtype=float)
    if role == "main":
        rgb = base
    elif role == "dark":
        rgb = base * DARK_FACTOR
    elif role == "light":
        rgb = np.minimum(base * LIGHT_FACTOR + 12.0, 255.0)
    else:
        rgb = np.asarray(MATERIALS[role], dtype=float)
    return (float(rgb[0]), float(rgb[1]), float(rgb[2]))


def _to_world(obj: Furniture, f: Fractions) -> tuple[float, float, float, float, float, float]:
    """World box of fractions ``f`` of ``obj``'s box, in its facing frame."""
    xmin, ymin, zmin, xmax, ymax, zmax = obj.bounds
    u0, u1, v0, v1, z0, z1 = f
    if obj.facing in ("-y", "-x"):
        v0, v1 = 1.0 - v1, 1.0 - v0  # the back is at the high side
    if obj.facing in ("+x", "-x"):
        (x0, x1), (y0, y1) = (v0, v1), (u0, u1)
    else:
        (x0, x1), (y0, y1) = (u0, u1), (v0, v1)
    dx, dy, dz = xmax - xmin, ymax - ymin, zmax - zmin
    return (
        xmin + x0 * dx,
        ymin + y0 * dy,
        zmin + z0 * dz,
        xmin + x1 * dx,
        ymin + y1 * dy,
        zmin + z1 * dz,
    )


def object_parts(obj: Furniture) -> list[Part]:
    """The solids that draw ``obj``."""
    named = COLOURS[obj.color]
    return [
        Part(spec.shape, _to_world(obj, spec.fractions), part_color(spec.role, named), obj.id)
        for spec in RECIPES.get(obj.category, (_WHOLE,))
    ]
