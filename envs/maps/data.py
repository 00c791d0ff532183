"""What a top-down map shows, read and checked: graph, scene, R2R path, predicted trajectory.

Everything is validated before anything is drawn, so bad input raises
:class:`~envs.errors.DataError` naming the offending file and no picture is written.

* ``DIR/connectivity/{scan}_connectivity.json``: the navigation graph (:mod:`envs.graph`).
* ``DIR/scenes/{scan}.json``: the synthetic house layout, when present (:mod:`envs.maps.scene`).
* ``DIR/R2R_*.json``: the episode with a given ``path_id`` (any split).
* An official R2R submission file: ``[{"instr_id": str, "trajectory": [[vp, heading,
  elevation], ...]}]`` (read by :func:`envs.evaluate.load_predictions`). Lengths and the
  final distance to the goal are the official TL and NE of :mod:`envs.metrics`.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from envs.constants import R2R_SPLITS
from envs.episodes import Episode, load_episodes
from envs.errors import DataError
from envs.evaluate import load_predictions
from envs.graph import NavGraphs, ScanGraph
from envs.maps.scene import Scene, load_scene
from envs.metrics import is_success, navigation_error, path_length, remove_repeats

#: Characters per line of the instruction in the map's side panel.
INSTRUCTION_WRAP = 44


@dataclass(frozen=True)
class Trajectory:
    """A predicted trajectory: viewpoints visited, consecutive repeats (turns) collapsed."""

    instr_id: str
    viewpoints: tuple[str, ...]
    source: str


def r2r_files(data_dir: str | os.PathLike[str]) -> list[Path]:
    """The data root's ``R2R_*.json`` files: the standard splits first, then the rest by name."""
    root = Path(data_dir)
    standard = [root / f"R2R_{split}.json" for split in R2R_SPLITS]
    others = sorted(p for p in root.glob("R2R_*.json") if p not in standard)
    return [p for p in standard if p.is_file()] + others


def find_path(data_dir: str | os.PathLike[str], path_id: int) -> tuple[list[Episode], Path]:
    """The instructions of R2R path ``path_id`` (searched in every split) and their file."""
    files = r2r_files(data_dir)
    if not files:
        raise DataError(data_dir, "no R2R_*.json files in the data root")
    for path in files:
        episodes = [ep for ep in load_episodes(data_dir, str(path)) if ep.path_id == path_id]
        if episodes:
            return episodes, path
    names = ", ".join(p.name for p in files)
    raise DataError(data_dir, f"path_id {path_id} is in none of {names}")


def path_id_of(instr_id: str, source: str | os.PathLike[str]) -> int:
    """The path id of an R2R instruction id ``"{path_id}_{k}"``."""
    head, _, tail = instr_id.rpartition("_")
    if not head.isdigit() or not tail.isdigit():
        raise DataError(source, f"instr_id {instr_id!r} is not of the form PATHID_K")
    return int(head)


def choose_trajectory(
    predictions_path: str | os.PathLike[str],
    episodes: Sequence[Episode],
    graph: ScanGraph,
    instr_id: str | None = None,
) -> Trajectory:
    """The predicted trajectory for ``instr_id``, or for the path's first predicted instruction.

    Raises :class:`DataError` naming the predictions file when it has no trajectory for
    the instruction(s), or when the trajectory leaves the scan's navigation graph.
    """
    source = str(predictions_path)
    predictions = load_predictions(predictions_path)  # {instr_id: [(vp, heading, elev), ...]}
    wanted = [instr_id] if instr_id is not None else [ep.instr_id for ep in episodes]
    found = next((i for i in wanted if i in predictions), None)
    if found is None:
        raise DataError(source, f"no trajectory for instr_id {' or '.join(wanted)}")
    viewpoints = tuple(remove_repeats([vp for vp, _, _ in predictions[found]]))
    for vp in viewpoints:
        ix = graph.index.get(vp)
        if ix is None or not graph.included[ix]:
            raise DataError(source, f"{found}: viewpoint {vp!r} is not in scan {graph.scan}")
    return Trajectory(instr_id=found, viewpoints=viewpoints, source=source)


@dataclass(frozen=True)
class MapData:
    """Everything one map shows, read and validated."""

    graph: ScanGraph
    #: Synthetic scene layout (None for real scans).
    scene: Scene | None = None
    #: The R2R path's instructions (empty when no path was asked for) and their file.
    episodes: tuple[Episode, ...] = ()
    episodes_source: str = ""
    #: The instruction whose text the panel shows.
    episode: Episode | None = None
    trajectory: Trajectory | None = None

    @property
    def reference(self) -> tuple[str, ...]:
        """Reference path viewpoints (only the start on the test split)."""
        return self.episodes[0].path if self.episodes else ()


def _require_on_graph(graph: ScanGraph, path: Sequence[str], source: str, path_id: int) -> None:
    for vp in path:
        ix = graph.index.get(vp)
        if ix is None or not graph.included[ix]:
            raise DataError(source, f"path_id {path_id}: viewpoint {vp!r} not in scan {graph.scan}")


def gather_map_data(
    data_dir: str | os.PathLike[str],
    scan: str,
    path_id: int | None = None,
    predictions: str | os.PathLike[str] | None = None,
    instr_id: str | None = None,
) -> MapData:
    """Read and check the graph, scene, path and trajectory of one map (see :func:`draw_map`)."""
    graph = NavGraphs(data_dir)[scan]
    scene = load_scene(data_dir, scan)
    if path_id is None and instr_id is not None:
        path_id = path_id_of(instr_id, predictions if predictions is not None else data_dir)
    if path_id is None:
        if predictions is not None:
            raise DataError(predictions, "a path id or instr_id is needed to choose a trajectory")
        return MapData(graph=graph, scene=scene)
    episodes, source = find_path(data_dir, path_id)
    if episodes[0].scan != scan:
        raise DataError(source, f"path_id {path_id} is in scan {episodes[0].scan}, not {scan}")
    _require_on_graph(graph, episodes[0].path, str(source), path_id)
    by_id = {ep.instr_id: ep for ep in episodes}
    if instr_id is not None and instr_id not in by_id:
        raise DataError(source, f"instr_id {instr_id} is not an instruction of path {path_id}")
    trajectory = None
    if predictions is not None:
        trajectory = choose_trajectory(predictions, episodes, graph, instr_id)
    shown = trajectory.instr_id if trajectory is not None else instr_id
    return MapData(
        graph=graph,
        scene=scene,
        episodes=tuple(episodes),
        episodes_source=str(source),
        episode=by_id.get(shown, episodes[0]) if shown is not None else episodes[0],
        trajectory=trajectory,
    )


def info_lines(data: MapData) -> list[str]:
    """The side panel's text: scan, path, lengths, final distance to goal, instruction."""
    graph = data.graph
    lines = [f"scan {graph.scan}", f"{int(graph.included.sum())} viewpoints"]
    reference = data.reference
    if data.episodes:
        lines += ["", f"path {data.episodes[0].path_id}  ({Path(data.episodes_source).name})"]
    if len(reference) > 1:
        lines.append(f"reference length {path_length(reference, graph.distance):.2f} m")
        lines.append(f"start-goal distance {graph.distance(reference[0], reference[-1]):.2f} m")
    elif reference:
        lines.append("no goal in this split (test)")
    if data.trajectory is not None:
        traj = data.trajectory.viewpoints
        lines += ["", f"prediction {data.trajectory.instr_id}"]
        length = path_length(traj, graph.distance)
        lines.append(f"trajectory length {length:.2f} m, {len(traj) - 1} steps")
        if len(reference) > 1:
            error = navigation_error(traj, reference[-1], graph.distance)
            verdict = "success" if is_success(error) else "failure"
            lines.append(f"final distance to goal {error:.2f} m ({verdict})")
    if data.episode is not None:
        lines += ["", f"instruction {data.episode.instr_id}:"]
        lines += textwrap.wrap(data.episode.instruction.strip(), INSTRUCTION_WRAP)
    return lines
