"""The layers of a top-down map, each drawn by one function on a matplotlib ``Axes``.

Bottom to top (``zorder``): the synthetic scene's rooms, doors and objects; the graph's
edges and viewpoints; routes (reference path, predicted trajectory) with arrowheads;
markers (start, goal, predicted stop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from envs.graph import ScanGraph
from envs.maps.scene import Scene
from envs.synthetic.vocabulary import COLOURS

#: Camera heights spreading more than this (metres) mean several floors: colour by height.
MULTI_FLOOR_SPREAD_M = 1.0
#: Viewpoints further than this above or below the drawn route are on another floor: faded.
FLOOR_MARGIN_M = 1.5
FADED_ALPHA = 0.12
#: Fraction of white mixed into a room's floor colour, and of black into its wall colour.
ROOM_PALENESS = 0.6
WALL_DARKNESS = 0.45
#: Drawing order: rooms above the grid (0.5), labels above objects, graph, routes, markers.
Z_ROOMS = 0.6
Z_DOORS = 0.8
Z_OBJECTS = 0.9
Z_ROOM_LABELS = 1.0
Z_EDGES = 2
Z_VIEWPOINTS = 3
Z_ROUTES = 4
Z_ARROWS = 5
Z_MARKERS = 6

VIEWPOINT_COLOUR = "#37474f"
EDGE_COLOUR = "#9e9e9e"
REFERENCE_COLOUR = "#1565c0"
PREDICTION_COLOUR = "#d81b60"
START_COLOUR = "#2e7d32"
GOAL_COLOUR = "#f9a825"
DOOR_COLOUR = "#fafafa"
JAMB_COLOUR = "#5d4037"
HEIGHT_COLOURMAP = "viridis"
#: Line widths (points) of the reference path and of the predicted trajectory.
REFERENCE_WIDTH = 4.0
PREDICTION_WIDTH = 2.5


@dataclass(frozen=True)
class MarkerStyle:
    """How a special viewpoint (start, goal, predicted stop) is marked."""

    marker: str
    size: float
    colour: str

    def legend_handle(self, label: str) -> Line2D:
        """A legend entry showing this marker."""
        return Line2D([], [], label=label, linestyle="none", **self.plot_kwargs())

    def plot_kwargs(self) -> dict[str, object]:
        """Keyword arguments of ``Axes.plot`` drawing this marker."""
        return {
            "marker": self.marker,
            "markersize": self.size,
            "color": self.colour,
            "markeredgecolor": "black",
        }


START_MARKER = MarkerStyle("o", 12, START_COLOUR)
GOAL_MARKER = MarkerStyle("*", 20, GOAL_COLOUR)
STOP_MARKER = MarkerStyle("X", 12, PREDICTION_COLOUR)


def _rgb01(rgb: Sequence[int]) -> tuple[float, float, float]:
    r, g, b = (c / 255.0 for c in rgb)
    return r, g, b


def _pale(rgb: Sequence[int], amount: float = ROOM_PALENESS) -> tuple[float, float, float]:
    """``rgb`` (0..255) mixed with ``amount`` white, as matplotlib's 0..1 floats."""
    r, g, b = (c + (1.0 - c) * amount for c in _rgb01(rgb))
    return r, g, b


def _dark(rgb: Sequence[int], amount: float = WALL_DARKNESS) -> tuple[float, float, float]:
    """``rgb`` (0..255) mixed with ``amount`` black, as matplotlib's 0..1 floats."""
    r, g, b = (c * (1.0 - amount) for c in _rgb01(rgb))
    return r, g, b


def draw_rooms(ax: Axes, scene: Scene) -> None:
    """Rooms as rectangles in a pale floor colour, walls darker, labelled with their type."""
    for room in scene.rooms:
        xmin, ymin, xmax, ymax = room.bounds
        floor = _pale(room.floor_color)
        ax.add_patch(
            Rectangle(
                (xmin, ymin),
                xmax - xmin,
                ymax - ymin,
                facecolor=floor,
                edgecolor=_dark(room.wall_color),
                linewidth=2.5,
                zorder=Z_ROOMS,
            )
        )
        ax.text(
            (xmin + xmax) / 2,
            ymax - 0.15,
            room.type,
            ha="center",
            va="top",
            fontsize=10,
            fontweight="bold",
            color="#303030",
            bbox={"facecolor": floor, "edgecolor": "none", "alpha": 0.8, "pad": 1.5},
            zorder=Z_ROOM_LABELS,
        )


def draw_doors(ax: Axes, scene: Scene) -> None:
    """Doors as gaps in the walls with jamb ticks; ``axis`` is the direction the gap spans."""
    for door in scene.doors:
        cx, cy = door.center
        half = door.width / 2
        if door.axis == "x":  # in a wall of constant y
            xs, ys, jamb = [cx - half, cx + half], [cy, cy], "|"
        else:  # in a wall of constant x
            xs, ys, jamb = [cx, cx], [cy - half, cy + half], "_"
        ax.plot(xs, ys, color=DOOR_COLOUR, linewidth=5, solid_capstyle="butt", zorder=Z_DOORS)
        ax.plot(
            xs, ys, linestyle="none", marker=jamb, markersize=9, color=JAMB_COLOUR, zorder=Z_DOORS
        )


def draw_objects(ax: Axes, scene: Scene) -> None:
    """Objects' footprints in their colour, labelled with their category."""
    for obj in scene.objects:
        xmin, ymin, xmax, ymax = obj.footprint
        rgb = COLOURS[obj.color]
        ax.add_patch(
            Rectangle(
                (xmin, ymin),
                xmax - xmin,
                ymax - ymin,
                facecolor=_rgb01(rgb),
                edgecolor="#212121",
                linewidth=0.6,
                zorder=Z_OBJECTS,
            )
        )
        ax.text(
            (xmin + xmax) / 2,
            (ymin + ymax) / 2,
            obj.category,
            ha="center",
            va="center",
            fontsize=7.5,
            color="black",
            path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")],
            zorder=Z_OBJECTS,
        )


def draw_scene(ax: Axes, scene: Scene) -> None:
    """The synthetic house under the graph: rooms, doors, objects."""
    draw_rooms(ax, scene)
    draw_doors(ax, scene)
    draw_objects(ax, scene)


def faded_viewpoints(graph: ScanGraph, route: Sequence[str]) -> np.ndarray:
    """[N] bool: viewpoints on another floor than ``route`` (none when the scan is flat)."""
    z = graph.positions[:, 2]  # [N]
    faded = np.zeros(len(graph), dtype=bool)
    if not route or np.ptp(z[graph.included]) <= MULTI_FLOOR_SPREAD_M:
        return faded
    route_z = z[[graph.index[vp] for vp in route]]  # [K]
    return (z < route_z.min() - FLOOR_MARGIN_M) | (z > route_z.max() + FLOOR_MARGIN_M)


def draw_graph(ax: Axes, graph: ScanGraph, faded: np.ndarray) -> PathCollection | None:
    """Edges (thin grey) and included viewpoints; returns the height-coloured dots or None."""
    xy = graph.positions[:, :2]  # [N, 2]
    z = graph.positions[:, 2]  # [N]
    rows, cols = np.nonzero(np.triu(graph.adjacency | graph.adjacency.T))  # [E], [E]
    segments = np.stack([xy[rows], xy[cols]], axis=1)  # [E, 2, 2]
    edge_faded = faded[rows] | faded[cols]  # [E]
    for mask, alpha in ((~edge_faded, 0.9), (edge_faded, FADED_ALPHA)):
        ax.add_collection(
            LineCollection(
                segments[mask], colors=EDGE_COLOUR, linewidths=0.8, alpha=alpha, zorder=Z_EDGES
            )
        )
    shown = graph.included & ~faded
    dim = graph.included & faded
    by_height = np.ptp(z[graph.included]) > MULTI_FLOOR_SPREAD_M
    style = {"s": 22, "edgecolors": "white", "linewidths": 0.5, "zorder": Z_VIEWPOINTS}
    if not by_height:
        ax.scatter(xy[shown, 0], xy[shown, 1], color=VIEWPOINT_COLOUR, **style)
        return None
    norm = {"vmin": z[graph.included].min(), "vmax": z[graph.included].max()}
    ax.scatter(
        xy[dim, 0], xy[dim, 1], c=z[dim], cmap=HEIGHT_COLOURMAP, alpha=FADED_ALPHA, **norm, **style
    )
    return ax.scatter(
        xy[shown, 0], xy[shown, 1], c=z[shown], cmap=HEIGHT_COLOURMAP, **norm, **style
    )


def draw_route(
    ax: Axes, graph: ScanGraph, route: Sequence[str], colour: str, width: float, dashed: bool
) -> None:
    """A route as a haloed line with an arrowhead in the middle of every step."""
    xy = graph.positions[[graph.index[vp] for vp in route], :2]  # [K, 2]
    halo = [patheffects.Stroke(linewidth=width + 3, foreground="white"), patheffects.Normal()]
    ax.plot(
        xy[:, 0],
        xy[:, 1],
        color=colour,
        linewidth=width,
        linestyle="--" if dashed else "-",
        path_effects=halo,
        solid_capstyle="round",
        zorder=Z_ROUTES,
    )
    for start, end in zip(xy[:-1], xy[1:], strict=True):
        step = end - start  # [2]
        if not np.any(step):
            continue
        mid = (start + end) / 2
        tip = mid + 0.05 * step / np.linalg.norm(step)
        ax.annotate(
            "",
            xy=tip,
            xytext=mid,
            zorder=Z_ARROWS,
            arrowprops={"arrowstyle": "-|>", "color": colour, "mutation_scale": 20, "linewidth": 0},
        )


def draw_marker(ax: Axes, graph: ScanGraph, vp: str, style: MarkerStyle) -> None:
    """A big marker (start, goal, stop) on viewpoint ``vp``."""
    x, y = graph.positions[graph.index[vp], :2]
    ax.plot([x], [y], linestyle="none", zorder=Z_MARKERS, **style.plot_kwargs())  # type: ignore[arg-type]
