"""Markdown table of follower training runs (``clipvil train-vln`` run directories).

For each run: the evaluation with the best val_unseen SPL (the one ``best.pt`` holds) and
the last one, with SR/SPL on val_seen and val_unseen, the iteration and the wall time from
the run's ``log.csv``. This is how the feature comparison in README.md and BENCHMARKS.md
was made::

    .venv/bin/python benchmarks/report_runs.py clip=runs/clip supervised=runs/sup random=runs/rand

A training made in stages (``train-vln --resume-from`` into a new run directory) is given as
``NAME=STAGE1_DIR,STAGE2_DIR``: its evaluations are read in that order, and the wall time
adds up the stages. A process that was resumed (``--resume``) restarts its clock; the time
keeps adding up across the restart.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

SPLITS = ("val_seen", "val_unseen")
SELECT = "val_unseen/spl"


def evaluations(*run_dirs: Path) -> list[dict[str, float]]:
    """The rows of the runs' ``log.csv`` that hold evaluation metrics, in order, with the
    wall time so far (summed over the stages and over restarts of the clock).

    A later stage starts from an earlier stage's checkpoint, so the earlier stage's
    evaluations from the later stage's first one on belong to a discarded branch.
    """
    rows: list[dict[str, float]] = []
    offset = 0.0
    for run_dir in run_dirs:
        if not (run_dir / "log.csv").is_file():
            raise SystemExit(f"{run_dir}: no log.csv (not a train-vln run directory)")
        stage, clock = [], 0.0
        with open(run_dir / "log.csv", newline="") as f:
            for row in csv.DictReader(f):
                if row.get("train/seconds"):
                    seconds = float(row["train/seconds"])
                    if seconds < clock:  # the process was restarted
                        offset += clock
                    clock = seconds
                if row.get(SELECT):
                    values = {k: float(v) for k, v in row.items() if v}
                    values["seconds"] = offset + clock
                    stage.append(values)
        offset += clock
        if stage:
            rows = [r for r in rows if r["iteration"] < stage[0]["iteration"]] + stage
    return rows


def table(runs: dict[str, list[Path]], until: int | None = None) -> str:
    """Best and last evaluation of each run, only up to iteration ``until`` when given."""
    header = "| features | eval at | iteration | " + " | ".join(f"{s} SR | {s} SPL" for s in SPLITS)
    lines = [header + " | train time |", "|---" * (4 + 2 * len(SPLITS)) + "|"]
    for name, run_dirs in runs.items():
        evals = [e for e in evaluations(*run_dirs) if until is None or e["iteration"] <= until]
        if not evals:
            lines.append(f"| {name} | (no evaluation yet) |" + " |" * (2 + 2 * len(SPLITS)))
            continue
        best = max(evals, key=lambda e: e[SELECT])
        for label, e in (("best val_unseen SPL", best), ("last", evals[-1])):
            metrics = " | ".join(
                f"{100 * e[f'{s}/sr']:.1f} | {100 * e[f'{s}/spl']:.1f}" for s in SPLITS
            )
            lines.append(
                f"| {name} | {label} | {int(e['iteration'])} | {metrics} | "
                f"{e['seconds'] / 60:.0f} min |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR or NAME=STAGE1_DIR,STAGE2_DIR")
    parser.add_argument(
        "--until", type=int, help="ignore evaluations after this iteration (same budget)"
    )
    args = parser.parse_args()
    runs = {}
    for item in args.runs:
        name, _, path = item.partition("=")
        runs[name] = [Path(part) for part in path.split(",")]
    print(table(runs, args.until))


if __name__ == "__main__":
    main()
