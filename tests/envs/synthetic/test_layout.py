"""Floor plans, furniture and viewpoints of synthetic houses, checked on many random houses."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from envs.synthetic.furnish import RUG, door_zones
from envs.synthetic.house import generate_house, scan_id
from envs.synthetic.layout import WALL_THICKNESS, generate_floorplan
from envs.synthetic.parts import object_parts
from envs.synthetic.solids import RoomMap
from envs.synthetic.viewpoints import WALL_MARGIN, segments_hit_boxes
from envs.synthetic.vocabulary import ROOMS

SEEDS = range(12)


@pytest.fixture(scope="module")
def houses():
    return [generate_house(np.random.default_rng([3, seed]), (5, 8), 10) for seed in SEEDS]


def _overlap(a, b, dims: int) -> bool:
    return all(a[k] < b[k + dims] and b[k] < a[k + dims] for k in range(dims))


def test_rooms_tile_without_overlap_and_every_room_has_a_door(houses):
    for house in houses:
        rooms = house.plan.rooms
        assert 5 <= len(rooms) <= 8 and rooms[0].type == "hallway"
        assert {"living room", "kitchen", "bedroom", "bathroom"} <= {r.type for r in rooms}
        for i, a in enumerate(rooms):
            for b in rooms[i + 1 :]:
                assert not _overlap(a.bounds, b.bounds, 2)
        doors = {room for d in house.plan.doors for room in d.rooms}
        assert doors == {r.id for r in rooms}


def test_doors_sit_on_the_shared_wall_and_walls_leave_them_open(houses):
    for house in houses:
        rooms = {r.id: r for r in house.plan.rooms}
        room_map = RoomMap.from_plan(house.plan)
        for door in house.plan.doors:
            cx, cy = door.center
            normal = np.array([0.0, 1.0]) if door.axis == "x" else np.array([1.0, 0.0])
            probes = np.array([[cx, cy]]) + np.array([[-0.3], [0.3]]) * normal  # [2, 2]
            sides = set(room_map.lookup(probes[:, 0], probes[:, 1]).tolist())
            assert sides == set(door.rooms), (sides, door)
            assert all(rooms[r].bounds for r in door.rooms)
            for wall in house.plan.walls:
                if not wall.lintel:
                    x0, y0, _, x1, y1, _ = wall.bounds
                    assert not (x0 < cx < x1 and y0 < cy < y1), "a wall closes a door"


def test_walls_enclose_the_house():
    """A ray from inside any room hits a wall before leaving the plan."""
    for seed in SEEDS:
        plan = generate_floorplan(np.random.default_rng(seed), 7)
        walls = np.array([[w.bounds[0], w.bounds[1], w.bounds[3], w.bounds[4]] for w in plan.walls])
        xmin, ymin, xmax, ymax = plan.bounds()
        far = 4 * (xmax - xmin + ymax - ymin)
        for room in plan.rooms:
            start = np.array(room.center)
            angles = np.linspace(0, 2 * math.pi, 90, endpoint=False)
            ends = start + far * np.stack([np.cos(angles), np.sin(angles)], axis=1)
            assert segments_hit_boxes(np.repeat(start[None], len(ends), 0), ends, walls).all()


def test_objects_fit_their_rooms_do_not_overlap_and_keep_doors_clear(houses):
    for house in houses:
        rooms = {r.id: r for r in house.plan.rooms}
        zones = door_zones(house.plan.doors)
        for obj in house.objects:
            xmin, ymin, xmax, ymax = rooms[obj.room].bounds
            b = obj.bounds
            assert xmin + WALL_THICKNESS / 2 <= b[0] < b[3] <= xmax - WALL_THICKNESS / 2
            assert ymin + WALL_THICKNESS / 2 <= b[1] < b[4] <= ymax - WALL_THICKNESS / 2
            assert not any(_overlap(b[:2] + b[3:5], z[:2] + z[3:5], 2) for z in zones)
            for part in object_parts(obj):  # parts stay inside the object's box
                assert all(
                    b[k] - 1e-9 <= part.bounds[k] and part.bounds[k + 3] <= b[k + 3] + 1e-9
                    for k in range(3)
                )
        for i, a in enumerate(house.objects):
            for b in house.objects[i + 1 :]:
                if (a.category == RUG) == (b.category == RUG):
                    assert not _overlap(a.bounds, b.bounds, 3), (a, b)
        required = {c for r in house.plan.rooms for c in ROOMS[r.type].required}
        assert required <= {o.category for o in house.objects}


def test_viewpoints_stand_inside_rooms_away_from_walls(houses):
    for house in houses:
        rooms = {r.id: r for r in house.plan.rooms}
        for vp in house.viewpoints:
            x, y, z = vp.position
            xmin, ymin, xmax, ymax = rooms[vp.room].bounds
            margin = (0.0 if vp.doorway else WALL_MARGIN) - 1e-6  # positions keep 6 decimals
            assert xmin + margin <= x <= xmax - margin and ymin + margin <= y <= ymax - margin
            assert 1.45 <= z <= 1.6
        assert 8 <= len(house.viewpoints) <= 40


def test_segments_hit_boxes_by_hand():
    boxes = np.array([[1.0, -1.0, 2.0, 1.0]])  # a wall across x = 1..2
    starts = np.array([[0.0, 0.0], [0.0, 2.0], [0.0, 0.0], [3.0, 0.0], [1.5, -3.0]])
    ends = np.array([[3.0, 0.0], [3.0, 2.0], [0.9, 0.0], [0.0, 0.5], [1.5, 3.0]])
    assert segments_hit_boxes(starts, ends, boxes).tolist() == [True, False, False, True, True]
    assert not segments_hit_boxes(starts, ends, np.empty((0, 4))).any()


def test_houses_depend_only_on_their_seed():
    a = generate_house(np.random.default_rng([5, 1]), (5, 6), 8)
    b = generate_house(np.random.default_rng([5, 1]), (5, 6), 8)
    c = generate_house(np.random.default_rng([5, 2]), (5, 6), 8)
    assert a.connectivity == b.connectivity and a.objects == b.objects
    assert a.connectivity != c.connectivity
    assert len(scan_id(np.random.default_rng(0))) == 11


def test_importing_the_world_writer_leaves_torch_out():
    code = "import sys, envs.synthetic.writer; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
