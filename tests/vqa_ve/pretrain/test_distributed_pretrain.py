"""pretrain-vl under torchrun: 2 CPU processes (gloo) end with the weights of 1 process on
the same global batch (masks and pairs drawn for the global batch on every rank), through
both stages, and only rank 0 writes the run folder."""

from __future__ import annotations

import pytest
from two_processes import assert_same_weights, run_two_processes

from envs.fileio import write_json
from vln_agent.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: No dropout (no draw differs between 1 and 2 processes); stage 2 from step 2 of 3.
SETTINGS = {
    "iterations": 3,
    "qa_from": 1,
    "batch_size": 8,
    "eval_every": 3,
    "eval_limit": 16,
    "log_every": 1,
    "hidden_size": 32,
    "num_heads": 2,
    "num_layers": 1,
    "dropout": 0.0,
    "device": "cpu",
}
TOLERANCE = 1e-5


def test_torchrun_matches_one_process_and_only_rank0_writes(pretrain_world, tmp_path):
    qa, files, _ = pretrain_world
    settings = tmp_path / "settings.json"
    write_json(settings, SETTINGS)
    command = ["pretrain-vl", "--data", qa, "--config", settings, "--no-progress"]
    command += ["--features", files["train2014"], files["val2014"]]
    finished = run_two_processes([*command, "--out", tmp_path / "two"], tmp_path / "logs")
    assert finished.returncode == 0, finished.stderr[-3000:]
    two = tmp_path / "two"
    assert sorted(p.name for p in two.iterdir()) == [
        "best.pt",
        "latest.pt",
        "log.csv",
        "tensorboard",
    ]
    assert main([str(a) for a in [*command, "--out", tmp_path / "one"]]) == 0
    one_ckpt, two_ckpt = assert_same_weights(
        tmp_path / "one" / "latest.pt", two / "latest.pt", TOLERANCE
    )
    assert one_ckpt["step"] == two_ckpt["step"] == 3
