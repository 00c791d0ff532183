"""benchmarks/report_runs.py: evaluations of staged and resumed trainings, read from log.csv."""

import csv
from pathlib import Path

import pytest

FIELDS = [
    "iteration",
    "train/seconds",
    "val_seen/sr",
    "val_seen/spl",
    "val_unseen/sr",
    "val_unseen/spl",
]


@pytest.fixture(scope="module")
def report(load_benchmark):
    return load_benchmark("report_runs")


def write_log(run_dir: Path, rows: list[tuple[int, float, float | None]]) -> Path:
    """rows: (iteration, seconds, val_unseen SPL or None for a training-only row)."""
    run_dir.mkdir(parents=True)
    with open(run_dir / "log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        for iteration, seconds, spl in rows:
            row = {"iteration": iteration, "train/seconds": seconds}
            if spl is not None:
                row |= {
                    "val_seen/sr": 0.5,
                    "val_seen/spl": 0.4,
                    "val_unseen/sr": spl,
                    "val_unseen/spl": spl,
                }
            writer.writerow(row)
    return run_dir


def test_a_later_stage_replaces_the_discarded_branch_and_times_add_up(report, tmp_path):
    # stage 1 evaluates at 100, 200, 300; its best (200) is where stage 2 starts
    first = write_log(tmp_path / "s1", [(100, 60.0, 0.2), (200, 120.0, 0.4), (300, 180.0, 0.3)])
    # stage 2 resumes from 200; its clock restarts once (a --resume) after iteration 250
    second = write_log(
        tmp_path / "s2", [(250, 50.0, 0.45), (260, 70.0, None), (260, 10.0, None), (300, 40.0, 0.5)]
    )
    evals = report.evaluations(first, second)
    assert [e["iteration"] for e in evals] == [100, 200, 250, 300]
    assert [e["val_unseen/spl"] for e in evals] == [0.2, 0.4, 0.45, 0.5]
    # stage 1's whole clock (180 s), then stage 2: 50 s, then 70 s + 40 s after the restart
    assert [e["seconds"] for e in evals] == [60.0, 120.0, 230.0, 290.0]


def test_table_keeps_the_budget_and_picks_the_best(report, tmp_path):
    run = write_log(tmp_path / "run", [(100, 60.0, 0.2), (200, 120.0, 0.4), (300, 180.0, 0.6)])
    lines = report.table({"clip": [run]}, until=200).splitlines()
    assert lines[2].startswith("| clip | best val_unseen SPL | 200 |")
    assert lines[3].startswith("| clip | last | 200 |")


def test_a_folder_without_a_log_is_a_one_line_error(report, tmp_path):
    with pytest.raises(SystemExit, match="no log.csv"):
        report.evaluations(tmp_path)
