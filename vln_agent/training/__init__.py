"""The training spine every model's trainer extends (habitat-lab's ``BaseTrainer`` habit).

- :mod:`.trainer` — :class:`Trainer`: seeding, device, run folder, progress bar, CSV +
  TensorBoard logs, evaluation every N steps, best-by-a-named-metric and latest
  checkpoints, exact resume (same seed) and warm start (another seed), torchrun.
- :mod:`.checkpoint` — the one self-describing checkpoint format, written atomically.
- :mod:`.settings` — run settings from JSON recipes, and command-line flags generated
  from the settings dataclasses.
- :mod:`.runlog` — ``log.csv`` and TensorBoard scalars.
- :mod:`.distributed` — ``torch.distributed`` data parallel (gloo / nccl).
"""

from __future__ import annotations

from vln_agent.training.checkpoint import export_checkpoint, load_checkpoint, save_checkpoint
from vln_agent.training.trainer import Trainer, run_training

__all__ = ["Trainer", "export_checkpoint", "load_checkpoint", "run_training", "save_checkpoint"]
