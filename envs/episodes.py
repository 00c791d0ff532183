"""R2R episodes: ``R2R_{split}.json`` -> one :class:`Episode` per instruction.

Each entry of the file is a path with several instructions::

    {"distance": float, "scan": str, "path_id": int, "path": [viewpoint, ...],
     "heading": float, "instructions": [str, ...]}

Instruction ``k`` of path ``p`` has the id ``f"{p}_{k}"`` (R2R's ``instr_id``). The test
split lists only the start viewpoint and has no ``distance``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from envs.errors import DataError
from envs.fileio import read_json

_REQUIRED_KEYS = ("scan", "path_id", "path", "heading", "instructions")


@dataclass(frozen=True)
class Episode:
    """One instruction to follow: where it starts, the reference path, and the words."""

    instr_id: str
    path_id: int
    scan: str
    #: Reference path (viewpoint ids); only the start viewpoint on the test split.
    path: tuple[str, ...]
    #: Start heading in radians (clockwise from +y).
    heading: float
    instruction: str
    #: Length of the reference path in metres (None when the file has none).
    distance: float | None

    @property
    def start(self) -> str:
        return self.path[0]

    @property
    def goal(self) -> str:
        return self.path[-1]


def split_path(data_dir: str | os.PathLike[str], split: str) -> Path:
    """``DIR/R2R_{split}.json``, or ``split`` itself when it names a ``.json`` file."""
    if split.endswith(".json"):
        return Path(split)
    return Path(data_dir) / f"R2R_{split}.json"


def _check_entry(item: dict, i: int, source: str) -> None:
    """DataError unless entry ``i`` has the types of an R2R path."""
    path, instructions, path_id = item["path"], item["instructions"], item["path_id"]
    if not isinstance(item["scan"], str):
        raise DataError(source, f"entry {i}: scan must be a string (a scan id)")
    if isinstance(path_id, bool) or not isinstance(path_id, int):
        raise DataError(source, f"entry {i}: path_id must be an integer")
    if not isinstance(path, list) or not path or not all(isinstance(v, str) for v in path):
        raise DataError(source, f"entry {i}: path must be a non-empty list of viewpoint ids")
    if not isinstance(instructions, list) or not all(isinstance(s, str) for s in instructions):
        raise DataError(source, f"entry {i}: instructions must be a list of strings")


def _numbers(item: dict, i: int, source: str) -> tuple[float, float | None]:
    """Entry ``i``'s heading and distance (None when absent), finite numbers."""
    try:
        heading = float(item["heading"])
        distance = None if item.get("distance") is None else float(item["distance"])
    except (TypeError, ValueError, OverflowError):
        heading = distance = math.nan
    if not math.isfinite(heading) or (distance is not None and not math.isfinite(distance)):
        raise DataError(source, f"entry {i}: heading and distance must be finite numbers")
    return heading, distance


def parse_episodes(entries: object, source: str) -> list[Episode]:
    """Validate the decoded JSON of an R2R file and expand it into episodes."""
    if not isinstance(entries, list):
        raise DataError(source, "expected a JSON list of paths")
    episodes: list[Episode] = []
    for i, item in enumerate(entries):
        if not isinstance(item, dict):
            raise DataError(source, f"entry {i} is not an object")
        missing = [k for k in _REQUIRED_KEYS if k not in item]
        if missing:
            raise DataError(source, f"entry {i} is missing key {missing[0]!r}")
        _check_entry(item, i, source)
        path, instructions = item["path"], item["instructions"]
        heading, distance = _numbers(item, i, source)
        for k, text in enumerate(instructions):
            episodes.append(
                Episode(
                    instr_id=f"{item['path_id']}_{k}",
                    path_id=item["path_id"],
                    scan=item["scan"],
                    path=tuple(path),
                    heading=heading,
                    instruction=text,
                    distance=distance,
                )
            )
    return episodes


def load_episodes(data_dir: str | os.PathLike[str], split: str) -> list[Episode]:
    """All instructions of one split, in file order."""
    path = split_path(data_dir, split)
    return parse_episodes(read_json(path), str(path))
