"""MatterSim's Python state objects (``ViewPoint``, ``SimState``) over the batch core's arrays.

:class:`BatchView` reads a :class:`envs.simulator.BatchSimulator` the way MatterSim's pybind
module presents its C++ state: one :class:`SimState` per agent, a :class:`ViewPoint` per
location. Nothing is converted until it is read, and then in bulk: after each step the first
attribute read converts the batch's arrays with ``.tolist()`` (:class:`StepFrame`), and the
first ``navigableLocations`` read of the step computes the batch's relative values once and
builds that agent's ViewPoints. An agent's own location is one ``ViewPoint`` per viewpoint,
made once and shared (it is read-only, like pybind's ``def_readonly`` fields).
"""

from __future__ import annotations

import operator

import numpy as np

from envs.simulator import BatchSimulator, SimWorld


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


class GraphIndex:
    """A :class:`SimWorld` plus the Python values ViewPoints are made of, by global id."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.viewpoint_ids = world.viewpoint_ids
        self.local_index: list[int] = world.local_index.tolist()
        self.positions: list[list[float]] = world.positions.tolist()  # [G][3] float32 values
        self._locations: list[ViewPoint | None] = [None] * world.size

    def location(self, g: int) -> ViewPoint:
        """The agent's own ViewPoint at global id ``g`` (relative values 0), made once."""
        loc = self._locations[g]
        if loc is None:
            x, y, z = self.positions[g]
            loc = ViewPoint(self.viewpoint_ids[g], self.local_index[g], x, y, z, 0.0, 0.0, 0.0)
            self._locations[g] = loc
        return loc


class StepFrame:
    """One step of the batch as Python values (lists indexed by agent)."""

    __slots__ = ("_core", "_index", "locations", "headings", "elevations", "view_indices")
    __slots__ += ("steps", "_nav", "_lists")

    def __init__(self, core: BatchSimulator, index: GraphIndex) -> None:
        self._core, self._index = core, index
        self.locations = [index.location(g) for g in core.location.tolist()]
        self.headings: list[float] = core.heading.tolist()
        self.elevations: list[float] = core.elevation.tolist()
        self.view_indices: list[int] = core.view_index.tolist()
        self.steps: list[int] = core.step.tolist()
        self._nav: tuple[list, ...] | None = None
        self._lists: list[tuple[ViewPoint, ...] | None] = [None] * core.batch_size

    def navigable(self, i: int) -> tuple[ViewPoint, ...]:
        """Agent ``i``'s navigable locations; its own location first (the same object)."""
        entries = self._lists[i]
        if entries is not None:
            return entries
        if self._nav is None:
            nav = self._core.navigable  # the whole batch at once: [B, K+1] arrays
            self._nav = tuple(
                a.tolist()
                for a in (nav.ids, nav.count, nav.rel_heading, nav.rel_elevation, nav.rel_distance)
            )
        ids, counts, rel_heading, rel_elevation, rel_distance = self._nav
        row, heading, elevation, distance = (
            ids[i],
            rel_heading[i],
            rel_elevation[i],
            rel_distance[i],
        )
        index = self._index
        vp_ids, local, positions = index.viewpoint_ids, index.local_index, index.positions
        built = [self.locations[i]]
        for k in range(1, counts[i]):
            g = row[k]
            x, y, z = positions[g]
            built.append(
                ViewPoint(vp_ids[g], local[g], x, y, z, heading[k], elevation[k], distance[k])
            )
        entries = self._lists[i] = tuple(built)
        return entries


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
