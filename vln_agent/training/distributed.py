"""Data-parallel training with ``torch.distributed`` (gloo on CPU, nccl on GPU).

Started by ``torchrun --nproc_per_node N clipvil train-vln ...``: each process reads its
rank from the environment ``torchrun`` sets (RANK, WORLD_SIZE, LOCAL_RANK). A navigation
rollout calls the model step by step, many times per optimizer step, which
``DistributedDataParallel``'s forward hooks do not follow; so gradients are averaged
explicitly after ``backward`` with one all-reduce over a flattened buffer (the same
arithmetic as DDP: the mean of the per-process gradients). Every process draws the same
global batch and trains on its own slice, so N processes with batch B/N compute exactly
the gradient of one process with batch B.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

#: The ``device`` values of every run's settings: ``auto`` = CUDA when available.
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def shard(self, global_batch: int) -> slice:
        """This process's slice of a global batch (the batch must divide evenly)."""
        if global_batch % self.world_size:
            raise ValueError(
                f"batch size {global_batch} is not divisible by {self.world_size} processes"
            )
        local = global_batch // self.world_size
        return slice(self.rank * local, (self.rank + 1) * local)


def init_distributed(device: str | None = "auto") -> DistributedContext:
    """Join the process group when started by torchrun; otherwise a single process.

    ``device``: ``auto`` (or None) picks CUDA when available, else the CPU; ``cpu`` /
    ``cuda`` as they are. This is the one place a device is chosen for training.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if device in (None, "auto"):
        use_cuda = torch.cuda.is_available()
    else:
        use_cuda = device.startswith("cuda")
    if world_size <= 1:
        return DistributedContext(device=torch.device("cuda" if use_cuda else "cpu"))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    chosen = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    return DistributedContext(rank, world_size, local_rank, chosen)


def broadcast_parameters(model: nn.Module, context: DistributedContext) -> None:
    """Make every process start from rank 0's parameters."""
    if context.enabled:
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)


def average_gradients(model: nn.Module, context: DistributedContext) -> None:
    """Replace each gradient by its mean over the processes (one flattened all-reduce).

    A parameter no process computed a gradient for (a head the step did not use) keeps no
    gradient, as in one process: the optimizer then skips it (no weight decay, no Adam
    step count), where a zero gradient would move it and shift its bias correction.
    """
    if not context.enabled:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    used = torch.tensor([float(p.grad is not None) for p in params], dtype=grads[0].dtype)
    flat = torch.cat([g.reshape(-1) for g in grads] + [used])  # [N + P]
    dist.all_reduce(flat)
    flat[: -len(params)] /= context.world_size
    used = flat[-len(params) :] > 0  # [P]: some process computed it
    offset = 0
    for index, (param, grad) in enumerate(zip(params, grads, strict=True)):
        count = grad.numel()
        averaged = flat[offset : offset + count].view_as(grad).clone()
        param.grad = averaged if used[index] else None
        offset += count


def all_reduce_sum(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Sum a tensor over processes (e.g. metric sums for evaluation)."""
    if context.enabled:
        values = values.clone()
        dist.all_reduce(values)
    return values


def shutdown(context: DistributedContext) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
