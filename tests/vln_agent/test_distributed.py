"""Data-parallel training in 2 CPU processes (gloo) against 1 process with the same batch."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from envs.fileio import read_json, write_json
from vln_agent.cli import main
from vln_agent.train import VLNTrainer, load_train_config
from vln_agent.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROCESSES = 2
#: A whole run must stay well inside this (two process starts dominate it).
TIME_LIMIT_S = 120

#: One rank of a job started by hand: RANK, WORLD_SIZE, MASTER_ADDR/PORT come from the env.
HELPERS_SCRIPT = """
import json, sys
import torch
from torch import nn
from vln_agent.training.distributed import (
    all_reduce_sum, average_gradients, broadcast_parameters, init_distributed, shutdown,
)

context = init_distributed("cpu")
torch.manual_seed(10 + context.rank)  # different initial weights on every rank
model = nn.Linear(3, 2)
broadcast_parameters(model, context)
model.weight.grad = torch.full((2, 3), float(context.rank + 1))
if context.rank == 1:  # rank 0 has no gradient for the bias
    model.bias.grad = torch.tensor([4.0, -2.0])
average_gradients(model, context)
total = all_reduce_sum(torch.tensor([context.rank + 1.0]), context)
shard = context.shard(8)
result = {
    "rank": context.rank,
    "world_size": context.world_size,
    "weight": model.weight.tolist(),
    "weight_grad": model.weight.grad.tolist(),
    "bias_grad": model.bias.grad.tolist(),
    "total": total.item(),
    "shard": [shard.start, shard.stop],
}
shutdown(context)
with open(sys.argv[1], "w") as f:
    json.dump(result, f)
"""

#: Teacher forcing without dropout: no random draw differs between 1 and 2 processes.
#: Adam at 1e-4 moves every weight by ~1e-4 per step; an entry whose gradient is at
#: rounding level can move differently by a fraction of that (seen: < 2e-6).
DETERMINISTIC_SETTINGS = {
    "iterations": 3,
    "batch_size": 8,
    "feedback": "teacher",
    "dropout": 0.0,
    "feature_dropout": 0.0,
    "optimizer": "adam",
    "learning_rate": 1e-4,
    "hidden_size": 32,
    "word_embedding_size": 16,
    "max_actions": 10,
    "eval_every": 3,
    "log_every": 1,
    "eval_splits": ["val_seen"],
    "select_split": "val_seen",
    "eval_batch_size": 12,
    "device": "cpu",
}
PARAMETER_TOLERANCE = 1e-5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return env | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"} | extra


def test_gradient_averaging_and_broadcast_in_two_processes(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(HELPERS_SCRIPT, encoding="utf-8")
    port = str(free_port())
    workers = [
        subprocess.Popen(
            [sys.executable, script, tmp_path / f"rank{rank}.json"],
            env=worker_env(
                RANK=str(rank),
                LOCAL_RANK=str(rank),
                WORLD_SIZE=str(PROCESSES),
                MASTER_ADDR="127.0.0.1",
                MASTER_PORT=port,
            ),
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(PROCESSES)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=TIME_LIMIT_S)
        assert worker.returncode == 0, err
    results = [read_json(tmp_path / f"rank{rank}.json") for rank in range(PROCESSES)]
    torch.manual_seed(10)
    rank0_weight = torch.nn.Linear(3, 2).weight.tolist()
    for rank, result in enumerate(results):
        assert result["rank"] == rank and result["world_size"] == PROCESSES
        assert result["weight"] == rank0_weight  # everyone starts from rank 0's weights
        assert result["weight_grad"] == [[1.5] * 3] * 2  # mean of 1 and 2
        assert result["bias_grad"] == [2.0, -1.0]  # a missing gradient counts as 0
        assert result["total"] == 3.0
        assert result["shard"] == [rank * 4, rank * 4 + 4]


def torchrun_log(log_dir: Path, rank: int, stream: str) -> str:
    """What rank ``rank`` wrote to ``stream`` under torchrun's ``--log-dir`` (redirected)."""
    (path,) = log_dir.glob(f"**/attempt_0/{rank}/{stream}.log")
    return path.read_text(encoding="utf-8")


def test_torchrun_training_matches_one_process_and_only_rank0_writes(tiny_world, tmp_path):
    settings = tmp_path / "settings.json"
    write_json(settings, DETERMINISTIC_SETTINGS)
    command = ["train-vln", "--data", tiny_world.data_dir, "--features", tiny_world.features]
    command += ["--config", settings, "--no-progress"]
    clipvil = Path(sys.executable).parent / "clipvil"
    assert clipvil.is_file(), "the clipvil console script is not installed (pip install -e .)"
    start = time.perf_counter()
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launch += [
        "--nproc_per_node",
        str(PROCESSES),
        "--log-dir",
        tmp_path / "logs",
        "--redirects",
        "3",
    ]
    finished = subprocess.run(
        [str(a) for a in [*launch, clipvil, *command, "--out", tmp_path / "two"]],
        env=worker_env(),
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT_S,
    )
    elapsed = time.perf_counter() - start
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert elapsed < TIME_LIMIT_S

    # only rank 0 logs, evaluates, saves and prints
    two = tmp_path / "two"
    assert sorted(p.name for p in two.iterdir()) == [
        "best.pt",
        "latest.pt",
        "log.csv",
        "tensorboard",
    ]
    assert len(list((two / "tensorboard").glob("events.out.tfevents.*"))) == 1
    log_rows = (two / "log.csv").read_text(encoding="utf-8").splitlines()
    assert len(log_rows) == 1 + 3 + 1  # header, 3 training rows, 1 evaluation
    assert json.loads(torchrun_log(tmp_path / "logs", 0, "stdout"))["iteration"] == 3
    assert torchrun_log(tmp_path / "logs", 1, "stdout") == ""

    # the same global batch in one process
    initial = VLNTrainer(
        tiny_world.data_dir, tiny_world.features, tmp_path / "unused", load_train_config(settings)
    ).model.state_dict()
    assert main([str(a) for a in [*command, "--out", tmp_path / "one"]]) == 0
    two_ckpt = load_checkpoint(two / "latest.pt")
    one_ckpt = load_checkpoint(tmp_path / "one" / "latest.pt")
    assert two_ckpt["step"] == one_ckpt["step"] == 3
    one, two_state = one_ckpt["state_dict"], two_ckpt["state_dict"]
    moved = max((one[k] - initial[k]).abs().max().item() for k in one)
    assert moved > 20 * PARAMETER_TOLERANCE
    for name, tensor in one.items():
        torch.testing.assert_close(
            two_state[name], tensor, atol=PARAMETER_TOLERANCE, rtol=0, msg=name
        )
    # Adam's moments are the averaged gradients themselves (scale included): a sum instead
    # of a mean, or the wrong shard, shows here even where Adam's step hides it
    one_opt, two_opt = one_ckpt["optimizer"]["state"], two_ckpt["optimizer"]["state"]
    for index, state in one_opt.items():
        for moment in ("exp_avg", "exp_avg_sq"):
            scale = state[moment].abs().max().item()
            torch.testing.assert_close(
                two_opt[index][moment], state[moment], atol=1e-4 * scale, rtol=0
            )
    # parameters that no rollout uses get zero gradients from the all-reduce, not None
    for index in set(two_opt) - set(one_opt):
        assert not two_opt[index]["exp_avg"].any()
