"""The training spine: one :class:`Trainer` that every model's trainer extends.

The spine owns the mechanics of a run, written once:

- seeding (``torch.manual_seed(config.seed)`` before the subclass builds its model) and the
  device (``config.device``: ``auto`` = CUDA when available), in one process or under
  ``torchrun`` (:mod:`.distributed`: parameters broadcast from rank 0, gradients averaged
  after ``backward``, logs / evaluation / checkpoints on rank 0 only);
- the run folder ``out_dir``: ``log.csv`` + ``tensorboard/`` (:class:`.runlog.RunLog`),
  ``latest.pt`` and ``best.pt`` (best by :attr:`Trainer.select_metric`), in the one
  checkpoint format (:mod:`.checkpoint`), written atomically;
- the loop: a progress bar, training statistics every ``config.log_every`` steps,
  evaluation every :attr:`Trainer.eval_every` steps and at the end;
- resumption: the same seed continues exactly (weights, optimizer, scheduler, random
  states, the subclass's samplers, history); another seed is a warm start (weights,
  optimizer and history carry over, random streams start afresh from the new seed).
  A run killed at any point (``kill -9`` included) resumes from its last ``latest.pt`` to
  the weights of an uninterrupted run: checkpoints are renamed into place whole, the log
  keeps only the rows up to the resumed step, and a checkpoint save cut short leaves a
  temporary file that the next run in the folder removes.

A subclass builds its data and model in ``__init__`` (after ``super().__init__``), hands
them to :meth:`Trainer.attach`, and says only how to train one step
(:meth:`Trainer.train_step`, which calls :meth:`Trainer.optimize` with its named loss
parts), how to evaluate (:meth:`Trainer.evaluate`) and what describes its model in a
checkpoint (:meth:`Trainer.model_payload`). The settings dataclass must have ``seed``,
``device``, ``grad_clip`` and ``log_every`` fields.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from tqdm import tqdm

from envs.errors import DataError
from vln_agent.training.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from vln_agent.training.distributed import (
    DistributedContext,
    average_gradients,
    broadcast_parameters,
    init_distributed,
    shutdown,
)
from vln_agent.training.runlog import RunLog

#: File names of the run folder's checkpoints.
LATEST_CHECKPOINT = "latest.pt"
BEST_CHECKPOINT = "best.pt"
#: What a checkpoint save killed halfway leaves beside the checkpoint
#: (:func:`envs.fileio.atomic_write` writes ``.{name}.{random}.tmp``, then renames it).
KILLED_SAVE_PATTERN = ".{name}.*.tmp"


def flatten_metrics(results: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """``{"val_seen": {"sr": 0.5}}`` -> ``{"val_seen/sr": 0.5}`` (numbers only)."""
    flat: dict[str, float] = {}
    for name, value in results.items():
        key = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(flatten_metrics(value, f"{key}/"))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            flat[key] = float(value)
    return flat


class Trainer:
    """One training run; subclasses say how to batch, what the losses are and how to score."""

    #: The checkpoint ``kind`` (and the progress bar's name).
    kind: ClassVar[str] = "model"

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        config: Any,
        context: DistributedContext | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.config = config
        self.context = context or init_distributed(config.device)
        self.device = self.context.device
        torch.manual_seed(config.seed)
        self.step = 0
        self.best_score = -math.inf
        self.history: list[dict[str, float]] = []
        #: Seconds spent in training steps, summed over resumptions.
        self.seconds = 0.0
        self.model: nn.Module
        self.optimizer: torch.optim.Optimizer
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        #: Modules trained beside the model but not part of it (a distillation head):
        #: optimized, averaged and clipped with it, kept in ``latest.pt`` to resume, never
        #: in the model a checkpoint loads or exports.
        self.auxiliary: nn.Module | None = None

    def attach(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
        auxiliary: nn.Module | None = None,
    ) -> None:
        """The module trained (and checkpointed), its optimizer and learning-rate schedule,
        and the training-only :attr:`auxiliary` modules (whose parameters ``optimizer``
        must hold too); every process starts from rank 0's parameters."""
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.auxiliary = auxiliary
        for module in self.trained_modules():
            broadcast_parameters(module, self.context)

    def trained_modules(self) -> list[nn.Module]:
        """The model, then the :attr:`auxiliary` modules when there are any."""
        return [self.model] + ([self.auxiliary] if self.auxiliary is not None else [])

    # ------------------------------------------------------------ subclass hooks
    @property
    def total_steps(self) -> int:
        """Optimizer steps of the whole run."""
        return self.config.iterations

    @property
    def eval_every(self) -> int:
        """Evaluate (and save) every this many steps, and after the last one."""
        return self.config.eval_every

    @property
    def select_metric(self) -> str | None:
        """The flat metric (``"val_unseen/spl"``) whose maximum picks ``best.pt``; None
        writes no best checkpoint."""
        return None

    #: Also save ``latest.pt`` every this many steps between evaluations (None: only at
    #: evaluations).
    checkpoint_every: int | None = None

    def train_step(self) -> dict[str, float]:
        """One training step: compute the loss parts, :meth:`optimize`, return statistics."""
        raise NotImplementedError

    def evaluate(self) -> dict[str, Any]:
        """Metrics of the current model (main process only); may nest ``{split: {name: v}}``."""
        raise NotImplementedError

    def model_payload(self) -> dict[str, Any]:
        """``model_config``, ``state_dict`` and whatever else the model's loader reads
        (``vocabulary``, ``extra``)."""
        raise NotImplementedError

    def run_state(self) -> dict[str, Any]:
        """The subclass's own random streams (samplers, generators) for exact resumption."""
        return {}

    def load_run_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`run_state` returned (same-seed resumption only)."""

    def check_resumable(self, payload: dict[str, Any], path: Path) -> None:
        """Raise :class:`DataError` when ``payload`` cannot continue in this run."""

    # ---------------------------------------------------------------- the spine
    def local_slice(self, global_batch: int) -> slice:
        """This process's slice of a global batch (every process draws the same one)."""
        return self.context.shard(global_batch)

    def optimize(self, parts: dict[str, torch.Tensor]) -> None:
        """One optimizer step on the sum of the loss parts (gradients averaged over the
        processes, clipped to ``config.grad_clip``), then the schedule's step."""
        self.optimizer.zero_grad(set_to_none=True)
        sum(parts.values()).backward()
        modules = self.trained_modules()
        for module in modules:
            average_gradients(module, self.context)
        parameters = [p for module in modules for p in module.parameters()]
        torch.nn.utils.clip_grad_norm_(parameters, self.config.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()

    def train(self, progress: bool = True, stop_at: int | None = None) -> dict[str, Any] | None:
        """Run to :attr:`total_steps`; returns the best (or last) evaluation row.

        ``stop_at`` ends the run after that many steps with ``latest.pt`` saved (as if
        killed right after a checkpoint) and returns None.
        """
        if self.context.is_main:
            self.remove_killed_saves()
        log = RunLog(self.out_dir, self.context.is_main, start_iteration=self.step)
        bar = tqdm(
            total=self.total_steps,
            initial=self.step,
            desc=self.kind,
            disable=not (progress and self.context.is_main),
        )
        start = time.perf_counter()
        try:
            while self.step < self.total_steps:
                tick = time.perf_counter()
                stats = self.train_step()
                self.step += 1
                self.seconds += time.perf_counter() - tick
                bar.update(1)
                if self.step % self.config.log_every == 0:
                    stats["seconds"] = time.perf_counter() - start
                    log.write(self.step, {f"train/{k}": v for k, v in stats.items()})
                    loss = sum(v for k, v in stats.items() if k.endswith("loss"))
                    bar.set_postfix(loss=f"{loss:.3f}")
                if self.step % self.eval_every == 0 or self.step == self.total_steps:
                    self.evaluate_and_save(log)
                elif self.step == stop_at or (
                    self.checkpoint_every and self.step % self.checkpoint_every == 0
                ):
                    self.save_latest()
                if stop_at is not None and self.step >= stop_at:
                    return None
        finally:
            bar.close()
            log.close()
        return self.best_metrics()

    def evaluate_and_save(self, log: RunLog) -> None:
        """Evaluate, log, and save ``latest.pt`` (and ``best.pt`` when the score improved)."""
        if not self.context.is_main:
            return
        results = self.evaluate()
        flat = flatten_metrics(results)
        log.write(self.step, flat)
        self.history.append({"iteration": self.step, **flat})
        if self.select_metric is not None:
            score = flat.get(self.select_metric, -math.inf)
            if score > self.best_score:
                self.best_score = score
                self.save(self.out_dir / BEST_CHECKPOINT, results)
        self.save(self.out_dir / LATEST_CHECKPOINT, results)

    def save_latest(self) -> None:
        """``latest.pt`` between evaluations (metrics of the last evaluation)."""
        if self.context.is_main:
            metrics = self.history[-1] if self.history else {}
            self.save(self.out_dir / LATEST_CHECKPOINT, metrics)

    def remove_killed_saves(self) -> None:
        """Delete the temporary files of checkpoint saves that a killed run left in the run
        folder (as large as a checkpoint each; never read)."""
        for name in (LATEST_CHECKPOINT, BEST_CHECKPOINT):
            for temp in self.out_dir.glob(KILLED_SAVE_PATTERN.format(name=glob.escape(name))):
                temp.unlink(missing_ok=True)

    def best_metrics(self) -> dict[str, Any]:
        """The evaluation row with the best :attr:`select_metric` (the last without one)."""
        if not self.history:
            return {}
        if self.select_metric is None:
            return self.history[-1]
        return max(self.history, key=lambda row: row.get(self.select_metric, -math.inf))

    # ------------------------------------------------------------- checkpoints
    def save(self, path: Path, metrics: dict[str, Any]) -> None:
        """A resumable checkpoint of the run (see :mod:`.checkpoint`)."""
        payload = {
            "kind": self.kind,
            "train_config": dataclasses.asdict(self.config),
            "step": self.step,
            "metrics": metrics,
            **self.model_payload(),
            "optimizer": self.optimizer.state_dict(),
            "rng": {
                "global": capture_rng(),
                "best_score": self.best_score,
                "history": self.history,
                "seconds": self.seconds,
                **self.run_state(),
            },
        }
        if self.scheduler is not None:
            payload["scheduler"] = self.scheduler.state_dict()
        if self.auxiliary is not None:
            payload["auxiliary"] = self.auxiliary.state_dict()
        save_checkpoint(path, payload)

    def resume(self, path: str | os.PathLike[str] | None = None) -> None:
        """Continue from ``path`` (default: ``out_dir/latest.pt``).

        Under the checkpoint's seed the run continues exactly; under another seed (a seed
        study of one stage) weights, optimizer and history carry over and the random
        streams are the new seed's. Without a schedule the configured learning rate
        applies from the next step (a warm start may change it).
        """
        path = Path(path) if path is not None else self.out_dir / LATEST_CHECKPOINT
        payload = load_checkpoint(path, kind=self.kind)
        self.check_resumable(payload, path)
        if "optimizer" not in payload or "rng" not in payload:
            raise DataError(path, "has no training state to resume (an exported checkpoint?)")
        try:
            self.model.load_state_dict(payload["state_dict"])
            self.optimizer.load_state_dict(payload["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(payload["scheduler"])
            if self.auxiliary is not None:
                self.auxiliary.load_state_dict(payload["auxiliary"])
        except (RuntimeError, ValueError, KeyError) as err:
            raise DataError(path, f"does not match this run ({type(err).__name__})") from None
        if self.scheduler is None:
            for group in self.optimizer.param_groups:
                group["lr"] = self.config.learning_rate
        self.step = int(payload["step"])
        state = payload["rng"]
        self.best_score = float(state["best_score"])
        self.history = list(state["history"])
        self.seconds = float(state.get("seconds", 0.0))
        if payload["train_config"].get("seed") != self.config.seed:
            torch.manual_seed(self.config.seed)  # the fresh streams built from the new seed
            return
        restore_rng(state["global"])
        self.load_run_state(state)


def run_training(
    build: Callable[[DistributedContext], Trainer], config: Any, progress: bool = True
) -> int:
    """What every training command does: join the process group (torchrun) on the
    configured device, build the trainer, train, print the best evaluation row (rank 0)."""
    context = init_distributed(config.device)
    try:
        best = build(context).train(progress=progress)
    finally:
        shutdown(context)
    if context.is_main:
        print(json.dumps(best, indent=2))
    return 0
