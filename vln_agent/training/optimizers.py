"""Several optimizers stepped as one (:class:`OptimizerChain`).

CLIP-ViL pretraining trains its CLIP backbone with SGD while the transformer uses AdamW.
The spine (:class:`~vln_agent.training.Trainer`) drives one optimizer; a chain is that one
optimizer: ``zero_grad``, ``step``, ``state_dict`` / ``load_state_dict`` (one entry per
optimizer, so a resumed run continues each exactly) and ``param_groups`` (every
optimizer's groups, in order: setting a group's ``lr`` sets it in its optimizer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


class OptimizerChain:
    """Optimizers over disjoint parameters, stepped together."""

    def __init__(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        if not optimizers:
            raise ValueError("an optimizer chain needs at least one optimizer")
        self.optimizers = list(optimizers)
        seen: set[int] = set()
        for optimizer in self.optimizers:
            for group in optimizer.param_groups:
                for param in group["params"]:
                    if id(param) in seen:
                        raise ValueError("a parameter is in two optimizers of the chain")
                    seen.add(id(param))

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        """Every optimizer's parameter groups, in chain order (the dicts themselves)."""
        return [group for optimizer in self.optimizers for group in optimizer.param_groups]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.optimizers:
            optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        for optimizer in self.optimizers:
            optimizer.step()

    def add_param_group(self, group: dict[str, Any]) -> None:
        """A new group in the first optimizer (the main one)."""
        self.optimizers[0].add_param_group(group)

    def state_dict(self) -> dict[str, Any]:
        return {"chain": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`; a state of another chain length is a ValueError."""
        states = state.get("chain") if isinstance(state, dict) else None
        if not isinstance(states, list) or len(states) != len(self.optimizers):
            raise ValueError(f"an optimizer state of another chain (expected {len(self)} parts)")
        for optimizer, part in zip(self.optimizers, states, strict=True):
            optimizer.load_state_dict(part)

    def __len__(self) -> int:
        return len(self.optimizers)
