"""``clipvil demo``: the main job on the embedded default, with a printed results table.

Until the navigation agent lands, the demo scores the two no-learning baselines — the
shortest-path oracle and a random walk in the simulator — on the R2R validation splits.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

NAME = "demo"
HELP = "Evaluate the baseline agents on the R2R validation splits and print the metrics."

DEFAULT_SPLITS = ("val_seen", "val_unseen")


def default_real_data() -> Path:
    """The real R2R data beside a checkout of this repository (``../shared/r2r_real``)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "r2r_real"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="data root with connectivity/ and R2R_{split}.json (default: ../shared/r2r_real)",
    )
    parser.add_argument("--splits", nargs="+", default=list(DEFAULT_SPLITS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the random walk")


def run(args: argparse.Namespace) -> int:
    from envs.episodes import load_episodes
    from envs.evaluate import evaluate, shortest_path_predictions
    from envs.graph import NavGraphs
    from vln_agent.baselines import random_walk_predictions

    data = args.data or default_real_data()
    graphs = NavGraphs(data)
    rows: list[tuple[str, str, dict[str, float], float]] = []
    for split in args.splits:
        episodes = load_episodes(data, split)
        agents = {
            "shortest-path oracle": lambda eps=episodes: shortest_path_predictions(graphs, eps),
            "random walk": lambda eps=episodes: random_walk_predictions(
                graphs, eps, seed=args.seed
            ),
        }
        for agent, predict in agents.items():
            start = time.perf_counter()
            predictions = predict()
            summary = evaluate(graphs, episodes, predictions, source=f"{agent} on {split}").summary
            rows.append((split, agent, summary, time.perf_counter() - start))
    print(f"data: {data}")
    print(format_results(rows))
    return 0


def format_results(rows: list[tuple[str, str, dict[str, float], float]]) -> str:
    """One line per (split, agent): TL/NE in metres, rates in percent."""
    header = (
        f"{'split':<11} {'agent':<21} {'instr':>6} {'TL':>6} {'NE':>6} {'SR':>6} {'OSR':>6} "
        f"{'SPL':>6} {'nDTW':>6} {'SDTW':>6} {'CLS':>6} {'sec':>5}"
    )
    lines = [header, "-" * len(header)]
    for split, agent, s, seconds in rows:
        rates = " ".join(f"{100 * s[k]:6.1f}" for k in ("sr", "osr", "spl", "ndtw", "sdtw", "cls"))
        lines.append(
            f"{split:<11} {agent:<21} {int(s['num_instructions']):>6} {s['tl']:6.2f} "
            f"{s['ne']:6.2f} {rates} {seconds:5.1f}"
        )
    return "\n".join(lines)
