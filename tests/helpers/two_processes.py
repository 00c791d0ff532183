"""What the torchrun tests share: launching a ``clipvil`` command as 2 CPU processes (gloo)
and comparing the weights a 2-process run ends with to a 1-process run's.

Importable from any test module (``pythonpath = ["tests/helpers"]`` in pyproject.toml).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from vln_agent.training.checkpoint import load_checkpoint

#: Wall-clock limit of a 2-process launch.
TIME_LIMIT_S = 180


def run_two_processes(command: Sequence[object], logs: Path) -> subprocess.CompletedProcess:
    """``clipvil COMMAND`` under ``torch.distributed.run`` with 2 processes of one thread."""
    clipvil = Path(sys.executable).parent / "clipvil"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    launch += ["--nproc_per_node", "2", "--log-dir", logs, "--redirects", "3"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env |= {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [str(a) for a in [*launch, clipvil, *command]],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIME_LIMIT_S,
    )


def assert_same_weights(one: Path, two: Path, tolerance: float) -> tuple[dict, dict]:
    """The two checkpoints' tensors agree within ``tolerance``; returns both payloads.

    The attention key biases are compared without their key part: a key bias adds the same
    number to every score of a query, softmax cancels it, its gradient is rounding noise, and
    Adam turns noise into full steps.
    """
    first, second = load_checkpoint(one), load_checkpoint(two)
    for name, tensor in first["state_dict"].items():
        other = second["state_dict"][name]
        if name.endswith("self_attn.in_proj_bias"):
            width = tensor.shape[0] // 3
            keys = slice(width, 2 * width)
            tensor, other = tensor.clone(), other.clone()
            tensor[keys] = other[keys] = 0
        torch.testing.assert_close(other, tensor, atol=tolerance, rtol=0, msg=name)
    return first, second
