"""A drop-in for ``import MatterSim`` without rendering, as a thin layer over the batch core.

Existing R2R code (R2R-EnvDrop, Speaker-Follower, CLIP-ViL's ``r2r_src``) runs by changing
one import::

    import envs.mattersim.compat as MatterSim

    sim = MatterSim.Simulator()
    sim.setNavGraphPath("data/connectivity")       # the folder with scans.txt
    sim.setRenderingEnabled(False)
    sim.setDiscretizedViewingAngles(True)
    sim.setCameraResolution(640, 480)
    sim.setCameraVFOV(math.radians(60))
    sim.setBatchSize(64)
    sim.initialize()
    sim.newEpisode(scan_ids, viewpoint_ids, headings, elevations)   # lists of length 64
    sim.makeAction(indices, heading_changes, elevation_changes)     # lists of length 64
    for state in sim.getState():
        state.location.viewpointId, state.viewIndex, state.navigableLocations

The module mirrors MatterSim's pybind module (v0.1+, the batched API): ``Simulator``,
``SimState`` and ``ViewPoint`` (also as ``Viewpoint``). The navigation rules are those of
:class:`envs.simulator.BatchSimulator`; this module only converts lists to arrays and arrays
to MatterSim's Python objects, in bulk and lazily (once per step, on first access).

Where it differs from MatterSim:

- Rendering is not supported: ``setRenderingEnabled(True)`` and ``setDepthEnabled(True)``
  raise :class:`NotImplementedError`; use ``envs.views`` or a feature file for images.
  ``SimState.rgb`` and ``SimState.depth`` are shared read-only *empty* arrays (shape
  ``(0, 0, 3)`` uint8 and ``(0, 0, 1)`` uint16), never ``None``.
- The camera (resolution, field of view, elevation limits) is fixed by ``initialize``:
  changing it afterwards raises :class:`RuntimeError` (MatterSim would apply it from the next
  step); MatterSim's other setters are ignored after ``initialize``, as there.
- Errors are raised before any agent changes (MatterSim may update the first agents of a batch
  and then throw). The exception types are MatterSim's as pybind11 translates them: unknown
  scan -> :class:`IndexError` (``std::map::at``); unknown or excluded viewpoint ->
  :class:`ValueError` (``std::invalid_argument``; here a :class:`envs.errors.DataError`);
  invalid action index -> :class:`ValueError` (``std::domain_error``); a list shorter than the
  batch -> :class:`IndexError` (``std::vector::at``; extra values are ignored, as there);
  ``makeAction`` before ``newEpisode`` -> :class:`RuntimeError`.
- ``newRandomEpisode`` follows MatterSim's rule (a uniform index, then the next included
  viewpoint; heading uniform in [0, 2*pi), elevation 0) with numpy's generator, so the
  random sequence is not MatterSim's.
- ``SimState`` objects are live views of the simulator, as MatterSim's are (``getState``
  returns the same C++ states each call), but a ``ViewPoint`` of an old navigable list keeps
  its relative values after the agent moves to it. Reading a state between ``initialize``
  and the first ``newEpisode`` raises :class:`RuntimeError` (MatterSim has no location yet).
- Action indices must be integers (:class:`TypeError` otherwise, as pybind's ``unsigned
  int``); a negative index is an invalid index (:class:`ValueError`).
- Graphs are read once per navigation-graph folder and process (``scans.txt`` when present,
  else every ``*_connectivity.json``) and shared by all simulators using that folder.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from envs.constants import (
    MATTERSIM_DEFAULT_HEIGHT,
    MATTERSIM_DEFAULT_MAX_ELEVATION,
    MATTERSIM_DEFAULT_MIN_ELEVATION,
    MATTERSIM_DEFAULT_VFOV,
    MATTERSIM_DEFAULT_WIDTH,
)
from envs.errors import DataError
from envs.graph import SCANS_FILE, load_scan_graph
from envs.mattersim.state import BatchView, GraphIndex, SimState, ViewPoint
from envs.simulator import BatchSimulator, SimulatorConfig, SimWorld

__all__ = [
    "SimState",
    "Simulator",
    "ViewPoint",
    "Viewpoint",
    "cbf",
    "clear_graph_cache",
    "nav_graph_world",
]

#: MatterSim's default paths (relative to the current folder, as MatterSim resolves them).
DEFAULT_NAV_GRAPH_PATH = "./connectivity"
DEFAULT_DATASET_PATH = "./data/v1/scans/"
DEFAULT_CACHE_SIZE = 200
DEFAULT_SEED = 1
CONNECTIVITY_SUFFIX = "_connectivity.json"
#: Graph folders kept in memory per process.
_WORLD_CACHE_SIZE = 4

_RENDERING_UNSUPPORTED = (
    "envs.mattersim.compat does not render images: call setRenderingEnabled(False) and read "
    "views from envs.views (skybox -> 36 views) or a feature file"
)
_DEPTH_UNSUPPORTED = "envs.mattersim.compat does not render depth: call setDepthEnabled(False)"

#: The C++ struct's name; pybind exposes the class as ``ViewPoint``.
Viewpoint = ViewPoint


@functools.lru_cache(maxsize=_WORLD_CACHE_SIZE)
def _load_index(folder: str, scans: tuple[str, ...]) -> GraphIndex:
    root = Path(folder)
    graphs = [load_scan_graph(root / f"{scan}{CONNECTIVITY_SUFFIX}", scan) for scan in scans]
    return GraphIndex(SimWorld(graphs))


def _graph_index(path: str | Path) -> GraphIndex:
    folder = Path(path).resolve()
    if not folder.is_dir():
        raise DataError(folder, "navigation graph folder not found (see setNavGraphPath)")
    listing = folder / SCANS_FILE
    if listing.is_file():
        scans = tuple(listing.read_text(encoding="utf-8").split())
    else:
        files = folder.glob(f"*{CONNECTIVITY_SUFFIX}")
        scans = tuple(sorted(p.name.removesuffix(CONNECTIVITY_SUFFIX) for p in files))
    if not scans:
        raise DataError(listing, "no scans listed and no connectivity files in the folder")
    return _load_index(str(folder), scans)


def clear_graph_cache() -> None:
    """Forget the graphs read so far and the navigable lists cached with them."""
    _load_index.cache_clear()


def nav_graph_world(path: str | Path) -> SimWorld:
    """The world of a MatterSim navigation-graph folder, as :class:`Simulator` loads it."""
    return _graph_index(path).world


class Simulator:
    """MatterSim's ``Simulator`` (batched API) with rendering disabled.

    Defaults are MatterSim's: 320 x 240 pixels, vertical field of view 0.8 rad, continuous
    (not discretized) viewing angles, restricted navigation, elevation limits +-0.94 rad,
    batch size 1, navigation graphs in ``./connectivity``.
    """

    def __init__(self) -> None:
        self._nav_graph_path = DEFAULT_NAV_GRAPH_PATH
        self._dataset_path = DEFAULT_DATASET_PATH
        self._width, self._height = MATTERSIM_DEFAULT_WIDTH, MATTERSIM_DEFAULT_HEIGHT
        self._vfov = MATTERSIM_DEFAULT_VFOV
        self._min_elevation = MATTERSIM_DEFAULT_MIN_ELEVATION
        self._max_elevation = MATTERSIM_DEFAULT_MAX_ELEVATION
        self._discretized = False
        self._restricted = True
        self._preloading = False
        self._batch_size = 1
        self._cache_size = DEFAULT_CACHE_SIZE
        self._seed = DEFAULT_SEED
        self._initialized = False
        #: The batch core and its MatterSim view, made by ``initialize``.
        self._view: BatchView | None = None
        self._rng = np.random.default_rng(DEFAULT_SEED)
        self._steps_taken = 0

    # ------------------------------------------------------------ settings
    def setDatasetPath(self, path: str) -> None:
        """Accepted and unused (there are no images to read)."""
        if not self._initialized:
            self._dataset_path = str(path)

    def setNavGraphPath(self, path: str) -> None:
        """The folder holding ``scans.txt`` and ``{scan}_connectivity.json``."""
        if not self._initialized:
            self._nav_graph_path = str(path)

    def setRenderingEnabled(self, value: bool) -> None:
        """Only ``False`` is supported; ``True`` raises :class:`NotImplementedError`."""
        if value and not self._initialized:
            raise NotImplementedError(_RENDERING_UNSUPPORTED)

    def setDepthEnabled(self, value: bool) -> None:
        """Only ``False`` is supported; ``True`` raises :class:`NotImplementedError`."""
        if value and not self._initialized:
            raise NotImplementedError(_DEPTH_UNSUPPORTED)

    def setPreloadingEnabled(self, value: bool) -> None:
        """Accepted and unused (graphs are always read at ``initialize``)."""
        if not self._initialized:
            self._preloading = bool(value)

    def setCameraResolution(self, width: int, height: int) -> None:
        """Image size; only ``width / height`` matters (restricted navigation)."""
        if width <= 0 or height <= 0:
            raise ValueError(f"camera resolution must be positive, got {width} x {height}")
        self._set_camera("camera resolution", (self._width, self._height), (width, height))
        self._width, self._height = int(width), int(height)

    def setCameraVFOV(self, vfov: float) -> None:
        """Vertical field of view in radians."""
        self._set_camera("camera VFOV", self._vfov, vfov)
        self._vfov = float(vfov)

    def setElevationLimits(self, minimum: float, maximum: float) -> bool:
        """Continuous-mode limits; accepted (True) only for ``-pi/2 < min < 0 < max < pi/2``."""
        if not (-math.pi / 2.0 < minimum < 0.0 < maximum < math.pi / 2.0):
            return False
        limits = (self._min_elevation, self._max_elevation)
        self._set_camera("elevation limits", limits, (minimum, maximum))
        self._min_elevation, self._max_elevation = float(minimum), float(maximum)
        return True

    def _set_camera(self, what: str, old: object, new: object) -> None:
        if self._initialized and old != new:
            raise RuntimeError(
                f"envs.mattersim.compat: {what} can only be changed before initialize() "
                "(MatterSim would apply it from the next step)"
            )

    def setDiscretizedViewingAngles(self, value: bool) -> None:
        """30-degree views; turns by the sign of ``makeAction``'s heading and elevation."""
        if not self._initialized:
            self._discretized = bool(value)

    def setRestrictedNavigation(self, value: bool) -> None:
        """Offer only neighbours inside the horizontal field of view (default ``True``)."""
        if not self._initialized:
            self._restricted = bool(value)

    def setBatchSize(self, size: int) -> None:
        if not self._initialized:
            if size < 1:
                raise ValueError(f"batch size must be at least 1, got {size}")
            self._batch_size = int(size)

    def setCacheSize(self, size: int) -> None:
        """Accepted and unused (MatterSim's GPU texture cache)."""
        if not self._initialized:
            self._cache_size = int(size)

    def setSeed(self, seed: int) -> None:
        """Seed of ``newRandomEpisode``."""
        if not self._initialized:
            self._seed = int(seed)

    # ------------------------------------------------------------- lifecycle
    def initialize(self) -> None:
        """Read the navigation graphs and fix the settings (later setters are ignored)."""
        if self._initialized:
            return
        index = _graph_index(self._nav_graph_path)
        config = SimulatorConfig(
            width=self._width,
            height=self._height,
            vfov=self._vfov,
            discretized=self._discretized,
            restricted=self._restricted,
            min_elevation=self._min_elevation,
            max_elevation=self._max_elevation,
        )
        self._view = BatchView(BatchSimulator(index.world, self._batch_size, config), index)
        self._rng = np.random.default_rng(self._seed)
        self._initialized = True

    def close(self) -> None:
        """Release the batch; a later ``newEpisode`` initializes again."""
        self._initialized = False
        self._view = None

    def resetTimers(self) -> None:
        self._steps_taken = 0

    def timingInfo(self) -> str:
        return (
            "envs.mattersim.compat (rendering disabled): "
            f"{self._steps_taken} agent steps since resetTimers\n"
        )

    # -------------------------------------------------------------- episodes
    def newEpisode(
        self,
        scanIds: Sequence[str],
        viewpointIds: Sequence[str],
        headings: Sequence[float],
        elevations: Sequence[float],
    ) -> None:
        """Start every agent of the batch at a viewpoint (lists of ``batch size`` values)."""
        if not self._initialized:
            self.initialize()
        view = self._view
        batch = view.core.batch_size
        scans = _first(scanIds, batch, "scanIds")
        viewpoints = _first(viewpointIds, batch, "viewpointIds")
        heading = np.asarray(_first(headings, batch, "headings"), dtype=np.float64)
        elevation = np.asarray(_first(elevations, batch, "elevations"), dtype=np.float64)
        world = view.index.world
        location = np.empty(batch, dtype=np.int64)
        for i, (scan, viewpoint) in enumerate(zip(scans, viewpoints, strict=True)):
            graph = world.graphs.get(scan)
            if graph is None:
                raise IndexError(
                    f"MatterSim: unknown scanId {scan!r} (not in {self._nav_graph_path})"
                )
            location[i] = world.offsets[scan] + graph.require(viewpoint)
        view.core.new_episode_ids(location, heading, elevation)
        view.scan_ids = list(scans)
        view.started = True
        view.changed()

    def newRandomEpisode(self, scanIds: Sequence[str]) -> None:
        """Start at random included viewpoints with random headings and elevation 0."""
        if not self._initialized:
            self.initialize()
        scans = _first(scanIds, self._view.core.batch_size, "scanIds")
        viewpoints = [self._random_viewpoint(scan) for scan in scans]
        headings = self._rng.uniform(0.0, 2.0 * math.pi, len(scans)).tolist()
        self.newEpisode(scans, viewpoints, headings, [0.0] * len(scans))

    def _random_viewpoint(self, scan: str) -> str:
        graph = self._view.index.world.graphs.get(scan)
        if graph is None:
            raise IndexError(f"MatterSim: unknown scanId {scan!r} (not in {self._nav_graph_path})")
        included = np.flatnonzero(graph.included)
        if included.size == 0:
            raise DataError(graph.source, "scan has no included viewpoints")
        start = int(self._rng.integers(len(graph)))
        after = included[included >= start]  # MatterSim walks forward, wrapping, to an included one
        return graph.viewpoint_ids[int(after[0] if after.size else included[0])]

    # --------------------------------------------------------------- actions
    def makeAction(
        self, index: Sequence[int], heading: Sequence[float], elevation: Sequence[float]
    ) -> None:
        """Move each agent to ``navigableLocations[index]``, then turn (lists per agent)."""
        if not self._initialized:
            raise RuntimeError("MatterSim: newEpisode must be called before makeAction")
        view = self._view
        batch = view.core.batch_size
        indices = np.asarray(_first(index, batch, "index"))
        if indices.dtype.kind not in "iu":
            raise TypeError(f"makeAction: action indices must be integers, got {indices.dtype}")
        turn = np.asarray(_first(heading, batch, "heading"), dtype=np.float64)
        tilt = np.asarray(_first(elevation, batch, "elevation"), dtype=np.float64)
        view.core.make_action(indices, turn, tilt)
        self._steps_taken += batch
        view.changed()

    # ----------------------------------------------------------------- state
    def getState(self) -> list[SimState]:
        """The batch's states (live views; empty before ``initialize``)."""
        return [] if self._view is None else list(self._view.states)


def _first(values: Sequence, batch: int, name: str) -> Sequence:
    """The first ``batch`` values (MatterSim reads ``values.at(i)``: too few -> IndexError)."""
    if isinstance(values, str | bytes):
        raise TypeError(f"{name} must be a list with one value per agent, got a string")
    if len(values) < batch:
        raise IndexError(f"{name}: {len(values)} values for a batch of {batch}")
    return values[:batch]


def cbf(*args: object) -> None:
    """MatterSim's cross-bilateral depth filter is not provided (no depth images)."""
    raise NotImplementedError("envs.mattersim.compat has no depth images, so no cbf filter")
