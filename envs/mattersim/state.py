"""MatterSim's Python state objects (``ViewPoint``, ``SimState``) over the batch core's arrays.

:class:`BatchView` reads a :class:`envs.simulator.BatchSimulator` the way MatterSim's pybind
module presents its C++ state: one :class:`SimState` per agent, a :class:`ViewPoint` per
location. Nothing is converted until it is read, and then in bulk: after each step the first
attribute read converts the batch's arrays with ``.tolist()`` (:class:`StepFrame`), and the
first ``navigableLocations`` read of the step builds every agent's list from the core's
:attr:`~envs.simulator.BatchSimulator.navigable` (one vectorized computation for the batch).
With discretized views a list depends only on (viewpoint, view), so lists are also kept in
a :class:`NavigableCache` shared by the simulators of a world; this is what makes many
batch-1 simulators (the usual R2R ``EnvBatch``) fast. An agent's own location is one
``ViewPoint`` per viewpoint, made once and shared. ViewPoints are read-only, like pybind's
``def_readonly`` fields, so sharing them is safe.
"""

from __future__ import annotations

import operator
from collections import OrderedDict

import numpy as np

from envs.constants import NUM_VIEWS
from envs.simulator import (
    BatchSimulator,
    Navigable,
    SimulatorConfig,
    SimWorld,
    discrete_view_angles,
    navigable_locations,
)

#: Navigable lists kept per world and camera setting (about 0.7 kB each).
NAV_CACHE_ENTRIES = 65_536
#: At most this many uncached viewpoints in a step get all 36 views computed at once.
PREFETCH_VIEWPOINTS = 4


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


#: What ``SimState.rgb`` / ``SimState.depth`` return: nothing is rendered.
EMPTY_RGB = _read_only(np.zeros((0, 0, 3), dtype=np.uint8))
EMPTY_DEPTH = _read_only(np.zeros((0, 0, 1), dtype=np.uint16))


class ViewPoint:
    """A viewpoint as MatterSim reports it (fields read-only, as in MatterSim)."""

    __slots__ = ("_id", "_ix", "_x", "_y", "_z", "_heading", "_elevation", "_distance")

    def __init__(
        self,
        viewpoint_id: str,
        ix: int,
        x: float,
        y: float,
        z: float,
        rel_heading: float,
        rel_elevation: float,
        rel_distance: float,
    ) -> None:
        self._id, self._ix, self._x, self._y, self._z = viewpoint_id, ix, x, y, z
        self._heading, self._elevation, self._distance = rel_heading, rel_elevation, rel_distance

    viewpointId = property(operator.attrgetter("_id"), doc="Viewpoint identifier.")
    ix = property(operator.attrgetter("_ix"), doc="Index in the scan's connectivity file.")
    x = property(operator.attrgetter("_x"), doc="Camera x in metres (a float32 value).")
    y = property(operator.attrgetter("_y"), doc="Camera y in metres (a float32 value).")
    z = property(operator.attrgetter("_z"), doc="Camera z in metres (a float32 value).")
    rel_heading = property(
        operator.attrgetter("_heading"), doc="Heading from the camera's, radians, right positive."
    )
    rel_elevation = property(
        operator.attrgetter("_elevation"), doc="Elevation from the camera's, radians, up positive."
    )
    rel_distance = property(operator.attrgetter("_distance"), doc="3-D distance in metres.")

    def __repr__(self) -> str:
        return (
            f"ViewPoint({self._id!r}, ix={self._ix}, rel_heading={self._heading:.4f}, "
            f"rel_elevation={self._elevation:.4f}, rel_distance={self._distance:.4f})"
        )


class NavigableCache:
    """Least-recently-used navigable lists by ``(viewpoint, view)``, for one camera setting.

    With discretized views the list depends only on where the agent stands and which of the
    36 views it faces, so simulators sharing a world and camera share the lists they build.
    """

    def __init__(self, capacity: int = NAV_CACHE_ENTRIES) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[int, tuple[ViewPoint, ...]] = OrderedDict()

    def get(self, key: int) -> tuple[ViewPoint, ...] | None:
        entries = self._entries.get(key)
        if entries is not None:
            self._entries.move_to_end(key)
        return entries

    def put(self, key: int, entries: tuple[ViewPoint, ...]) -> None:
        self._entries[key] = entries
        if len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class GraphIndex:
    """A :class:`SimWorld` plus the Python values ViewPoints are made of, by global id."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.viewpoint_ids = world.viewpoint_ids
        self.local_index: list[int] = world.local_index.tolist()
        self.positions: list[list[float]] = world.positions.tolist()  # [G][3] float32 values
        self._locations: list[ViewPoint | None] = [None] * world.size
        self._caches: dict[tuple[float, bool], NavigableCache] = {}

    def location(self, g: int) -> ViewPoint:
        """The agent's own ViewPoint at global id ``g`` (relative values 0), made once."""
        loc = self._locations[g]
        if loc is None:
            x, y, z = self.positions[g]
            loc = ViewPoint(self.viewpoint_ids[g], self.local_index[g], x, y, z, 0.0, 0.0, 0.0)
            self._locations[g] = loc
        return loc

    def navigable_cache(self, config: SimulatorConfig) -> NavigableCache | None:
        """The shared cache of discretized lists for ``config`` (None when not discretized)."""
        if not config.discretized:
            return None
        key = (config.cos_half_hfov, config.restricted)
        cache = self._caches.get(key)
        if cache is None:
            cache = self._caches[key] = NavigableCache()
        return cache


class StepFrame:
    """One step of the batch as Python values (lists indexed by agent)."""

    __slots__ = ("_core", "_index", "_ids", "locations", "headings", "elevations")
    __slots__ += ("view_indices", "steps", "_lists")

    def __init__(self, core: BatchSimulator, index: GraphIndex) -> None:
        self._core, self._index = core, index
        self._ids: list[int] = core.location.tolist()
        self.locations = [index.location(g) for g in self._ids]
        self.headings: list[float] = core.heading.tolist()
        self.elevations: list[float] = core.elevation.tolist()
        self.view_indices: list[int] = core.view_index.tolist()
        self.steps: list[int] = core.step.tolist()
        self._lists: list[tuple[ViewPoint, ...]] | None = None

    def navigable(self, i: int) -> tuple[ViewPoint, ...]:
        """Agent ``i``'s navigable locations; its own location first (the same object)."""
        if self._lists is None:
            self._lists = self._navigable_lists()
        return self._lists[i]

    def _navigable_lists(self) -> list[tuple[ViewPoint, ...]]:
        """Every agent's navigable list.

        Continuous views: built from the core's computation for the batch. Discretized views:
        from the shared cache, the missing ones computed together with the core's rule
        function; when only a few viewpoints are missing, all 36 views of each are computed
        (about the cost of one: agents mostly turn where they stand).
        """
        config = self._core.config
        cache = self._index.navigable_cache(config)
        if cache is None:
            return viewpoint_lists(self._index, self._core.navigable)
        keys = [g * NUM_VIEWS + view for g, view in zip(self._ids, self.view_indices, strict=True)]
        lists = [cache.get(key) for key in keys]
        missing = sorted({key for key, entries in zip(keys, lists, strict=True) if entries is None})
        if not missing:
            return lists
        viewpoints = sorted({key // NUM_VIEWS for key in missing})
        if len(viewpoints) <= PREFETCH_VIEWPOINTS:
            missing = [g * NUM_VIEWS + view for g in viewpoints for view in range(NUM_VIEWS)]
        rows = np.array(missing)  # [M] keys: viewpoint * 36 + view
        heading, elevation = discrete_view_angles(rows % NUM_VIEWS)
        nav = navigable_locations(self._index.world, rows // NUM_VIEWS, heading, elevation, config)
        fresh = dict(zip(missing, viewpoint_lists(self._index, nav), strict=True))
        for key, entries in fresh.items():
            cache.put(key, entries)
        return [
            fresh[key] if entries is None else entries
            for key, entries in zip(keys, lists, strict=True)
        ]


def viewpoint_lists(index: GraphIndex, nav: Navigable) -> list[tuple[ViewPoint, ...]]:
    """MatterSim's navigableLocations for each row of the core's ``nav`` arrays."""
    ids, counts, rel_heading, rel_elevation, rel_distance = (
        a.tolist()
        for a in (nav.ids, nav.count, nav.rel_heading, nav.rel_elevation, nav.rel_distance)
    )
    vp_ids, local, positions = index.viewpoint_ids, index.local_index, index.positions
    out = []
    for row, count, heading, elevation, distance in zip(
        ids, counts, rel_heading, rel_elevation, rel_distance, strict=True
    ):
        built = [index.location(row[0])]
        for k in range(1, count):
            g = row[k]
            x, y, z = positions[g]
            built.append(
                ViewPoint(vp_ids[g], local[g], x, y, z, heading[k], elevation[k], distance[k])
            )
        out.append(tuple(built))
    return out


class BatchView:
    """MatterSim's view of a batch: its :class:`SimState` objects and their current frame."""

    def __init__(self, core: BatchSimulator, index: GraphIndex) -> None:
        self.core, self.index = core, index
        #: Scan of each agent (set by ``newEpisode``).
        self.scan_ids: list[str] = [""] * core.batch_size
        self.started = False
        self._frame: StepFrame | None = None
        self.states = [SimState(self, i) for i in range(core.batch_size)]

    def changed(self) -> None:
        """Call after every step: the next read converts the new state."""
        self._frame = None

    def frame(self) -> StepFrame:
        frame = self._frame
        if frame is None:
            if not self.started:
                raise RuntimeError("MatterSim: there is no state before newEpisode")
            frame = self._frame = StepFrame(self.core, self.index)
        return frame


class SimState:
    """The state of one agent: a live view of the simulator, as MatterSim's states are."""

    __slots__ = ("_view", "_i")

    def __init__(self, view: BatchView, i: int) -> None:
        self._view, self._i = view, i

    @property
    def scanId(self) -> str:
        return self._view.scan_ids[self._i]

    @property
    def step(self) -> int:
        """Actions taken since ``newEpisode``."""
        return self._view.frame().steps[self._i]

    @property
    def rgb(self) -> np.ndarray:
        """Always the read-only empty ``(0, 0, 3)`` uint8 array: nothing is rendered."""
        return EMPTY_RGB

    @property
    def depth(self) -> np.ndarray:
        """Always the read-only empty ``(0, 0, 1)`` uint16 array."""
        return EMPTY_DEPTH

    @property
    def location(self) -> ViewPoint:
        return self._view.frame().locations[self._i]

    @property
    def heading(self) -> float:
        """Camera heading in radians, clockwise from +y, in [0, 2*pi)."""
        return self._view.frame().headings[self._i]

    @property
    def elevation(self) -> float:
        """Camera elevation in radians, up positive."""
        return self._view.frame().elevations[self._i]

    @property
    def viewIndex(self) -> int:
        """Discretized view 0..35 (``heading step + 12 * level``); 0 when not discretized."""
        return self._view.frame().view_indices[self._i]

    @property
    def navigableLocations(self) -> list[ViewPoint]:
        """``[0]`` is the agent's location, then neighbours by angle from the view centre.

        A new list on each read (as pybind makes one) of ViewPoints made once per step.
        """
        return list(self._view.frame().navigable(self._i))

    def __repr__(self) -> str:
        if not self._view.started:
            return "SimState(<before newEpisode>)"
        return (
            f"SimState(scanId={self.scanId!r}, step={self.step}, "
            f"viewpointId={self.location.viewpointId!r}, viewIndex={self.viewIndex})"
        )
