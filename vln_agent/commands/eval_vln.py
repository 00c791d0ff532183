"""``clipvil eval-vln``: run a trained follower on a split, write the submission and metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "eval-vln"
HELP = "Evaluate a follower checkpoint: R2R submission JSON, official metrics, episode maps."

#: How many episode maps to draw (the first instructions of the split).
DEFAULT_MAPS = 4


def configure(parser: argparse.ArgumentParser) -> None:
    from vln_agent.provenance import add_feature_flags

    parser.add_argument("--checkpoint", type=Path, required=True, help="follower checkpoint")
    parser.add_argument(
        "--data", type=Path, required=True, help="data root (connectivity/, R2R_*.json)"
    )
    parser.add_argument(
        "--features",
        type=Path,
        required=True,
        help="panorama features (.h5 / .tsv) of the width and encoder the follower was "
        "trained on (checked against the checkpoint's record)",
    )
    parser.add_argument("--split", required=True, help="split name, e.g. val_unseen or test")
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--batch-size", type=int, default=64, help="agents per batch (default: 64)")
    parser.add_argument(
        "--maps",
        type=int,
        default=DEFAULT_MAPS,
        help=f"episode maps to draw (default: {DEFAULT_MAPS})",
    )
    add_feature_flags(parser, "the checkpoint")


def run(args: argparse.Namespace) -> int:
    from vln_agent.evaluate_run import evaluate_checkpoint

    summary = evaluate_checkpoint(
        args.checkpoint,
        args.data,
        args.features,
        args.split,
        args.out,
        args.batch_size,
        args.maps,
        feature_columns=args.feature_columns,
        allow_other_features=args.allow_other_features,
    )
    if summary is not None:
        from envs.evaluate import format_table

        print(format_table(summary))
    return 0
