"""Settings of a pretraining run (:class:`PretrainConfig`) and its learning-rate schedule."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from vln_agent.training.distributed import DEVICES
from vln_agent.training.settings import load_settings

#: Training precisions (autocast dtypes of the forward passes).
PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of a pretraining run (defaults: a small CLIP in ~15-20 CPU minutes)."""

    #: clipvil / open_clip model name (trained from a random init).
    model: str = "clipvil-small"
    #: Passes over the training views.
    epochs: int = 8
    #: Views per step (the contrastive loss has ``batch_size - 1`` negatives per pair).
    batch_size: int = 128
    #: Peak AdamW learning rate.
    learning_rate: float = field(default=5e-4, metadata={"flags": ("--lr",)})
    #: Steps of linear warmup before the cosine decay to zero.
    warmup_steps: int = 50
    #: AdamW weight decay (not applied to gains, biases and the temperature).
    weight_decay: float = 0.1
    #: AdamW betas and epsilon (CLIP's).
    beta1: float = 0.9
    beta2: float = 0.98
    eps: float = 1e-6
    #: Gradients are clipped to this global norm.
    grad_clip: float = 1.0
    #: Short captions per view naming only its room type or one object it shows ("a
    #: kitchen", "a photo of a fridge", "a sofa in a lounge"), added to the view's captions
    #: of ``captions.json`` (CLIP objective only; 0: none).
    category_captions: int = 0
    #: Brightness/contrast jitter: factors in ``1 +- color_jitter`` (0 disables it).
    color_jitter: float = 0.1
    #: Random seed (a resumed run must keep it).
    seed: int = 0
    #: torch intra-op threads. 1 on a shared CPU: with other jobs running, 2 threads were
    #: 3-4x slower than 1 on the 2-core machine (spinning OpenMP workers); 2 when alone.
    threads: int = 1
    #: Processes rendering the view cache.
    render_workers: int = 2
    #: Log training statistics every this many steps.
    log_every: int = 10
    #: Save the resumable state every this many steps (and after every epoch).
    checkpoint_every: int = 50
    #: Held-out split scored zero-shot after every epoch ("" for none).
    eval_split: str = "val_unseen"
    #: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    device: str = field(default="auto", metadata={"choices": DEVICES})
    #: Autocast of the towers' forward passes: ``bf16`` (about 1.8x faster on a CPU with
    #: AVX512-BF16, and on GPUs) or ``fp32``. Weights, optimizer and losses stay fp32.
    precision: str = field(default="bf16", metadata={"choices": PRECISIONS})

    def __post_init__(self) -> None:
        if self.category_captions < 0:
            raise ValueError(f"category_captions must be >= 0, got {self.category_captions}")
        positive = ("epochs", "batch_size", "threads", "render_workers", "log_every")
        for name in (*positive, "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0 or self.warmup_steps < 0 or self.color_jitter < 0:
            raise ValueError("learning_rate must be > 0, warmup_steps and color_jitter >= 0")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.device not in DEVICES:
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")


def load_pretrain_config(path: str | os.PathLike[str] | None, **overrides: Any) -> PretrainConfig:
    """Settings from a JSON file (unknown keys and wrong types are errors), then ``overrides``."""
    return load_settings(PretrainConfig, path, "pretraining", **overrides)


def warmup_cosine(warmup_steps: int, total_steps: int):
    """Learning-rate factor of step ``s``: linear warmup, then cosine decay to 0."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor
