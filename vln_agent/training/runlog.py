"""Training logs: a CSV file (one row per logged iteration) and TensorBoard scalars."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from envs.fileio import atomic_write, make_output_dir


class RunLog:
    """Append ``{name: value}`` rows to ``RUN_DIR/log.csv`` and ``RUN_DIR/tensorboard``.

    The CSV is rewritten on every write so that it stays a valid table when new columns
    appear; a resumed run keeps the rows up to ``start_iteration``. Disabled on non-main
    processes.
    """

    def __init__(
        self, run_dir: str | os.PathLike[str], enabled: bool = True, start_iteration: int = 0
    ) -> None:
        self.enabled = enabled
        self.path = Path(run_dir) / "log.csv"
        self.rows: list[dict[str, float]] = []
        self.columns: list[str] = ["iteration"]
        self._writer = None
        if not enabled:
            return
        make_output_dir(self.path.parent)
        if self.path.is_file() and start_iteration > 0:  # resuming: keep rows up to the start
            with open(self.path, newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    values = {k: float(v) for k, v in row.items() if v not in ("", None)}
                    if values.get("iteration", 0.0) <= start_iteration:
                        self.rows.append(values)
            for row in self.rows:
                self._add_columns(row)
        from torch.utils.tensorboard import SummaryWriter

        # a resumed run drops the points a killed run logged after its last checkpoint
        purge = start_iteration + 1 if start_iteration > 0 else None
        self._writer = SummaryWriter(str(Path(run_dir) / "tensorboard"), purge_step=purge)

    def _add_columns(self, row: dict[str, float]) -> bool:
        new = [k for k in row if k not in self.columns]
        self.columns.extend(new)
        return bool(new)

    def write(self, iteration: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        row = {"iteration": float(iteration), **{k: float(v) for k, v in values.items()}}
        self.rows.append(row)
        self._add_columns(row)
        with atomic_write(self.path, "w") as f:  # a kill mid-write keeps the previous table
            writer = csv.DictWriter(f, fieldnames=self.columns, lineterminator="\n")
            writer.writeheader()
            for r in self.rows:
                writer.writerow(r)
        for name, value in values.items():
            self._writer.add_scalar(name, value, iteration)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
