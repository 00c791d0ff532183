"""pretrain-vl under torchrun: 2 CPU processes (gloo) end with the weights of 1 process on
the same global batch (masks and pairs drawn for the global batch on every rank), through
both stages, and only rank 0 writes the run folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from envs.fileio import write_json
from vln_agent.cli import main
from vln_agent.training.checkpoint import load_checkpoint

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
TIME_LIMIT_S = 180


def test_torchrun_matches_one_process_and_only_rank0_writes(pretrain_world, tmp_path):
    qa, files, _ = pretrain_world
    settings = tmp_path / "settings.json"
    write_json(settings, SETTINGS)
    command = ["pretrain-vl", "--data", qa, "--config", settings, "--no-progress"]
    command += ["--features", files["train2014"], files["val2014"]]
    clipvil = Path(sys.executable).parent / "clipvil"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launch += ["--nproc_per_node", "2", "--log-dir", tmp_path / "logs", "--redirects", "3"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    finished = subprocess.run(
        [str(a) for a in [*launch, clipvil, *command, "--out", tmp_path / "two"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT_S,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    two = tmp_path / "two"
    assert sorted(p.name for p in two.iterdir()) == [
        "best.pt",
        "latest.pt",
        "log.csv",
        "tensorboard",
    ]
    assert main([str(a) for a in [*command, "--out", tmp_path / "one"]]) == 0
    one_ckpt = load_checkpoint(tmp_path / "one" / "latest.pt")
    two_ckpt = load_checkpoint(two / "latest.pt")
    assert one_ckpt["step"] == two_ckpt["step"] == 3
    for name, tensor in one_ckpt["state_dict"].items():
        other = two_ckpt["state_dict"][name]
        if name.endswith("self_attn.in_proj_bias"):
            # softmax cancels the key bias: its gradient is rounding noise that Adam turns
            # into full steps (as in the QA torchrun test)
            width = tensor.shape[0] // 3
            keys = slice(width, 2 * width)
            tensor, other = tensor.clone(), other.clone()
            tensor[keys] = other[keys] = 0
        torch.testing.assert_close(other, tensor, atol=TOLERANCE, rtol=0, msg=name)
