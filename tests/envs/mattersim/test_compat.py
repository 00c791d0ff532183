"""The ``import MatterSim`` drop-in: agreement with the batch core, MatterSim's API and errors.

The navigation graphs are a MatterSim-style folder (``scans.txt`` + connectivity files) with
the real val_unseen scans.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest

import envs.mattersim.compat as MatterSim
from envs.constants import (
    HEADING_INCREMENT,
    MATTERSIM_DEFAULT_HEIGHT,
    MATTERSIM_DEFAULT_VFOV,
    MATTERSIM_DEFAULT_WIDTH,
    NUM_VIEWS,
    R2R_IMAGE_HEIGHT,
    R2R_IMAGE_WIDTH,
    R2R_VFOV,
    VIEWS_PER_ELEVATION,
    view_elevation,
    view_heading,
)
from envs.episodes import load_episodes
from envs.errors import DataError
from envs.graph import SCANS_FILE
from envs.mattersim.state import NavigableCache, ViewPoint
from envs.nav.candidates import build_candidate_table, move_to_candidates
from envs.simulator import BatchSimulator, SimulatorConfig, navigable_locations

BATCH = 64
STEPS = 60
NEW_EPISODE_EVERY = 20
REL_TOL = 1e-9
#: Agents moved to a candidate in the make_equiv_action test.
MOVE_TRIALS = 200


@pytest.fixture(scope="session")
def val_unseen_scans(real_data_dir) -> list[str]:
    return sorted({e.scan for e in load_episodes(real_data_dir, "val_unseen")})


@pytest.fixture(scope="session")
def nav_graph_dir(real_data_dir, val_unseen_scans, tmp_path_factory) -> Path:
    """A MatterSim navigation-graph folder holding the val_unseen scans."""
    folder = tmp_path_factory.mktemp("mattersim") / "connectivity"
    folder.mkdir()
    for scan in val_unseen_scans:
        name = f"{scan}_connectivity.json"
        (folder / name).symlink_to(real_data_dir / "connectivity" / name)
    (folder / SCANS_FILE).write_text("\n".join(val_unseen_scans) + "\n")
    return folder


@pytest.fixture(scope="session")
def world(nav_graph_dir):
    return MatterSim.nav_graph_world(nav_graph_dir)


@pytest.fixture(scope="session")
def starts(world) -> list[tuple[str, str]]:
    """(scan, viewpoint) of every included viewpoint."""
    return [(world.scan_of(g), world.viewpoint_ids[g]) for g in np.flatnonzero(world.included)]


def make_sim(nav_graph_dir, batch=1, discretized=True, restricted=True, r2r_camera=True):
    sim = MatterSim.Simulator()
    sim.setNavGraphPath(str(nav_graph_dir))
    sim.setRenderingEnabled(False)
    sim.setDiscretizedViewingAngles(discretized)
    sim.setRestrictedNavigation(restricted)
    if r2r_camera:
        sim.setCameraResolution(R2R_IMAGE_WIDTH, R2R_IMAGE_HEIGHT)
        sim.setCameraVFOV(R2R_VFOV)
    sim.setBatchSize(batch)
    sim.initialize()
    return sim


def check_agreement(sim, core: BatchSimulator, world) -> None:
    """Every field of every agent's state equals the core's arrays."""
    nav = navigable_locations(world, core.location, core.heading, core.elevation, core.config)
    positions = world.positions.astype(np.float64)
    for i, state in enumerate(sim.getState()):
        g = int(core.location[i])
        assert state.scanId == world.scan_of(g)
        assert state.step == core.step[i] and state.viewIndex == core.view_index[i]
        assert state.heading == core.heading[i] and state.elevation == core.elevation[i]
        locations = state.navigableLocations
        assert locations[0] is state.location
        assert len(locations) == nav.count[i]
        for k, loc in enumerate(locations):
            n = int(nav.ids[i, k])
            assert loc.viewpointId == world.viewpoint_ids[n] and loc.ix == world.local_index[n]
            assert [loc.x, loc.y, loc.z] == positions[n].tolist()
            rel = [loc.rel_heading, loc.rel_elevation, loc.rel_distance]
            expected = [nav.rel_heading[i, k], nav.rel_elevation[i, k], nav.rel_distance[i, k]]
            assert rel == pytest.approx(expected, abs=REL_TOL, rel=0)


@pytest.mark.parametrize("discretized", [True, False], ids=["discretized", "continuous"])
@pytest.mark.parametrize("restricted", [True, False], ids=["restricted", "unrestricted"])
def test_compat_agrees_with_core_step_for_step(
    nav_graph_dir, world, starts, discretized, restricted
):
    rnd = random.Random(f"{discretized}-{restricted}")
    sim = make_sim(nav_graph_dir, BATCH, discretized, restricted)
    config = SimulatorConfig(discretized=discretized, restricted=restricted)
    core = BatchSimulator(world, BATCH, config)
    for step in range(STEPS):
        if step % NEW_EPISODE_EVERY == 0:
            scans, viewpoints = zip(*rnd.sample(starts, BATCH), strict=True)
            headings = [rnd.uniform(-10.0, 10.0) for _ in range(BATCH)]
            elevations = [rnd.uniform(-1.3, 1.3) for _ in range(BATCH)]
            sim.newEpisode(list(scans), list(viewpoints), headings, elevations)
            core.new_episode(scans, viewpoints, headings, elevations)
        else:
            indices = [rnd.randrange(len(s.navigableLocations)) for s in sim.getState()]
            if discretized:
                turns = [rnd.choice([-2.0, -0.1, 0.0, 0.3, 1.0]) for _ in range(BATCH)]
                tilts = [rnd.choice([-1.0, 0.0, 0.5]) for _ in range(BATCH)]
            else:
                turns = [rnd.uniform(-4.0, 4.0) for _ in range(BATCH)]
                tilts = [rnd.uniform(-0.6, 0.6) for _ in range(BATCH)]
            sim.makeAction(indices, turns, tilts)
            core.make_action(np.array(indices), np.array(turns), np.array(tilts))
        check_agreement(sim, core, world)


def test_defaults_are_mattersims(nav_graph_dir, world, starts):
    sim = MatterSim.Simulator()
    sim.setNavGraphPath(str(nav_graph_dir))
    sim.setRenderingEnabled(False)
    scan, viewpoint = starts[5]
    sim.newEpisode([scan], [viewpoint], [3.751], [1.5])  # initializes, like MatterSim
    (state,) = sim.getState()
    assert state.heading == 3.751 and state.viewIndex == 0  # continuous
    assert state.elevation == 0.94  # clamped to the default limit
    default = SimulatorConfig(
        width=MATTERSIM_DEFAULT_WIDTH,
        height=MATTERSIM_DEFAULT_HEIGHT,
        vfov=MATTERSIM_DEFAULT_VFOV,
        discretized=False,
    )
    core = BatchSimulator(world, 1, default)
    core.new_episode([scan], [viewpoint], [3.751], [1.5])
    check_agreement(sim, core, world)


def test_setters_after_initialize(nav_graph_dir, starts):
    sim = make_sim(nav_graph_dir, batch=2, discretized=True)
    sim.setDiscretizedViewingAngles(False)  # ignored, as in MatterSim
    sim.setBatchSize(5)
    sim.setNavGraphPath("/nonexistent")
    sim.setCameraVFOV(R2R_VFOV)  # unchanged value: fine
    with pytest.raises(RuntimeError, match="before initialize"):
        sim.setCameraVFOV(0.8)
    with pytest.raises(RuntimeError, match="before initialize"):
        sim.setCameraResolution(320, 240)
    (scan, viewpoint), other = starts[0], starts[1]
    sim.newEpisode([scan, other[0]], [viewpoint, other[1]], [3.751, 0.0], [0.0, 0.0])
    assert len(sim.getState()) == 2
    assert sim.getState()[0].viewIndex == 7 + VIEWS_PER_ELEVATION  # still discretized


def test_elevation_limits(nav_graph_dir, starts):
    sim = MatterSim.Simulator()
    sim.setNavGraphPath(str(nav_graph_dir))
    for bad in [(0.0, 0.5), (-0.5, 0.0), (-2.0, 0.5), (-0.5, 1.6)]:
        assert sim.setElevationLimits(*bad) is False
    assert sim.setElevationLimits(-0.2, 0.3) is True
    scan, viewpoint = starts[0]
    sim.newEpisode([scan], [viewpoint], [0.0], [1.0])
    assert sim.getState()[0].elevation == 0.3
    sim.makeAction([0], [0.0], [-5.0])
    assert sim.getState()[0].elevation == -0.2


def test_rendering_and_depth_are_refused_clearly(nav_graph_dir, starts):
    sim = MatterSim.Simulator()
    with pytest.raises(NotImplementedError, match="envs.views"):
        sim.setRenderingEnabled(True)
    with pytest.raises(NotImplementedError, match="depth"):
        sim.setDepthEnabled(True)
    with pytest.raises(NotImplementedError):
        MatterSim.cbf(None, None, None, None)
    sim.setRenderingEnabled(False)
    sim.setDepthEnabled(False)
    sim.setNavGraphPath(str(nav_graph_dir))
    scan, viewpoint = starts[0]
    sim.newEpisode([scan], [viewpoint], [0.0], [0.0])
    rgb = sim.getState()[0].rgb
    assert rgb.shape == (0, 0, 3) and rgb.dtype == np.uint8 and not rgb.flags.writeable
    assert np.asarray(sim.getState()[0].depth).shape == (0, 0, 1)


def test_module_names_match_pybind():
    assert MatterSim.Viewpoint is MatterSim.ViewPoint
    for name in ("Simulator", "SimState", "ViewPoint", "cbf"):
        assert hasattr(MatterSim, name)
    methods = (
        "setDatasetPath setNavGraphPath setRenderingEnabled setCameraResolution setCameraVFOV "
        "setElevationLimits setDiscretizedViewingAngles setRestrictedNavigation "
        "setPreloadingEnabled setDepthEnabled setBatchSize setCacheSize setSeed initialize "
        "newEpisode newRandomEpisode getState makeAction close resetTimers timingInfo"
    )
    for method in methods.split():
        assert callable(getattr(MatterSim.Simulator, method)), method


def test_errors_match_mattersim(nav_graph_dir, world, starts):
    sim = make_sim(nav_graph_dir, batch=2)
    with pytest.raises(RuntimeError):
        _ = sim.getState()[0].location  # no state before newEpisode
    with pytest.raises(RuntimeError):
        sim.makeAction([0, 0], [0, 0], [0, 0])
    (s0, v0), (s1, v1) = starts[0], starts[1]
    with pytest.raises(IndexError, match="unknown scanId"):
        sim.newEpisode([s0, "notAScan"], [v0, v1], [0, 0], [0, 0])
    with pytest.raises(ValueError, match="unknown viewpoint"):
        sim.newEpisode([s0, s1], [v0, "0" * 32], [0, 0], [0, 0])
    excluded = next(g for g in range(world.size) if not world.included[g])
    with pytest.raises(ValueError, match="not included"):
        sim.newEpisode(
            [s0, world.scan_of(excluded)], [v0, world.viewpoint_ids[excluded]], [0, 0], [0, 0]
        )
    with pytest.raises(IndexError):
        sim.newEpisode([s0], [v0], [0], [0])  # one value for a batch of two
    sim.newEpisode([s0, s1], [v0, v1], [0, 0], [0, 0])
    count = len(sim.getState()[1].navigableLocations)
    with pytest.raises(ValueError, match="invalid action index"):
        sim.makeAction([0, count], [0, 0], [0, 0])
    with pytest.raises(ValueError, match="invalid action index"):
        sim.makeAction([-1, 0], [0, 0], [0, 0])
    with pytest.raises(TypeError):
        sim.makeAction([0.0, 0.0], [0, 0], [0, 0])
    with pytest.raises(TypeError):
        sim.newEpisode(s0, v0, [0, 0], [0, 0])  # a string is not a list of scans
    # Nothing moved: errors are raised before any agent changes.
    assert [s.step for s in sim.getState()] == [0, 0]
    assert [s.location.viewpointId for s in sim.getState()] == [v0, v1]


def test_missing_nav_graph_folder(tmp_path):
    sim = MatterSim.Simulator()
    sim.setNavGraphPath(str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="navigation graph folder not found"):
        sim.initialize()
    sim = MatterSim.Simulator()
    sim.setNavGraphPath(str(tmp_path))
    with pytest.raises(DataError, match="no scans"):
        sim.initialize()


def test_default_nav_graph_path_is_connectivity_in_the_current_folder(
    nav_graph_dir, starts, monkeypatch
):
    monkeypatch.chdir(nav_graph_dir.parent)
    sim = MatterSim.Simulator()
    scan, viewpoint = starts[3]
    sim.newEpisode([scan], [viewpoint], [0.0], [0.0])
    assert sim.getState()[0].location.viewpointId == viewpoint


def test_states_are_live_and_read_only(nav_graph_dir, starts):
    sim = make_sim(nav_graph_dir)
    scan, viewpoint = starts[0]
    sim.newEpisode([scan], [viewpoint], [0.0], [0.0])
    (state,) = sim.getState()
    first = state.navigableLocations
    assert state.navigableLocations is not first and state.navigableLocations == first
    first.clear()  # the caller's copy only
    assert state.navigableLocations[0] is state.location
    sim.makeAction([0], [1.0], [0.0])
    assert state.step == 1 and state.viewIndex == 1 + VIEWS_PER_ELEVATION
    with pytest.raises(AttributeError):
        state.location.rel_heading = 1.0  # noqa: B010 (a read-only field, as in pybind)
    with pytest.raises(AttributeError):
        state.viewIndex = 3


def test_new_random_episode_is_seeded_and_starts_included(nav_graph_dir, world, val_unseen_scans):
    def run(seed: int | None) -> list[tuple]:
        sim = MatterSim.Simulator()
        sim.setNavGraphPath(str(nav_graph_dir))
        sim.setDiscretizedViewingAngles(True)
        sim.setBatchSize(len(val_unseen_scans))
        if seed is not None:
            sim.setSeed(seed)
        sim.newRandomEpisode(val_unseen_scans)
        return [(s.scanId, s.location.viewpointId, s.heading, s.elevation) for s in sim.getState()]

    first = run(None)
    assert first == run(MatterSim.DEFAULT_SEED) and first != run(7)
    view_headings = [k * HEADING_INCREMENT for k in range(VIEWS_PER_ELEVATION)]
    for (scan, viewpoint, heading, elevation), wanted in zip(first, val_unseen_scans, strict=True):
        graph = world.graphs[scan]
        assert scan == wanted and graph.included[graph.index[viewpoint]]
        assert elevation == 0.0 and heading in view_headings


# ------------------------------------------------------------ EnvDrop's candidate actions
def envdrop_candidates(sim, starts: list[tuple[str, str]]) -> list[list[dict]]:
    """R2R-EnvDrop's ``make_candidate``, done on the drop-in for a batch of viewpoints.

    Start at view 0 (heading 0, 30 degrees down), then turn right through the 36 views
    (turning right and up at the start of each elevation band). A neighbour seen from several
    views is kept at the view where it is nearest the centre (strictly smaller distance wins,
    so the first such view), listed in the order first seen.
    """
    batch = len(starts)
    scans, viewpoints = (list(column) for column in zip(*starts, strict=True))
    adjacent: list[dict[str, dict]] = [{} for _ in starts]
    for ix in range(NUM_VIEWS):
        if ix == 0:
            sim.newEpisode(scans, viewpoints, [0.0] * batch, [math.radians(-30)] * batch)
        elif ix % VIEWS_PER_ELEVATION == 0:
            sim.makeAction([0] * batch, [1.0] * batch, [1.0] * batch)
        else:
            sim.makeAction([0] * batch, [1.0] * batch, [0.0] * batch)
        for state, adj in zip(sim.getState(), adjacent, strict=True):
            assert state.viewIndex == ix
            for j, loc in enumerate(state.navigableLocations[1:]):
                distance = np.sqrt(loc.rel_heading**2 + loc.rel_elevation**2)
                seen = adj.get(loc.viewpointId)
                if seen is None or distance < seen["distance"]:
                    adj[loc.viewpointId] = {
                        "viewpointId": loc.viewpointId,
                        "pointId": ix,
                        "idx": j + 1,
                        "distance": distance,
                        "normalized_heading": state.heading + loc.rel_heading,
                        "elevation": state.elevation + loc.rel_elevation,
                    }
    return [list(adj.values()) for adj in adjacent]


def test_candidate_table_matches_envdrop(nav_graph_dir, world, starts):
    sim = make_sim(nav_graph_dir, batch=len(starts))
    expected = envdrop_candidates(sim, starts)
    table = build_candidate_table(world)
    assert sum(map(len, expected)) > 3 * len(starts)
    for (scan, viewpoint), candidates in zip(starts, expected, strict=True):
        g = world.global_id(scan, viewpoint)
        n = int(table.count[g])
        assert n == len(candidates)
        ids = [world.viewpoint_ids[c] for c in table.ids[g, :n]]
        assert ids == [c["viewpointId"] for c in candidates]
        assert table.view[g, :n].tolist() == [c["pointId"] for c in candidates]
        assert table.nav_index[g, :n].tolist() == [c["idx"] for c in candidates]
        headings = [c["normalized_heading"] for c in candidates]
        elevations = [c["elevation"] for c in candidates]
        assert table.heading[g, :n].tolist() == pytest.approx(headings, abs=1e-12, rel=0)
        assert table.elevation[g, :n].tolist() == pytest.approx(elevations, abs=1e-12, rel=0)


def envdrop_move(sim, candidate: dict) -> list[tuple[str, float, float]]:
    """R2R-EnvDrop's ``make_equiv_action`` for one agent: the states after each sub-action.

    Tilt to the candidate's elevation band, turn right until the view matches, then move
    to the candidate's index in the navigable list.
    """
    path = []

    def take(index: int, turn: float, tilt: float) -> None:
        sim.makeAction([index], [turn], [tilt])
        state = sim.getState()[0]
        path.append((state.location.viewpointId, state.heading, state.elevation))

    level = sim.getState()[0].viewIndex // VIEWS_PER_ELEVATION
    target_level = candidate["pointId"] // VIEWS_PER_ELEVATION
    while level < target_level:
        take(0, 0.0, 1.0)
        level += 1
    while level > target_level:
        take(0, 0.0, -1.0)
        level -= 1
    while sim.getState()[0].viewIndex != candidate["pointId"]:
        take(0, 1.0, 0.0)
    locations = sim.getState()[0].navigableLocations
    assert locations[candidate["idx"]].viewpointId == candidate["viewpointId"]
    take(candidate["idx"], 0.0, 0.0)
    return path


def test_move_to_candidates_replays_envdrop(nav_graph_dir, world, starts):
    rnd = random.Random(0)
    trials = rnd.sample(starts, MOVE_TRIALS)
    views = [rnd.randrange(NUM_VIEWS) for _ in trials]
    candidates = envdrop_candidates(make_sim(nav_graph_dir, batch=MOVE_TRIALS), trials)
    choice = [rnd.randrange(len(c)) for c in candidates]
    # EnvDrop: one agent at a time on its own simulator.
    sim = make_sim(nav_graph_dir)
    expected = []
    for (scan, viewpoint), view, cands, c in zip(trials, views, candidates, choice, strict=True):
        sim.newEpisode([scan], [viewpoint], [view_heading(view)], [view_elevation(view)])
        expected.append(envdrop_move(sim, cands[c]))
    # The core: the whole batch at once.
    core = BatchSimulator(world, MOVE_TRIALS)
    scans, viewpoints = zip(*trials, strict=True)
    core.new_episode(
        scans, viewpoints, [view_heading(v) for v in views], [view_elevation(v) for v in views]
    )
    active = np.ones(MOVE_TRIALS, dtype=bool)
    record = move_to_candidates(core, build_candidate_table(world), np.array(choice), active)
    assert record.acted.any(axis=0).all()
    for b, path in enumerate(expected):
        rows = np.flatnonzero(record.acted[:, b])
        got = [
            (
                world.viewpoint_ids[record.location[t, b]],
                record.heading[t, b],
                record.elevation[t, b],
            )
            for t in rows
        ]
        assert got == path


def test_discretized_lists_are_shared_between_simulators(nav_graph_dir, starts):
    scan, viewpoint = starts[10]
    first, second = make_sim(nav_graph_dir), make_sim(nav_graph_dir)
    for sim in (first, second):
        sim.newEpisode([scan], [viewpoint], [1.0], [0.0])
    a, b = first.getState()[0].navigableLocations, second.getState()[0].navigableLocations
    assert len(a) > 1 and all(x is y for x, y in zip(a, b, strict=True))
    continuous = make_sim(nav_graph_dir, discretized=False)  # lists depend on the exact angle
    continuous.newEpisode([scan], [viewpoint], [1.0], [0.0])
    assert continuous.getState()[0].navigableLocations[1] is not a[1]


def test_navigable_cache_evicts_least_recently_used():
    cache = NavigableCache(capacity=2)
    one, two, three = ((ViewPoint(str(k), k, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),) for k in range(3))
    cache.put(1, one)
    cache.put(2, two)
    assert cache.get(1) is one  # 1 is now the most recently used
    cache.put(3, three)
    assert len(cache) == 2 and cache.get(2) is None and cache.get(1) is one


def test_graphs_are_read_once_per_folder_until_cleared(real_data_dir, tmp_path):
    folder = tmp_path / "graphs"  # any folder name, as in MatterSim
    folder.mkdir()
    name = "8194nk5LbLH_connectivity.json"
    (folder / name).symlink_to(real_data_dir / "connectivity" / name)  # no scans.txt: globbed
    world = MatterSim.nav_graph_world(folder)
    assert world.scans == ("8194nk5LbLH",) and MatterSim.nav_graph_world(folder) is world
    MatterSim.clear_graph_cache()
    assert MatterSim.nav_graph_world(folder) is not world
