"""The vectorized batch simulator: MatterSim's navigation rules, once, on numpy arrays.

State is a handful of arrays over a batch of agents (location, heading, elevation,
view index, step); one call moves every agent. MatterSim's rules (``src/lib/MatterSim.cpp``:
``setHeadingElevation``, ``makeAction``, ``populateNavigable``) live in
:func:`navigable_locations` and :meth:`BatchSimulator.make_action`:

- ``navigableLocations[0]`` is the current viewpoint (relative values 0); the others are the
  adjacent included viewpoints over unobstructed edges;
- with restricted navigation a neighbour is kept only when the cosine of the horizontal angle
  between the camera heading and the direction to it is ``>= cos(vfov * width / height / 2)``;
- the list is sorted by ``sqrt(rel_heading^2 + rel_elevation^2)`` (stable: ties keep file order);
- heading is clockwise from +y; positions are float32, as MatterSim's ``glm::vec3``;
- discretized views: heading snaps to 30-degree steps, elevation to {-30, 0, +30} degrees,
  ``viewIndex = heading_step + 12 * level``; in ``makeAction`` only the sign of the turn matters;
  the agent moves first, then turns, then the navigable list is recomputed;
- continuous views: heading wraps modulo 2*pi, elevation is clamped to the limits.

In discretized mode the navigable list depends only on (viewpoint, view index), so it is
computed for every pair once, with the same rule function, and a step is a table lookup.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from envs.constants import (
    ELEVATION_INCREMENT,
    HEADING_INCREMENT,
    LEVEL_ELEVATION_INDEX,
    MATTERSIM_DEFAULT_MAX_ELEVATION,
    MATTERSIM_DEFAULT_MIN_ELEVATION,
    NUM_ELEVATION_LEVELS,
    NUM_VIEWS,
    R2R_IMAGE_HEIGHT,
    R2R_IMAGE_WIDTH,
    R2R_VFOV,
    VIEWS_PER_ELEVATION,
)
from envs.graph import NavGraphs, ScanGraph

TWO_PI = 2.0 * math.pi
#: Rows of the discretized table computed per chunk (bounds temporary memory).
_TABLE_CHUNK_ROWS = 65536


@dataclass(frozen=True)
class SimulatorConfig:
    """Camera and navigation settings (R2R's by default)."""

    #: Image width in pixels (only its ratio to ``height`` matters without rendering).
    width: int = R2R_IMAGE_WIDTH
    #: Image height in pixels.
    height: int = R2R_IMAGE_HEIGHT
    #: Vertical field of view in radians.
    vfov: float = R2R_VFOV
    #: Snap heading and elevation to the 36 discrete views (R2R: True).
    discretized: bool = True
    #: Only offer neighbours inside the horizontal field of view (MatterSim default: True).
    restricted: bool = True
    #: Elevation limits in radians (continuous mode only).
    min_elevation: float = MATTERSIM_DEFAULT_MIN_ELEVATION
    max_elevation: float = MATTERSIM_DEFAULT_MAX_ELEVATION

    @property
    def cos_half_hfov(self) -> float:
        """Cosine of half the horizontal field of view: the restricted-navigation threshold."""
        return math.cos(self.vfov * self.width / self.height / 2.0)


class SimWorld:
    """The navigation graphs of several scans as flat arrays indexed by a global viewpoint id.

    Global id ``g = offset[scan] + ix`` where ``ix`` is the viewpoint's index in its
    connectivity file.
    """

    def __init__(self, graphs: Sequence[ScanGraph]) -> None:
        self.scans: tuple[str, ...] = tuple(g.scan for g in graphs)
        self.graphs: dict[str, ScanGraph] = {g.scan: g for g in graphs}
        sizes = [len(g) for g in graphs]
        self.offsets: dict[str, int] = dict(
            zip(self.scans, np.cumsum([0, *sizes[:-1]]).tolist(), strict=True)
        )
        self.size = int(sum(sizes))
        #: [G] scan index and [G] index within the scan's file.
        self.scan_index = np.repeat(np.arange(len(graphs)), sizes)
        self.local_index = (
            np.concatenate([np.arange(n) for n in sizes]) if sizes else np.zeros(0, int)
        )
        self.viewpoint_ids: tuple[str, ...] = tuple(vp for g in graphs for vp in g.viewpoint_ids)
        #: [G, 3] float32 camera positions, as MatterSim stores them.
        self.positions = np.concatenate([g.positions for g in graphs]).astype(np.float32)
        self.included = np.concatenate([g.included for g in graphs])
        degree = [g.adjacency.sum(axis=1) for g in graphs]
        self.max_degree = int(max((d.max(initial=0) for d in degree), default=0))
        #: [G, K] global ids of adjacent viewpoints in file order, -1 padded.
        self.neighbours = np.full((self.size, max(self.max_degree, 1)), -1, dtype=np.int64)
        for graph, offset in zip(graphs, self.offsets.values(), strict=True):
            rows, cols = np.nonzero(graph.adjacency)
            slots = np.concatenate([np.arange(n) for n in graph.adjacency.sum(axis=1)])
            self.neighbours[offset + rows, slots] = offset + cols

    @classmethod
    def from_data(cls, graphs: NavGraphs, scans: Sequence[str] | None = None) -> SimWorld:
        """The world of some scans of a data root (all of them by default)."""
        return cls([graphs[s] for s in (graphs.scans if scans is None else scans)])

    def global_id(self, scan: str, viewpoint: str) -> int:
        """Global id of an included viewpoint (``DataError`` naming the file otherwise)."""
        graph = self.graphs.get(scan)
        if graph is None:
            raise KeyError(f"scan {scan!r} is not loaded in this simulator")
        return self.offsets[scan] + graph.require(viewpoint)

    def global_ids(self, scans: Sequence[str], viewpoints: Sequence[str]) -> np.ndarray:
        return np.array([self.global_id(s, v) for s, v in zip(scans, viewpoints, strict=True)])

    def scan_of(self, g: int) -> str:
        return self.scans[self.scan_index[g]]

    @functools.cached_property
    def navigable_table(self) -> tuple[np.ndarray, np.ndarray]:
        """Discretized navigable lists of every (viewpoint, view index) pair, R2R camera.

        Returns ids [G, 36, K+1] (global ids, -1 padded) and counts [G, 36].
        """
        return build_navigable_table(self, SimulatorConfig())


@dataclass(frozen=True)
class Navigable:
    """Navigable locations of a batch, sorted as MatterSim sorts them; column 0 is the agent.

    All arrays are [B, K+1]; entries at or beyond ``count`` are padding (id -1, values 0).
    """

    ids: np.ndarray
    #: Which neighbour slot (column of ``SimWorld.neighbours``) each entry is; -1 for column 0.
    slots: np.ndarray
    count: np.ndarray
    rel_heading: np.ndarray
    rel_elevation: np.ndarray
    rel_distance: np.ndarray


def navigable_locations(
    world: SimWorld,
    location: np.ndarray,
    heading: np.ndarray,
    elevation: np.ndarray,
    config: SimulatorConfig,
) -> Navigable:
    """MatterSim's ``populateNavigable`` for a batch of agents.

    Args:
        location: [B] global viewpoint ids; heading, elevation: [B] radians.
    """
    location = np.asarray(location, dtype=np.int64)
    heading = np.asarray(heading, dtype=np.float64)
    elevation = np.asarray(elevation, dtype=np.float64)
    batch = location.shape[0]
    neighbours = world.neighbours[location]  # [B, K]
    valid = neighbours >= 0
    target = world.positions[neighbours] - world.positions[location][:, None]  # [B, K, 3] f32
    target[~valid] = 0.0
    rel_distance = np.sqrt(np.einsum("bkc,bkc->bk", target, target))  # [B, K] f32
    horizontal = target[..., :2]  # [B, K, 2] f32, the target projected on the xy plane
    horizontal_length = np.sqrt(np.einsum("bkc,bkc->bk", horizontal, horizontal))  # [B, K]
    rel_elevation = (
        np.arctan2(target[..., 2].astype(np.float64), horizontal_length.astype(np.float64))
        - elevation[:, None]
    )  # [B, K]
    adjusted = math.pi / 2.0 - heading
    camera = np.stack([np.cos(adjusted), np.sin(adjusted)], axis=-1).astype(np.float32)  # [B, 2]
    cam_x, cam_y = camera[:, None, 0], camera[:, None, 1]  # [B, 1]
    tx, ty = horizontal[..., 0], horizontal[..., 1]  # [B, K]
    visible = valid
    if config.restricted:
        with np.errstate(divide="ignore", invalid="ignore"):
            inverse_length = np.float32(1.0) / horizontal_length  # glm::normalize
            cos_angle = (tx * inverse_length) * cam_x + (ty * inverse_length) * cam_y  # [B, K] f32
        # Compared in float64 as in C++ (float promoted to double); numpy 2 would otherwise
        # round the Python-float threshold to float32 (NEP 50).
        visible = valid & (cos_angle.astype(np.float64) >= config.cos_half_hfov)
    rel_heading = np.arctan2(
        (tx * cam_y - ty * cam_x).astype(np.float64), (tx * cam_x + ty * cam_y).astype(np.float64)
    )  # [B, K]
    sort_key = np.where(visible, np.sqrt(rel_heading**2 + rel_elevation**2), np.inf)
    order = np.argsort(sort_key, axis=1, kind="stable")  # [B, K]
    count = visible.sum(axis=1)  # [B]
    keep = np.arange(order.shape[1])[None, :] < count[:, None]  # [B, K] sorted entries in use

    def column0(values: np.ndarray, first: float | int, dtype: type) -> np.ndarray:
        out = np.zeros((batch, order.shape[1] + 1), dtype=dtype)
        out[:, 0] = first
        out[:, 1:] = np.where(keep, np.take_along_axis(values, order, axis=1), 0)
        return out

    ids = column0(neighbours, 0, np.int64)
    ids[:, 0] = location
    ids[:, 1:][~keep] = -1
    slots = np.where(keep, order, -1)
    return Navigable(
        ids=ids,
        slots=np.concatenate([np.full((batch, 1), -1), slots], axis=1),
        count=count + 1,
        rel_heading=column0(rel_heading, 0.0, np.float64),
        rel_elevation=column0(rel_elevation, 0.0, np.float64),
        rel_distance=column0(rel_distance.astype(np.float64), 0.0, np.float64),
    )


def discrete_view_angles(view_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Heading and elevation (radians) of discretized view indices, as MatterSim stores them."""
    view_index = np.asarray(view_index)
    heading = (view_index % VIEWS_PER_ELEVATION) * HEADING_INCREMENT
    elevation = (view_index // VIEWS_PER_ELEVATION - LEVEL_ELEVATION_INDEX) * ELEVATION_INCREMENT
    return heading, elevation


def build_navigable_table(
    world: SimWorld, config: SimulatorConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Navigable ids [G, 36, K+1] and counts [G, 36] for every viewpoint and discrete view."""
    rows = world.size * NUM_VIEWS
    ids = np.full((rows, world.neighbours.shape[1] + 1), -1, dtype=np.int64)
    counts = np.zeros(rows, dtype=np.int64)
    for start in range(0, rows, _TABLE_CHUNK_ROWS):
        row = np.arange(start, min(rows, start + _TABLE_CHUNK_ROWS))
        heading, elevation = discrete_view_angles(row % NUM_VIEWS)
        nav = navigable_locations(world, row // NUM_VIEWS, heading, elevation, config)
        ids[row], counts[row] = nav.ids, nav.count
    return ids.reshape(world.size, NUM_VIEWS, -1), counts.reshape(world.size, NUM_VIEWS)


def snap_heading(heading: np.ndarray) -> np.ndarray:
    """Heading step 0..11 nearest to ``heading`` (MatterSim: fmod, lround, 12 -> 0)."""
    wrapped = np.fmod(heading, TWO_PI)
    wrapped = np.where(wrapped < 0.0, wrapped + TWO_PI, wrapped)
    steps = np.floor(wrapped / HEADING_INCREMENT + 0.5).astype(np.int64)  # lround for x >= 0
    return np.where(steps == VIEWS_PER_ELEVATION, 0, steps)


def snap_elevation_level(elevation: np.ndarray) -> np.ndarray:
    """Elevation level 0 (down), 1 (level) or 2 (up) with +-15 degree boundaries."""
    elevation = np.asarray(elevation, dtype=np.float64)
    half = ELEVATION_INCREMENT / 2.0
    return np.where(elevation < -half, 0, np.where(elevation > half, 2, LEVEL_ELEVATION_INDEX))


class BatchSimulator:
    """A batch of agents in a :class:`SimWorld`, moved all at once.

    State arrays (all [B]): ``location`` (global ids), ``heading``, ``elevation``,
    ``view_index`` and ``step``. :attr:`navigable` gives the current navigable lists.
    """

    def __init__(self, world: SimWorld, batch_size: int, config: SimulatorConfig | None = None):
        self.world = world
        self.batch_size = batch_size
        self.config = config or SimulatorConfig()
        self.location = np.zeros(batch_size, dtype=np.int64)
        self.step = np.zeros(batch_size, dtype=np.int64)
        self.view_index = np.zeros(batch_size, dtype=np.int64)
        self._heading = np.zeros(batch_size, dtype=np.float64)
        self._elevation = np.zeros(batch_size, dtype=np.float64)
        self._nav_ids = np.zeros((batch_size, 1), dtype=np.int64)
        self._nav_count = np.ones(batch_size, dtype=np.int64)
        self._navigable: Navigable | None = None
        if self.config.discretized:
            self._table = (
                world.navigable_table
                if self._uses_r2r_camera()
                else build_navigable_table(world, self.config)
            )
        self._started = False

    def _uses_r2r_camera(self) -> bool:
        return (
            self.config.cos_half_hfov == SimulatorConfig().cos_half_hfov and self.config.restricted
        )

    # ----------------------------------------------------------------- state
    @property
    def heading(self) -> np.ndarray:
        """[B] heading in radians, clockwise from +y, in [0, 2*pi)."""
        if self.config.discretized:
            return (self.view_index % VIEWS_PER_ELEVATION) * HEADING_INCREMENT
        return self._heading

    @property
    def elevation(self) -> np.ndarray:
        """[B] elevation in radians, up positive."""
        if self.config.discretized:
            level = self.view_index // VIEWS_PER_ELEVATION
            return (level - LEVEL_ELEVATION_INDEX) * ELEVATION_INCREMENT
        return self._elevation

    @property
    def navigable_ids(self) -> np.ndarray:
        """[B, K+1] global ids of the navigable locations (column 0 = the agent), -1 padded."""
        return self._nav_ids

    @property
    def navigable_count(self) -> np.ndarray:
        """[B] number of navigable locations, the agent's own included."""
        return self._nav_count

    @property
    def navigable(self) -> Navigable:
        """Navigable locations with their relative heading, elevation and distance."""
        if self._navigable is None:
            self._navigable = navigable_locations(
                self.world, self.location, self.heading, self.elevation, self.config
            )
        return self._navigable

    # ---------------------------------------------------------------- episodes
    def new_episode(
        self,
        scan_ids: Sequence[str],
        viewpoint_ids: Sequence[str],
        headings: Sequence[float] | np.ndarray,
        elevations: Sequence[float] | np.ndarray,
    ) -> None:
        """Place every agent (MatterSim ``newEpisode``); ids are resolved once here."""
        self.new_episode_ids(self.world.global_ids(scan_ids, viewpoint_ids), headings, elevations)

    def new_episode_ids(self, location: np.ndarray, headings, elevations) -> None:
        """Place every agent by global viewpoint id."""
        location = np.asarray(location, dtype=np.int64)
        if location.shape != (self.batch_size,):
            raise ValueError(f"expected {self.batch_size} locations, got shape {location.shape}")
        headings = np.broadcast_to(np.asarray(headings, dtype=np.float64), location.shape)
        elevations = np.broadcast_to(np.asarray(elevations, dtype=np.float64), location.shape)
        self.location = location.copy()
        self.step = np.zeros(self.batch_size, dtype=np.int64)
        self._set_heading_elevation(headings, elevations, np.ones(self.batch_size, dtype=bool))
        self._started = True
        self._refresh()

    def _set_heading_elevation(self, heading: np.ndarray, elevation: np.ndarray, mask) -> None:
        """MatterSim ``setHeadingElevation`` for the agents in ``mask``."""
        if self.config.discretized:
            view = snap_heading(heading) + VIEWS_PER_ELEVATION * snap_elevation_level(elevation)
            self.view_index = np.where(mask, view, self.view_index)
            return
        wrapped = np.fmod(heading, TWO_PI)
        wrapped = np.where(wrapped < 0.0, wrapped + TWO_PI, wrapped)
        clamped = np.clip(elevation, self.config.min_elevation, self.config.max_elevation)
        self._heading = np.where(mask, wrapped, self._heading)
        self._elevation = np.where(mask, clamped, self._elevation)

    # ------------------------------------------------------------------ actions
    def make_action(
        self,
        indices: np.ndarray,
        headings: np.ndarray | float = 0.0,
        elevations: np.ndarray | float = 0.0,
        active: np.ndarray | None = None,
    ) -> None:
        """MatterSim ``makeAction`` for every agent: move to ``navigable[index]``, then turn.

        Args:
            indices: [B] positions in each agent's navigable list (0 = stay).
            headings, elevations: [B] turn in radians (only the sign counts when discretized).
            active: optional [B] bool; inactive agents are left exactly as they are.
        """
        if not self._started:
            raise RuntimeError("call new_episode before make_action")
        indices = np.asarray(indices, dtype=np.int64)
        mask = np.ones(self.batch_size, dtype=bool) if active is None else np.asarray(active)
        bad = mask & ((indices < 0) | (indices >= self._nav_count))
        if bad.any():
            agent = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"invalid action index {int(indices[agent])} for agent {agent} "
                f"({int(self._nav_count[agent])} navigable locations)"
            )
        safe = np.where(mask, indices, 0)
        self.location = self._nav_ids[np.arange(self.batch_size), safe]
        self.step = self.step + mask
        if self.config.discretized:
            turn = np.sign(headings).astype(np.int64)  # [B] or scalar
            tilt = np.sign(elevations).astype(np.int64)
            heading_step = (self.view_index + turn) % VIEWS_PER_ELEVATION
            level = np.clip(
                self.view_index // VIEWS_PER_ELEVATION + tilt, 0, NUM_ELEVATION_LEVELS - 1
            )
            view = heading_step + VIEWS_PER_ELEVATION * level
            self.view_index = np.where(mask, view, self.view_index)
        else:
            self._set_heading_elevation(
                self._heading + headings, self._elevation + elevations, mask
            )
        self._refresh()

    def _refresh(self) -> None:
        """Recompute the navigable lists after the state changed."""
        self._navigable = None
        if self.config.discretized:
            ids, counts = self._table
            self._nav_ids = ids[self.location, self.view_index]  # [B, K+1]
            self._nav_count = counts[self.location, self.view_index]  # [B]
        else:
            nav = self.navigable
            self._nav_ids, self._nav_count = nav.ids, nav.count
