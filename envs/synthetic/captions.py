"""Captions of synthetic views: the room type and the visible objects, larger ones first.

``captions_for_view`` reads the per-view annotations of a scene (object ids with their
pixel counts, see :mod:`envs.synthetic.scene_facts`) and writes short, CLIP-style
captions: "a photo of a kitchen with a white fridge and a black stove", "a blue sofa in a
living room". A view with no object big enough to name is described by its room, floor
and walls: "a hallway with a wooden floor".
"""

from __future__ import annotations

import numpy as np

from envs.constants import LEVEL_ELEVATION_INDEX, VIEWS_PER_ELEVATION
from envs.synthetic.phrasing import (
    floor_phrase,
    join_list,
    object_phrase,
    room_word,
    wall_tone,
    with_article,
)
from envs.synthetic.scene_facts import SceneFacts

#: Objects covering fewer pixels than this (of 640 x 480) are not named in captions.
CAPTION_MIN_PIXELS = 400
#: At most this many objects are named in one caption.
MAX_CAPTION_OBJECTS = 3
#: Rounds of drawing templates before giving up on finding more different captions.
CAPTION_ROUNDS = 4

_WITH_OBJECTS = (
    "a photo of {a_room} with {objects}",
    "{a_room} with {objects}",
    "{first} in {a_room}",
    "{first} in the {room}",
    "a picture of {first} in {a_room}",
    "an image of {a_room} containing {objects}",
    "{objects} in {a_room}",
    "a view of {a_room} showing {objects}",
)
_WITH_TWO_OBJECTS = ("{first} next to {second} in {a_room}", "{first} and {second} in the {room}")
_EMPTY = (
    "{a_room} with {a_floor} floor",
    "a photo of an empty {room}",
    "{a_room} with {tone} walls",
    "the {tone} wall of {a_room}",
    "an empty corner of {a_room} with {tone} walls",
    "{a_floor} floor in {a_room}",
)
_LOOKING_DOWN = ("looking down at the {floor} floor of {a_room}",)
_LOOKING_UP = ("looking up at the ceiling of {a_room}",)


def captions_for_view(
    scene: dict,
    viewpoint: str,
    view_index: int,
    rng: np.random.Generator,
    count: int = 3,
) -> list[str]:
    """``count`` captions of view ``view_index`` (0..35) of ``viewpoint``.

    Every caption names the room type; when objects are visible it names the largest
    one (by pixels) with its colour, and lists others after it. Captions differ from
    each other as far as the templates allow; past that they repeat.
    Raises :class:`envs.errors.DataError` for a malformed scene or an unknown viewpoint.
    """
    facts = SceneFacts.from_scene(scene)
    view = facts.view(viewpoint, view_index)
    room = facts.rooms.get(int(view.get("room", facts.viewpoint(viewpoint)["room"])))
    if room is None:
        room = facts.room_of(viewpoint)
    visible = sorted(
        (seen for seen in view.get("objects", ()) if int(seen["pixels"]) >= CAPTION_MIN_PIXELS),
        key=lambda seen: (-int(seen["pixels"]), int(seen["id"])),
    )
    objects = [facts.objects[int(s["id"])] for s in visible if int(s["id"]) in facts.objects]
    objects = objects[:MAX_CAPTION_OBJECTS]
    templates = _templates(len(objects), view_index)
    captions: list[str] = []
    for _ in range(CAPTION_ROUNDS):
        for t in rng.permutation(len(templates)):
            caption = _fill(templates[int(t)], room, objects, rng)
            if caption not in captions:
                captions.append(caption)
            if len(captions) == count:
                return captions
    while len(captions) < count:
        captions.append(captions[len(captions) % max(1, len(captions))])
    return captions


def _templates(n_objects: int, view_index: int) -> tuple[str, ...]:
    """The templates that fit a view with ``n_objects`` nameable objects."""
    if n_objects >= 2:
        return _WITH_OBJECTS + _WITH_TWO_OBJECTS
    if n_objects == 1:
        return _WITH_OBJECTS
    level = view_index // VIEWS_PER_ELEVATION
    if level < LEVEL_ELEVATION_INDEX:
        return _EMPTY + _LOOKING_DOWN
    if level > LEVEL_ELEVATION_INDEX:
        return _EMPTY + _LOOKING_UP
    return _EMPTY


def _fill(template: str, room: dict, objects: list[dict], rng: np.random.Generator) -> str:
    """Fill one template with fresh synonym draws."""
    name = room_word(room["type"], rng)
    phrases = [with_article(object_phrase(obj, rng, size_probability=0.5)) for obj in objects]
    floor = floor_phrase(room.get("floor_material", ""), rng)
    return template.format(
        room=name,
        a_room=with_article(name),
        objects=join_list(phrases),
        first=phrases[0] if phrases else "",
        second=phrases[1] if len(phrases) > 1 else "",
        floor=floor,
        a_floor=with_article(floor),
        tone=wall_tone(room.get("wall_color", (200, 200, 200))),
    )
