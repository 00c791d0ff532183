"""``kill -9`` in the middle of a command, then the same command again: the result is the
one an uninterrupted run gives (``clipvil world``: the same bytes; ``clipvil train-vln
--resume``: the same weights, metrics and log).

The commands really run in a child process that receives SIGKILL at a point read off the
files it writes (no cooperation from the code under test); the reruns and the
uninterrupted references run in this process, on one torch thread like the child.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from envs.fileio import write_json
from vln_agent.cli import main
from vln_agent.training.checkpoint import load_checkpoint

#: Seconds between two looks at the child's files.
POLL_S = 0.002
#: Longest wait for a kill point (the tiny runs take seconds; a loaded CPU is slow).
KILL_POINT_TIMEOUT_S = 300
#: The world houses finished by the child when it is killed (of the tiny preset's 5).
HOUSES_BEFORE_KILL = 2
#: A small follower run (tests/vln_agent/test_train.py's CLI settings): ``latest.pt``
#: first appears at the evaluation after step 2, and the run goes on to step 6.
TRAIN_SETTINGS = {
    "hidden_size": 32,
    "word_embedding_size": 16,
    "batch_size": 4,
    "eval_batch_size": 12,
    "max_actions": 10,
    "log_every": 1,
    "device": "cpu",
}
TRAIN_ITERATIONS = 6
EVAL_EVERY = 2
#: Bytes of a checkpoint that a save killed halfway got to write.
KILLED_SAVE_BYTES = 1000
#: Log columns that measure time, not training.
TIMING_COLUMNS = ("train/seconds",)


def start(argv: list[object], log: Path) -> subprocess.Popen:
    """``clipvil ARGV`` in a child process on one thread, its output in ``log``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "vln_agent.cli", *map(str, argv)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def kill_when(child: subprocess.Popen, ready: Callable[[], bool], log: Path) -> None:
    """SIGKILL ``child`` as soon as ``ready()``; fail if it ends or stalls before that."""
    deadline = time.monotonic() + KILL_POINT_TIMEOUT_S
    while not ready():
        if child.poll() is not None:
            pytest.fail(
                f"ended (status {child.returncode}) before the kill point:\n{log.read_text()}"
            )
        if time.monotonic() > deadline:
            child.kill()
            child.wait()
            pytest.fail(f"no kill point within {KILL_POINT_TIMEOUT_S} s:\n{log.read_text()}")
        time.sleep(POLL_S)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL


def all_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def written_since(folder: Path, pattern: str, since_ns: int) -> int:
    """How many files matching ``pattern`` in ``folder`` were written at or after ``since_ns``."""
    count = 0
    for path in folder.glob(pattern):
        try:
            count += path.stat().st_mtime_ns >= since_ns
        except FileNotFoundError:  # removed while we looked
            continue
    return count


# ------------------------------------------------------------------------- clipvil world
def test_world_killed_while_replacing_and_while_building_then_rerun_is_identical(
    tiny_synthetic_world, tmp_path
):
    """Two kills on the way to the tiny world (seed 0, workers 1): one while a finished
    seed-0 world is being cleared for a seed-1 build, one after two houses of the rebuilt
    seed-0 world; then the same command again gives the uninterrupted world byte for byte."""
    world = tmp_path / "world"
    shutil.copytree(tiny_synthetic_world, world)
    command = ["world", "--out", world, "--preset", "tiny", "--workers", "1"]

    clearing = start([*command, "--seed", "1"], tmp_path / "clearing.log")
    kill_when(clearing, lambda: not (world / "manifest.json").exists(), tmp_path / "clearing.log")

    since = time.time_ns()
    building = start([*command, "--seed", "0"], tmp_path / "building.log")
    kill_when(
        building,
        lambda: written_since(world / "scenes", "*.json", since) >= HOUSES_BEFORE_KILL,
        tmp_path / "building.log",
    )
    assert not (world / "manifest.json").exists()

    assert main([str(a) for a in [*command, "--seed", "0"]]) == 0
    assert all_files(world) == all_files(tiny_synthetic_world)


# --------------------------------------------------------------------- clipvil train-vln
def write_settings(path: Path) -> Path:
    write_json(path, TRAIN_SETTINGS)
    return path


def log_rows(run: Path) -> list[dict[str, str]]:
    with open(run / "log.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [{k: v for k, v in row.items() if k not in TIMING_COLUMNS} for row in rows]


def test_train_vln_killed_after_its_first_checkpoint_resumes_to_the_same_weights(
    tiny_world, tmp_path, one_torch_thread, capsys
):
    settings = write_settings(tmp_path / "settings.json")
    command = ["train-vln", "--data", tiny_world.data_dir, "--features", tiny_world.features]
    command += ["--config", settings, "--iterations", TRAIN_ITERATIONS]
    command += ["--eval-every", EVAL_EVERY, "--no-progress"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main([str(a) for a in [*command, "--out", whole]]) == 0

    child = start([*command, "--out", cut], tmp_path / "train.log")
    kill_when(child, (cut / "latest.pt").exists, tmp_path / "train.log")
    assert load_checkpoint(cut / "latest.pt")["step"] < TRAIN_ITERATIONS, "killed too late"
    # What a kill in the middle of a checkpoint save leaves: a partial temporary file.
    partial = cut / ".latest.pt.0badcafe.tmp"
    partial.write_bytes((cut / "latest.pt").read_bytes()[:KILLED_SAVE_BYTES])

    assert main([str(a) for a in [*command, "--out", cut, "--resume"]]) == 0
    capsys.readouterr()
    for name in ("latest.pt", "best.pt"):
        expected, resumed = load_checkpoint(whole / name), load_checkpoint(cut / name)
        assert resumed["step"] == expected["step"], name
        assert resumed["metrics"] == expected["metrics"], name
        assert expected["state_dict"].keys() == resumed["state_dict"].keys()
        for key, value in expected["state_dict"].items():
            assert torch.equal(value, resumed["state_dict"][key]), f"{name}: {key}"
    assert log_rows(cut) == log_rows(whole)
    assert not partial.exists()
    assert sorted(p.name for p in cut.iterdir()) == sorted(p.name for p in whole.iterdir())
