"""``clipvil protocol``: CLIP-TD's evaluation grid (training fraction x seed x distillation)
of ``train-qa`` runs, resumable, reported as a CSV, a Markdown table and a plot."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "protocol"
HELP = (
    "Run CLIP-TD's evaluation grid of train-qa runs (fraction x seed x distillation) on the "
    "val and the shifted val, resumably; writes a CSV, a Markdown table and a plot."
)


def configure(parser: argparse.ArgumentParser) -> None:
    from vqa_ve.protocol import DEFAULT_FRACTIONS, DEFAULT_MODES, DEFAULT_SEEDS, SHIFT_SPLITS

    def joined(values: tuple) -> str:
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)

    parser.add_argument(
        "--task", required=True, choices=tuple(SHIFT_SPLITS), help="the QA task of every run"
    )
    parser.add_argument("--data", type=Path, required=True, help="QA data root (as train-qa)")
    parser.add_argument(
        "--features",
        type=Path,
        nargs="+",
        required=True,
        metavar="F.h5",
        help="the student's image features, one file per image folder (as train-qa)",
    )
    parser.add_argument("--teacher", type=Path, help="teacher CLIP weights (naive, clip-td)")
    parser.add_argument("--teacher-model", help="the teacher's model name (as train-qa)")
    parser.add_argument(
        "--teacher-features",
        type=Path,
        nargs="+",
        metavar="T.h5",
        help="the teacher's grid features, one file per image folder (naive, clip-td)",
    )
    parser.add_argument(
        "--fractions",
        default=joined(DEFAULT_FRACTIONS),
        help="training fractions in (0, 1] (default: %(default)s)",
    )
    parser.add_argument(
        "--seeds",
        default=joined(DEFAULT_SEEDS),
        help="seeds of every fraction and method: the run's --seed and --fraction-seed "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--distill",
        default=",".join(DEFAULT_MODES),
        help="methods: none, naive, clip-td (default: %(default)s)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="grid folder (runs/, protocol.csv/.md/.png)"
    )
    parser.add_argument(
        "--config",
        metavar="FILE|NAME",
        help="train-qa recipe of every run (default: the shipped qa-TASK)",
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        metavar="KEY=VALUE",
        help="a train-qa setting for every run, e.g. iterations=200 or weighting=constant "
        "(repeatable; values read as JSON, else as text)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once, each a subprocess on one thread; 1 runs them in this process "
        "(default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def run(args: argparse.Namespace) -> int:
    from vqa_ve.protocol import Protocol, parse_list, parse_settings, run_grid

    protocol = Protocol(
        task=args.task,
        data=args.data,
        features=tuple(args.features),
        fractions=parse_list("--fractions", args.fractions, float),
        seeds=parse_list("--seeds", args.seeds, int),
        modes=parse_list("--distill", args.distill, str),
        teacher=args.teacher,
        teacher_model=args.teacher_model,
        teacher_features=tuple(args.teacher_features or ()),
        config=args.config,
        settings=parse_settings(args.settings or ()),
    )
    run_grid(protocol, args.out, jobs=args.jobs, progress=not args.no_progress)
    print((args.out / "protocol.md").read_text(encoding="utf-8"), end="")
    return 0
