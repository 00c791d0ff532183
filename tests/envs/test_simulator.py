"""MatterSim's navigation rules in the batch core, checked against independent float64 math.

The world is the real val_unseen scans. The reference computations here do not use the
core: headings are measured clockwise from +y, so the direction to a neighbour is
``atan2(dx, dy)``; the restricted-navigation rule is ``cos(angle to neighbour) >=
cos(vfov * width / height / 2)`` in the horizontal plane.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from envs.constants import (
    ELEVATION_INCREMENT,
    HEADING_INCREMENT,
    MATTERSIM_DEFAULT_MAX_ELEVATION,
    MATTERSIM_DEFAULT_MIN_ELEVATION,
    NUM_VIEWS,
    R2R_IMAGE_HEIGHT,
    R2R_IMAGE_WIDTH,
    R2R_VFOV,
    VIEWS_PER_ELEVATION,
    view_elevation,
    view_heading,
)
from envs.episodes import load_episodes
from envs.graph import NavGraphs, parse_connectivity
from envs.simulator import BatchSimulator, SimulatorConfig, SimWorld, navigable_locations

#: Restricted-filter decisions may differ from float64 math only this close to the threshold.
THRESHOLD_SLACK = 1e-6
#: Relative values from float32 positions agree with float64 math to this (radians, metres).
ANGLE_TOL = 1e-5
R2R_HALF_HFOV = R2R_VFOV * R2R_IMAGE_WIDTH / R2R_IMAGE_HEIGHT / 2.0
CONTINUOUS = SimulatorConfig(discretized=False)
HYPOTHESIS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def world(real_data_dir) -> SimWorld:
    scans = sorted({e.scan for e in load_episodes(real_data_dir, "val_unseen")})
    return SimWorld.from_data(NavGraphs(real_data_dir), scans)


@pytest.fixture(scope="module")
def included(world) -> list[int]:
    return np.flatnonzero(world.included).tolist()


def wrap(angle: float) -> float:
    """Angle in [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def reference(world: SimWorld, g: int, heading: float, elevation: float) -> dict[int, dict]:
    """Every adjacent included viewpoint of ``g`` with float64 relative values (no core code)."""
    graph = world.graphs[world.scan_of(g)]
    offset, ix = world.offsets[graph.scan], int(world.local_index[g])
    positions = graph.positions.astype(np.float32).astype(np.float64)  # MatterSim's precision
    out = {}
    for j in np.flatnonzero(graph.unobstructed[ix] & graph.included):
        if j == ix:
            continue
        dx, dy, dz = (positions[j] - positions[ix]).tolist()
        horizontal = math.hypot(dx, dy)
        direction = math.atan2(dx, dy)  # clockwise from +y
        out[offset + int(j)] = {
            "rel_heading": wrap(direction - heading),
            "rel_elevation": math.atan2(dz, horizontal) - elevation,
            "rel_distance": math.sqrt(dx * dx + dy * dy + dz * dz),
            "cos": math.cos(direction - heading),
        }
    return out


def single(world, g, heading, elevation, config) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Navigable ids and relative (heading, elevation, distance) of one agent."""
    nav = navigable_locations(
        world, np.array([g]), np.array([heading]), np.array([elevation]), config
    )
    n = int(nav.count[0])
    rel = np.stack([nav.rel_heading[0, :n], nav.rel_elevation[0, :n], nav.rel_distance[0, :n]])
    return nav.ids[0, :n].tolist(), rel, nav.slots[0, :n]


@HYPOTHESIS
@given(
    data=st.data(),
    heading=st.floats(-4 * math.pi, 4 * math.pi),
    elevation=st.floats(MATTERSIM_DEFAULT_MIN_ELEVATION, MATTERSIM_DEFAULT_MAX_ELEVATION),
    restricted=st.booleans(),
    vfov=st.sampled_from([R2R_VFOV, 0.8, 1.2]),
)
def test_navigable_list_follows_mattersim_rules(
    world, included, data, heading, elevation, restricted, vfov
):
    g = data.draw(st.sampled_from(included))
    config = SimulatorConfig(discretized=False, restricted=restricted, vfov=vfov)
    ids, rel, _ = single(world, g, heading, elevation, config)
    # [0] is the agent itself with relative values 0.
    assert ids[0] == g and rel[:, 0].tolist() == [0.0, 0.0, 0.0]
    expected = reference(world, g, heading, elevation)
    assert len(set(ids[1:])) == len(ids) - 1
    assert set(ids[1:]) <= set(expected)  # only adjacent, included viewpoints
    # Sorted by angular distance from the view centre.
    keys = np.hypot(rel[0], rel[1])
    assert (np.diff(keys[1:]) >= 0).all()
    for nb, ref in expected.items():
        kept = nb in ids
        if not restricted:
            assert kept
        elif kept != (ref["cos"] >= config.cos_half_hfov):
            assert abs(ref["cos"] - config.cos_half_hfov) < THRESHOLD_SLACK
        if kept:
            k = ids.index(nb)
            assert -math.pi <= rel[0, k] <= math.pi
            assert abs(wrap(rel[0, k] - ref["rel_heading"])) < ANGLE_TOL
            assert rel[1, k] == pytest.approx(ref["rel_elevation"], abs=ANGLE_TOL)
            assert rel[2, k] == pytest.approx(ref["rel_distance"], abs=ANGLE_TOL)


@HYPOTHESIS
@given(data=st.data(), offset=st.floats(-0.6, 0.6))
def test_neighbour_to_the_right_has_positive_rel_heading(world, included, data, offset):
    g = data.draw(st.sampled_from([g for g in included if world.neighbours[g, 0] >= 0]))
    nb = data.draw(st.sampled_from(world.neighbours[g][world.neighbours[g] >= 0].tolist()))
    assume(abs(offset) > 1e-3)
    dx, dy, _ = (world.positions[nb] - world.positions[g]).astype(np.float64)
    assume(math.hypot(dx, dy) > 0.1)
    heading = math.atan2(dx, dy) - offset  # the neighbour is `offset` radians to the right
    ids, rel, _ = single(world, g, heading, 0.0, CONTINUOUS)
    assert nb in ids  # 0.6 rad is inside R2R's 40-degree half field of view
    k = ids.index(nb)
    assert math.copysign(1.0, rel[0, k]) == math.copysign(1.0, offset)
    assert rel[0, k] == pytest.approx(offset, abs=ANGLE_TOL)


def two_viewpoint_world(target: tuple[float, float, float]) -> SimWorld:
    """Viewpoint ``a`` at the origin and ``b`` at ``target``, joined by an edge."""

    def entry(name: str, position: tuple[float, float, float], other: bool) -> dict:
        x, y, z = position
        pose = [1, 0, 0, x, 0, 1, 0, y, 0, 0, 1, z, 0, 0, 0, 1]
        return {"image_id": name, "pose": pose, "included": True, "unobstructed": other}

    entries = [entry("a", (0, 0, 0), [False, True]), entry("b", target, [True, False])]
    return SimWorld([parse_connectivity(entries, "synthetic", "synthetic")])


def test_restricted_threshold_is_compared_in_double_precision():
    """At exactly 40 degrees the float32 cosine rounds below cos(40 deg): MatterSim drops it.

    (numpy 2 compares a float32 array with a Python float in float32 and would keep it.)
    """
    world = two_viewpoint_world((0.0, 1.0, 0.0))  # straight ahead at heading 0
    cos_f32 = float(np.float32(math.sin(math.pi / 2.0 - R2R_HALF_HFOV)))
    assert cos_f32 < CONTINUOUS.cos_half_hfov == math.cos(R2R_HALF_HFOV)
    assert cos_f32 == float(np.float32(CONTINUOUS.cos_half_hfov))
    for heading in (R2R_HALF_HFOV, -R2R_HALF_HFOV):
        assert single(world, 0, heading, 0.0, CONTINUOUS)[0] == [0]
    for heading in (R2R_HALF_HFOV - 1e-6, 1e-6 - R2R_HALF_HFOV):
        assert single(world, 0, heading, 0.0, CONTINUOUS)[0] == [0, 1]


def test_neighbour_straight_above_is_never_visible_when_restricted():
    world = two_viewpoint_world((0.0, 0.0, 2.0))  # no horizontal direction: NaN cosine
    assert single(world, 0, 0.0, 0.0, CONTINUOUS)[0] == [0]
    ids, rel, _ = single(world, 0, 0.0, 0.0, SimulatorConfig(discretized=False, restricted=False))
    assert ids == [0, 1] and rel[:, 1].tolist() == pytest.approx([0.0, math.pi / 2, 2.0])


# ------------------------------------------------------------------------ discretized views
def start(world, g, heading, elevation, config=None) -> BatchSimulator:
    sim = BatchSimulator(world, 1, config)
    sim.new_episode_ids(np.array([g]), [heading], [elevation])
    return sim


def nearest_step(heading: float) -> int:
    """Nearest 30-degree step to ``heading`` by exhaustive search (ties excluded by callers)."""
    wrapped = heading % (2.0 * math.pi)
    return min(range(VIEWS_PER_ELEVATION + 1), key=lambda k: abs(wrapped - k * HEADING_INCREMENT))


def test_r2r_start_heading_and_elevation_boundaries_snap(world, included):
    g = included[0]
    sim = start(world, g, 3.751, 0.0)
    assert sim.heading[0] == 7 * HEADING_INCREMENT and sim.view_index[0] == 7 + 12
    half = ELEVATION_INCREMENT / 2.0  # 15 degrees = 0.2618 rad
    for elevation, level in [(0.26, 1), (0.27, 2), (-0.26, 1), (-0.27, 0), (half, 1), (-half, 1)]:
        sim = start(world, g, 0.0, elevation)
        assert sim.view_index[0] // VIEWS_PER_ELEVATION == level, elevation
        assert sim.elevation[0] == (level - 1) * ELEVATION_INCREMENT
    sim = start(world, g, 0.0, 1.4)  # discretized: the elevation limits do not apply
    assert sim.elevation[0] == ELEVATION_INCREMENT


@HYPOTHESIS
@given(heading=st.floats(-20.0, 20.0), elevation=st.floats(-1.5, 1.5))
def test_view_index_formula(world, included, heading, elevation):
    ratio = (heading % (2.0 * math.pi)) / HEADING_INCREMENT
    assume(abs(ratio - math.floor(ratio) - 0.5) > 1e-9)
    assume(abs(abs(elevation) - ELEVATION_INCREMENT / 2.0) > 1e-12)
    sim = start(world, included[0], heading, elevation)
    step = nearest_step(heading) % VIEWS_PER_ELEVATION
    level = (
        0
        if elevation < -ELEVATION_INCREMENT / 2
        else 2
        if elevation > ELEVATION_INCREMENT / 2
        else 1
    )
    view = int(sim.view_index[0])
    assert view == step + VIEWS_PER_ELEVATION * level
    assert sim.heading[0] == view_heading(view) and sim.elevation[0] == view_elevation(view)
    # The navigable list is MatterSim's list at the snapped angles.
    nav = navigable_locations(world, sim.location, sim.heading, sim.elevation, SimulatorConfig())
    assert sim.navigable_ids[0].tolist() == nav.ids[0].tolist()


@HYPOTHESIS
@given(data=st.data(), turn=st.floats(-100.0, 100.0), tilt=st.floats(-100.0, 100.0))
def test_discretized_turns_use_only_the_sign(world, included, data, turn, tilt):
    g = data.draw(st.sampled_from(included))
    view = data.draw(st.integers(0, NUM_VIEWS - 1))
    sim = start(world, g, view_heading(view), view_elevation(view))
    sim.make_action(np.array([0]), np.array([turn]), np.array([tilt]))
    step = (view + int(np.sign(turn))) % VIEWS_PER_ELEVATION
    level = min(2, max(0, view // VIEWS_PER_ELEVATION + int(np.sign(tilt))))  # saturates
    assert sim.view_index[0] == step + VIEWS_PER_ELEVATION * level
    assert sim.location[0] == g and sim.step[0] == 1


@HYPOTHESIS
@given(
    data=st.data(), turn=st.sampled_from([-1.0, 0.0, 1.0]), tilt=st.sampled_from([-1.0, 0.0, 1.0])
)
def test_move_then_turn(world, included, data, turn, tilt):
    g = data.draw(st.sampled_from(included))
    view = data.draw(st.integers(0, NUM_VIEWS - 1))
    sim = start(world, g, view_heading(view), view_elevation(view))
    before = sim.navigable_ids[0, : sim.navigable_count[0]].tolist()
    k = data.draw(st.integers(0, len(before) - 1))
    sim.make_action(np.array([k]), np.array([turn]), np.array([tilt]))
    assert sim.location[0] == before[k]  # the list seen *before* turning
    # ...and the new list is computed at the new place with the new view.
    nav = navigable_locations(world, sim.location, sim.heading, sim.elevation, SimulatorConfig())
    assert sim.navigable_ids[0].tolist() == nav.ids[0].tolist()


def test_invalid_index_raises_and_changes_nothing(world, included):
    sim = BatchSimulator(world, 2)
    sim.new_episode_ids(np.array(included[:2]), [0.0, 0.0], [0.0, 0.0])
    count = sim.navigable_count.copy()
    for bad in ([0, int(count[1])], [-1, 0]):
        with pytest.raises(ValueError, match="invalid action index"):
            sim.make_action(np.array(bad), 0.0, 0.0)
    assert sim.step.tolist() == [0, 0] and sim.location.tolist() == included[:2]
    # An inactive agent's index is not checked.
    sim.make_action(np.array([0, 99]), 0.0, 0.0, active=np.array([True, False]))
    assert sim.step.tolist() == [1, 0]


# ------------------------------------------------------------------------- continuous mode
@HYPOTHESIS
@given(
    data=st.data(),
    heading=st.floats(0.0, 2 * math.pi, exclude_max=True),
    elevation=st.floats(-0.9, 0.9),
    turn=st.floats(-10.0, 10.0),
    tilt=st.floats(-2.0, 2.0),
)
def test_continuous_heading_wraps_and_elevation_clamps(
    world, included, data, heading, elevation, turn, tilt
):
    g = data.draw(st.sampled_from(included))
    sim = start(world, g, heading, elevation, CONTINUOUS)
    assert sim.view_index[0] == 0 and sim.heading[0] == heading
    sim.make_action(np.array([0]), np.array([turn]), np.array([tilt]))
    assert 0.0 <= sim.heading[0] <= 2 * math.pi  # 2*pi only by rounding a tiny negative
    assert abs(wrap(sim.heading[0] - (heading + turn))) < 1e-9
    expected = min(
        MATTERSIM_DEFAULT_MAX_ELEVATION, max(MATTERSIM_DEFAULT_MIN_ELEVATION, elevation + tilt)
    )
    assert sim.elevation[0] == expected and sim.view_index[0] == 0


def test_continuous_limits_apply_at_new_episode(world, included):
    sim = start(world, included[0], -0.5, 1.3, CONTINUOUS)
    assert sim.heading[0] == pytest.approx(2 * math.pi - 0.5)
    assert sim.elevation[0] == MATTERSIM_DEFAULT_MAX_ELEVATION
    limited = SimulatorConfig(discretized=False, min_elevation=-0.3, max_elevation=0.2)
    sim = start(world, included[0], 0.0, -1.0, limited)
    assert sim.elevation[0] == -0.3
