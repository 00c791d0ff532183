"""The CLIP-TD evaluation protocol (``clipvil protocol``): a grid of ``train-qa`` runs.

CLIP-TD (arXiv 2201.05729, abstract) reports its gains in low-shot fine-tuning (a fraction
of the training split) and under domain shift, as the relative gain over plain fine-tuning,
``(acc - acc_none) / acc_none`` ("up to 51.9 %" on VCR). The grid here is training
fraction x seed x distillation mode on one task; each cell is one ``clipvil train-qa`` run
in ``OUT/runs/{distill}/fraction{F}/seed{S}/`` that evaluates the unseen-house val and the
shifted val (``--also-evaluate``: VQA ``valshift2014``, SNLI-VE ``dev_shift``, VCR
``val_shift``). A cell's seed is its ``--seed`` and its ``--fraction-seed``: each seed
draws its own training subset, and every method sees the same subset under one seed.

How a run is read (its level, not its best moment): the median of its last
:data:`LAST_EVALUATIONS` evaluations on each val, as ``benchmarks/qa_encoders.py`` does.

Resumable: ``cell.json`` marks a finished cell (never rerun); a cell with a ``latest.pt``
but no ``cell.json`` was killed and continues with ``--resume``. The grid's settings (task,
data, features, teacher and the recipe with ``--set`` applied) are kept in
``OUT/protocol.json``; rerunning into the same ``OUT`` with others is an error, adding
fractions, seeds or methods is not. An ablation (``--set token_scorer=student-attention``,
``--set weighting=constant``) is a grid of its own in another ``OUT``.

Cells run as subprocesses with ``OMP_NUM_THREADS=1`` (``jobs`` of them at once: two on two
cores), or in this process on one torch thread when ``jobs == 1`` (no interpreter and torch
start per cell; the same runs). The report (CSV, Markdown, plot) is
:mod:`vqa_ve.protocol_report`.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from envs.errors import DataError
from envs.fileio import make_output_dir, read_json, write_json

#: The shifted val evaluated beside the val of each task (the embedded world's names).
SHIFT_SPLITS = {"vqa": "valshift2014", "snli-ve": "dev_shift", "vcr": "val_shift"}
#: The val split of each task (``vqa_ve.datasets.EVAL_SPLITS``, without importing torch).
VAL_SPLITS = {"vqa": "val2014", "snli-ve": "dev", "vcr": "val"}
#: The metric a task is read by (the one that picks ``best.pt``).
METRICS = {"vqa": "accuracy", "snli-ve": "accuracy", "vcr": "q2ar"}
#: A run's level on a val: the median of its last this many evaluations.
LAST_EVALUATIONS = 3
#: Written into a cell's folder when its run finished.
CELL_DONE = "cell.json"
#: The output of a cell's run(s), appended per attempt.
CELL_LOG = "stdout.log"
#: The checkpoint a killed run resumes from.
LATEST = "latest.pt"
#: Training settings the grid sets per cell (not through ``--set`` or the recipe).
GRID_SETTINGS = (
    "task",
    "fraction",
    "fraction_seed",
    "seed",
    "distill_mode",
    "teacher",
    "teacher_model",
    "teacher_features",
    "also_evaluate",
)
#: The grid's settings a grid of ``none`` alone may leave unset.
TEACHER_KEYS = ("teacher", "teacher_model", "teacher_features")
#: The paper's low-shot fractions, seeds and methods.
DEFAULT_FRACTIONS = (0.01, 0.05, 0.1, 0.25, 1.0)
DEFAULT_SEEDS = (0, 1, 2)
DEFAULT_MODES = ("none", "naive", "clip-td")


# ------------------------------------------------------------------ one run
def run_cell(run: Path, argv: Sequence[str], in_process: bool = False) -> dict[str, Any] | None:
    """``clipvil train-qa ARGV --out RUN`` unless ``RUN/cell.json`` marks it finished; with
    ``--resume`` when a killed attempt left ``RUN/latest.pt``.

    Output goes to ``RUN/stdout.log``; a subprocess runs with ``OMP_NUM_THREADS=1``, an
    in-process run on one torch thread. Returns what it wrote to ``cell.json`` (wall
    ``seconds`` of this attempt, whether it ``resumed``), or None when already finished.

    Raises:
        DataError: naming ``RUN/stdout.log``, when train-qa fails.
    """
    done = run / CELL_DONE
    if done.exists():
        return None
    resumed = (run / LATEST).exists()
    command = ["train-qa", *argv, "--out", str(run), "--no-progress"]
    command += ["--resume"] if resumed else []
    make_output_dir(run)
    log_path = run / CELL_LOG
    start = time.perf_counter()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"$ clipvil {shlex.join(command)}\n")
        log.flush()
        status = _in_process(command, log) if in_process else _subprocess(command, log)
    if status != 0:
        lines = log_path.read_text(encoding="utf-8").strip().splitlines()
        raise DataError(log_path, f"train-qa exited with status {status}: {lines[-1]}")
    record = {"seconds": round(time.perf_counter() - start, 3), "resumed": resumed}
    write_json(done, record)
    return record


def _subprocess(command: list[str], log: TextIO) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "vln_agent.cli", *command]
    return subprocess.run(argv, env=env, stdout=log, stderr=subprocess.STDOUT).returncode


def _in_process(command: list[str], log: TextIO) -> int:
    import torch

    from vln_agent.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            return main(command)
    finally:
        torch.set_num_threads(threads)


def evaluations(run: Path, task: str) -> list[dict[str, float]]:
    """The evaluation rows of ``RUN/log.csv``: ``iteration``, ``val``, ``shift`` (the task's
    metric on its val and shifted val, in %)."""
    metric, path = METRICS[task], run / "log.csv"
    val, shift = f"{VAL_SPLITS[task]}/{metric}", f"{SHIFT_SPLITS[task]}/{metric}"
    try:
        with open(path, newline="", encoding="utf-8") as f:
            table = list(csv.DictReader(f))
    except OSError as err:
        raise DataError(path, f"cannot read the run's log ({err.strerror or err})") from None
    rows = [row for row in table if row.get(val)]
    if not rows or not rows[0].get(shift):
        raise DataError(path, f"no evaluations of {val} and {shift}")
    return [
        {"iteration": float(r["iteration"]), "val": float(r[val]), "shift": float(r[shift])}
        for r in rows
    ]


@dataclass(frozen=True)
class Level:
    """Where a run ended: the median of its last evaluations on each val, in %."""

    val: float
    shift: float
    #: The iteration of its last evaluation.
    iterations: int


def run_level(run: Path, task: str, last: int = LAST_EVALUATIONS) -> Level:
    """The level of a finished run, from its ``log.csv``."""
    rows = evaluations(run, task)[-last:]
    return Level(
        val=statistics.median(r["val"] for r in rows),
        shift=statistics.median(r["shift"] for r in rows),
        iterations=int(rows[-1]["iteration"]),
    )


# ------------------------------------------------------------------ the grid
@dataclass(frozen=True)
class Cell:
    """One run of the grid."""

    distill: str
    fraction: float
    seed: int

    def folder(self, out: Path) -> Path:
        return out / "runs" / self.distill / f"fraction{self.fraction:g}" / f"seed{self.seed}"

    def __str__(self) -> str:
        return f"{self.distill} fraction {self.fraction:g} seed {self.seed}"


@dataclass(frozen=True)
class Protocol:
    """The grid: fractions x seeds x distillation modes of one task, one recipe."""

    task: str
    data: Path
    #: The student's image feature files (one per image folder).
    features: tuple[Path, ...]
    fractions: tuple[float, ...] = DEFAULT_FRACTIONS
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    modes: tuple[str, ...] = DEFAULT_MODES
    #: The teacher CLIP's weights, model name and image feature files (naive, clip-td).
    teacher: Path | None = None
    teacher_model: str | None = None
    teacher_features: tuple[Path, ...] = ()
    #: The train-qa recipe (a file or a shipped name; default ``qa-TASK``).
    config: str | None = None
    #: More train-qa settings for every cell (``--set KEY=VALUE``), by field name.
    settings: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_grid(self)

    def cells(self) -> list[Cell]:
        """Every cell, fraction by fraction (the lowest first), method by method."""
        fractions = sorted(self.fractions)
        return [Cell(m, f, s) for f in fractions for m in self.modes for s in self.seeds]

    def recipe(self) -> dict[str, Any]:
        """The recipe with ``settings`` applied, flat, the grid's own settings left out;
        a typo or a wrong type is a one-line :class:`DataError`."""
        from vqa_ve.training.trainer import load_qa_train_config, qa_recipe_path

        path = qa_recipe_path(self.config or f"qa-{self.task}")
        data = read_json(path)
        if not isinstance(data, dict):
            raise DataError(path, "expected a JSON object of QA training settings")
        flat: dict[str, Any] = {}
        for key, value in data.items():  # a section's keys may stand at the top level
            if isinstance(value, dict):
                flat.update(value)
            else:
                flat[key] = value
        flat = {k: v for k, v in {**flat, **self.settings}.items() if k not in GRID_SETTINGS}
        load_qa_train_config(None, **flat)  # checks names and types
        return flat

    def identity(self) -> dict[str, Any]:
        """What must stay the same for the runs in one ``OUT`` to form one grid."""
        return {
            "task": self.task,
            "data": str(self.data.resolve()),
            "features": [str(p.resolve()) for p in self.features],
            "teacher": str(self.teacher.resolve()) if self.teacher else None,
            "teacher_model": self.teacher_model,
            "teacher_features": [str(p.resolve()) for p in self.teacher_features],
            "recipe": self.recipe(),
        }

    def cell_argv(self, cell: Cell, recipe: Path) -> list[str]:
        """``train-qa`` flags of ``cell`` (without ``--out``)."""
        argv = ["--task", self.task, "--data", str(self.data.resolve()), "--config", str(recipe)]
        argv += ["--features", *(str(p.resolve()) for p in self.features)]
        argv += ["--fraction", repr(cell.fraction), "--fraction-seed", str(cell.seed)]
        argv += ["--seed", str(cell.seed), "--also-evaluate", SHIFT_SPLITS[self.task]]
        argv += ["--distill", cell.distill]
        if cell.distill != "none":
            assert self.teacher is not None  # check_grid
            argv += ["--teacher", str(self.teacher.resolve())]
            argv += ["--teacher-features", *(str(p.resolve()) for p in self.teacher_features)]
            if self.teacher_model:
                argv += ["--teacher-model", self.teacher_model]
        return argv


def check_grid(protocol: Protocol) -> None:
    """One-line :class:`DataError` for a grid that cannot run."""
    from vqa_ve.distill.config import DISTILL_MODES

    if protocol.task not in METRICS:
        raise DataError("--task", f"{protocol.task!r}, expected one of {', '.join(METRICS)}")
    for name, values in (
        ("--fractions", protocol.fractions),
        ("--seeds", protocol.seeds),
        ("--distill", protocol.modes),
    ):
        if not values or len(set(values)) != len(values):
            raise DataError(name, f"expected distinct values, got {list(values)}")
    bad = [f for f in protocol.fractions if not 0.0 < f <= 1.0]
    if bad:
        raise DataError("--fractions", f"{bad[0]:g} is outside (0, 1]")
    unknown = [m for m in protocol.modes if m not in DISTILL_MODES]
    if unknown:
        raise DataError("--distill", f"{unknown[0]!r}, expected {', '.join(DISTILL_MODES)}")
    distilled = [m for m in protocol.modes if m != "none"]
    if distilled and (protocol.teacher is None or not protocol.teacher_features):
        raise DataError(
            "--distill", f"{distilled[0]} needs --teacher W.pt and --teacher-features F.h5"
        )
    teacher = [protocol.teacher, *protocol.teacher_features] if distilled else []
    for path in [protocol.data, *protocol.features, *teacher]:
        if path is not None and not path.exists():
            raise DataError(path, "not found")
    grid_set = [key for key in protocol.settings if key in GRID_SETTINGS]
    if grid_set:
        raise DataError("--set", f"{grid_set[0]} is set by the grid, not by --set")


def parse_list(flag: str, text: str, kind: type) -> tuple[Any, ...]:
    """``"0.01,0.1"`` as a tuple of ``kind`` (one-line :class:`DataError` naming ``flag``)."""
    words = [word.strip() for word in text.split(",") if word.strip()]
    try:
        return tuple(kind(word) for word in words)
    except ValueError:
        raise DataError(flag, f"expected comma-separated {kind.__name__}s, got {text!r}") from None


def parse_settings(pairs: Sequence[str]) -> dict[str, Any]:
    """``["iterations=50", "weighting=constant"]`` as settings (values read as JSON, else
    as strings; dashes in keys are underscores)."""
    settings: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DataError("--set", f"expected KEY=VALUE, got {pair!r}")
        try:
            settings[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            settings[key.strip().replace("-", "_")] = value
    return settings


def prepare(protocol: Protocol, out: Path) -> Path:
    """``OUT/protocol.json`` (checked against an earlier one) and ``OUT/recipe.json``, the
    recipe every cell reads; returns the recipe's path."""
    identity = protocol.identity()
    record = out / "protocol.json"
    if record.exists():
        earlier = read_json(record)
        # the teacher may be named later (a grid of ``none`` first) or left out (``none`` only)
        both = bool(earlier.get("teacher") and identity["teacher"])
        keys = [key for key in identity if both or key not in TEACHER_KEYS]
        changed = [key for key in keys if earlier.get(key) != identity[key]]
        if not identity["teacher"]:
            identity.update({key: earlier.get(key) for key in TEACHER_KEYS})
        if changed:
            raise DataError(
                record, f"the grid in this folder has another {changed[0]}; use another --out"
            )
    make_output_dir(out)
    write_json(record, identity)
    recipe = out / "recipe.json"
    write_json(recipe, identity["recipe"])
    return recipe


def run_grid(protocol: Protocol, out: Path, jobs: int = 1, progress: bool = True) -> list[dict]:
    """Run the grid's unfinished cells (``jobs`` at once), then write the report; returns
    its rows (one per cell, see :func:`vqa_ve.protocol_report.write_report`)."""
    from tqdm import tqdm

    from vqa_ve.protocol_report import write_report

    if jobs < 1:
        raise DataError("--jobs", f"{jobs}, expected at least 1")
    recipe = prepare(protocol, out)
    cells = protocol.cells()
    todo = [cell for cell in cells if not (cell.folder(out) / CELL_DONE).exists()]
    bar = tqdm(total=len(cells), initial=len(cells) - len(todo), unit="cell", disable=not progress)

    def one(cell: Cell) -> None:
        run = cell.folder(out)
        record = run_cell(run, protocol.cell_argv(cell, recipe), in_process=jobs == 1)
        level = run_level(run, protocol.task)
        seconds = record["seconds"] if record else 0.0
        tqdm.write(f"{cell}: val {level.val:.1f}, shift {level.shift:.1f} ({seconds:.0f} s)")
        bar.update(1)

    try:
        if jobs == 1:
            for cell in todo:
                one(cell)
        else:
            with ThreadPoolExecutor(jobs) as pool:
                futures = [pool.submit(one, cell) for cell in todo]
                try:
                    for future in as_completed(futures):
                        future.result()
                except BaseException:
                    for future in futures:  # the running ones finish; no new one starts
                        future.cancel()
                    raise
    finally:
        bar.close()
    rows = [cell_row(protocol.task, cell, cell.folder(out)) for cell in cells]
    write_report(rows, out, protocol.task)
    return rows


def cell_row(task: str, cell: Cell, run: Path) -> dict[str, Any]:
    """The CSV row of a finished cell (``seconds``: the wall time of the attempt that
    finished it)."""
    level = run_level(run, task)
    seconds = float(read_json(run / CELL_DONE)["seconds"])
    return {
        "task": task,
        "distill": cell.distill,
        "fraction": cell.fraction,
        "seed": cell.seed,
        "val": level.val,
        "shift": level.shift,
        "iterations": level.iterations,
        "seconds": seconds,
    }
