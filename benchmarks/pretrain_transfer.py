"""CLIP-ViL's second scenario on the embedded QA data: pretrained-then-fine-tuned vs
fine-tuned from CLIP features only vs the in-domain supervised encoder, per task and
training fraction, on the unseen-house val and the relit val.

Each arm is a ``clipvil protocol --distill none`` grid (fractions x seeds, the shipped
``qa-TASK`` recipe, the median of each run's last three evaluations), one folder per task:

- ``pretrained``: CLIP grid features, ``--set init=runs/pretrain/clip/best.pt`` (the
  ``pretrain-vl`` checkpoint on the same features);
- ``clip``: CLIP grid features, a fresh fusion model (issue 15's model);
- ``in-domain``: the in-domain supervised encoder's grid features, a fresh model (the
  ``none`` cells of the CLIP-TD protocol grids).

This script only reads the grids' ``protocol.csv`` files and writes one Markdown table and
one plot::

    .venv/bin/python benchmarks/pretrain_transfer.py \\
        --arm pretrained=runs/pretrain/finetune-pretrained/{task} \\
        --arm clip=runs/pretrain/finetune-clip/{task} \\
        --arm in-domain=runs/protocol/{task} \\
        --out runs/pretrain/transfer

The standard error a split of n items allows at accuracy p is sqrt(p (1 - p) / n).
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
from pathlib import Path

from envs.fileio import atomic_write
from vqa_ve.protocol import METRICS
from vqa_ve.protocol_report import read_rows

TASKS = ("vqa", "snli-ve", "vcr")
#: Items of each val split of the small world (for the standard error).
VAL_ITEMS = {"vqa": 659, "snli-ve": 225, "vcr": 202}
VALS = (("val", "val"), ("shift", "relit val"))


def arm_rows(pattern: str, task: str) -> list[dict]:
    """The ``none`` rows of one arm's grid for ``task`` (empty when not run)."""
    path = Path(pattern.format(task=task)) / "protocol.csv"
    if not path.is_file():
        return []
    return [row for row in read_rows(path) if row["distill"] == "none"]


def cell(rows: list[dict], fraction: float) -> dict | None:
    """Mean ± std over seeds of one fraction, and the median seconds per run."""
    group = [row for row in rows if math.isclose(float(row["fraction"]), fraction)]
    if not group:
        return None
    out = {"n": len(group), "seconds": statistics.median(float(r["seconds"]) for r in group)}
    for column, _ in VALS:
        values = [float(row[column]) for row in group]
        out[column] = (
            statistics.fmean(values),
            statistics.stdev(values) if len(values) > 1 else 0.0,
        )
    return out


def table(arms: dict[str, str]) -> str:
    lines = [
        "Accuracy in % (VQA accuracy, SNLI-VE accuracy, VCR Q->AR); per run the median of its "
        "last 3 evaluations; mean ± std over seeds; time = median wall time per fine-tuning run.",
        "",
    ]
    for task in TASKS:
        rows = {name: arm_rows(pattern, task) for name, pattern in arms.items()}
        fractions = sorted({float(r["fraction"]) for group in rows.values() for r in group})
        if not fractions:
            continue
        error = 100 * math.sqrt(0.25 / VAL_ITEMS[task])
        lines += [
            f"**{task}** ({METRICS[task]}; val {VAL_ITEMS[task]} items, standard error at 50 %: "
            f"±{error:.1f} points)",
            "",
            "| fraction | start | seeds | val | relit val | time / run |",
            "|---:|---|---:|---:|---:|---:|",
        ]
        for fraction in fractions:
            for name, group in rows.items():
                summary = cell(group, fraction)
                if summary is None:
                    continue
                shown = [f"{summary[c][0]:.1f} ± {summary[c][1]:.1f}" for c, _ in VALS]
                lines.append(
                    f"| {fraction:g} | {name} | {summary['n']} | {shown[0]} | {shown[1]} | "
                    f"{summary['seconds'] / 60:.1f} min |"
                )
        lines.append("")
    return "\n".join(lines)


def plot(arms: dict[str, str]) -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 6.5), layout="constrained")
    axes = figure.subplots(len(VALS), len(TASKS), sharex=True)
    for col, task in enumerate(TASKS):
        for row, (column, title) in enumerate(VALS):
            ax = axes[row][col]
            for index, (name, pattern) in enumerate(arms.items()):
                group = arm_rows(pattern, task)
                fractions = sorted({float(r["fraction"]) for r in group})
                points = [(f, cell(group, f)[column]) for f in fractions]
                if not points:
                    continue
                x = [f for f, _ in points]
                mean = [m for _, (m, _) in points]
                std = [s for _, (_, s) in points]
                color = f"C{index}"  # an arm keeps its colour in every panel
                ax.plot(x, mean, marker="o", label=name, color=color)
                ax.fill_between(
                    x,
                    [m - s for m, s in zip(mean, std, strict=True)],
                    [m + s for m, s in zip(mean, std, strict=True)],
                    color=color,
                    alpha=0.2,
                )
            ax.set_xscale("log")
            ax.set_title(f"{task}: {title}")
            ax.grid(True, alpha=0.3)
            if row == len(VALS) - 1:
                ax.set_xlabel("training fraction")
            if col == 0:
                ax.set_ylabel("accuracy (%)")
    axes[0][0].legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def curves(run: Path) -> bytes:
    """The pretraining run's validation curves (its ``log.csv``): MLM accuracy with and
    without the image, ITM accuracy, VQA accuracy."""
    import csv

    from matplotlib.figure import Figure

    with open(run / "log.csv", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row.get("val_captions/mlm_accuracy")]
    figure = Figure(figsize=(7, 4.5), layout="constrained")
    ax = figure.subplots()
    x = [float(row["iteration"]) for row in rows]
    for column, label in (
        ("val_captions/mlm_accuracy", "MLM (image + text)"),
        ("val_captions/mlm_accuracy_blind", "MLM, image zeroed"),
        ("val_captions/itm_accuracy", "image-text matching (chance 50)"),
        ("val2014/accuracy", "VQA val2014"),
    ):
        if rows and rows[0].get(column) not in (None, ""):
            ax.plot(x, [float(row[column]) for row in rows], marker="o", label=label)
    ax.set_xlabel("iteration")
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title("pretrain-vl on the small world (stage 2 = + VQA)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--arm",
        action="append",
        required=True,
        metavar="NAME=PATTERN",
        help="an arm's grid folder, {task} standing for the task",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder of table.md and plot.png")
    parser.add_argument(
        "--pretrain-run", type=Path, help="a pretrain-vl run folder: its curves to curves.png"
    )
    args = parser.parse_args()
    arms = dict(item.split("=", 1) for item in args.arm)
    args.out.mkdir(parents=True, exist_ok=True)
    text = table(arms)
    with atomic_write(args.out / "table.md") as f:
        f.write(text)
    with atomic_write(args.out / "plot.png", "wb") as f:
        f.write(plot(arms))
    if args.pretrain_run is not None:
        with atomic_write(args.out / "curves.png", "wb") as f:
            f.write(curves(args.pretrain_run))
    print(text)


if __name__ == "__main__":
    main()
