"""Matterport connectivity graphs: ``{scan}_connectivity.json`` -> navigation graph.

The file is a list with one entry per panorama (viewpoint)::

    {"image_id": str, "pose": [16 floats, row-major 4x4], "included": bool,
     "visible": [bool] * N, "unobstructed": [bool] * N, "height": float}

The navigation graph holds the *included* viewpoints; an edge joins ``i`` and ``j``
when ``unobstructed`` says so, weighted by the 3-D Euclidean distance between the
camera positions (the pose's translation column). This is the graph on which R2R's
official evaluation measures distances (``load_nav_graphs`` in the R2R code).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from envs.constants import POSE_SIZE
from envs.errors import DataError
from envs.fileio import read_json

CONNECTIVITY_DIR = "connectivity"
SCANS_FILE = "scans.txt"
_REQUIRED_KEYS = ("image_id", "pose", "included", "unobstructed")


def connectivity_path(data_dir: str | os.PathLike[str], scan: str) -> Path:
    """Where the connectivity file of ``scan`` lives in a data root."""
    return Path(data_dir) / CONNECTIVITY_DIR / f"{scan}_connectivity.json"


def position_from_pose(pose: np.ndarray) -> np.ndarray:
    """Camera position (x, y, z) of a 4x4 pose (or a stack ``[..., 4, 4]``)."""
    return pose[..., :3, 3]


def rotation_from_pose(pose: np.ndarray) -> np.ndarray:
    """Camera rotation (3x3) of a 4x4 pose (or a stack ``[..., 4, 4]``)."""
    return pose[..., :3, :3]


@dataclass(frozen=True, eq=False)
class ScanGraph:
    """The navigation graph of one Matterport scan.

    Viewpoint index ``ix`` is the position of the viewpoint in the connectivity file
    (MatterSim's ``Viewpoint.ix``), excluded viewpoints included.
    """

    scan: str
    viewpoint_ids: tuple[str, ...]
    #: [N, 4, 4] float64 camera poses.
    poses: np.ndarray
    #: [N] bool: viewpoint is part of the navigation graph.
    included: np.ndarray
    #: [N, N] bool: row i as listed by viewpoint i.
    unobstructed: np.ndarray
    #: [N] float: camera height above the floor (0 when the file has none).
    heights: np.ndarray
    #: The file the graph was read from (for error messages).
    source: str = ""

    def __len__(self) -> int:
        return len(self.viewpoint_ids)

    @functools.cached_property
    def index(self) -> dict[str, int]:
        """Viewpoint id -> index in the file."""
        return {vp: ix for ix, vp in enumerate(self.viewpoint_ids)}

    @functools.cached_property
    def positions(self) -> np.ndarray:
        """[N, 3] float64 camera positions."""
        return np.ascontiguousarray(position_from_pose(self.poses))

    @functools.cached_property
    def adjacency(self) -> np.ndarray:
        """[N, N] bool: MatterSim's reachable set, ``unobstructed[i, j] and included[j]``, no loops.

        Rows of excluded viewpoints are empty: an agent can never stand there.
        """
        adj = self.unobstructed & self.included[None, :] & self.included[:, None]
        np.fill_diagonal(adj, False)
        return adj

    @functools.cached_property
    def _edge_matrix(self) -> csr_matrix:
        adj = self.adjacency | self.adjacency.T  # undirected, as networkx.Graph makes it
        rows, cols = np.nonzero(adj)
        lengths = np.linalg.norm(self.positions[rows] - self.positions[cols], axis=1)
        return csr_matrix((lengths, (rows, cols)), shape=(len(self), len(self)))

    @functools.cached_property
    def _shortest(self) -> tuple[np.ndarray, np.ndarray]:
        dist, pred = dijkstra(self._edge_matrix, directed=False, return_predecessors=True)
        return dist, pred

    @property
    def distances(self) -> np.ndarray:
        """[N, N] float64 shortest-path distances in metres (``inf`` when unreachable)."""
        return self._shortest[0]

    def require(self, viewpoint: str) -> int:
        """Index of an included viewpoint; :class:`DataError` naming the file otherwise."""
        ix = self.index.get(viewpoint)
        if ix is None:
            raise DataError(self.source or self.scan, f"unknown viewpoint {viewpoint!r}")
        if not self.included[ix]:
            raise DataError(self.source or self.scan, f"viewpoint {viewpoint!r} is not included")
        return ix

    def distance(self, a: str, b: str) -> float:
        """Shortest-path distance in metres between two viewpoints."""
        return float(self.distances[self.require(a), self.require(b)])

    def shortest_path(self, a: str, b: str) -> list[str]:
        """Viewpoints on a shortest path from ``a`` to ``b``, both ends included."""
        start, goal = self.require(a), self.require(b)
        pred = self._shortest[1]
        if start != goal and pred[start, goal] < 0:
            raise DataError(self.source or self.scan, f"no path from {a!r} to {b!r}")
        path = [goal]
        while path[-1] != start:
            path.append(int(pred[start, path[-1]]))
        return [self.viewpoint_ids[ix] for ix in reversed(path)]

    def neighbours(self, viewpoint: str) -> list[str]:
        """Adjacent included viewpoints in file order (MatterSim's adjacency)."""
        ix = self.require(viewpoint)
        return [self.viewpoint_ids[j] for j in np.flatnonzero(self.adjacency[ix])]

    def is_edge(self, a: str, b: str) -> bool:
        """Whether the graph joins ``a`` and ``b`` (either direction listed)."""
        i, j = self.require(a), self.require(b)
        return bool(self.adjacency[i, j] or self.adjacency[j, i])

    def to_networkx(self) -> nx.Graph:
        """The graph as ``networkx.Graph`` with ``weight`` and node ``position`` attributes."""
        graph = nx.Graph()
        for ix in np.flatnonzero(self.included):
            graph.add_node(self.viewpoint_ids[ix], position=self.positions[ix])
        rows, cols = self._edge_matrix.nonzero()
        for i, j, w in zip(rows, cols, self._edge_matrix.data, strict=True):
            if i < j:
                graph.add_edge(self.viewpoint_ids[i], self.viewpoint_ids[j], weight=float(w))
        return graph


def _finite(value: object) -> bool:
    """A finite JSON number (booleans are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float range
        return False


def _parse_viewpoint(entry: object, i: int, count: int, source: str) -> dict:
    """Entry ``i`` of a connectivity file of ``count`` viewpoints, checked (DataError if bad)."""
    if not isinstance(entry, dict):
        raise DataError(source, f"entry {i} is not an object")
    missing = [k for k in _REQUIRED_KEYS if k not in entry]
    if missing:
        raise DataError(source, f"entry {i} is missing key {missing[0]!r}")
    pose, row, height = entry["pose"], entry["unobstructed"], entry.get("height", 0.0)
    if not isinstance(entry["image_id"], str):
        raise DataError(source, f"entry {i}: image_id must be a string (a viewpoint id)")
    if not isinstance(pose, list) or len(pose) != POSE_SIZE or not all(map(_finite, pose)):
        raise DataError(source, f"entry {i}: pose must be a list of {POSE_SIZE} finite numbers")
    if not isinstance(row, list) or len(row) != count or not all(isinstance(b, bool) for b in row):
        raise DataError(source, f"entry {i}: unobstructed must list {count} booleans")
    if not isinstance(entry["included"], bool):
        raise DataError(source, f"entry {i}: included must be a boolean")
    if not _finite(height):
        raise DataError(source, f"entry {i}: height must be a finite number")
    return entry


def parse_connectivity(entries: object, scan: str, source: str) -> ScanGraph:
    """Validate the decoded JSON of a connectivity file and build its :class:`ScanGraph`."""
    if not isinstance(entries, list) or not entries:
        raise DataError(source, "expected a non-empty JSON list of viewpoints")
    count = len(entries)
    viewpoints = [_parse_viewpoint(entry, i, count, source) for i, entry in enumerate(entries)]
    ids = tuple(entry["image_id"] for entry in viewpoints)
    if len(set(ids)) != count:
        raise DataError(source, "duplicate image_id")
    return ScanGraph(
        scan=scan,
        viewpoint_ids=ids,
        poses=np.array([entry["pose"] for entry in viewpoints], dtype=np.float64).reshape(
            count, 4, 4
        ),  # [N, 4, 4]
        included=np.array([entry["included"] for entry in viewpoints], dtype=bool),  # [N]
        unobstructed=np.array([entry["unobstructed"] for entry in viewpoints], dtype=bool),
        heights=np.array([entry.get("height", 0.0) for entry in viewpoints], dtype=np.float64),
        source=source,
    )


def load_scan_graph(path: str | os.PathLike[str], scan: str | None = None) -> ScanGraph:
    """Read one ``{scan}_connectivity.json`` file."""
    path = Path(path)
    if scan is None:
        scan = path.name.removesuffix("_connectivity.json")
    return parse_connectivity(read_json(path), scan, str(path))


class NavGraphs(Mapping[str, ScanGraph]):
    """The navigation graphs of a data root (``DIR/connectivity/*.json``), loaded lazily.

    Each scan's file is read, and its shortest paths computed, once, on first use.
    """

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.data_dir = Path(data_dir)
        self.directory = self.data_dir / CONNECTIVITY_DIR
        if not self.directory.is_dir():
            raise DataError(self.directory, "connectivity directory not found")
        self._graphs: dict[str, ScanGraph] = {}

    @functools.cached_property
    def scans(self) -> tuple[str, ...]:
        """Scan ids: from ``scans.txt`` when present, else every connectivity file."""
        listing = self.directory / SCANS_FILE
        if listing.is_file():
            return tuple(listing.read_text(encoding="utf-8").split())
        suffix = "_connectivity.json"
        return tuple(sorted(p.name[: -len(suffix)] for p in self.directory.glob(f"*{suffix}")))

    def __getitem__(self, scan: str) -> ScanGraph:
        graph = self._graphs.get(scan)
        if graph is None:
            path = connectivity_path(self.data_dir, scan)
            if not path.is_file():
                raise DataError(path, f"no connectivity file for scan {scan!r}")
            graph = self._graphs[scan] = load_scan_graph(path, scan)
        return graph

    def __iter__(self) -> Iterator[str]:
        return iter(self.scans)

    def __len__(self) -> int:
        return len(self.scans)

    def __contains__(self, scan: object) -> bool:
        return isinstance(scan, str) and connectivity_path(self.data_dir, scan).is_file()
