"""``clipvil zeroshot``: zero-shot room-type and object accuracy of an encoder checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "zeroshot"
HELP = (
    "Zero-shot room-type and object-category accuracy of a CLIP checkpoint on held-out "
    "synthetic houses (and a supervised checkpoint's linear heads)."
)

#: The model of ``clipvil pretrain-clip``'s default recipe.
DEFAULT_MODEL = "clipvil-small"
#: Houses no pretraining saw.
DEFAULT_SPLIT = "val_unseen"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="synthetic world")
    parser.add_argument("--checkpoint", type=Path, required=True, help="encoder weights")
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"open_clip or clipvil model name (default: {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--split", default=DEFAULT_SPLIT, help=f"houses to score (default: {DEFAULT_SPLIT})"
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--cache",
        type=Path,
        help="rendered-view cache folder (default: view_cache/ beside the checkpoint)",
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from envs.fileio import write_json
    from vln_agent.pretrain.zeroshot import evaluate_checkpoint, summary_lines

    torch.set_num_threads(args.threads)
    cache = args.cache or args.checkpoint.parent / "view_cache"
    results = evaluate_checkpoint(
        args.data, args.checkpoint, args.model, args.split, cache, progress=not args.no_progress
    )
    print("\n".join(summary_lines(results)))
    if args.out is not None:
        write_json(args.out, results)
        print(f"wrote {args.out}")
    return 0
