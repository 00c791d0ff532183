"""Which instructions make up each training batch: shuffled epochs, resumable exactly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


class EpisodeSampler:
    """Global batches of instruction ids, each instruction once per epoch (reshuffled).

    Every process of a distributed job builds the same sampler with the same seed and so
    draws the same global batch; each trains on its own slice of it.
    """

    def __init__(self, instr_ids: Sequence[str], batch_size: int, seed: int) -> None:
        if not instr_ids:
            raise ValueError("no instructions to sample from")
        self.instr_ids = list(instr_ids)
        self.batch_size = batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(self.instr_ids))
        self.position = 0
        self.epoch = 0

    def next_batch(self) -> list[str]:
        picked: list[int] = []
        while len(picked) < self.batch_size:
            if self.position == len(self.order):
                self.order = self.rng.permutation(len(self.instr_ids))
                self.position = 0
                self.epoch += 1
            take = self.order[self.position : self.position + self.batch_size - len(picked)]
            picked.extend(int(i) for i in take)
            self.position += len(take)
        return [self.instr_ids[i] for i in picked]

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self.rng.bit_generator.state,
            "order": self.order.tolist(),
            "position": self.position,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order = np.asarray(state["order"], dtype=np.int64)
        self.position = int(state["position"])
        self.epoch = int(state["epoch"])
