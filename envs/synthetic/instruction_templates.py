"""Wording of navigation instructions: verbs, turn phrases and clause templates.

Templates are :meth:`str.format` strings over named slots that
:mod:`envs.synthetic.language` fills: ``{side}`` (left / right), ``{np}`` and ``{a_np}``
(an object phrase without / with its article), ``{src}`` and ``{dst}`` (room names),
``{exit}`` (an :data:`EXIT` phrase), ``{door}``, ``{walk}``, ``{room}``, ``{stop}``,
``{rel}`` (a relation such as "next to") and ``{in_room}`` (" in the kitchen" or "").
"""

from __future__ import annotations

WALK = ("walk", "go", "head", "move", "proceed")
DOOR = ("door", "doorway", "door", "open door", "doorway", "entrance", "opening", "entryway")
#: How a side is said (``{side}``: left or right); fills ``{on_side}``.
ON_SIDE = ("on your {side}", "to your {side}", "on your {side}-hand side", "on the {side}")
STRAIGHT = ("walk straight ahead", "go forward", "head straight", "walk forward")
SLIGHT = (
    "turn slightly {side}",
    "veer {side}",
    "bear {side}",
    "make a slight {side}",
    "turn a little to the {side}",
)
TURN = (
    "turn {side}",
    "turn to your {side}",
    "make a {side}",
    "take a {side}",
    "turn {side}",
    "hang a {side}",
    "swing {side}",
    "pivot to the {side}",
)
SHARP = ("make a sharp {side}", "turn hard {side}", "take a sharp {side} turn", "turn {side}")
AROUND = ("turn around", "turn all the way around", "turn back around", "spin around")
FORWARD = (
    "walk forward a few steps",
    "go straight for a bit",
    "take a few steps forward",
    "continue straight",
    "keep going straight",
    "walk a little further",
    "keep walking forward",
)
#: Distances: ``{approx} {number} {unit}`` or, under about a metre and a half, SHORT_RUN.
APPROX = ("about", "roughly", "approximately", "some")
UNITS = ("meters", "metres")
SHORT_RUN = ("a few steps", "a couple of steps", "a short distance")
NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty",
)  # fmt: skip
RUN = ("{walk} {distance}", "{walk} forward {distance}", "continue for {distance}")
PASS_SIDE = (
    "walk past the {np} {on_side}",
    "pass the {np} {on_side}",
    "keep the {np} {on_side}",
    "go past the {np}",
    "walk by the {np}",
    "continue past the {np} {on_side}",
    "you will pass {a_np} {on_side}",
    "{walk} forward, passing the {np} {on_side}",
    "{walk} alongside the {np}",
    "{walk} forward with the {np} {on_side}",
    "walk beside the {np}",
    "go by the {np} {on_side}",
    "pass by the {np} {on_side}",
    "walk straight past the {np}",
    "go just past the {np}",
    "continue beyond the {np}",
)
PASS_AHEAD = (
    "walk towards the {np}",
    "head toward the {np}",
    "go straight towards the {np}",
    "you will see {a_np} ahead of you",
    "{walk} in the direction of the {np}",
    "approach the {np}",
    "head for the {np}",
    "walk until you reach the {np}",
    "keep walking until you see the {np}",
    "walk directly towards the {np}",
)
#: Said before the next clause: "with the blue bed behind you, walk ...".
BEHIND = ("with your back to the {np}", "with the {np} behind you", "keeping the {np} behind you")
PASS_ACROSS = ("walk across the {np}", "walk over the {np}", "cross the {np}")
EXIT = (
    "exit the {src}",
    "leave the {src}",
    "walk out of the {src}",
    "go out of the {src}",
    "step out of the {src}",
    "get out of the {src}",
    "head out of the {src}",
)
CROSS_START_DOOR = (
    "{exit} through the {door} into the {dst}",
    "{exit} through the {door} into the {dst}",
    "take the {door} out of the {src} into the {dst}",
    "{exit} through the {door} and enter the {dst}",
    "{exit} and go through the {door} into the {dst}",
    "go through the {door} out of the {src} and into the {dst}",
    "{exit} by the {door} that leads to the {dst}",
)
CROSS_DOOR = (
    "go through the {door} into the {dst}",
    "take the {door} into the {dst}",
    "enter the {dst} through the {door}",
    "walk through the {door} into the {dst}",
    "enter the {dst} through the {door}",
    "pass through the {door} to the {dst}",
    "step through the {door} and into the {dst}",
    "{walk} into the {dst} through the {door}",
    "exit the {src} through the {door} and enter the {dst}",
    "continue through the {door} into the {dst}",
    "use the {door} to enter the {dst}",
    "go through the {door} that leads into the {dst}",
)
CROSS_START_OPEN = (
    "{exit} into the {dst}",
    "{exit} and walk into the {dst}",
    "{exit} and enter the {dst}",
)
CROSS_OPEN = (
    "walk into the {dst}",
    "enter the {dst}",
    "continue into the {dst}",
    "head into the {dst}",
    "step into the {dst}",
    "make your way into the {dst}",
)
#: Several rooms in one go (``{mids}``: "the hall and the kitchen", ``{dst}``: the last).
CROSS_CHAIN = (
    "{walk} through {mids} into the {dst}",
    "continue through {mids} to the {dst}",
    "cross {mids} and enter the {dst}",
    "{walk} through {mids} and into the {dst}",
)
#: Several rooms in one go, naming only the last.
CROSS_CHAIN_TERSE = (
    "{walk} over to the {dst}",
    "make your way to the {dst}",
    "{walk} to the {dst}",
    "continue on to the {dst}",
)
CHAIN_LEAD_DOOR = ("go through the {door} and ", "pass through the {door} and ")
DOORWAY = ("walk through the doorway", "go through the doorway", "pass through the open doorway")
DOOR_PASSED = (
    "walk past the door to the {room}",
    "go past the {room} door",
    "pass the doorway of the {room}",
    "continue past the door of the {room}",
)
MOVE_ACROSS = (
    "walk across the {room}",
    "go to the other side of the {room}",
    "{walk} forward through the {room}",
    "head across the {room}",
    "cross the {room}",
)
MOVE_THROUGH = (
    "walk down the {room}",
    "continue through the {room}",
    "go along the {room}",
    "{walk} to the end of the {room}",
)
STOP_VERB = ("stop", "wait", "halt", "stop", "wait", "come to a stop", "stand", "pause")
RELATION = {
    "next to": ("next to", "beside", "by", "right next to"),
    "in front of": ("in front of",),
}
RELATION_NEAR = ("near", "close to")
STOP_OBJECT = (
    "{stop} {rel} the {np}{in_room}",
    "{stop} {rel} the {np}{in_room}",
    "{stop} once you are {rel} the {np}{in_room}",
    "{stop} when you reach the {np}{in_room}",
    "{stop} when you get to the {np}{in_room}",
    "{stop} as soon as you reach the {np}{in_room}",
)
GOAL_OBJECT = (
    "your goal is {rel} the {np}{in_room}",
    "the end point is {rel} the {np}{in_room}",
    "your destination is {rel} the {np}{in_room}",
)
STOP_ROOM = (
    "{stop} in the {room}",
    "{stop} inside the {room}",
    "{stop} once you are in the {room}",
)
STOP_DOORWAY = (
    "{stop} in the doorway of the {room}",
    "{stop} at the entrance to the {room}",
    "{stop} in the {room} doorway",
)
STOP_THERE = ("{stop} there", "{stop} just inside", "{stop} once you are inside")
JOINERS = (" and ", ", then ", " and then ", " and ", ", ")
OPENERS = (
    "then",
    "next,",
    "after that,",
    "now",
    "from there,",
    "afterwards,",
    "at that point,",
    "from here,",
    "continuing on,",
    "once there,",
    "after this,",
)
AFTER_ENTERING = (
    "once inside,",
    "once you are in the {room},",
    "in the {room},",
    "inside the {room},",
)
CLOSERS = ("Wait there.", "Stay there.", "That is where you stop.", "Wait at that spot.")
