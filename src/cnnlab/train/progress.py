"""Keras's progress bar: live on a terminal, exactly one line per epoch otherwise.

    Epoch 3/10 469/469 [==============================] - 12s 26ms/step - loss: 0.0430 - ...

`fit(verbose=2)` prints Keras's two lines per epoch and no bar:

    Epoch 3/10
    469/469 - 12s - 26ms/step - loss: 0.0430 - ...

Data of unknown length (a generator without `steps_per_epoch`) shows `12/Unknown` until
its first epoch ends, as Keras does.
"""
from __future__ import annotations

import sys
import time

from .callbacks import Callback


def format_value(v: float) -> str:
    """Keras's progress-bar number format: 4 decimals, scientific when tiny."""
    return f"{v:.4e}" if v != 0 and abs(v) < 1e-3 else f"{v:.4f}"


def format_logs(logs: dict) -> str:
    return "".join(f" - {k}: {format_value(v)}" for k, v in logs.items())


def format_time(seconds: float, steps: int) -> str:
    per = seconds / max(steps, 1)
    per_s = f"{per * 1e3:.0f}ms/step" if per >= 1e-3 else f"{per * 1e6:.0f}us/step"
    return f"{seconds:.0f}s {per_s}"


def bar(done: int, total: int, width: int = 30) -> str:
    if done >= total:
        return "[" + "=" * width + "]"
    filled = int(width * done / max(total, 1))
    return "[" + "=" * max(filled - 1, 0) + (">" if filled else "") + "." * (width - filled) + "]"


class ProgressBar(Callback):
    """Keras's progress bar on a terminal; exactly one line per epoch otherwise."""

    def __init__(self, stream=None, live: bool | None = None, refresh_s: float = 0.2,
                 per_epoch: bool = False):
        super().__init__()
        self.stream = stream or sys.stdout
        self.per_epoch = per_epoch  # verbose=2: Keras's two lines per epoch, never a bar
        self.live = False if per_epoch else (self.stream.isatty() if live is None else live)
        self.refresh_s = refresh_s

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = self.last = time.perf_counter()
        self.epoch = epoch
        if self.live:
            self.stream.write(f"Epoch {epoch + 1}/{self.params['epochs']}\n")

    def on_train_batch_end(self, batch, logs=None):
        if not self.live:
            return
        now = time.perf_counter()
        steps = self.params["steps"]
        if now - self.last < self.refresh_s and (steps is None or batch + 1 < steps):
            return
        self.last = now
        done = batch + 1
        logs = format_logs(self.trainer.position.sums.logs())
        if steps is None:  # Keras's count for data of unknown length
            line = f"\r{done:>7}/Unknown {format_time(now - self.t0, done)}{logs}"
        else:
            eta = (now - self.t0) / done * (steps - done)
            width = len(str(steps))
            line = f"\r{done:>{width}}/{steps} {bar(done, steps)} - ETA: {eta:.0f}s{logs}"
        self.stream.write(line + "\033[K")
        self.stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        steps = self.params["steps"]
        if self.per_epoch:
            seconds = time.perf_counter() - self.t0
            per = format_time(seconds, steps).split(" ")[1]
            self.stream.write(f"Epoch {epoch + 1}/{self.params['epochs']}\n{steps}/{steps} - "
                              f"{seconds:.0f}s - {per}{format_logs(logs or {})}\n")
            self.stream.flush()
            return
        text = (f"{steps}/{steps} {bar(steps, steps)} - "
                f"{format_time(time.perf_counter() - self.t0, steps)}{format_logs(logs or {})}")
        if self.live:
            self.stream.write("\r" + text + "\033[K\n")
        else:
            self.stream.write(f"Epoch {epoch + 1}/{self.params['epochs']} {text}\n")
        self.stream.flush()
