"""clipvil protocol: a tiny CLIP-TD grid runs end to end, reruns nothing finished, resumes a
killed cell, states the relative gain as the paper does, and rejects bad grids in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from vln_agent.cli import EXIT_BAD_INPUT, collect_commands, main
from vln_agent.training.trainer import Trainer
from vqa_ve.protocol import CELL_DONE, CELL_LOG, Cell, run_level
from vqa_ve.protocol_report import CSV_COLUMNS, markdown, read_rows, relative_gain

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Four iterations of a one-layer model, evaluated twice on 16 questions.
TINY = ["iterations=4", "eval_every=2", "batch_size=8", "eval_limit=16", "log_every=2"]
TINY += ["hidden_size=32", "num_layers=1", "num_heads=2", "device=cpu"]
MODES = ("none", "naive", "clip-td")
ALL_MODES = ",".join(MODES)


@pytest.fixture(scope="module")
def world(distill_world):
    return distill_world


def argv(world, out: Path, fractions="0.5,1", seeds="0", distill=ALL_MODES, extra=()):
    qa, student, weights, teacher = world
    words = ["protocol", "--task", "snli-ve", "--data", qa, "--features", student]
    words += ["--teacher", weights, "--teacher-model", "clipvil-tiny", "--teacher-features"]
    words += [teacher, "--fractions", fractions, "--seeds", seeds, "--distill", distill]
    words += ["--out", out, "--no-progress", *(f"--set={s}" for s in TINY), *extra]
    return [str(word) for word in words]


@pytest.fixture(scope="module")
def grid(world, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished grid: fractions 0.5 and 1, seed 0, the three methods (in process)."""
    out = tmp_path_factory.mktemp("grid")
    assert main(argv(world, out)) == 0
    return out


def test_a_tiny_grid_writes_csv_markdown_and_plot(grid):
    rows = read_rows(grid / "protocol.csv")
    assert [tuple(row) for row in rows] == [CSV_COLUMNS] * 6
    assert [(r["fraction"], r["distill"]) for r in rows] == [
        (f, m) for f in (0.5, 1.0) for m in MODES
    ]
    for row in rows:
        assert row["task"] == "snli-ve" and row["seed"] == 0 and row["iterations"] == 4
        assert 0.0 <= row["val"] <= 100.0 and 0.0 <= row["shift"] <= 100.0
        run = grid / "runs" / row["distill"] / f"fraction{row['fraction']:g}" / "seed0"
        level = run_level(run, "snli-ve")
        assert (row["val"], row["shift"]) == (level.val, level.shift)
    table = (grid / "protocol.md").read_text()
    fractions = [line.split(" | ")[0] for line in table.splitlines() if line[2:3].isdigit()]
    assert fractions == ["| 0.5"] * 3 + ["| 1"] * 3
    assert (grid / "protocol.png").read_bytes().startswith(b"\x89PNG")
    # each method trained with its own distillation mode
    log = (grid / "runs" / "clip-td" / "fraction0.5" / "seed0" / "log.csv").read_text()
    assert "train/distill_loss" in log.splitlines()[0]
    log = (grid / "runs" / "none" / "fraction0.5" / "seed0" / "log.csv").read_text()
    assert "train/distill_loss" not in log.splitlines()[0]


def finished(run: Path) -> tuple[int, str]:
    """When a cell was marked finished, and what its runs printed."""
    return (run / CELL_DONE).stat().st_mtime_ns, (run / CELL_LOG).read_text()


def row_of(path: Path, distill: str, fraction: float) -> dict:
    """The row of one cell in a ``protocol.csv`` (seed 0)."""
    return next(r for r in read_rows(path) if (r["distill"], r["fraction"]) == (distill, fraction))


def test_rerunning_the_grid_reruns_no_finished_cell(world, grid, capsys):
    runs = sorted(grid.glob("runs/*/*/*"))
    before = {run: finished(run) for run in runs}
    csv_before = (grid / "protocol.csv").read_text()
    assert main(argv(world, grid)) == 0
    assert {run: finished(run) for run in runs} == before
    assert (grid / "protocol.csv").read_text() == csv_before
    # the grid in a folder keeps its settings: other ones are a one-line error
    assert main(argv(world, grid, extra=["--set", "learning_rate=0.01"])) == EXIT_BAD_INPUT
    assert "another recipe; use another --out" in capsys.readouterr().err


class Killed(Exception):
    """Stands for the kill of a run right after a checkpoint."""


def test_a_killed_cell_resumes_from_its_checkpoint(world, grid, tmp_path, monkeypatch):
    whole = Trainer.train

    def killed(self, progress=True, stop_at=None):
        whole(self, progress, stop_at=2)
        raise Killed

    one = {"fractions": "1", "distill": "clip-td"}
    monkeypatch.setattr(Trainer, "train", killed)
    with pytest.raises(Killed):
        main(argv(world, tmp_path, **one))
    run = Cell("clip-td", 1.0, 0).folder(tmp_path)
    assert (run / "latest.pt").exists() and not (run / CELL_DONE).exists()
    monkeypatch.setattr(Trainer, "train", whole)
    assert main(argv(world, tmp_path, **one)) == 0
    assert (run / CELL_DONE).read_text().count('"resumed": true') == 1
    commands = [line for line in (run / CELL_LOG).read_text().splitlines() if line[:2] == "$ "]
    assert len(commands) == 2 and commands[1] == commands[0] + " --resume"
    # resumption is exact: the cell ends where the uninterrupted one of the grid did
    (resumed,) = read_rows(tmp_path / "protocol.csv")
    uninterrupted = row_of(grid / "protocol.csv", "clip-td", 1.0)
    assert (resumed["val"], resumed["shift"]) == (uninterrupted["val"], uninterrupted["shift"])


def test_the_relative_gain_is_the_papers(tmp_path):
    rows = [
        ("none", 0, 40.0, 20.0), ("none", 1, 50.0, 20.0),
        ("clip-td", 0, 54.0, 25.0), ("clip-td", 1, 54.0, 25.0),
        ("naive", 0, 45.0, 18.0), ("naive", 1, 45.0, 18.0),
    ]  # fmt: skip
    path = tmp_path / "protocol.csv"
    lines = [",".join(CSV_COLUMNS)]
    lines += [f"vqa,{m},0.1,{s},{val},{shift},100,60.0" for m, s, val, shift in rows]
    path.write_text("\n".join(lines) + "\n")
    table = markdown(read_rows(path), "vqa").splitlines()
    assert "| 0.1 | none | 2 | 45.0 ± 7.1 |  | 20.0 ± 0.0 |  |" in table
    assert "| 0.1 | naive | 2 | 45.0 ± 0.0 | +0.0 % | 18.0 ± 0.0 | -10.0 % |" in table
    assert "| 0.1 | clip-td | 2 | 54.0 ± 0.0 | +20.0 % | 25.0 ± 0.0 | +25.0 % |" in table
    assert [line.split(" | ")[1] for line in table if line.startswith("| 0.1")] == [
        "none", "naive", "clip-td"
    ]  # fmt: skip
    assert relative_gain(30.0, 0.0) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"fractions": "0.5,1.5"}, "error: --fractions: 1.5 is outside (0, 1]"),
        ({"fractions": "0,1"}, "error: --fractions: 0 is outside (0, 1]"),
        ({"fractions": "half"}, "error: --fractions: expected comma-separated floats"),
        ({"distill": "none,kd"}, "error: --distill: 'kd', expected none, naive, clip-td"),
        ({"teacher": None}, "error: --distill: naive needs --teacher W.pt and --teacher-features"),
        ({"extra": ["--set", "fraction=0.5"]}, "error: --set: fraction is set by the grid"),
        ({"extra": ["--set", "iteratons=5"]}, "unknown QA training setting 'iteratons'"),
    ],
)
def test_bad_arguments_are_one_line_errors(world, tmp_path, capsys, change, message):
    words = argv(world, tmp_path / "out", **{k: v for k, v in change.items() if k != "teacher"})
    if "teacher" in change:
        at = words.index("--teacher")
        del words[at : at + 2]
    assert main(words) == EXIT_BAD_INPUT
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines
    assert not list((tmp_path / "out").glob("runs/*"))


def test_jobs_run_cells_as_subprocesses_with_the_same_result(world, grid, tmp_path):
    one = {"fractions": "1", "distill": "none", "extra": ["--jobs", "2"]}
    assert main(argv(world, tmp_path, **one)) == 0
    (row,) = read_rows(tmp_path / "protocol.csv")
    log = (Cell("none", 1.0, 0).folder(tmp_path) / CELL_LOG).read_text()
    assert log.startswith("$ clipvil train-qa ") and '"dev/accuracy"' in log  # its result
    in_process = row_of(grid / "protocol.csv", "none", 1.0)
    assert (row["val"], row["shift"]) == (in_process["val"], in_process["shift"])


def test_protocol_is_listed_under_question_answering():
    groups = {command.name: command.group for command in collect_commands()}
    assert groups["protocol"] == "question answering"
