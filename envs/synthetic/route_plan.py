"""What an instruction should say about a path: turns, landmarks, doors, rooms, the goal.

:func:`plan_route` turns a ground-truth path through a synthetic scene into a list of
events (no wording yet, no randomness): the turn at the start, turns at corners, objects
passed or walked towards, door crossings and doorways, and where to stop. The wording is
:mod:`envs.synthetic.language`'s job.

Landmarks are objects that are really near the path: in a room the step walks through
(:meth:`SceneFacts.rooms_between`), and either within :data:`NEAR_PATH_M` of the walked
segment or visible in the level
views the agent faces while walking it (at least :data:`MIN_SEEN_PIXELS` pixels) and
within :data:`SEEN_MAX_M`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from envs.constants import (
    HEADING_INCREMENT,
    LEVEL_ELEVATION_INDEX,
    R2R_IMAGE_HEIGHT,
    R2R_IMAGE_WIDTH,
    VIEWS_PER_ELEVATION,
)
from envs.errors import DataError
from envs.synthetic.phrasing import object_place
from envs.synthetic.scene_facts import (
    SceneFacts,
    footprint_centre,
    heading_between,
    relative_side,
    segment_box_distance,
    signed_turn,
)

#: Intermediate heading changes smaller than this are not worth a "turn".
TURN_MENTION_RAD = math.radians(50.0)
#: Objects within this many metres of a walked segment may be mentioned as passed.
NEAR_PATH_M = 2.0
#: Objects visible ahead may be mentioned up to this far from the segment.
SEEN_MAX_M = 4.0
#: Pixels (of a 640 x 480 view) an object needs to count as seen ahead.
MIN_SEEN_PIXELS = 1500
#: Views within this angle of the walking direction count as "facing".
FORWARD_HALF_ANGLE_RAD = math.radians(45.0)
#: Objects more than this far behind the start of a segment are not passed on it.
BEHIND_MARGIN_M = 0.3
#: A segment closer than this to a footprint walks across it (a rug).
ACROSS_M = 0.05
#: Landmarks mentioned at most per room walked through.
MAX_PASSES_PER_LEG = 2
#: A start landmark is behind the agent when this far (m) at most from the start ...
BEHIND_MAX_M = 3.0
#: ... and at least this far (radians) from the first walking direction.
BEHIND_MIN_RAD = math.radians(135.0)
#: The goal landmark is an object of the goal room this close to the goal viewpoint.
GOAL_NEAR_M = 2.5
#: Closer than this, the goal is "next to" its landmark.
NEXT_TO_M = 1.0
#: A goal landmark within this angle of the final heading is "in front of" the agent.
IN_FRONT_RAD = math.radians(40.0)

_IMAGE_PIXELS = R2R_IMAGE_WIDTH * R2R_IMAGE_HEIGHT
_LEVEL_VIEWS = tuple(
    LEVEL_ELEVATION_INDEX * VIEWS_PER_ELEVATION + j for j in range(VIEWS_PER_ELEVATION)
)


@dataclass(frozen=True)
class Turn:
    """Change of heading (radians, positive = right) at the start or at a corner."""

    delta: float
    initial: bool
    #: Index of the path viewpoint where the turn happens.
    vertex: int = 0
    #: Metres walked after this turn before the next turn is said (or the path ends).
    run_m: float = 0.0


@dataclass(frozen=True)
class Pass:
    """A landmark on the way: ``side`` is "left", "right", "ahead" or "across"."""

    obj: dict
    side: str
    #: 0 for the best landmark of its room, 1 for the second one.
    rank: int
    #: Where it stands in its room ("in the corner", ...; see ``object_place``).
    place: str | None = None


@dataclass(frozen=True)
class Cross:
    """Walking from one room into another, through a door when ``door``."""

    src: dict
    dst: dict
    door: bool
    leaving_start: bool


@dataclass(frozen=True)
class Behind:
    """A landmark behind the agent once it faces the first step ("with the bed behind you")."""

    obj: dict


@dataclass(frozen=True)
class Doorway:
    """Walking through or past a doorway without changing room.

    ``room`` is the room on the other side of the door when known (walking along a
    hallway past the bedroom door), None otherwise.
    """

    room: dict | None


@dataclass(frozen=True)
class Move:
    """Walking across a room (``through``: a room on the way, not the start room)."""

    room: dict
    through: bool


@dataclass(frozen=True)
class Stop:
    """Where to stop: the goal room, a landmark near the goal and how it relates."""

    room: dict
    obj: dict | None
    #: "next to", "in front of" or "near" (meaningless when ``obj`` is None).
    relation: str
    #: Whether an earlier event already names the goal room.
    room_named: bool
    #: Whether the goal viewpoint stands in a doorway of the goal room.
    at_doorway: bool = False
    #: Where the landmark stands in its room (see ``object_place``).
    place: str | None = None


Event = Turn | Behind | Pass | Cross | Doorway | Move | Stop


def plan_route(facts: SceneFacts, path: list[str], start_heading: float) -> list[Event]:
    """The events of walking ``path`` (viewpoint ids) starting at ``start_heading`` (radians)."""
    if len(path) < 2:
        raise DataError(facts.source, f"a path needs at least two viewpoints, got {list(path)}")
    xys = [facts.xy(v) for v in path]
    rooms = [facts.room_of(v) for v in path]
    headings = [heading_between(xys[k], xys[k + 1]) for k in range(len(path) - 1)]
    goal_obj, relation = goal_landmark(facts, path[-1], rooms[-1], headings[-1])
    used = {int(goal_obj["id"])} if goal_obj is not None else set()
    step_rooms = [facts.rooms_between(path[k], path[k + 1]) for k in range(len(path) - 1)]
    doors_passed = _skip_doorway_visits(facts, path, step_rooms)
    passes = _choose_passes(facts, path, xys, headings, step_rooms, used)

    events: list[Event] = [Turn(signed_turn(start_heading, headings[0]), initial=True, vertex=0)]
    behind = behind_landmark(facts, path[0], headings[0], used)
    if behind is not None:
        events.append(Behind(behind))
    start_id, crossed_out = int(rooms[0]["id"]), False
    for k, sequence in enumerate(step_rooms):
        if k in doors_passed:
            events.append(Doorway(facts.rooms[doors_passed[k]]))
        if k > 0 and abs(delta := signed_turn(headings[k - 1], headings[k])) >= TURN_MENTION_RAD:
            events.append(Turn(delta, initial=False, vertex=k))
        for j, room_id in enumerate(sequence):
            events.extend(p for p in passes.get(k, ()) if int(p.obj["room"]) == room_id)
            if j + 1 < len(sequence):
                leaving = room_id == start_id and not crossed_out
                crossed_out = crossed_out or leaving
                door = facts.has_door(room_id, sequence[j + 1])
                events.append(
                    Cross(facts.rooms[room_id], facts.rooms[sequence[j + 1]], door, leaving)
                )
        if len(sequence) == 1 and _passes_doorway(facts, path, step_rooms, k):
            events.append(Doorway(facts.door_room(path[k + 1], sequence[0])))
    _add_moves(events, rooms[0])
    last_cross = next((e for e in reversed(events) if isinstance(e, Cross)), None)
    named = last_cross is not None and last_cross.dst["id"] == rooms[-1]["id"]
    at_doorway = bool(facts.viewpoint(path[-1]).get("doorway", False))
    place = object_place(goal_obj, rooms[-1]) if goal_obj is not None else None
    events.append(Stop(rooms[-1], goal_obj, relation, named, at_doorway, place))
    return _with_runs(events, xys)


def _with_runs(events: list[Event], xys: list[np.ndarray]) -> list[Event]:
    """Fill in each turn's ``run_m``: the walk from its viewpoint to the next turn's."""
    steps = [float(np.linalg.norm(b - a)) for a, b in zip(xys[:-1], xys[1:], strict=True)]
    vertices = [e.vertex for e in events if isinstance(e, Turn)] + [len(xys) - 1]
    runs = {v: sum(steps[v:w]) for v, w in zip(vertices[:-1], vertices[1:], strict=True)}
    return [
        dataclasses.replace(e, run_m=runs[e.vertex]) if isinstance(e, Turn) else e for e in events
    ]


def _skip_doorway_visits(
    facts: SceneFacts, path: list[str], step_rooms: list[list[int]]
) -> dict[int, int]:
    """Drop rooms the path only touches at a doorway viewpoint and leaves straight back.

    Doorway viewpoints stand in door openings and belong to the room behind the door, so
    a walk along a hallway from door to door formally enters and leaves each of those
    rooms. Returns viewpoint index -> id of the room whose door is passed there.
    """
    passed: dict[int, int] = {}
    for i in range(1, len(path) - 1):
        before, after = step_rooms[i - 1], step_rooms[i]
        touched = len(before) >= 2 and len(after) >= 2 and before[-1] == after[0]
        if touched and before[-2] == after[1] and facts.viewpoint(path[i]).get("doorway"):
            passed[i] = before[-1]
            step_rooms[i - 1], step_rooms[i] = before[:-1], after[1:]
    return passed


def _passes_doorway(
    facts: SceneFacts, path: list[str], step_rooms: list[list[int]], k: int
) -> bool:
    """Whether step ``k`` ends at a doorway viewpoint that no room change accounts for."""
    nxt = k + 1
    if nxt == len(path) - 1 or not facts.viewpoint(path[nxt]).get("doorway", False):
        return False
    return step_rooms[nxt] == step_rooms[k] and len(step_rooms[k]) == 1


def _add_moves(events: list[Event], start_room: dict) -> None:
    """Give rooms where nothing else happens a plain "walk across" clause."""
    if not any(isinstance(e, Cross) for e in events):
        if not any(isinstance(e, Pass) for e in events):
            events.insert(1, Move(start_room, through=False))
        return
    between = [
        i + 1
        for i in range(len(events) - 1)
        if isinstance(events[i], Cross) and isinstance(events[i + 1], Cross)
    ]
    for i in reversed(between):
        events.insert(i, Move(events[i - 1].dst, through=True))


def _legs(room_ids: list[int]) -> list[list[int]]:
    """Step indices grouped by the room their start viewpoint stands in (consecutive runs)."""
    legs: list[list[int]] = []
    for k in range(len(room_ids) - 1):
        if legs and room_ids[legs[-1][-1]] == room_ids[k]:
            legs[-1].append(k)
        else:
            legs.append([k])
    return legs


def _choose_passes(
    facts: SceneFacts,
    path: list[str],
    xys: list[np.ndarray],
    headings: list[float],
    step_rooms: list[list[int]],
    used: set[int],
) -> dict[int, list[Pass]]:
    """Step index -> landmarks passed on it: the best ones of each leg, never repeated."""
    chosen: dict[int, list[Pass]] = {}
    for leg in _legs([sequence[0] for sequence in step_rooms] + [step_rooms[-1][-1]]):
        found: list[tuple[float, int, dict, str]] = []
        for k in leg:
            for score, obj, side in _step_candidates(facts, path, xys, headings, step_rooms, k):
                found.append((score, k, obj, side))
        found.sort(key=lambda item: (-item[0], item[1], int(item[2]["id"])))
        rank = 0
        for _, k, obj, side in found:
            if rank == MAX_PASSES_PER_LEG:
                break
            if int(obj["id"]) not in used:
                used.add(int(obj["id"]))
                place = object_place(obj, facts.rooms[int(obj["room"])])
                chosen.setdefault(k, []).append(Pass(obj, side, rank, place))
                rank += 1
    for k in chosen:
        chosen[k].sort(key=lambda p: p.rank)
    return chosen


def _step_candidates(
    facts: SceneFacts,
    path: list[str],
    xys: list[np.ndarray],
    headings: list[float],
    step_rooms: list[list[int]],
    k: int,
) -> list[tuple[float, dict, str]]:
    """``(score, object, side)`` for every landmark candidate of step ``k``."""
    src, dst, heading = xys[k], xys[k + 1], headings[k]
    facing = [
        v
        for v in _LEVEL_VIEWS
        if abs(signed_turn(heading, (v % VIEWS_PER_ELEVATION) * HEADING_INCREMENT))
        <= FORWARD_HALF_ANGLE_RAD
    ]
    pixels = facts.view_pixels(path[k], facing)
    length = float(np.linalg.norm(dst - src))
    out: list[tuple[float, dict, str]] = []
    for oid, obj in facts.objects.items():
        if int(obj["room"]) not in step_rooms[k]:
            continue
        dist = segment_box_distance(src, dst, obj)
        seen = pixels.get(oid, 0)
        if dist > NEAR_PATH_M and not (seen >= MIN_SEEN_PIXELS and dist <= SEEN_MAX_M):
            continue
        along, lateral = relative_side(src, dst, footprint_centre(obj))
        if along < -BEHIND_MARGIN_M:
            continue
        if dist < ACROSS_M:
            side = "across"
        elif along > length and abs(lateral) < along - length:
            side = "ahead"
        else:
            side = "right" if lateral > 0 else "left"
        score = 100.0 * seen / _IMAGE_PIXELS + (SEEN_MAX_M - dist)
        out.append((score, obj, side))
    return out


def behind_landmark(
    facts: SceneFacts, start: str, first_heading: float, used: set[int]
) -> dict | None:
    """The nearest object of the start room behind the agent as it sets off, if any."""
    sxy, room_id = facts.xy(start), int(facts.viewpoint(start)["room"])
    best: tuple[float, dict] | None = None
    for oid, obj in facts.objects.items():
        if int(obj["room"]) != room_id or oid in used:
            continue
        dist = segment_box_distance(sxy, sxy, obj)
        bearing = heading_between(sxy, footprint_centre(obj))
        if dist > BEHIND_MAX_M or abs(signed_turn(first_heading, bearing)) < BEHIND_MIN_RAD:
            continue
        if best is None or dist < best[0]:
            best = (dist, obj)
    return None if best is None else best[1]


def goal_landmark(
    facts: SceneFacts, goal: str, room: dict, final_heading: float
) -> tuple[dict | None, str]:
    """The most salient object of the goal room near the goal, and its relation."""
    gxy = facts.xy(goal)
    pixels = facts.view_pixels(goal, _LEVEL_VIEWS)
    best: tuple[float, dict, float] | None = None
    for oid, obj in facts.objects.items():
        if int(obj["room"]) != int(room["id"]):
            continue
        dist = segment_box_distance(gxy, gxy, obj)
        if dist > GOAL_NEAR_M:
            continue
        score = 100.0 * pixels.get(oid, 0) / _IMAGE_PIXELS + 2.0 * (GOAL_NEAR_M - dist)
        if best is None or score > best[0]:
            best = (score, obj, dist)
    if best is None:
        return None, "near"
    _, obj, dist = best
    if dist <= NEXT_TO_M:
        return obj, "next to"
    bearing = heading_between(gxy, footprint_centre(obj))
    if abs(signed_turn(final_heading, bearing)) <= IN_FRONT_RAD:
        return obj, "in front of"
    return obj, "near"
