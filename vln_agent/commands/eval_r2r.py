"""``clipvil eval-r2r``: score an R2R submission file with the official metrics.

Example::

    clipvil eval-r2r --data DIR --split val_unseen --predictions submit.json --out scores.json

Prints a table of TL, NE, SR, OSR, SPL, nDTW, SDTW and CLS. Output files are written
only when the whole submission is valid (one trajectory per instruction of the split,
each starting at the episode's start and moving along graph edges).
"""

from __future__ import annotations

import argparse

NAME = "eval-r2r"
HELP = "Score R2R predictions (official submission format) with TL/NE/SR/OSR/SPL/nDTW/SDTW/CLS."


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        required=True,
        metavar="DIR",
        help="data root with connectivity/ and R2R_{split}.json",
    )
    parser.add_argument(
        "--split",
        required=True,
        metavar="NAME",
        help="split to score against (train, val_seen, val_unseen) or a path to an R2R .json",
    )
    parser.add_argument(
        "--predictions",
        required=True,
        metavar="FILE",
        help='[{"instr_id": ..., "trajectory": [[viewpoint, heading, elevation], ...]}, ...]',
    )
    parser.add_argument("--out", metavar="FILE", help="write the summary metrics as JSON")
    parser.add_argument(
        "--per-instruction",
        metavar="FILE",
        help="write the metrics of every instruction as JSON",
    )


def run(args: argparse.Namespace) -> int:
    from envs.evaluate import evaluate_file, format_table

    summary = evaluate_file(
        args.data,
        args.split,
        args.predictions,
        out=args.out,
        per_instruction=args.per_instruction,
    )
    print(format_table(summary))
    return 0
