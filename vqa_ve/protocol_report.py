"""The report of a protocol grid (:mod:`vqa_ve.protocol`): ``protocol.csv`` (one row per
run), ``protocol.md`` (mean ± std over seeds per fraction and method, and the relative gain
over ``none``) and ``protocol.png`` (accuracy vs training fraction, both vals).

The relative gain is stated as CLIP-TD does (arXiv 2201.05729: "up to 51.9 %"):
``(acc - acc_none) / acc_none`` in %, of the means over seeds. The std is the sample
standard deviation over seeds (0 for one seed).
"""

from __future__ import annotations

import csv
import io
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envs.fileio import atomic_write, read_text
from vqa_ve.protocol import LAST_EVALUATIONS, METRICS

#: Columns of ``protocol.csv``.
CSV_COLUMNS = ("task", "distill", "fraction", "seed", "val", "shift", "iterations", "seconds")
#: Types of those columns when read back.
CSV_TYPES = {"fraction": float, "seed": int, "val": float, "shift": float}
CSV_TYPES |= {"iterations": int, "seconds": float}
#: The two vals: column, heading.
VALS = (("val", "val (unseen houses)"), ("shift", "shifted val"))
#: The method the gains are relative to, and the order methods are listed in.
BASELINE = "none"
METHOD_ORDER = ("none", "naive", "clip-td")
#: Size of the plot in inches.
FIGURE_SIZE = (10.0, 4.0)


def write_report(rows: Sequence[dict[str, Any]], out: Path, task: str) -> None:
    """``OUT/protocol.csv``, ``OUT/protocol.md`` and ``OUT/protocol.png``, atomically."""
    with atomic_write(out / "protocol.csv") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with atomic_write(out / "protocol.md") as f:
        f.write(markdown(rows, task))
    with atomic_write(out / "protocol.png", "wb") as f:
        f.write(plot(rows, task))


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a ``protocol.csv``, typed."""
    table = csv.DictReader(io.StringIO(read_text(path, "a protocol CSV")))
    return [{k: CSV_TYPES.get(k, str)(v) for k, v in row.items()} for row in table]


def methods(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The methods of ``rows``: :data:`METHOD_ORDER` first, then others by name."""
    present = {row["distill"] for row in rows}
    rank = {name: i for i, name in enumerate(METHOD_ORDER)}
    return sorted(present, key=lambda m: (rank.get(m, len(rank)), m))


def summarize(rows: Sequence[dict[str, Any]]) -> dict[tuple[float, str], dict[str, Any]]:
    """``{(fraction, method): {"n", "val": (mean, std), "shift": (mean, std)}}``."""
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((float(row["fraction"]), row["distill"]), []).append(row)
    summary = {}
    for key, group in groups.items():
        summary[key] = {"n": len(group)}
        for column, _ in VALS:
            values = [float(row[column]) for row in group]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            summary[key][column] = (statistics.fmean(values), std)
    return summary


def relative_gain(accuracy: float, baseline: float) -> float | None:
    """CLIP-TD's relative gain in %: ``(acc - acc_none) / acc_none`` (None at a 0 baseline)."""
    return 100.0 * (accuracy - baseline) / baseline if baseline else None


def markdown(rows: Sequence[dict[str, Any]], task: str) -> str:
    """The table: a row per fraction and method, mean ± std and the gain on each val."""
    summary = summarize(rows)
    seeds = sorted({int(row["seed"]) for row in rows})
    lines = [
        f"# CLIP-TD protocol: {task}",
        "",
        f"{METRICS[task]} in % (val: unseen houses, shifted val: the same views under other "
        f"lighting); per run the median of its last {LAST_EVALUATIONS} evaluations; mean ± "
        f"std over seeds "
        f"{','.join(map(str, seeds))}; gain = (acc − acc_{BASELINE}) / acc_{BASELINE}, "
        f"the relative gain over plain fine-tuning as CLIP-TD states it.",
        "",
        "| fraction | method | seeds | val | gain (val) | shifted val | gain (shift) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for fraction in sorted({key[0] for key in summary}):
        base = summary.get((fraction, BASELINE))
        for method in methods(rows):
            cell = summary.get((fraction, method))
            if cell is None:
                continue
            parts = [f"{fraction:g}", method, str(cell["n"])]
            for column, _ in VALS:
                mean, std = cell[column]
                gain = relative_gain(mean, base[column][0]) if base else None
                shown = "" if method == BASELINE or gain is None else f"{gain:+.1f} %"
                parts += [f"{mean:.1f} ± {std:.1f}", shown]
            lines.append("| " + " | ".join(parts) + " |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[dict[str, Any]], task: str) -> bytes:
    """The PNG: accuracy vs training fraction (log x), a line per method with a ±std band,
    one panel per val."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display

    summary = summarize(rows)
    figure = Figure(figsize=FIGURE_SIZE, layout="constrained")
    axes = figure.subplots(1, len(VALS), sharey=True)
    for ax, (column, title) in zip(axes, VALS, strict=True):
        for method in methods(rows):
            points = sorted((f, s[column]) for (f, m), s in summary.items() if m == method)
            x = [f for f, _ in points]
            mean = [value[0] for _, value in points]
            std = [value[1] for _, value in points]
            (line,) = ax.plot(x, mean, marker="o", label=method)
            low = [m - s for m, s in zip(mean, std, strict=True)]
            high = [m + s for m, s in zip(mean, std, strict=True)]
            ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2)
        ax.set_xscale("log")
        fractions = sorted({fraction for fraction, _ in summary})
        ax.set_xticks(fractions, [f"{fraction:g}" for fraction in fractions])
        ax.minorticks_off()
        ax.set_xlabel("training fraction")
        ax.set_title(f"{task}: {title}")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"{METRICS[task]} (%)")
    axes[0].legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
