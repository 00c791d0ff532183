"""R2R-like reference paths on a navigation graph: shortest paths of 4-7 viewpoints, 5-20 m."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from envs.graph import ScanGraph

#: Viewpoints on a path (both ends included) and its length in metres, as in R2R.
PATH_VIEWPOINTS = (4, 7)
PATH_LENGTH_M = (5.0, 20.0)
#: R2R rounds distances to 2 decimals and headings to 3.
DISTANCE_DECIMALS = 2
HEADING_DECIMALS = 3


@dataclass(frozen=True)
class SampledPath:
    """A reference path: viewpoint ids, its length, and the start heading."""

    path: tuple[str, ...]
    distance: float
    heading: float


def path_candidates(graph: ScanGraph) -> list[tuple[int, int]]:
    """Ordered pairs ``(start, goal)`` (indices) whose shortest path is R2R-like, ``start < goal``.

    Only one direction of each pair is listed; :func:`sample_paths` picks the direction.
    """
    dist = graph.distances  # [N, N]
    lo, hi = PATH_LENGTH_M
    pairs = []
    for a, b in zip(*np.nonzero((dist >= lo) & (dist <= hi)), strict=True):
        if a < b:
            hops = len(graph.shortest_path(graph.viewpoint_ids[a], graph.viewpoint_ids[b]))
            if PATH_VIEWPOINTS[0] <= hops <= PATH_VIEWPOINTS[1]:
                pairs.append((int(a), int(b)))
    return pairs


def random_heading(rng: np.random.Generator) -> float:
    """A start heading in [0, 2 pi), rounded like R2R's."""
    heading = round(float(rng.uniform(0.0, 2.0 * math.pi)), HEADING_DECIMALS)
    return heading if heading < 2.0 * math.pi else 0.0


def sample_paths(
    rng: np.random.Generator, graph: ScanGraph, pairs: list[tuple[int, int]], count: int
) -> list[SampledPath]:
    """``count`` distinct paths from ``pairs`` (in random order and direction).

    Raises ``ValueError`` when there are fewer pairs than ``count``.
    """
    if len(pairs) < count:
        raise ValueError(f"{graph.scan}: {len(pairs)} candidate paths, {count} wanted")
    paths = []
    for k in rng.choice(len(pairs), size=count, replace=False):
        a, b = pairs[k]
        if rng.random() < 0.5:
            a, b = b, a
        ids = graph.shortest_path(graph.viewpoint_ids[a], graph.viewpoint_ids[b])
        distance = round(float(graph.distances[a, b]), DISTANCE_DECIMALS)
        paths.append(SampledPath(tuple(ids), distance, random_heading(rng)))
    return paths
