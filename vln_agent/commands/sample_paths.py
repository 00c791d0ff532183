"""``clipvil sample-paths``: augmentation paths from the training houses.

Without ``--instructions`` every path carries one empty instruction, for a speaker to
describe (back-translation, ``train-vln --aug-paths FILE --speaker CKPT``). In a synthetic
world (``DIR/scenes/``) ``--instructions N`` writes N instructions per path from the world's
own annotator instead: more annotated training data, used by ``train-vln --aug-paths FILE``
alone. Paths of the evaluation splits (start and goal, either direction) are never sampled.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "sample-paths"
HELP = "Sample R2R-like shortest paths in the training houses as augmentation data (R2R JSON)."

#: path_ids of augmentation paths start here, far from R2R's own ids.
AUG_PATH_ID_START = 1_000_000
#: Paths sampled per house unless ``--per-scan`` says otherwise.
DEFAULT_PER_SCAN = 50


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="data root")
    parser.add_argument("--split", default="train", help="whose houses to use (default: train)")
    parser.add_argument(
        "--per-scan",
        type=int,
        default=DEFAULT_PER_SCAN,
        help=f"paths per house, at most (default: {DEFAULT_PER_SCAN})",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the sampling and the instructions (default: 0)"
    )
    parser.add_argument(
        "--instructions",
        type=int,
        default=0,
        help="synthetic worlds: write N generated instructions per path (default 0: none)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output R2R JSON file")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from envs.episodes import load_episodes
    from envs.errors import DataError
    from envs.fileio import read_json, write_json
    from envs.graph import NavGraphs
    from envs.synthetic.language import instructions_for_path
    from envs.synthetic.paths import path_candidates, sample_paths

    if args.per_scan <= 0 or args.instructions < 0:
        raise DataError(args.out, "--per-scan must be positive and --instructions >= 0")
    graphs = NavGraphs(args.data)
    scans = sorted({e.scan for e in load_episodes(args.data, args.split)})
    held_out = _evaluation_pairs(args.data)
    scene_files = {scan: Path(args.data) / "scenes" / f"{scan}.json" for scan in scans}
    if args.instructions:
        for scene_file in scene_files.values():
            if not scene_file.is_file():
                raise DataError(scene_file, "missing: --instructions needs a synthetic world")
    rng = np.random.default_rng(args.seed)
    entries = []
    for scan in tqdm(scans, desc="sample-paths", unit="house", disable=args.no_progress):
        graph = graphs[scan]
        ids = graph.viewpoint_ids
        pairs = [
            (a, b) for a, b in path_candidates(graph) if (scan, ids[a], ids[b]) not in held_out
        ]
        scene = read_json(scene_files[scan]) if args.instructions else None
        for sampled in sample_paths(rng, graph, pairs, min(args.per_scan, len(pairs))):
            texts = [""]
            if scene is not None:
                texts = instructions_for_path(
                    scene, list(sampled.path), sampled.heading, rng, count=args.instructions
                )
            entries.append(
                {
                    "distance": sampled.distance,
                    "scan": scan,
                    "path_id": AUG_PATH_ID_START + len(entries),
                    "path": list(sampled.path),
                    "heading": sampled.heading,
                    "instructions": texts,
                }
            )
    write_json(args.out, entries, indent=None)
    print(f"wrote {len(entries)} paths from {len(scans)} houses to {args.out}")
    return 0


#: Splits whose paths augmentation data must not contain.
EVALUATION_SPLITS = ("val_seen", "val_unseen", "test")


def _evaluation_pairs(data_dir: Path) -> set[tuple[str, str, str]]:
    """(scan, a, b) for the ends of every evaluation path present, in both directions."""
    from envs.episodes import load_episodes

    pairs = set()
    for split in EVALUATION_SPLITS:
        if not (Path(data_dir) / f"R2R_{split}.json").is_file():
            continue
        for episode in load_episodes(data_dir, split):
            if len(episode.path) < 2:  # test split: start only
                continue
            pairs.add((episode.scan, episode.path[0], episode.path[-1]))
            pairs.add((episode.scan, episode.path[-1], episode.path[0]))
    return pairs
