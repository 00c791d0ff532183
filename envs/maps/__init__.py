"""Top-down maps of a house: navigation graph, R2R reference path and a predicted trajectory.

The picture people look at when debugging a navigation agent::

    draw_map("data/r2r", "17DRP5sb8fy", "map.png", path_id=5593, predictions="preds.json")

Layers, bottom to top: the synthetic scene's rooms, doors and objects (only when the data
root has ``scenes/{scan}.json``), the graph's edges (thin grey) and viewpoints (dots), the
reference path (blue, arrows), the predicted trajectory (magenta, dashed, arrows), and the
start / goal / stop markers. A side panel holds the legend, the scan id, the path lengths
and the final distance to the goal (shortest-path distances on the navigation graph).

Real Matterport scans often have several floors. The map projects onto x / y and colours
the viewpoints by camera height (a colour bar says which). When a path or trajectory is
drawn, viewpoints more than ``FLOOR_MARGIN_M`` (1.5 m) above or below it are faded and the
view zooms onto the floor(s) it uses, so other floors do not clutter the route. When the
route is small next to the house, the side panel adds a close-up of it (its area is framed
by a dashed rectangle on the map).

Drawing uses matplotlib's Agg canvas directly (no pyplot, no global backend change).
The public entry points are :func:`draw_map` and :func:`render_map`; what a map shows is
read and checked by :mod:`envs.maps.data` (with the synthetic house layout of
:mod:`envs.maps.scene`) and drawn layer by layer by :mod:`envs.maps.layers`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from envs.fileio import atomic_write
from envs.maps.data import MapData, gather_map_data, info_lines
from envs.maps.layers import (
    EDGE_COLOUR,
    GOAL_MARKER,
    PREDICTION_COLOUR,
    PREDICTION_WIDTH,
    REFERENCE_COLOUR,
    REFERENCE_WIDTH,
    START_MARKER,
    STOP_MARKER,
    VIEWPOINT_COLOUR,
    Z_MARKERS,
    draw_graph,
    draw_marker,
    draw_route,
    draw_scene,
    faded_viewpoints,
)

#: Size of the written PNG in pixels (fixed, so maps line up side by side).
MAP_WIDTH_PX = 1400
MAP_HEIGHT_PX = 1000
MAP_DPI = 100
#: Map axes in figure fractions (left, bottom, width, height).
AXES_RECT = (0.05, 0.06, 0.66, 0.88)
#: The side panel (legend, text, close-up, colour bar) spans these figure fractions in x.
PANEL_LEFT = 0.74
PANEL_RIGHT = 0.98
PANEL_TOP = 0.95
#: Colour bar of camera heights at the bottom of the side panel (bottom, height).
COLOURBAR_RECT = (0.07, 0.018)
#: Empty border around the drawn house, in metres.
MAP_MARGIN_M = 0.8
#: Border around the route in the close-up, in metres.
CLOSE_UP_MARGIN_M = 1.5
#: A close-up is added when the route's extent is below this fraction of the map's.
CLOSE_UP_MAX_FRACTION = 0.5
#: ... and when at least this much of the figure's height is free for it.
CLOSE_UP_MIN_HEIGHT = 0.15
#: Vertical gap between the panel's parts, in figure fractions.
PANEL_GAP = 0.03


def _extent(points: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corners ([2], [2]) of ``points`` [P, 2] grown by ``margin``."""
    return points.min(axis=0) - margin, points.max(axis=0) + margin


def _map_points(data: MapData, faded: np.ndarray) -> np.ndarray:
    """[P, 2] points the whole map must show: viewpoints not faded, scene room corners."""
    graph = data.graph
    shown = graph.included & ~faded
    xy = graph.positions[shown if shown.any() else slice(None), :2]  # [M, 2]
    if data.scene is not None and data.scene.rooms:
        rooms = np.array([r.bounds for r in data.scene.rooms])  # [R, 4]
        xy = np.concatenate([xy, rooms[:, :2], rooms[:, 2:]])  # [M + 2R, 2]
    return xy


def _set_view(ax: Axes, low: np.ndarray, high: np.ndarray) -> None:
    """Show ``low``..``high`` at equal aspect, grown to the axes' shape (no distortion)."""
    box = ax.get_position()
    fig_w, fig_h = ax.figure.get_size_inches()
    box_ratio = (box.width * fig_w) / (box.height * fig_h)  # width / height of the axes
    centre, size = (low + high) / 2, high - low  # [2], [2]
    size = np.maximum(size, [size[1] * box_ratio, size[0] / box_ratio])
    ax.set_xlim(centre[0] - size[0] / 2, centre[0] + size[0] / 2)
    ax.set_ylim(centre[1] - size[1] / 2, centre[1] + size[1] / 2)
    ax.set_aspect("equal", adjustable="box")


def _draw_layers(ax: Axes, data: MapData, faded: np.ndarray) -> PathCollection | None:
    """Scene, graph, routes and markers; returns the height-coloured dots (or None)."""
    graph, reference, trajectory = data.graph, data.reference, data.trajectory
    if data.scene is not None:
        draw_scene(ax, data.scene)
    dots = draw_graph(ax, graph, faded)
    if len(reference) > 1:
        draw_route(ax, graph, reference, REFERENCE_COLOUR, REFERENCE_WIDTH, dashed=False)
    if trajectory is not None:
        draw_route(
            ax, graph, trajectory.viewpoints, PREDICTION_COLOUR, PREDICTION_WIDTH, dashed=True
        )
        draw_marker(ax, graph, trajectory.viewpoints[-1], STOP_MARKER)
    if reference:
        draw_marker(ax, graph, reference[0], START_MARKER)
    if len(reference) > 1:
        draw_marker(ax, graph, reference[-1], GOAL_MARKER)
    return dots


def _legend_handles(data: MapData) -> list[Line2D]:
    handles = [
        Line2D([], [], label="viewpoint", linestyle="none", marker="o", color=VIEWPOINT_COLOUR),
        Line2D([], [], label="navigation edge", color=EDGE_COLOUR, linewidth=1),
    ]
    if data.reference:
        handles.append(
            Line2D(
                [], [], label="reference path", color=REFERENCE_COLOUR, linewidth=REFERENCE_WIDTH
            )
        )
        handles.append(START_MARKER.legend_handle("start"))
    if len(data.reference) > 1:
        handles.append(GOAL_MARKER.legend_handle("goal"))
    if data.trajectory is not None:
        label = f"prediction {data.trajectory.instr_id}"
        style = {"color": PREDICTION_COLOUR, "linewidth": PREDICTION_WIDTH, "linestyle": "--"}
        handles.append(Line2D([], [], label=label, **style))  # type: ignore[arg-type]
        handles.append(STOP_MARKER.legend_handle("predicted stop"))
    return handles


def _draw_panel_text(fig: Figure, data: MapData) -> float:
    """Legend and text in the side panel; returns the figure fraction where the text ends."""
    legend = fig.legend(
        handles=_legend_handles(data),
        loc="upper left",
        frameon=False,
        bbox_to_anchor=(PANEL_LEFT, PANEL_TOP),
        fontsize=11,
    )
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    legend_bottom = legend.get_window_extent(renderer).y0 / fig.bbox.height
    text = fig.text(
        PANEL_LEFT,
        legend_bottom - PANEL_GAP,
        "\n".join(info_lines(data)),
        va="top",
        fontsize=10,
        linespacing=1.4,
    )
    return text.get_window_extent(renderer).y0 / fig.bbox.height


def _add_close_up(
    fig: Figure, ax: Axes, data: MapData, faded: np.ndarray, top: float, bottom: float
) -> Axes | None:
    """A close-up of the route between ``top`` and ``bottom`` (figure fractions), if useful."""
    route = list(data.reference) + list(data.trajectory.viewpoints if data.trajectory else ())
    graph = data.graph
    if not route or top - bottom < CLOSE_UP_MIN_HEIGHT:
        return None
    points = graph.positions[[graph.index[vp] for vp in route], :2]  # [K, 2]
    low, high = _extent(points, CLOSE_UP_MARGIN_M)
    map_size = max(np.ptp(ax.get_xlim()), np.ptp(ax.get_ylim()))
    if (high - low).max() > CLOSE_UP_MAX_FRACTION * map_size:
        return None
    inset = fig.add_axes((PANEL_LEFT, bottom, PANEL_RIGHT - PANEL_LEFT, top - bottom))
    _draw_layers(inset, data, faded)
    _set_view(inset, low, high)
    inset.set_title("close-up of the route", fontsize=10)
    inset.tick_params(labelsize=8)
    x0, x1, y0, y1 = (*inset.get_xlim(), *inset.get_ylim())
    frame = Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, linestyle="--", zorder=Z_MARKERS + 1)
    ax.add_patch(frame)
    return inset


def render_map(data: MapData) -> Figure:
    """The map as a matplotlib figure on an Agg canvas (MAP_WIDTH_PX x MAP_HEIGHT_PX)."""
    fig = Figure(figsize=(MAP_WIDTH_PX / MAP_DPI, MAP_HEIGHT_PX / MAP_DPI), dpi=MAP_DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes(AXES_RECT)
    route = list(data.reference) + list(data.trajectory.viewpoints if data.trajectory else ())
    faded = faded_viewpoints(data.graph, route)
    dots = _draw_layers(ax, data, faded)
    _set_view(ax, *_extent(_map_points(data, faded), MAP_MARGIN_M))
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.grid(True, color="#eeeeee", linewidth=0.5)
    ax.set_axisbelow(True)
    title = f"scan {data.graph.scan}"
    if data.episodes:
        title += f", path {data.episodes[0].path_id}"
    ax.set_title(title, fontsize=14)
    text_bottom = _draw_panel_text(fig, data)
    bar_bottom, bar_height = COLOURBAR_RECT
    free_bottom = bar_bottom + bar_height + 2 * PANEL_GAP if dots is not None else bar_bottom
    _add_close_up(fig, ax, data, faded, text_bottom - 2 * PANEL_GAP, free_bottom)
    if dots is not None:
        bar_ax = fig.add_axes((PANEL_LEFT, bar_bottom, PANEL_RIGHT - PANEL_LEFT, bar_height))
        fig.colorbar(dots, cax=bar_ax, orientation="horizontal", label="camera height z (m)")
    return fig


def draw_map(
    data_dir: str | os.PathLike[str],
    scan: str,
    out_path: str | os.PathLike[str],
    path_id: int | None = None,
    predictions: str | os.PathLike[str] | None = None,
    instr_id: str | None = None,
) -> Path:
    """Write a top-down PNG map of ``scan`` to ``out_path`` (atomically) and return its path.

    ``path_id`` adds an R2R path (looked up in every ``DIR/R2R_*.json``); ``predictions``
    (an R2R submission file) adds the trajectory of ``instr_id``, by default of the path's
    first instruction found in the file (``instr_id`` alone also selects its path). Raises
    :class:`~envs.errors.DataError` naming the file for an unknown scan, an unknown path
    id, a path of another scan, or a predictions file without the instruction; nothing is
    written then.
    """
    data = gather_map_data(data_dir, scan, path_id, predictions, instr_id)
    fig = render_map(data)
    out_path = Path(out_path)
    with atomic_write(out_path, mode="wb") as f:
        fig.savefig(f, format="png", dpi=MAP_DPI)
    return out_path
