"""R2R-style navigation instructions and image captions for the synthetic world.

The world writer calls :func:`instructions_for_path` for every ground-truth path and
:func:`captions_for_view` for views it wants captioned. Both read the scene dict the
writer stores at ``DIR/scenes/{scan}.json`` (see :mod:`envs.synthetic.scene_facts`) and
draw every choice from the ``rng`` they are given, so the same seed gives the same text.

An instruction says what :func:`envs.synthetic.route_plan.plan_route` found on the path
(turns, landmarks near the path with their colour, doors, rooms left and entered, where
to stop) in varied templates, synonyms, optional clauses and sentence groupings, so that
an agent has to ground the words in what it sees instead of memorising one template.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from envs.synthetic import instruction_templates as tpl
from envs.synthetic.captions import captions_for_view
from envs.synthetic.phrasing import (
    chance,
    join_list,
    object_phrase,
    pick,
    room_look,
    room_word,
    with_article,
)
from envs.synthetic.route_plan import (
    Behind,
    Cross,
    Doorway,
    Event,
    Move,
    Pass,
    Stop,
    Turn,
    plan_route,
)
from envs.synthetic.scene_facts import SceneFacts

__all__ = [
    "WordStatistics",
    "captions_for_view",
    "instructions_for_path",
    "tokenize",
    "word_statistics",
]

#: Initial heading changes below this are "straight ahead" (no turn).
STRAIGHT_MAX_RAD = math.radians(25.0)
#: Heading changes below this are slight turns ("veer left").
SLIGHT_MAX_RAD = math.radians(60.0)
#: Heading changes above this are sharp turns ("make a sharp left").
SHARP_MIN_RAD = math.radians(110.0)
#: Heading changes of at least this are "turn around".
AROUND_MIN_RAD = math.radians(150.0)
#: Clauses per instruction: ``BASE_CLAUSES + Poisson(EXTRA_CLAUSES_MEAN)``, clipped to
#: ``MAX_CLAUSES``; events that must be said (first turn, room changes, stop) always are.
BASE_CLAUSES = 3
EXTRA_CLAUSES_MEAN = 0.6
MAX_CLAUSES = 8
#: Chance of adding a straight walk's length to a turn ("turn left and walk two meters").
RUN_PROBABILITY = 0.15
#: Straight walks shorter than this (m) are "a few steps".
SHORT_RUN_M = 1.5
#: Chance of saying where a landmark stands ("the bed in the corner").
PLACE_PROBABILITY = 0.2
#: Chance of describing a room entered by its walls or floor.
ROOM_LOOK_PROBABILITY = 0.1
#: Chance of saying "door" again for the second and later doors of a path.
DOOR_REPEAT_PROBABILITY = 0.5
#: Chance of saying two or more successive room changes in one clause.
CHAIN_PROBABILITY = 0.6
#: Chance that a chain of room changes names only the last room ("walk to the kitchen").
CHAIN_TERSE_PROBABILITY = 0.35
#: Renderings tried per requested instruction before falling back to added sentences.
ATTEMPTS_PER_TEXT = 50

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass(frozen=True)
class WordStatistics:
    """Length and vocabulary of a set of texts (words as :func:`tokenize` splits them)."""

    texts: int
    mean_words: float
    median_words: float
    vocabulary_size: int


def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text``; punctuation separates words and is dropped."""
    return _WORD.findall(text.lower())


def word_statistics(texts: Iterable[str]) -> WordStatistics:
    """Mean / median words per text and the number of distinct words over all of them."""
    lengths, vocabulary = [], set()
    for text in texts:
        words = tokenize(text)
        lengths.append(len(words))
        vocabulary.update(words)
    if not lengths:
        return WordStatistics(0, 0.0, 0.0, 0)
    return WordStatistics(
        len(lengths), float(np.mean(lengths)), float(np.median(lengths)), len(vocabulary)
    )


def instructions_for_path(
    scene: dict,
    path: list[str],
    start_heading: float,
    rng: np.random.Generator,
    count: int = 3,
) -> list[str]:
    """``count`` different instructions for walking ``path`` from ``path[0]``.

    ``start_heading`` is the agent's heading at the start (radians, clockwise from +y).
    Raises :class:`envs.errors.DataError` for a malformed scene or an unknown viewpoint.
    """
    events = plan_route(SceneFacts.from_scene(scene), list(path), float(start_heading))
    texts: list[str] = []
    for _ in range(ATTEMPTS_PER_TEXT * count):
        if len(texts) == count:
            return texts
        text = _render(events, rng)
        if text not in texts:
            texts.append(text)
    return _pad_distinct(texts, count)


def _pad_distinct(texts: list[str], count: int) -> list[str]:
    """Make up the number with closing sentences when the plan allows few renderings."""
    out = list(texts)
    for repeat in itertools.count(1):
        for closers in itertools.product(tpl.CLOSERS, repeat=repeat):
            for text in texts:
                if len(out) == count:
                    return out
                candidate = f"{text} {' '.join(closers)}"
                if candidate not in out:
                    out.append(candidate)
    raise AssertionError("unreachable")


def _render(events: list[Event], rng: np.random.Generator) -> str:
    """One instruction: a clause per selected event (some merged), grouped in sentences."""
    chosen = _quiet_repeated_doors(_select(events, rng), rng)
    clauses: list[tuple[str, Event]] = []
    i = 0
    while i < len(chosen):
        event = chosen[i]
        nxt = chosen[i + 1] if i + 1 < len(chosen) else None
        if isinstance(event, Pass) and isinstance(nxt, Cross) and _merge_exit(nxt, rng):
            clauses.append((_exit_past_clause(event, nxt, rng), nxt))
            i += 2
            continue
        chain = _cross_chain(chosen, i)
        if len(chain) >= 2 and chance(rng, CHAIN_PROBABILITY):
            clauses.append((_chain_clause(chain, rng), chain[-1]))
            i += len(chain)
            continue
        if isinstance(event, Behind) and nxt is not None and not isinstance(nxt, Stop):
            prefix = pick(rng, tpl.BEHIND).format(np=object_phrase(event.obj, rng))
            clause = _CLAUSES[type(nxt)](nxt, rng)
            if clause:
                clauses.append((f"{prefix}, {clause}", nxt))
            i += 2
            continue
        clause = _CLAUSES[type(event)](event, rng)
        if clause and isinstance(event, Turn) and clauses and _turned(clauses[-1][1]):
            clauses.append((pick(rng, tpl.FORWARD), clauses[-1][1]))
        if clause:
            clauses.append((clause, event))
        i += 1
    return _assemble(clauses, rng)


def _turned(event: Event) -> bool:
    """Whether ``event`` is a turn that is said as one (not "walk straight ahead")."""
    return isinstance(event, Turn) and abs(event.delta) >= STRAIGHT_MAX_RAD


def _quiet_repeated_doors(events: list[Event], rng: np.random.Generator) -> list[Event]:
    """Always say the first door crossed; later doors only with DOOR_REPEAT_PROBABILITY."""
    out: list[Event] = []
    said = False
    for event in events:
        if isinstance(event, Cross) and event.door:
            if said and not chance(rng, DOOR_REPEAT_PROBABILITY):
                event = dataclasses.replace(event, door=False)
            said = True
        out.append(event)
    return out


def _cross_chain(events: list[Event], start: int) -> list[Cross]:
    """The run of room crossings that starts at ``events[start]`` (empty if none)."""
    chain: list[Cross] = []
    for event in events[start:]:
        if not isinstance(event, Cross):
            break
        chain.append(event)
    return chain


def _chain_clause(chain: list[Cross], rng: np.random.Generator) -> str:
    """``"exit the bedroom through the door and walk through the hall into the kitchen"``."""
    door = pick(rng, tpl.DOOR)
    if chain[0].leaving_start:
        exit_ = pick(rng, tpl.EXIT).format(src=room_word(chain[0].src["type"], rng))
        lead = f"{exit_} through the {door} and " if chain[0].door else f"{exit_} and "
    else:
        lead = pick(rng, tpl.CHAIN_LEAD_DOOR).format(door=door) if chain[0].door else ""
    table = tpl.CROSS_CHAIN_TERSE if chance(rng, CHAIN_TERSE_PROBABILITY) else tpl.CROSS_CHAIN
    mids = join_list([f"the {room_word(c.dst['type'], rng)}" for c in chain[:-1]])
    body = pick(rng, table).format(
        walk=pick(rng, tpl.WALK), mids=mids, dst=room_word(chain[-1].dst["type"], rng)
    )
    return lead + body


def _select(events: list[Event], rng: np.random.Generator) -> list[Event]:
    """The events one instruction says: all required ones, optional ones up to a budget."""
    required = [i for i, e in enumerate(events) if _weight(e, events) == 0.0]
    optional = [i for i, e in enumerate(events) if _weight(e, events) > 0.0]
    budget = min(BASE_CLAUSES + int(rng.poisson(EXTRA_CLAUSES_MEAN)), MAX_CLAUSES)
    room = max(budget - len(required), 0)
    if room < len(optional):
        weights = np.array([_weight(events[i], events) for i in optional])  # [O]
        picked = rng.choice(len(optional), size=room, replace=False, p=weights / weights.sum())
        optional = [optional[int(j)] for j in picked]
    return [events[i] for i in sorted(required + optional)]


def _weight(event: Event, events: list[Event]) -> float:
    """How much an optional event deserves a clause (0: always said)."""
    if isinstance(event, Turn):
        return 0.0 if event.initial else (3.0 if abs(event.delta) >= SLIGHT_MAX_RAD else 1.0)
    if isinstance(event, Pass):
        return 2.5 if event.rank == 0 else 1.0
    if isinstance(event, Move):
        single_room = not any(isinstance(e, (Cross, Pass)) for e in events)
        return 0.0 if single_room else 1.0
    if isinstance(event, (Doorway, Behind)):
        return 1.5
    return 0.0


def _merge_exit(cross: Cross, rng: np.random.Generator) -> bool:
    return cross.leaving_start and chance(rng, 0.3)


def _exit_past_clause(passed: Pass, cross: Cross, rng: np.random.Generator) -> str:
    """``"walk out of the bedroom past the blue bed and through the door into the hall"``."""
    src, dst = room_word(cross.src["type"], rng), room_word(cross.dst["type"], rng)
    np_ = object_phrase(passed.obj, rng)
    through = f" and through the {pick(rng, tpl.DOOR)}" if cross.door else ""
    return f"{pick(rng, tpl.WALK)} out of the {src} past the {np_}{through} into the {dst}"


def _turn_clause(event: Turn, rng: np.random.Generator) -> str | None:
    size, side = abs(event.delta), "right" if event.delta > 0 else "left"
    if size < STRAIGHT_MAX_RAD:
        if not event.initial:
            return None
        if chance(rng, RUN_PROBABILITY):
            return _run_phrase(event.run_m, rng)
        return pick(rng, tpl.STRAIGHT) if chance(rng, 0.5) else None
    if size >= AROUND_MIN_RAD:
        turn = pick(rng, tpl.AROUND)
    else:
        table = (
            tpl.SLIGHT if size < SLIGHT_MAX_RAD else tpl.SHARP if size > SHARP_MIN_RAD else tpl.TURN
        )
        turn = pick(rng, table).format(side=side)
    if chance(rng, RUN_PROBABILITY):
        return f"{turn} and {_run_phrase(event.run_m, rng)}"
    return turn


def _run_phrase(run_m: float, rng: np.random.Generator) -> str:
    """``"walk about four meters"`` for a straight walk of ``run_m`` metres."""
    if run_m < SHORT_RUN_M:
        distance = pick(rng, tpl.SHORT_RUN)
    else:
        number = tpl.NUMBER_WORDS[min(round(run_m), len(tpl.NUMBER_WORDS) - 1)]
        distance = f"{pick(rng, tpl.APPROX)} {number} {pick(rng, tpl.UNITS)}"
    return pick(rng, tpl.RUN).format(walk=pick(rng, tpl.WALK), distance=distance)


def _landmark(obj: dict, place: str | None, rng: np.random.Generator) -> str:
    """An object phrase, sometimes with where it stands: "blue bed in the corner"."""
    phrase = object_phrase(obj, rng)
    if place is not None and chance(rng, PLACE_PROBABILITY):
        return f"{phrase} {place}"
    return phrase


def _pass_clause(event: Pass, rng: np.random.Generator) -> str:
    table = {"ahead": tpl.PASS_AHEAD, "across": tpl.PASS_ACROSS}.get(event.side, tpl.PASS_SIDE)
    phrase = _landmark(event.obj, event.place, rng)
    return pick(rng, table).format(
        np=phrase,
        a_np=with_article(phrase),
        on_side=pick(rng, tpl.ON_SIDE).format(side=event.side),
        walk=pick(rng, tpl.WALK),
    )


def _cross_clause(event: Cross, rng: np.random.Generator) -> str:
    src, dst = room_word(event.src["type"], rng), room_word(event.dst["type"], rng)
    look = room_look(event.dst, rng) if chance(rng, ROOM_LOOK_PROBABILITY) else None
    if look is not None:
        dst = f"{dst} {look}"
    if event.leaving_start:
        table = tpl.CROSS_START_DOOR if event.door else tpl.CROSS_START_OPEN
    else:
        table = tpl.CROSS_DOOR if event.door else tpl.CROSS_OPEN
    exit_ = pick(rng, tpl.EXIT).format(src=src)
    return pick(rng, table).format(
        exit=exit_, src=src, dst=dst, door=pick(rng, tpl.DOOR), walk=pick(rng, tpl.WALK)
    )


def _move_clause(event: Move, rng: np.random.Generator) -> str:
    table = tpl.MOVE_THROUGH if event.through else tpl.MOVE_ACROSS
    return pick(rng, table).format(
        room=room_word(event.room["type"], rng), walk=pick(rng, tpl.WALK)
    )


def _doorway_clause(event: Doorway, rng: np.random.Generator) -> str:
    if event.room is None:
        return pick(rng, tpl.DOORWAY)
    return pick(rng, tpl.DOOR_PASSED).format(room=room_word(event.room["type"], rng))


def _stop_clause(event: Stop, rng: np.random.Generator) -> str:
    stop, room = pick(rng, tpl.STOP_VERB), room_word(event.room["type"], rng)
    if event.obj is None:
        if event.at_doorway:
            table = tpl.STOP_DOORWAY
        else:
            table = tpl.STOP_THERE + tpl.STOP_ROOM if event.room_named else tpl.STOP_ROOM
        return pick(rng, table).format(stop=stop, room=room)
    name_room = not event.room_named or chance(rng, 0.1)
    relations = tpl.RELATION.get(event.relation, tpl.RELATION_NEAR)
    table = tpl.STOP_OBJECT + tpl.GOAL_OBJECT if chance(rng, 0.15) else tpl.STOP_OBJECT
    return pick(rng, table).format(
        stop=stop,
        rel=pick(rng, relations),
        np=_landmark(event.obj, None if name_room else event.place, rng),
        in_room=f" in the {room}" if name_room else "",
    )


_CLAUSES: dict[type, Callable[..., str | None]] = {
    Turn: _turn_clause,
    Behind: lambda _event, _rng: None,  # only said as a prefix of the next clause
    Pass: _pass_clause,
    Cross: _cross_clause,
    Doorway: _doorway_clause,
    Move: _move_clause,
    Stop: _stop_clause,
}


def _assemble(clauses: list[tuple[str, Event]], rng: np.random.Generator) -> str:
    """Group clauses into sentences of one to three, with joiners and openers."""
    sentences: list[str] = []
    i = 0
    while i < len(clauses):
        size = int(rng.choice((1, 2, 2, 3)))
        group = clauses[i : i + size]
        text = group[0][0]
        for clause, _ in group[1:]:
            text += pick(rng, tpl.JOINERS) + clause
        if sentences:
            text = _with_opener(text, clauses[i - 1][1], rng)
        sentences.append(text[0].upper() + text[1:] + ".")
        i += size
    return " ".join(sentences)


def _with_opener(text: str, previous: Event, rng: np.random.Generator) -> str:
    """Maybe start a sentence with "Then", or "Once inside," right after entering a room."""
    if isinstance(previous, Cross) and chance(rng, 0.25):
        opener = pick(rng, tpl.AFTER_ENTERING).format(room=room_word(previous.dst["type"], rng))
        return f"{opener} {text}"
    if chance(rng, 0.2):
        return f"{pick(rng, tpl.OPENERS)} {text}"
    return text
