"""The training log: running means of the loss parts between validations, ``log.csv`` (one row per validation) and
TensorBoard events (when ``torch.utils.tensorboard`` imports; tensorboard is not a dependency)."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from widefield3d.io import atomic_output

LOG_NAME = "log.csv"
LOSS_PARTS = ("loss_g", "loss_d", "g_adv", "g_pixel", "g_extra", "d_real", "d_fake")
"""Running means logged between validations: total G and D losses, the G loss terms (unweighted adversarial and
pixel terms, the already-weighted extra term) and the mean discriminator scores on real and fake batches."""
LOG_COLUMNS = ("iteration", "seconds", *LOSS_PARTS, "lr", "lr_d", "val_metric", "best")


class RunningMeans:
    """Sums and counts of the loss parts since the last validation (``state`` restores a checkpoint's)."""

    def __init__(self, state: dict | None = None):
        self.reset()
        if state:
            self.sums.update(state["sums"])
            self.counts.update(state["counts"])

    def reset(self) -> None:
        self.sums = dict.fromkeys(LOSS_PARTS, 0.0)
        self.counts = dict.fromkeys(LOSS_PARTS, 0)

    def add(self, **values: float) -> None:
        for key, value in values.items():
            self.sums[key] += value
            self.counts[key] += 1

    def mean(self, key: str) -> float:
        return self.sums[key] / self.counts[key] if self.counts[key] else math.nan

    def state(self) -> dict:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}


class TrainingLog:
    """``out_dir/log.csv`` and the TensorBoard events of one run: :meth:`open`, :meth:`write` rows, :meth:`close`."""

    def __init__(self, out_dir: Path):
        self.out_dir, self.path = out_dir, out_dir / LOG_NAME
        self._events: Any = None

    def open(self, iteration: int, resumed: bool) -> None:
        """Start a fresh ``log.csv``, or (``resumed``) keep its rows up to ``iteration``, the checkpoint's; events
        after ``iteration`` are dropped from TensorBoard's view."""
        rows = []
        if resumed and self.path.is_file():
            with self.path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["iteration"]) <= iteration]
        with atomic_output(self.path) as tmp, tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        self._events = SummaryWriter(str(self.out_dir), purge_step=iteration)

    def write(self, row: dict) -> None:
        """Append one row of :data:`LOG_COLUMNS`; its finite float values also go to TensorBoard."""
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, fieldnames=LOG_COLUMNS).writerow(row)
        if self._events is not None:
            for key, v in row.items():
                if key != "iteration" and isinstance(v, float) and math.isfinite(v):
                    self._events.add_scalar(key, v, row["iteration"])

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
