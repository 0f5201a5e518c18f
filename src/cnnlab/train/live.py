"""A run's live progress as a small JSON file, for whoever watches the run (the dashboard).

    runs/<name>/progress.json   {"epoch": 3, "epochs": 10, "step": 120, "steps": 469,
                                 "logs": {"loss": 0.12, "accuracy": 0.96}, "time": 1.7e9}

Written atomically at most once per `every_s` seconds during an epoch, and at every
epoch's end, so a reader never sees half a file and training never waits on the disk
for long. `epoch` counts from 1 as the progress bar does.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from ..io import atomic_write
from .callbacks import Callback

PROGRESS_FILE = "progress.json"


class LiveProgress(Callback):
    """Writes RUN/progress.json: epoch, step and the running metrics of the epoch."""

    def __init__(self, run_dir, every_s: float = 1.0):
        super().__init__()
        self.path = Path(run_dir) / PROGRESS_FILE
        self.every_s = every_s  # seconds between two writes within an epoch
        self.epoch, self.last = 0, 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.last = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        now = time.monotonic()
        if now - self.last < self.every_s:
            return
        self.last = now
        self._write(batch + 1, self.trainer.position.sums.logs())

    def on_epoch_end(self, epoch, logs=None):
        self._write(self.params.get("steps"), logs or {})

    def _write(self, step, logs: dict) -> None:
        numbers = {}
        for key, value in logs.items():
            try:  # a metric's result may be a 0-d tensor or array
                numbers[key] = float(value)
            except (TypeError, ValueError):
                continue
        atomic_write(self.path, json.dumps({
            "epoch": self.epoch + 1, "epochs": self.params.get("epochs"), "step": step,
            "steps": self.params.get("steps"), "logs": numbers, "time": time.time()}) + "\n")
