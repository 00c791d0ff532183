"""The pretraining loop shared by ``clipvil pretrain-clip`` and ``clipvil pretrain-supervised``.

A run trains a clipvil encoder (random init) on the captioned views of the TRAIN houses
(the scans of ``DIR/R2R_train.json``) with one objective of :mod:`.objectives`: AdamW
(no weight decay on gains, biases and the temperature, as open_clip), linear warmup then
cosine decay, gradient clipping, mild colour jitter. Each epoch is a fresh permutation of
the views (drawn from ``(seed, epoch)``); each step's caption choice and jitter come from
``(seed, step)``, so a run resumed from its last checkpoint (``RUN_DIR/latest.pt``: model,
optimizer, scheduler, random states, step) continues exactly as if never stopped.

After every epoch the encoder is scored zero-shot on the held-out ``eval_split`` houses
(:mod:`.zeroshot`); the logs go to ``RUN_DIR/log.csv`` and ``RUN_DIR/tensorboard``. The
result is a half-precision encoder checkpoint (:func:`vln_agent.encoders.save_encoder`)
that ``create_encoder(model, pretrained=FILE)`` loads.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from envs.errors import DataError
from envs.fileio import read_json
from vln_agent.encoders import CLIPEncoder, create_encoder, save_encoder
from vln_agent.encoders.encoder import check_precision
from vln_agent.pretrain.config import PretrainConfig, warmup_cosine
from vln_agent.pretrain.data import (
    CaptionedView,
    LabelSpace,
    color_jitter,
    load_captioned_views,
    load_view_labels,
    render_view_cache,
    split_scans,
    with_category_captions,
)
from vln_agent.pretrain.objectives import (
    CLIP_KIND,
    SUPERVISED_KIND,
    ContrastiveObjective,
    SupervisedObjective,
)
from vln_agent.pretrain.zeroshot import EvalViews, evaluate_views, load_eval_views
from vln_agent.training.distributed import DistributedContext
from vln_agent.training.trainer import Trainer

#: The split whose houses pretraining may see.
TRAIN_SPLIT = "train"
OBJECTIVES = (CLIP_KIND, SUPERVISED_KIND)
#: Settings that may differ between a run and its resumption (they do not change results).
RESUMABLE_CHANGES = ("threads", "render_workers", "device")
#: Salt of the per-step random stream (caption choice, jitter).
_STEP_STREAM = 1


def make_optimizer(module: torch.nn.Module, config: PretrainConfig) -> torch.optim.AdamW:
    """AdamW without weight decay on gains, biases and the temperature (open_clip's rule)."""
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        exempt = param.ndim < 2 or "bias" in name or "ln" in name or "logit_scale" in name
        (no_decay if exempt else decay).append(param)
    return torch.optim.AdamW(
        [
            {"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": config.weight_decay},
        ],
        lr=config.learning_rate,
        betas=(config.beta1, config.beta2),
        eps=config.eps,
    )


def tokenize_captions(encoder: CLIPEncoder, views: list[CaptionedView]) -> torch.Tensor:
    """``[N, K, L]`` token ids of every view's captions (fewer than ``K`` are cycled)."""
    count = max(len(v.captions) for v in views)
    texts = [v.captions[k % len(v.captions)] for v in views for k in range(count)]
    return encoder.tokenize(texts).reshape(len(views), count, -1)


def build_objective(
    kind: str,
    encoder: CLIPEncoder,
    data_dir: Path,
    views: list[CaptionedView],
    config: PretrainConfig | None = None,
) -> ContrastiveObjective | SupervisedObjective:
    """The objective ``kind`` with the targets of ``views`` (``config.category_captions``
    adds captions to them)."""
    if kind == CLIP_KIND:
        if config is not None and config.category_captions:
            labels = load_view_labels(data_dir, views)
            views = with_category_captions(views, labels, config.category_captions, config.seed)
        return ContrastiveObjective(encoder, tokenize_captions(encoder, views))
    if kind == SUPERVISED_KIND:
        labels = load_view_labels(data_dir, views)
        space = LabelSpace()
        return SupervisedObjective(
            encoder,
            torch.from_numpy(space.room_index(labels, str(data_dir / "scenes"))),
            torch.from_numpy(space.object_multi_hot(labels, str(data_dir / "scenes"))),
            space,
        )
    raise ValueError(f"objective must be one of {OBJECTIVES}, got {kind!r}")


@contextlib.contextmanager
def autocast_as(encoder: CLIPEncoder, precision: str) -> Iterator[None]:
    """Run the encoder's forward passes in ``precision`` (its autocast) for a while."""
    previous = encoder.precision
    encoder.precision = check_precision(precision, encoder.device)
    try:
        yield
    finally:
        encoder.precision = previous


def square_input_size(encoder: CLIPEncoder) -> int:
    """The side of the encoder's (square) input; views are rendered square."""
    height, width = encoder.image_size
    if height != width:
        raise DataError(
            encoder.model_name, f"pretraining needs a square input, not {height}x{width}"
        )
    return height


def default_run_dir(out: Path) -> Path:
    """``{out stem}_run/`` beside the output checkpoint: logs and the resumable state."""
    return out.with_name(f"{out.stem}_run")


def default_cache_dir(out: Path) -> Path:
    """``view_cache/`` beside the output checkpoint (shared by both objectives)."""
    return out.parent / "view_cache"


@contextlib.contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run with ``count`` torch intra-op threads for a while."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class Pretrainer(Trainer):
    """One pretraining run: data, encoder and objective; the spine runs the loop."""

    def __init__(
        self,
        kind: str,
        data_dir: str | os.PathLike[str],
        out: str | os.PathLike[str],
        config: PretrainConfig,
        run_dir: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        resume: bool = False,
        progress: bool = True,
        context: DistributedContext | None = None,
    ) -> None:
        if kind not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {kind!r}")
        self.out = Path(out)
        super().__init__(run_dir or default_run_dir(self.out), config, context)
        self.objective_kind, self.kind, self.progress = kind, f"pretrain-{kind}", progress
        self.data_dir = Path(data_dir)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(self.out)
        self.scans = split_scans(self.data_dir, TRAIN_SPLIT)
        self.views = load_captioned_views(self.data_dir, self.scans)
        self.steps_per_epoch = len(self.views) // config.batch_size
        if self.steps_per_epoch == 0:
            raise DataError(
                self.data_dir / "captions.json",
                f"{len(self.views)} training views, fewer than one batch of {config.batch_size}",
            )
        self.encoder = create_encoder(config.model, device=self.device)
        size = square_input_size(self.encoder)
        self.pixels = render_view_cache(
            self.data_dir, self.views, size, self.cache_dir, config.render_workers, progress
        )  # [N, S, S, 3] uint8
        self.objective = build_objective(kind, self.encoder, self.data_dir, self.views, config)
        self.objective.to(self.device)
        optimizer = make_optimizer(self.objective, config)
        total = config.epochs * self.steps_per_epoch
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, warmup_cosine(config.warmup_steps, total)
        )
        self.attach(self.objective, optimizer, schedule)
        #: Per-epoch summaries (with the nested zero-shot results).
        self.epochs: list[dict[str, Any]] = []
        self.epoch_loss: list[float] = []
        self._orders: dict[int, np.ndarray] = {}
        self.eval_data: EvalViews | None = None
        if config.eval_split:
            self.eval_data = load_eval_views(
                self.data_dir,
                config.eval_split,
                size,
                self.cache_dir,
                workers=config.render_workers,
                progress=progress,
            )
        if resume:
            self.resume()

    @property
    def run_dir(self) -> Path:
        return self.out_dir

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps_per_epoch

    @property
    def eval_every(self) -> int:
        """The end of every epoch."""
        return self.steps_per_epoch

    @property
    def checkpoint_every(self) -> int:
        return self.config.checkpoint_every

    # ---------------------------------------------------------------- data
    def batch_rows(self, step: int) -> np.ndarray:
        """``[B]`` rows of the views of step ``step`` (each view once per epoch)."""
        epoch, within = divmod(step, self.steps_per_epoch)
        if epoch not in self._orders:
            self._orders = {
                epoch: np.random.default_rng([self.config.seed, epoch]).permutation(len(self.views))
            }
        size = self.config.batch_size
        return self._orders[epoch][within * size : (within + 1) * size]

    def step_rng(self, step: int) -> np.random.Generator:
        """The random stream of step ``step`` (caption choice, jitter)."""
        return np.random.default_rng([self.config.seed, _STEP_STREAM, step])

    # ---------------------------------------------------------------- training
    def train_step(self) -> dict[str, float]:
        """One optimizer step; returns the loss parts and statistics."""
        rows = self.batch_rows(self.step)[self.local_slice(self.config.batch_size)]
        rng = self.step_rng(self.step)
        pixels = color_jitter(np.asarray(self.pixels[rows]), self.config.color_jitter, rng)
        images = self.encoder.pixels_to_input(pixels).to(self.device)  # [B, 3, S, S]
        targets = {k: v.to(self.device) for k, v in self.objective.targets(rows, rng).items()}
        self.objective.train()
        with autocast_as(self.encoder, self.config.precision):
            parts, stats = self.objective(images, **targets)
        self.optimize(parts)
        self.objective.after_step()
        loss = float(sum(parts.values()).detach())
        self.epoch_loss.append(loss)
        return {
            "loss": loss,
            **{k: float(v.detach()) for k, v in parts.items()},
            **stats,
            "lr": self.scheduler.get_last_lr()[-1],
        }

    def train(
        self, progress: bool | None = None, stop_at: int | None = None
    ) -> dict[str, Any] | None:
        """Train to the end and write the encoder checkpoint; returns its metrics.

        ``stop_at`` ends the run after that many steps (with the resumable state saved,
        as if killed right after a checkpoint) and returns None.
        """
        with torch_threads(self.config.threads):
            done = super().train(self.progress if progress is None else progress, stop_at)
        return None if done is None else self.save_encoder()

    def evaluate(self) -> dict[str, float]:
        """The epoch's summary: mean training loss, seconds, zero-shot results."""
        row: dict[str, Any] = {
            "epoch": self.step // self.steps_per_epoch,
            "train_loss": float(np.mean(self.epoch_loss)),
            "seconds": self.seconds,
        }
        self.epoch_loss = []
        if self.eval_data is not None:
            row["eval"] = evaluate_views(
                self.encoder, self.eval_data, getattr(self.objective, "heads", None)
            )
        self.epochs.append(row)
        return _flat_epoch_row(row)

    # ---------------------------------------------------------------- checkpoints
    def model_payload(self) -> dict[str, Any]:
        return {
            "model_config": self.encoder.model_config,
            "state_dict": self.objective.state_dict(),
        }

    def run_state(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "epoch_loss": list(self.epoch_loss)}

    def load_run_state(self, state: dict[str, Any]) -> None:
        self.epochs = list(state["epochs"])
        self.epoch_loss = list(state["epoch_loss"])

    def check_resumable(self, payload: dict[str, Any], path: Path) -> None:
        saved, current = payload["train_config"], dataclasses.asdict(self.config)
        changed = sorted(
            k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k]
        )
        if changed:
            raise DataError(path, f"was saved with other settings: {', '.join(changed)}")

    def final_metrics(self) -> dict[str, Any]:
        last = self.epochs[-1] if self.epochs else {}
        return {
            "epochs": len(self.epochs),
            "train_loss": last.get("train_loss"),
            "train_seconds": self.seconds,
            "eval": last.get("eval"),
            "history": [_flat_epoch_row(row) for row in self.epochs],
        }

    def save_encoder(self) -> dict[str, Any]:
        """Write the half-precision encoder checkpoint to ``out``; returns its metrics."""
        metrics = self.final_metrics()
        extra = {
            **self.objective.checkpoint_extra(),
            "train_config": dataclasses.asdict(self.config),
            "step": self.step,
            "metrics": metrics,
            "data": {
                "train_scans": len(self.scans),
                "train_views": len(self.views),
                "world": _world_identity(self.data_dir),
            },
        }
        save_encoder(self.encoder, self.out, extra=extra, half=True)
        return metrics


def _flat_epoch_row(row: dict[str, Any]) -> dict[str, float]:
    """An epoch summary as flat ``name: number`` columns for the logs."""
    flat = {
        "epoch/train_loss": row["train_loss"],
        "epoch/seconds": row["seconds"],
        "epoch/epoch": row["epoch"],
    }
    results = row.get("eval")
    if results:
        flat["eval/room_accuracy"] = results["room"]["accuracy"]
        flat["eval/room_level_accuracy"] = results["room"]["level_accuracy"]
        flat["eval/object_accuracy"] = results["object"]["accuracy"]
        flat["eval/room_ensemble_accuracy"] = results["room"]["ensemble_accuracy"]
        flat["eval/object_ensemble_accuracy"] = results["object"]["ensemble_accuracy"]
        flat["eval/object_any_visible_accuracy"] = results["object"]["any_visible_accuracy"]
        for name, value in results.get("linear_heads", {}).items():
            flat[f"eval/heads_{name}"] = value
    return flat


def _world_identity(data_dir: Path) -> dict[str, Any] | None:
    manifest = data_dir / "manifest.json"
    if not manifest.is_file():
        return None
    data = read_json(manifest)
    return {k: data.get(k) for k in ("generator", "version", "seed", "preset")}
