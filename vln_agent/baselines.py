"""Baseline agents that need no learning: the shortest-path oracle and a random walk.

They give the floor and the ceiling of the metrics table (R2R paper, Table 1: "Random"
and "Shortest"). The random walk runs in the batch simulator with EnvDrop's candidate
moves, so its trajectories include every turn, exactly as a learned agent's would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from envs.episodes import Episode
from envs.evaluate import Predictions, Step
from envs.graph import NavGraphs
from envs.nav.candidates import CandidateTable, build_candidate_table, move_to_candidates
from envs.simulator import BatchSimulator, SimWorld

#: R2R paths have 4-7 viewpoints: a random walk of 5 moves has the typical length.
RANDOM_WALK_STEPS = 5


def random_walk_predictions(
    graphs: NavGraphs,
    episodes: Sequence[Episode],
    steps: int = RANDOM_WALK_STEPS,
    seed: int = 0,
    batch_size: int = 64,
) -> Predictions:
    """Each agent takes ``steps`` uniformly random candidate moves from its start, then stops."""
    scans = sorted({e.scan for e in episodes})
    world = SimWorld.from_data(graphs, scans)
    table = build_candidate_table(world)
    rng = np.random.default_rng(seed)
    predictions: Predictions = {}
    for start in range(0, len(episodes), batch_size):
        chunk = list(episodes[start : start + batch_size])
        predictions.update(_walk_batch(world, table, chunk, steps, rng))
    return predictions


def _walk_batch(
    world: SimWorld,
    table: CandidateTable,
    episodes: list[Episode],
    steps: int,
    rng: np.random.Generator,
) -> Predictions:
    sim = BatchSimulator(world, len(episodes))
    sim.new_episode(
        [e.scan for e in episodes],
        [e.start for e in episodes],
        [e.heading for e in episodes],
        np.zeros(len(episodes)),
    )
    trajectories: list[list[Step]] = [
        [(e.start, float(h), float(v))]
        for e, h, v in zip(episodes, sim.heading, sim.elevation, strict=True)
    ]
    for _ in range(steps):
        count = table.count[sim.location]  # [B]
        active = count > 0
        choice = np.floor(rng.random(len(episodes)) * np.maximum(count, 1)).astype(np.int64)
        record = move_to_candidates(sim, table, choice, active)
        for t in range(record.acted.shape[0]):
            for agent in np.flatnonzero(record.acted[t]):
                trajectories[agent].append(
                    (
                        world.viewpoint_ids[record.location[t, agent]],
                        float(record.heading[t, agent]),
                        float(record.elevation[t, agent]),
                    )
                )
    return {e.instr_id: traj for e, traj in zip(episodes, trajectories, strict=True)}
