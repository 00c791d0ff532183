"""One synthetic house: floor plan, furniture, viewpoints, navigation graph and path pool.

:func:`generate_house` draws plans until one gives a connected navigation graph with
enough R2R-like paths; everything comes from the one random generator it is given, so a
house depends only on its seed.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import numpy as np

from envs.graph import ScanGraph, parse_connectivity
from envs.synthetic.furnish import Furniture, furnish
from envs.synthetic.layout import Floorplan, generate_floorplan
from envs.synthetic.paths import path_candidates
from envs.synthetic.viewpoints import (
    Viewpoint,
    connectivity,
    connectivity_entries,
    place_viewpoints,
)

#: Matterport scan ids are 11 letters and digits.
SCAN_ID_LENGTH = 11
SCAN_ID_ALPHABET = string.ascii_letters + string.digits
#: Plans drawn before giving up on a house.
MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class House:
    """A generated house and its Matterport-format connectivity."""

    scan: str
    plan: Floorplan
    objects: tuple[Furniture, ...]
    viewpoints: tuple[Viewpoint, ...]
    #: The ``{scan}_connectivity.json`` entries, exactly as written.
    connectivity: list[dict]
    #: The navigation graph parsed from ``connectivity`` (as readers will load it).
    graph: ScanGraph
    #: Index pairs ``(a, b)``, ``a < b``, whose shortest path is R2R-like.
    path_pairs: list[tuple[int, int]]

    def viewpoint(self, vp_id: str) -> Viewpoint:
        return self.viewpoints[self.graph.index[vp_id]]


def scan_id(rng: np.random.Generator) -> str:
    """A random 11-character scan id like Matterport's (``17DRP5sb8fy``)."""
    return "".join(
        SCAN_ID_ALPHABET[i] for i in rng.integers(len(SCAN_ID_ALPHABET), size=SCAN_ID_LENGTH)
    )


def is_connected(graph: ScanGraph) -> bool:
    """Whether every included viewpoint can reach every other one."""
    return bool(np.isfinite(graph.distances).all())


def generate_house(rng: np.random.Generator, rooms: tuple[int, int], min_paths: int) -> House:
    """A house with ``rooms[0]..rooms[1]`` rooms, connected, with at least ``min_paths`` paths.

    Raises ``RuntimeError`` when MAX_ATTEMPTS plans all fail (it does not happen with the
    shipped presets).
    """
    scan = scan_id(rng)
    for _ in range(MAX_ATTEMPTS):
        plan = generate_floorplan(rng, int(rng.integers(rooms[0], rooms[1] + 1)))
        objects = furnish(rng, plan)
        viewpoints = place_viewpoints(rng, plan, objects)
        if len({v.id for v in viewpoints}) != len(viewpoints):
            continue
        unobstructed, visible = connectivity(viewpoints, plan, objects)
        entries = connectivity_entries(viewpoints, unobstructed, visible)
        graph = parse_connectivity(entries, scan, f"connectivity/{scan}_connectivity.json")
        if not is_connected(graph):
            continue
        pairs = path_candidates(graph)
        if len(pairs) >= min_paths:
            return House(scan, plan, objects, tuple(viewpoints), entries, graph, pairs)
    raise RuntimeError(f"no usable house for scan {scan} after {MAX_ATTEMPTS} attempts")
