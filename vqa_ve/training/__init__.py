"""Training the QA fusion model on the spine (:class:`~vln_agent.training.Trainer`).

- :mod:`.trainer` — :class:`QATrainConfig` (run settings) and :class:`QATrainer`.
- :mod:`.evaluation` — predictions on a split, the official prediction files and scores
  (shared by training's evaluation and ``clipvil eval-qa``).
"""

from __future__ import annotations
