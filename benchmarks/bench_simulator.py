"""Steps per second of the batch simulator core and of the ``import MatterSim`` drop-in.

Batch of 64 agents, discretized R2R camera (640 x 480, vertical field of view 60 degrees),
starting at the val_unseen episodes' start viewpoints and taking uniformly random valid
actions (random navigable index, random turn left/none/right and tilt down/none/up):

(a) the batch core, :meth:`envs.simulator.BatchSimulator.make_action` on arrays;
(b) the drop-in used the way R2R code uses MatterSim: ``makeAction`` with lists, then
    ``getState`` and, for every agent, ``location.viewpointId``, ``viewIndex`` and
    ``navigableLocations`` (whose length picks the next random valid action). Its navigable
    lists are cached per (viewpoint, view) for the process, so it is timed twice: "warm"
    keeps the cache of the earlier runs, "cold" starts each run with the graphs freshly read;
(c) EnvDrop-style candidate moves, :func:`envs.nav.candidates.move_to_candidates` (what the
    Gymnasium env does per step): each move is a few turns plus one step.

Each case is warmed up once, then timed ``--repeats`` times; the table shows the median
(and the range). The MatterSim figure is a reference measured elsewhere, not by this script.

    .venv/bin/python benchmarks/bench_simulator.py [--repeats 5] [--steps 500] [--data DIR]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import envs.mattersim.compat as MatterSim
from envs.constants import R2R_IMAGE_HEIGHT, R2R_IMAGE_WIDTH, R2R_VFOV
from envs.episodes import load_episodes
from envs.graph import CONNECTIVITY_DIR
from envs.nav.candidates import CandidateTable, build_candidate_table, move_to_candidates
from envs.simulator import BatchSimulator, SimWorld

BATCH = 64
SPLIT = "val_unseen"
#: The real MatterSim (C++, rendering off), batch 64, random valid actions: steps per second.
#: A reference measured elsewhere on this machine type; this script does not measure it.
MATTERSIM_REFERENCE_STEPS_PER_S = 92_000
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "r2r_real"


def starts(data: Path, seed: int) -> tuple[list[str], list[str], list[float]]:
    """Scans, start viewpoints and headings of ``BATCH`` random val_unseen episodes."""
    episodes = random.Random(seed).sample(load_episodes(data, SPLIT), BATCH)
    return [e.scan for e in episodes], [e.start for e in episodes], [e.heading for e in episodes]


def core_steps(world: SimWorld, data: Path, steps: int, seed: int) -> float:
    """Seconds for ``steps`` batched ``make_action`` calls with random valid actions."""
    rng = np.random.default_rng(seed)
    sim = BatchSimulator(world, BATCH)
    scans, viewpoints, headings = starts(data, seed)
    sim.new_episode(scans, viewpoints, headings, np.zeros(BATCH))
    turns = rng.integers(-1, 2, (steps, 2, BATCH)).astype(np.float64)  # [T, 2, B]
    draws = rng.random((steps, BATCH))  # [T, B]
    begin = time.perf_counter()
    for t in range(steps):
        index = (draws[t] * sim.navigable_count).astype(np.int64)  # [B] a valid index
        sim.make_action(index, turns[t, 0], turns[t, 1])
    return time.perf_counter() - begin


def compat_steps(nav_graph_dir: Path, data: Path, steps: int, seed: int, cold: bool) -> float:
    """Seconds for ``steps`` rounds of makeAction + getState + reading every agent's state."""
    if cold:
        MatterSim.clear_graph_cache()
    rnd = random.Random(seed)
    sim = MatterSim.Simulator()
    sim.setNavGraphPath(str(nav_graph_dir))
    sim.setRenderingEnabled(False)
    sim.setDiscretizedViewingAngles(True)
    sim.setCameraResolution(R2R_IMAGE_WIDTH, R2R_IMAGE_HEIGHT)
    sim.setCameraVFOV(R2R_VFOV)
    sim.setBatchSize(BATCH)
    sim.initialize()
    scans, viewpoints, headings = starts(data, seed)
    sim.newEpisode(scans, viewpoints, headings, [0.0] * BATCH)
    turns = [[rnd.choice((-1.0, 0.0, 1.0)) for _ in range(BATCH)] for _ in range(2 * steps)]
    begin = time.perf_counter()
    for t in range(steps):
        indices = []
        for state in sim.getState():
            _ = state.location.viewpointId, state.viewIndex
            indices.append(int(rnd.random() * len(state.navigableLocations)))
        sim.makeAction(indices, turns[2 * t], turns[2 * t + 1])
    return time.perf_counter() - begin


def candidate_moves(
    world: SimWorld, table: CandidateTable, data: Path, steps: int, seed: int
) -> float:
    """Seconds for ``steps`` batched moves to random candidates."""
    rng = np.random.default_rng(seed)
    sim = BatchSimulator(world, BATCH)
    scans, viewpoints, headings = starts(data, seed)
    sim.new_episode(scans, viewpoints, headings, np.zeros(BATCH))
    active = np.ones(BATCH, dtype=bool)
    draws = rng.random((steps, BATCH))  # [T, B]
    begin = time.perf_counter()
    for t in range(steps):
        choice = (draws[t] * table.count[sim.location]).astype(np.int64)  # [B]
        move_to_candidates(sim, table, choice, active)
    return time.perf_counter() - begin


def median_rate(run: Callable[[int], float], count: int, repeats: int) -> tuple[float, ...]:
    """Median, lowest and highest ``count / seconds`` over ``repeats`` runs after a warm-up."""
    run(0)
    rates = [count / run(seed) for seed in range(1, repeats + 1)]
    return statistics.median(rates), min(rates), max(rates)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (>= 1)")
    parser.add_argument("--steps", type=int, default=500, help="batched steps per run")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="R2R data root")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.steps < 1:
        parser.error("--repeats and --steps must be at least 1")
    nav_graph_dir = args.data / CONNECTIVITY_DIR
    world = MatterSim.nav_graph_world(nav_graph_dir)  # the drop-in's world: all scans
    _ = world.navigable_table  # built once here, not inside a timed run
    table = build_candidate_table(world)
    cases: list[tuple[str, str, Callable[[int], float]]] = [
        (
            "(a) batch core: make_action on arrays",
            "steps",
            lambda seed: core_steps(world, args.data, args.steps, seed),
        ),
        (
            "(b) drop-in, warm: makeAction + getState + reads",
            "steps",
            lambda seed: compat_steps(nav_graph_dir, args.data, args.steps, seed, cold=False),
        ),
        (
            "(b) drop-in, cold: makeAction + getState + reads",
            "steps",
            lambda seed: compat_steps(nav_graph_dir, args.data, args.steps, seed, cold=True),
        ),
        (
            "(c) candidate moves: move_to_candidates",
            "moves",
            lambda seed: candidate_moves(world, table, args.data, args.steps, seed),
        ),
    ]
    count = args.steps * BATCH  # agent steps (or moves) per run
    rows = [(case, unit, *median_rate(run, count, args.repeats)) for case, unit, run in cases]
    print(
        f"batch {BATCH}, discretized, {R2R_IMAGE_WIDTH}x{R2R_IMAGE_HEIGHT}, vfov 60 deg, "
        f"{SPLIT} starts, random valid actions; median of {args.repeats} x {args.steps} steps"
    )
    print(f"{'case':<50}{'unit':>6}{'per second':>13}{'range':>23}{'vs MatterSim':>14}")
    for case, unit, median, low, high in rows:
        spread = f"{low:,.0f}-{high:,.0f}"
        ratio = f"{median / MATTERSIM_REFERENCE_STEPS_PER_S:.2f}x" if unit == "steps" else "-"
        print(f"{case:<50}{unit:>6}{median:>13,.0f}{spread:>23}{ratio:>14}")
    print(
        f"MatterSim reference: {MATTERSIM_REFERENCE_STEPS_PER_S:,} steps/s at batch {BATCH} "
        "(C++, rendering off; measured elsewhere, not by this script)"
    )


if __name__ == "__main__":
    main()
