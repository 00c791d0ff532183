"""The official R2R evaluation: a submission file + a split -> TL/NE/SR/OSR/SPL/nDTW/SDTW/CLS.

A submission is the R2R leaderboard format::

    [{"instr_id": "4332_0", "trajectory": [[viewpoint, heading, elevation], ...]}, ...]

with exactly one trajectory per instruction of the split. Each trajectory must start at
the episode's start viewpoint and move only along edges of the navigation graph
(staying put is allowed). Anything else is a :class:`DataError` naming the file and the
``instr_id``, raised before any output is written.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np

from envs.episodes import Episode, load_episodes, split_path
from envs.errors import DataError
from envs.fileio import read_json, write_json
from envs.graph import NavGraphs, ScanGraph
from envs.metrics import METRIC_NAMES, remove_repeats, trajectory_metrics

#: One step of a trajectory: (viewpoint id, heading, elevation) in radians.
Step = tuple[str, float, float]
#: instr_id -> trajectory.
Predictions = dict[str, list[Step]]

#: How each summary metric is shown by :func:`format_table`: (label, scale, unit).
_TABLE_ROWS = {
    "tl": ("TL", 1.0, "m"),
    "ne": ("NE", 1.0, "m"),
    "sr": ("SR", 100.0, "%"),
    "osr": ("OSR", 100.0, "%"),
    "spl": ("SPL", 100.0, "%"),
    "ndtw": ("nDTW", 100.0, "%"),
    "sdtw": ("SDTW", 100.0, "%"),
    "cls": ("CLS", 100.0, "%"),
}


@dataclass(frozen=True)
class EvalResult:
    """What :func:`evaluate` measured."""

    #: ``num_instructions`` and the mean of every metric (rates as fractions in [0, 1]).
    summary: dict[str, float]
    #: One dict per instruction, in split order: ``instr_id``, every metric, ``steps``.
    per_instruction: list[dict[str, Any]]


def _parse_step(step: object) -> Step | None:
    """``[viewpoint, heading, elevation]`` as a :data:`Step`; None unless angles are finite."""
    if not isinstance(step, list) or len(step) != 3 or not isinstance(step[0], str):
        return None
    if not all(isinstance(x, Real) and not isinstance(x, bool) for x in step[1:]):
        return None
    try:
        heading, elevation = float(step[1]), float(step[2])
    except OverflowError:  # an integer beyond float range
        return None
    if not (math.isfinite(heading) and math.isfinite(elevation)):
        return None
    return (step[0], heading, elevation)


def parse_predictions(entries: object, source: str) -> Predictions:
    """Validate the decoded JSON of a submission file."""
    if not isinstance(entries, list):
        raise DataError(source, "expected a JSON list of {instr_id, trajectory} objects")
    predictions: Predictions = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DataError(source, f"entry {i} is not an object")
        for key in ("instr_id", "trajectory"):
            if key not in entry:
                raise DataError(source, f"entry {i} is missing key {key!r}")
        instr_id, trajectory = entry["instr_id"], entry["trajectory"]
        if not isinstance(instr_id, str):
            raise DataError(source, f"entry {i}: instr_id must be a string, got {instr_id!r}")
        if instr_id in predictions:
            raise DataError(source, f"duplicate instr_id {instr_id!r}")
        if not isinstance(trajectory, list) or not trajectory:
            raise DataError(source, f"instr_id {instr_id!r}: trajectory must be a non-empty list")
        steps = [_parse_step(step) for step in trajectory]
        for k, step in enumerate(steps):
            if step is None:
                raise DataError(
                    source,
                    f"instr_id {instr_id!r}: step {k} is not [viewpoint, heading, elevation] "
                    "(a string and two finite numbers)",
                )
        predictions[instr_id] = steps
    return predictions


def load_predictions(path: str | os.PathLike[str]) -> Predictions:
    """Read a submission file in the official R2R format."""
    return parse_predictions(read_json(path), os.fspath(path))


def predictions_to_json(predictions: Predictions) -> list[dict[str, Any]]:
    """``predictions`` in the official submission format (inverse of :func:`parse_predictions`)."""
    return [
        {"instr_id": instr_id, "trajectory": [list(step) for step in trajectory]}
        for instr_id, trajectory in predictions.items()
    ]


def save_predictions(path: str | os.PathLike[str], predictions: Predictions) -> None:
    """Write a submission file atomically."""
    write_json(path, predictions_to_json(predictions), indent=None)


def _check_instruction_ids(episodes: list[Episode], predictions: Predictions, source: str) -> None:
    expected = {episode.instr_id for episode in episodes}
    unknown = [instr_id for instr_id in predictions if instr_id not in expected]
    if unknown:
        raise DataError(
            source,
            f"instr_id {unknown[0]!r} is not an instruction of the split "
            f"({len(unknown)} unknown instr_id(s))",
        )
    missing = [episode.instr_id for episode in episodes if episode.instr_id not in predictions]
    if missing:
        raise DataError(
            source,
            f"no trajectory for instr_id {missing[0]!r} "
            f"({len(missing)} of {len(episodes)} instructions missing)",
        )


def _trajectory_indices(
    graph: ScanGraph, episode: Episode, trajectory: list[Step], source: str
) -> np.ndarray:
    """Graph indices of the trajectory without repeats ``[P]``, after checking every move."""
    where = f"instr_id {episode.instr_id!r}"
    path = remove_repeats([viewpoint for viewpoint, _, _ in trajectory])
    if path[0] != episode.start:
        raise DataError(
            source, f"{where}: trajectory starts at {path[0]!r}, not at {episode.start!r}"
        )
    for viewpoint in path:
        ix = graph.index.get(viewpoint)
        if ix is None or not graph.included[ix]:
            raise DataError(source, f"{where}: {viewpoint!r} is not a viewpoint of {graph.scan}")
    ix = np.array([graph.index[viewpoint] for viewpoint in path], dtype=np.intp)  # [P]
    moves = graph.adjacency[ix[:-1], ix[1:]] | graph.adjacency[ix[1:], ix[:-1]]  # [P - 1]
    if not moves.all():
        k = int(np.argmin(moves))
        raise DataError(
            source,
            f"{where}: move from {path[k]!r} to {path[k + 1]!r} is not an edge of the graph",
        )
    return ix


def summarize(per_instruction: list[dict[str, Any]]) -> dict[str, float]:
    """``num_instructions`` and the mean of each of :data:`METRIC_NAMES`."""
    summary: dict[str, float] = {"num_instructions": len(per_instruction)}
    for name in METRIC_NAMES:
        values = [row[name] for row in per_instruction]
        summary[name] = float(np.mean(values)) if values else float("nan")
    return summary


def evaluate(
    graphs: NavGraphs, episodes: list[Episode], predictions: Predictions, source: str
) -> EvalResult:
    """Score ``predictions`` against every instruction of ``episodes``.

    ``source`` names the predictions in error messages (normally the submission file).
    """
    _check_instruction_ids(episodes, predictions, source)
    rows: list[dict[str, Any]] = []
    for episode in episodes:
        graph = graphs[episode.scan]
        path = _trajectory_indices(graph, episode, predictions[episode.instr_id], source)
        reference = [graph.require(viewpoint) for viewpoint in episode.path]
        metrics = trajectory_metrics(path, reference, graph.distances)
        rows.append({"instr_id": episode.instr_id, **metrics})
    return EvalResult(summary=summarize(rows), per_instruction=rows)


def format_table(summary: dict[str, float]) -> str:
    """A small aligned table: rates as percentages, lengths in metres, 2 decimals."""
    lines = [("instructions", str(int(summary["num_instructions"])))]
    for name, (label, scale, unit) in _TABLE_ROWS.items():
        lines.append((f"{label} ({unit})", f"{summary[name] * scale:.2f}"))
    label_width = max(len(label) for label, _ in lines)
    value_width = max(len(value) for _, value in lines)
    return "\n".join(f"{label:<{label_width}}  {value:>{value_width}}" for label, value in lines)


def evaluate_file(
    data_dir: str | os.PathLike[str],
    split: str,
    predictions_path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    per_instruction: str | os.PathLike[str] | None = None,
) -> dict[str, float]:
    """Load, validate and score a submission; write JSON outputs only once all of it is valid.

    The outputs are written all or none: an :class:`~envs.errors.OutputError` for one
    removes the other.
    """
    episodes = load_episodes(data_dir, split)
    if any(len(episode.path) < 2 for episode in episodes):
        raise DataError(split_path(data_dir, split), "has no reference paths to score against")
    predictions = load_predictions(predictions_path)
    result = evaluate(NavGraphs(data_dir), episodes, predictions, os.fspath(predictions_path))
    _write_all([(out, result.summary), (per_instruction, result.per_instruction)])
    return result.summary


def _write_all(outputs: list[tuple[str | os.PathLike[str] | None, Any]]) -> None:
    """Write each JSON output (None: not asked for); if one fails, remove those written."""
    written: list[str | os.PathLike[str]] = []
    try:
        for path, data in outputs:
            if path is not None:
                write_json(path, data)
                written.append(path)
    except BaseException:
        for path in written:
            Path(path).unlink(missing_ok=True)
        raise


def reference_predictions(episodes: list[Episode]) -> Predictions:
    """Oracle that follows each reference path, heading and elevation 0."""
    return {e.instr_id: [(viewpoint, 0.0, 0.0) for viewpoint in e.path] for e in episodes}


def shortest_path_predictions(graphs: NavGraphs, episodes: list[Episode]) -> Predictions:
    """Oracle that follows the graph's shortest path from the start to the goal."""
    return {
        e.instr_id: [(v, 0.0, 0.0) for v in graphs[e.scan].shortest_path(e.start, e.goal)]
        for e in episodes
    }
