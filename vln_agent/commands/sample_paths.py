"""``clipvil sample-paths``: augmentation paths from the training houses (for back-translation)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "sample-paths"
HELP = "Sample R2R-like shortest paths in the training houses as augmentation data (R2R JSON)."

#: path_ids of augmentation paths start here, far from R2R's own ids.
AUG_PATH_ID_START = 1_000_000


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="data root")
    parser.add_argument("--split", default="train", help="whose houses to use (default: train)")
    parser.add_argument("--per-scan", type=int, default=50, help="paths per house (at most)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="output R2R JSON file")


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from envs.episodes import load_episodes
    from envs.fileio import write_json
    from envs.graph import NavGraphs
    from envs.synthetic.paths import path_candidates, sample_paths

    graphs = NavGraphs(args.data)
    scans = sorted({e.scan for e in load_episodes(args.data, args.split)})
    rng = np.random.default_rng(args.seed)
    entries = []
    for scan in scans:
        graph = graphs[scan]
        pairs = path_candidates(graph)
        for sampled in sample_paths(rng, graph, pairs, min(args.per_scan, len(pairs))):
            entries.append(
                {
                    "distance": sampled.distance,
                    "scan": scan,
                    "path_id": AUG_PATH_ID_START + len(entries),
                    "path": list(sampled.path),
                    "heading": sampled.heading,
                    "instructions": [""],
                }
            )
    write_json(args.out, entries, indent=None)
    print(f"wrote {len(entries)} paths from {len(scans)} houses to {args.out}")
    return 0
