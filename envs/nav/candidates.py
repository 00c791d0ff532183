"""R2R-EnvDrop's candidate actions, computed once per viewpoint on the batch core.

EnvDrop (Tan et al. 2019, ``make_candidate``) looks around the panorama: for each of the 36
discrete views it asks the simulator for the navigable locations, and represents every
neighbour seen from any view by the view where it is closest to the centre (smallest
``sqrt(rel_heading^2 + rel_elevation^2)``; the earliest view wins ties). Candidates are
listed in the order they are first seen (views 0..35, each view's navigable order). A
candidate carries:

- ``view``: the view that represents it (EnvDrop's ``pointId``);
- ``nav_index``: its position in the navigable list seen from that view (EnvDrop's ``idx``);
- ``heading`` / ``elevation``: its absolute direction (view angle + relative angle), from
  which the angle feature relative to the agent's current heading is made
  (:func:`envs.features.angles.angle_feature`).

Moving to a candidate (:func:`move_to_candidates`) replays EnvDrop's ``make_equiv_action``:
tilt up or down to the candidate's elevation level, turn right until the view index matches,
then take the navigable index — every intermediate state is recorded for the trajectory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from envs.constants import NUM_VIEWS, VIEWS_PER_ELEVATION
from envs.simulator import (
    BatchSimulator,
    SimulatorConfig,
    SimWorld,
    discrete_view_angles,
    navigable_locations,
)


@dataclass(frozen=True)
class CandidateTable:
    """Candidates of every viewpoint of a world; arrays are [G, C], padded beyond ``count``."""

    #: Global id of each candidate viewpoint (-1 padding).
    ids: np.ndarray
    #: View index 0..35 that represents the candidate.
    view: np.ndarray
    #: Position in the navigable list seen from ``view``.
    nav_index: np.ndarray
    #: Absolute heading and elevation of the direction to the candidate (radians).
    heading: np.ndarray
    elevation: np.ndarray
    #: [G] number of candidates.
    count: np.ndarray

    @property
    def max_candidates(self) -> int:
        return self.ids.shape[1]


def build_candidate_table(world: SimWorld) -> CandidateTable:
    """EnvDrop's candidates for every viewpoint of ``world`` (R2R camera, discretized)."""
    config = SimulatorConfig()
    size, max_degree = world.size, world.neighbours.shape[1]
    ids = np.full((size, max_degree), -1, dtype=np.int64)
    view = np.zeros((size, max_degree), dtype=np.int64)
    nav_index = np.zeros((size, max_degree), dtype=np.int64)
    heading = np.zeros((size, max_degree), dtype=np.float64)
    elevation = np.zeros((size, max_degree), dtype=np.float64)
    count = np.zeros(size, dtype=np.int64)
    chunk = max(1, 65536 // NUM_VIEWS)
    for start in range(0, size, chunk):
        g = np.arange(start, min(size, start + chunk))  # [n]
        n = g.shape[0]
        views = np.tile(np.arange(NUM_VIEWS), n)  # [n*36]
        view_heading, view_elevation = discrete_view_angles(views)
        nav = navigable_locations(
            world, np.repeat(g, NUM_VIEWS), view_heading, view_elevation, config
        )
        # Scatter each sorted navigable entry to its neighbour slot: [n, 36, K] per slot.
        width = nav.ids.shape[1]
        slot = nav.slots.reshape(n, NUM_VIEWS, width)[..., 1:]  # [n, 36, K]
        seen = slot >= 0
        position = np.broadcast_to(np.arange(1, width), slot.shape)  # navigable index
        dist = np.sqrt(nav.rel_heading**2 + nav.rel_elevation**2)  # [n*36, K+1]
        dist = dist.reshape(n, NUM_VIEWS, width)[..., 1:]  # [n, 36, K]
        rel_h = nav.rel_heading.reshape(n, NUM_VIEWS, width)[..., 1:]
        rel_e = nav.rel_elevation.reshape(n, NUM_VIEWS, width)[..., 1:]
        per_slot = {
            name: np.full((n, NUM_VIEWS, max_degree), fill, dtype=dtype)
            for name, fill, dtype in (
                ("dist", np.inf, np.float64),
                ("pos", 0, np.int64),
                ("heading", 0.0, np.float64),
                ("elevation", 0.0, np.float64),
            )
        }
        row, col, _ = np.nonzero(seen)
        target = slot[seen]
        view_of = col  # [m]
        per_slot["dist"][row, view_of, target] = dist[seen]
        per_slot["pos"][row, view_of, target] = position[seen]
        per_slot["heading"][row, view_of, target] = (
            view_heading.reshape(n, NUM_VIEWS)[row, view_of] + rel_h[seen]
        )
        per_slot["elevation"][row, view_of, target] = (
            view_elevation.reshape(n, NUM_VIEWS)[row, view_of] + rel_e[seen]
        )
        visible = np.isfinite(per_slot["dist"])  # [n, 36, K]
        any_view = visible.any(axis=1)  # [n, K]
        best = np.argmin(per_slot["dist"], axis=1)  # [n, K]: first minimum = earliest view
        first = np.argmax(visible, axis=1)  # [n, K]: first view that sees the slot
        first_pos = np.take_along_axis(per_slot["pos"], first[:, None], axis=1)[:, 0]  # [n, K]
        order_key = np.where(any_view, first * (max_degree + 1) + first_pos, np.iinfo(np.int64).max)
        order = np.argsort(order_key, axis=1, kind="stable")  # [n, K] slots in first-seen order
        n_cand = any_view.sum(axis=1)  # [n]
        keep = np.arange(max_degree)[None, :] < n_cand[:, None]

        def gather(values: np.ndarray, best=best, order=order) -> np.ndarray:
            picked = np.take_along_axis(values, best[:, None], axis=1)[:, 0]  # [n, K] at best view
            return np.take_along_axis(picked, order, axis=1)

        neighbour_ids = np.take_along_axis(world.neighbours[g], order, axis=1)
        ids[g] = np.where(keep, neighbour_ids, -1)
        view[g] = np.where(keep, np.take_along_axis(best, order, axis=1), 0)
        nav_index[g] = np.where(keep, gather(per_slot["pos"]), 0)
        heading[g] = np.where(keep, gather(per_slot["heading"]), 0.0)
        elevation[g] = np.where(keep, gather(per_slot["elevation"]), 0.0)
        count[g] = n_cand
    used = max(1, int(count.max(initial=0)))
    return CandidateTable(
        ids=ids[:, :used],
        view=view[:, :used],
        nav_index=nav_index[:, :used],
        heading=heading[:, :used],
        elevation=elevation[:, :used],
        count=count,
    )


@dataclass(frozen=True)
class MoveRecord:
    """States visited while moving to candidates: one row per sub-action, arrays [T, B]."""

    location: np.ndarray
    heading: np.ndarray
    elevation: np.ndarray
    #: Whether the agent acted at that sub-action (recorded states are valid only there).
    acted: np.ndarray


def move_to_candidates(
    sim: BatchSimulator, table: CandidateTable, choice: np.ndarray, active: np.ndarray
) -> MoveRecord:
    """Move each active agent to its chosen candidate the way EnvDrop's ``make_equiv_action`` does.

    Args:
        choice: [B] candidate index (0-based, < count at the agent's location).
        active: [B] bool; inactive agents do not move.
    """
    choice = np.where(active, choice, 0)
    here = sim.location
    if (active & ((choice < 0) | (choice >= table.count[here]))).any():
        raise ValueError("candidate index out of range")
    target_view = table.view[here, choice]  # [B]
    nav_index = table.nav_index[here, choice]  # [B]
    target_id = table.ids[here, choice]  # [B]
    pending_move = active.copy()
    records: list[tuple[np.ndarray, ...]] = []
    while pending_move.any():
        level = sim.view_index // VIEWS_PER_ELEVATION
        target_level = target_view // VIEWS_PER_ELEVATION
        tilt = np.where(pending_move, np.sign(target_level - level), 0)
        turning = pending_move & (tilt == 0) & (sim.view_index != target_view)
        moving = pending_move & (tilt == 0) & ~turning
        acted = (tilt != 0) | turning | moving
        sim.make_action(
            np.where(moving, nav_index, 0),
            turning.astype(np.float64),
            tilt.astype(np.float64),
            active=acted,
        )
        records.append((sim.location, sim.heading, sim.elevation, acted))
        pending_move &= ~moving
    if (sim.location[active] != target_id[active]).any():
        raise AssertionError("candidate table and simulator disagree")  # invariant of the tables
    if not records:
        empty = np.zeros((0, sim.batch_size))
        return MoveRecord(empty.astype(np.int64), empty, empty, empty.astype(bool))
    return MoveRecord(*(np.stack(column) for column in zip(*records, strict=True)))
