"""Instructions and captions generated from a hand-built scene (no world generator needed).

Plan of the scene (metres; heading 0 looks along +y, heading 90 degrees along +x)::

    y=8 +-----------------+------+------------+
        |  kitchen 2      |      | living 3   |
        |  k2     k0 (k1) d1 h2  d2 l0   l1   |
    y=4 +-----------------+  h1  +------------+
        |  bedroom 0      |      |
        |  b2        b1   d0 h0  |
        |            b0   |      |
    y=0 +-----------------+------+
       x=-4               4      6           10

Views are annotated with a tiny pinhole model: an object of the viewpoint's room is in a
level view when its centre lies within half the horizontal field of view of the view's
heading, with pixels falling off with the square of its distance.
"""

from __future__ import annotations

import copy
import math
import re

import networkx as nx
import numpy as np
import pytest

from envs.constants import (
    HEADING_INCREMENT,
    LEVEL_ELEVATION_INDEX,
    NUM_VIEWS,
    R2R_IMAGE_HEIGHT,
    R2R_IMAGE_WIDTH,
    R2R_VFOV,
    VIEWS_PER_ELEVATION,
)
from envs.errors import DataError
from envs.synthetic.instruction_templates import DOOR, STOP_VERB
from envs.synthetic.language import (
    _pad_distinct,
    captions_for_view,
    instructions_for_path,
    tokenize,
    word_statistics,
)
from envs.synthetic.phrasing import OBJECT_WORDS, ROOM_WORDS, SIZE_WORDS
from envs.synthetic.scene_facts import SceneFacts

HALF_HFOV = math.atan(math.tan(R2R_VFOV / 2) * R2R_IMAGE_WIDTH / R2R_IMAGE_HEIGHT)
#: Pixels of a 1 m^2 footprint seen from 1 m (made up, but monotone in size and distance).
PIXELS_AT_ONE_METRE = 60000.0
EAST, NORTH, SOUTH, WEST = math.pi / 2, 0.0, math.pi, 3 * math.pi / 2

ROOMS = [
    (0, "bedroom", [-4.0, 0.0, 4.0, 4.0], "wooden", [150, 110, 80], [200, 190, 220]),
    (1, "hallway", [4.0, 0.0, 6.0, 8.0], "wooden", [170, 150, 120], [210, 210, 200]),
    (2, "kitchen", [-4.0, 4.0, 4.0, 8.0], "tiled", [200, 200, 190], [240, 230, 180]),
    (3, "living room", [6.0, 4.0, 10.0, 8.0], "wooden", [140, 90, 60], [230, 215, 190]),
]
DOORS = [(0, (0, 1), (4.0, 2.0)), (1, (1, 2), (4.0, 6.0)), (2, (1, 3), (6.0, 6.0))]
#: (id, category, colour, size, room, [xmin, ymin, zmin, xmax, ymax, zmax])
OBJECTS = [
    (0, "bed", "blue", "large", 0, [0.6, 2.8, 0.0, 2.2, 3.9, 0.55]),
    (1, "dresser", "purple", "medium", 0, [-3.9, 3.4, 0.0, -2.9, 3.9, 0.9]),
    (2, "plant", "green", "medium", 1, [5.4, 3.8, 0.0, 5.9, 4.3, 1.2]),
    (3, "fridge", "white", "medium", 2, [1.8, 7.2, 0.0, 2.6, 7.9, 1.8]),
    (4, "stove", "black", "medium", 2, [0.6, 7.2, 0.0, 1.4, 7.9, 0.9]),
    (5, "table", "red", "large", 2, [-3.8, 4.2, 0.0, -2.4, 5.1, 0.75]),
    (6, "sofa", "pink", "large", 3, [8.0, 7.0, 0.0, 9.9, 7.9, 0.85]),
    (7, "armchair", "orange", "medium", 3, [9.0, 4.2, 0.0, 9.9, 5.1, 0.9]),
    (8, "wardrobe", "yellow", "large", 0, [-1.0, 0.1, 0.0, 0.2, 0.7, 2.0]),
]
#: (id, room, x, y, doorway)
VIEWPOINTS = [
    ("b0", 0, 2.5, 1.0, False),
    ("b1", 0, 2.5, 2.0, False),
    ("b2", 0, -2.0, 2.0, False),
    ("d0", 1, 4.0, 2.0, True),
    ("h0", 1, 5.0, 2.0, False),
    ("h1", 1, 5.0, 4.0, False),
    ("h2", 1, 5.0, 6.0, False),
    ("d1", 2, 4.0, 6.0, True),
    ("k0", 2, 2.5, 6.0, False),
    ("k1", 2, 2.0, 6.8, False),
    ("k2", 2, -2.0, 6.0, False),
    ("d2", 3, 6.0, 6.0, True),
    ("l0", 3, 7.0, 6.0, False),
    ("l1", 3, 8.5, 6.0, False),
]
EDGES = [
    ("b0", "b1"), ("b1", "b2"), ("b1", "d0"), ("b0", "d0"), ("d0", "h0"), ("h0", "h1"),
    ("h1", "h2"), ("h2", "d1"), ("d1", "k0"), ("k0", "k1"), ("k0", "k2"), ("h2", "d2"),
    ("d2", "l0"), ("l0", "l1"),
]  # fmt: skip
#: Bedroom -> hallway -> kitchen, ending next to the white fridge.
BEDROOM_TO_KITCHEN = ["b1", "d0", "h0", "h1", "h2", "d1", "k0", "k1"]
#: Objects this path never comes near: other rooms, or over 4 m from every step and over
#: 3 m from the start (the yellow wardrobe, 2.6 m behind the start, may be "behind you").
FAR_FROM_BEDROOM_TO_KITCHEN = (1, 5, 6, 7)
_TURN = re.compile(
    r"\b(?:turn|veer|bear|make|take|hang|swing|pivot)\b"
    r"(?: (?:a|to|your|the|slight|slightly|little|sharp|hard))* (left|right)\b"
)


def _view_objects(room: int, x: float, y: float, view_index: int) -> list[dict]:
    """Objects of ``room`` that a level view sees, with a box and a pixel count."""
    if view_index // VIEWS_PER_ELEVATION != LEVEL_ELEVATION_INDEX:
        return []
    heading = (view_index % VIEWS_PER_ELEVATION) * HEADING_INCREMENT
    seen = []
    for oid, _cat, _col, _size, obj_room, b in OBJECTS:
        cx, cy = (b[0] + b[3]) / 2, (b[1] + b[4]) / 2
        off = (math.atan2(cx - x, cy - y) - heading + math.pi) % (2 * math.pi) - math.pi
        if obj_room != room or abs(off) > HALF_HFOV:
            continue
        area = (b[3] - b[0]) * (b[4] - b[1]) + (b[5] - b[2])
        pixels = PIXELS_AT_ONE_METRE * area / max(math.hypot(cx - x, cy - y), 0.5) ** 2
        u = int(R2R_IMAGE_WIDTH / 2 * (1 + math.tan(off) / math.tan(HALF_HFOV)))
        box = [max(u - 40, 0), 200, min(u + 40, R2R_IMAGE_WIDTH), 320]
        seen.append({"id": oid, "box": box, "pixels": int(min(pixels, 250_000))})
    return seen


def make_scene() -> dict:
    """The scene dict, laid out as the world writer stores it."""
    rooms = [
        {"id": i, "type": t, "bounds": b, "floor_material": m, "floor_color": f, "wall_color": w}
        for i, t, b, m, f, w in ROOMS
    ]
    doors = [
        {"id": i, "rooms": list(r), "center": list(c), "width": 0.9, "axis": "y"}
        for i, r, c in DOORS
    ]
    objects = [
        {"id": i, "category": c, "color": col, "size": s, "room": r, "bounds": b}
        for i, c, col, s, r, b in OBJECTS
    ]
    viewpoints = [
        {
            "id": v,
            "room": r,
            "position": [x, y, 1.5],
            "doorway": doorway,
            "views": [
                {"view_index": i, "room": r, "objects": _view_objects(r, x, y, i)}
                for i in range(NUM_VIEWS)
            ],
        }
        for v, r, x, y, doorway in VIEWPOINTS
    ]
    return {"scan": "handmade", "rooms": rooms, "doors": doors, "objects": objects,
            "viewpoints": viewpoints}  # fmt: skip


@pytest.fixture(scope="module")
def scene() -> dict:
    return make_scene()


def _mentions(text: str, words: tuple[str, ...]) -> bool:
    return any(re.search(rf"\b{re.escape(w)}\b", text.lower()) for w in words)


def _object_mentions(text: str, oid: int) -> tuple[int, int]:
    """(mentions of object ``oid``'s nouns, of those with its colour right before them)."""
    _, category, colour, size, _, _ = OBJECTS[oid]
    nouns = "|".join(re.escape(w) for w in sorted(OBJECT_WORDS[category], key=len, reverse=True))
    sizes = "|".join(SIZE_WORDS[size]) or "-"
    bare = re.findall(rf"\b(?:{nouns})\b", text.lower())
    coloured = re.findall(rf"\b(?:(?:{sizes}) )?{colour} (?:{nouns})\b", text.lower())
    return len(bare), len(coloured)


def _turns(text: str) -> list[str]:
    return _TURN.findall(text.lower())


def test_count_different_instructions(scene):
    texts = instructions_for_path(scene, BEDROOM_TO_KITCHEN, EAST, np.random.default_rng(0), 6)
    assert len(texts) == 6
    assert len(set(texts)) == 6
    assert all(t[0].isupper() and t.endswith(".") for t in texts)


def test_start_goal_rooms_and_doors_are_mentioned(scene):
    rng = np.random.default_rng(1)
    texts = [
        t for _ in range(10) for t in instructions_for_path(scene, BEDROOM_TO_KITCHEN, NORTH, rng)
    ]
    for text in texts:
        assert _mentions(text, ROOM_WORDS["bedroom"]), text
        assert _mentions(text, ROOM_WORDS["kitchen"]), text
        assert _mentions(text, DOOR), text
    # The hallway on the way is named in most instructions (a terse one may skip it).
    assert sum(_mentions(t, ROOM_WORDS["hallway"]) for t in texts) > len(texts) // 2


def test_single_room_path_names_its_room(scene):
    for text in instructions_for_path(scene, ["k2", "k0", "k1"], EAST, np.random.default_rng(2)):
        assert _mentions(text, ROOM_WORDS["kitchen"]), text
        assert not _mentions(text, DOOR), text


def test_no_door_word_without_a_door(scene):
    open_plan = copy.deepcopy(scene)
    open_plan["doors"] = [d for d in open_plan["doors"] if sorted(d["rooms"]) != [1, 3]]
    rng = np.random.default_rng(3)
    for _ in range(10):
        for text in instructions_for_path(open_plan, ["h1", "h2", "d2", "l0"], NORTH, rng):
            assert _mentions(text, ROOM_WORDS["living room"]), text
            assert not _mentions(text, DOOR), text


def test_doorway_viewpoint_inside_a_room_is_mentioned(scene):
    corridor = copy.deepcopy(scene)
    next(v for v in corridor["viewpoints"] if v["id"] == "h1")["doorway"] = True
    rng = np.random.default_rng(4)
    texts = [
        t for _ in range(10) for t in instructions_for_path(corridor, ["h0", "h1", "h2"], 0, rng)
    ]
    assert any("doorway" in t for t in texts)


@pytest.mark.parametrize(("start_heading", "expected"), [(EAST, "left"), (WEST, "right")])
def test_first_turn_direction(scene, start_heading, expected):
    # b0 -> b1 walks north (heading 0): from facing east that is a left turn.
    rng = np.random.default_rng(5)
    for _ in range(10):
        for text in instructions_for_path(scene, ["b0", "b1", "d0", "h0"], start_heading, rng):
            assert _turns(text)[0] == expected, text


@pytest.mark.parametrize("start_heading", [SOUTH, SOUTH + 0.2, SOUTH - 0.3])
def test_turn_around(scene, start_heading):
    for text in instructions_for_path(scene, ["b0", "b1"], start_heading, np.random.default_rng(6)):
        assert "around" in text.lower(), text
        assert not _turns(text), text


def test_turn_sign_over_all_start_headings(scene):
    rng = np.random.default_rng(7)
    for degrees in range(0, 360, 15):
        change = (0.0 - math.radians(degrees) + math.pi) % (2 * math.pi) - math.pi
        first = _turns(instructions_for_path(scene, ["b0", "b1"], math.radians(degrees), rng)[0])
        if math.radians(30) < abs(change) < math.radians(145):
            assert first and first[0] == ("right" if change > 0 else "left"), degrees
        if abs(change) < math.radians(20):
            assert not first, degrees


def test_corner_turns_and_sides(scene):
    # Facing north, walk up the hallway past the green plant (east of it, so on the
    # right), then turn left (west) through the door into the kitchen.
    rng = np.random.default_rng(8)
    path = ["h0", "h1", "h2", "d1", "k0"]
    texts = [t for _ in range(20) for t in instructions_for_path(scene, path, NORTH, rng)]
    turns = [side for t in texts for side in _turns(t)]
    assert "left" in turns and "right" not in turns
    side_of_plant = r"plant(?:(?! and )[^.,])*? (?:on|to) (?:your|the) (left|right)\b"
    sides = [m for t in texts for m in re.findall(side_of_plant, t.lower())]
    assert sides and set(sides) == {"right"}


def test_objects_mentioned_are_near_the_path_and_coloured(scene):
    rng = np.random.default_rng(9)
    texts = [
        t for _ in range(20) for t in instructions_for_path(scene, BEDROOM_TO_KITCHEN, EAST, rng)
    ]
    for text in texts:
        for oid in FAR_FROM_BEDROOM_TO_KITCHEN:
            assert _object_mentions(text, oid)[0] == 0, (OBJECTS[oid], text)
        for oid in range(len(OBJECTS)):
            bare, coloured = _object_mentions(text, oid)
            assert bare == coloured, (OBJECTS[oid], text)
    joined = " ".join(texts)
    assert _object_mentions(joined, 2)[1] > 0  # the green plant in the hallway
    assert _object_mentions(joined, 3)[1] > 0  # the white fridge next to the goal


def test_goal_landmark_is_the_object_near_the_goal(scene):
    rng = np.random.default_rng(10)
    texts = instructions_for_path(scene, ["h2", "d1", "k0", "k1"], WEST, rng, count=10)
    with_fridge = [t for t in texts if _object_mentions(t, 3)[1] > 0]
    assert len(with_fridge) == len(texts)
    assert all(_mentions(t, STOP_VERB + ("your goal", "end point")) for t in texts)


def test_deterministic_for_a_seed(scene):
    def run(seed: int) -> list[str]:
        return instructions_for_path(scene, BEDROOM_TO_KITCHEN, 1.0, np.random.default_rng(seed), 3)

    assert run(11) == run(11)
    assert run(11) != run(12)
    caps = [captions_for_view(scene, "k0", 12, np.random.default_rng(13)) for _ in range(2)]
    assert caps[0] == caps[1]


def test_mean_length_over_random_paths_is_r2r_like(scene):
    graph = nx.Graph()
    xy = {v: np.array([x, y]) for v, _r, x, y, _d in VIEWPOINTS}
    for a, b in EDGES:
        graph.add_edge(a, b, weight=float(np.linalg.norm(xy[a] - xy[b])))
    rng = np.random.default_rng(14)
    paths = [
        p
        for a in sorted(graph)
        for b in sorted(graph)
        if 4 <= len(p := nx.shortest_path(graph, a, b, weight="weight")) <= 7
    ]
    texts = []
    for i in rng.permutation(len(paths))[:60]:
        texts += instructions_for_path(scene, paths[int(i)], rng.uniform(0, 2 * math.pi), rng)
    stats = word_statistics(texts)
    assert 20.0 <= stats.mean_words <= 40.0, stats
    assert min(len(tokenize(t)) for t in texts) >= 8
    assert stats.vocabulary_size >= 100, stats


def test_captions_name_room_and_dominant_object(scene):
    # k0 facing north: only the white fridge is in the field of view.
    captions = captions_for_view(scene, "k0", 12, np.random.default_rng(15), count=4)
    assert len(set(captions)) == 4
    for caption in captions:
        assert _mentions(caption, ROOM_WORDS["kitchen"]), caption
        assert _object_mentions(caption, 3)[1] == 1, caption


def test_captions_put_the_larger_object_first(scene):
    # b2 facing east sees the big blue bed (large) and, smaller, nothing else in view;
    # b1 facing west sees the bed (near) and the yellow wardrobe (farther, smaller).
    vp = next(v for v in scene["viewpoints"] if v["id"] == "b1")
    view = vp["views"][LEVEL_ELEVATION_INDEX * VIEWS_PER_ELEVATION + 9]
    ranked = sorted(view["objects"], key=lambda o: -o["pixels"])
    assert len(ranked) >= 2
    first, second = ranked[0]["id"], ranked[1]["id"]
    for caption in captions_for_view(scene, "b1", view["view_index"], np.random.default_rng(16), 6):
        assert _object_mentions(caption, first)[1] == 1, caption
        assert _mentions(caption, ROOM_WORDS["bedroom"]), caption
        first_at = min(caption.find(w) for w in OBJECT_WORDS[OBJECTS[first][1]] if w in caption)
        later = [caption.find(w) for w in OBJECT_WORDS[OBJECTS[second][1]] if w in caption]
        assert all(first_at < at for at in later), caption


def test_captions_of_an_empty_view_describe_the_room(scene):
    up = (LEVEL_ELEVATION_INDEX + 1) * VIEWS_PER_ELEVATION
    for caption in captions_for_view(scene, "h1", up, np.random.default_rng(17), count=5):
        assert _mentions(caption, ROOM_WORDS["hallway"]), caption
        assert _mentions(caption, ("wooden", "wood", "hardwood", "floor", "wall", "walls",
                                   "empty", "ceiling")), caption  # fmt: skip
        assert not any(_object_mentions(caption, oid)[0] for oid in range(len(OBJECTS)))


def test_bad_input_raises_data_error(scene):
    rng = np.random.default_rng(18)
    with pytest.raises(DataError, match="unknown viewpoint 'nowhere'"):
        instructions_for_path(scene, ["b0", "nowhere"], 0.0, rng)
    with pytest.raises(DataError, match="at least two viewpoints"):
        instructions_for_path(scene, ["b0"], 0.0, rng)
    with pytest.raises(DataError, match="scenes/handmade.json"):
        captions_for_view({"scan": "handmade", "rooms": []}, "b0", 12, rng)
    with pytest.raises(DataError, match="no view 40"):
        captions_for_view(scene, "b0", 40, rng)


def test_tokenize_lowercases_and_splits_punctuation():
    assert tokenize("Turn left, then walk past the TV.Stop!") == [
        "turn", "left", "then", "walk", "past", "the", "tv", "stop",
    ]  # fmt: skip
    assert tokenize("Don't stop; wait...") == ["don't", "stop", "wait"]


def test_padding_keeps_instructions_different():
    # Used only when a plan allows fewer renderings than asked for.
    padded = _pad_distinct(["Turn left.", "Go left."], 9)
    assert len(padded) == len(set(padded)) == 9
    assert padded[:2] == ["Turn left.", "Go left."]


def test_rooms_walked_through_on_a_step(scene):
    facts = SceneFacts.from_scene(scene)
    assert facts.rooms_between("b0", "b1") == [0]
    assert facts.rooms_between("b1", "d0") == [0, 1]
    # Along the hallway's west wall line, from its doorway to the kitchen's: no bedroom.
    assert facts.rooms_between("d0", "d1") == [1, 2]
    # Across the hallway from the kitchen's doorway to the living room's.
    assert facts.rooms_between("d1", "d2") == [2, 1, 3]


def test_walking_past_a_doorway_does_not_enter_its_room(scene):
    # h1 -> d1 (the kitchen's doorway) -> d2 (the living room's) walks along the hallway.
    rng = np.random.default_rng(19)
    path = ["h1", "d1", "d2", "l0"]
    texts = [t for _ in range(10) for t in instructions_for_path(scene, path, NORTH, rng)]
    entering_kitchen = r"\b(into|enter) the (kitchen|kitchen area)\b"
    assert not any(re.search(entering_kitchen, t.lower()) for t in texts)
    assert all(_mentions(t, ROOM_WORDS["living room"]) for t in texts)
    assert any(_mentions(t, ROOM_WORDS["kitchen"]) for t in texts)  # "the kitchen door"


def test_landmark_behind_the_start(scene):
    # From b1 walking east, the yellow wardrobe is 2.6 m behind; the blue bed is not.
    rng = np.random.default_rng(20)
    texts = [
        t for _ in range(20) for t in instructions_for_path(scene, ["b1", "d0", "h0"], EAST, rng)
    ]
    behind = r"(?:back to|with|keeping) the ((?:\w+ ){1,3}?)(?:behind you|,)"
    said = [m.strip() for t in texts for m in re.findall(behind, t.lower())]
    assert said
    assert all(_object_mentions(m, 8)[1] == 1 for m in said), said
