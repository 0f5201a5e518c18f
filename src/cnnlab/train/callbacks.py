"""Callbacks with Keras's names and semantics, around the plain loop.

    >>> model.fit(x, y, callbacks=[EarlyStopping(monitor="val_loss", patience=2)])

Each callback gets `self.model` (the Keras-style model: `stop_training`,
`get_weights`, `set_weights`, `optimizer.learning_rate`), `self.params`
(epochs, steps) and `self.trainer` (the loop itself).
"""
from __future__ import annotations

import csv
import math
import sys
import time

import numpy as np

from ..errors import ConfigError, unknown_name


class Callback:
    def __init__(self):
        self.model = None
        self.trainer = None
        self.params: dict = {}

    def set_model(self, model):
        self.model = model

    def set_params(self, params):
        self.params = params

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...


class CallbackList:
    """Fires each event on every callback, in order."""

    def __init__(self, callbacks, trainer, model=None):
        self.callbacks = list(callbacks)
        self.trainer = trainer
        params = {"epochs": trainer.epochs, "steps": trainer.steps_per_epoch(),
                  "batch_size": trainer.batch_size, "verbose": 1}
        for cb in self.callbacks:
            cb.trainer = trainer
            cb.set_model(model if model is not None else getattr(trainer, "api_model", trainer))
            cb.set_params(params)

    def _fire(self, event, *args):
        for cb in self.callbacks:
            getattr(cb, event)(*args)

    def on_train_begin(self):
        self._fire("on_train_begin", {})

    def on_train_end(self):
        self._fire("on_train_end", {})

    def on_epoch_begin(self, epoch):
        self._fire("on_epoch_begin", epoch, {})

    def on_epoch_end(self, epoch, logs):
        self._fire("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch):
        self._fire("on_train_batch_begin", batch, {})

    def on_train_batch_end(self, batch):
        self._fire("on_train_batch_end", batch, {})


class History(Callback):
    """Keras's History: `history.history["val_accuracy"]` is a list, one value per epoch."""

    def __init__(self, history: dict | None = None):
        super().__init__()
        self.history: dict[str, list] = history if history is not None else {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.trainer.history = self.history

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(float(v))


# -- progress ------------------------------------------------------------------

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

    def __init__(self, stream=None, live: bool | None = None, refresh_s: float = 0.2):
        super().__init__()
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
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
        if now - self.last < self.refresh_s and batch + 1 < steps:
            return
        self.last = now
        done = batch + 1
        eta = (now - self.t0) / done * (steps - done)
        width = len(str(steps))
        line = (f"\r{done:>{width}}/{steps} {bar(done, steps)} - ETA: {eta:.0f}s"
                f"{format_logs(self.trainer.position.sums.logs())}")
        self.stream.write(line + "\033[K")
        self.stream.flush()

    def on_epoch_end(self, epoch, logs=None):
        steps = self.params["steps"]
        text = (f"{steps}/{steps} {bar(steps, steps)} - "
                f"{format_time(time.perf_counter() - self.t0, steps)}{format_logs(logs or {})}")
        if self.live:
            self.stream.write("\r" + text + "\033[K\n")
        else:
            self.stream.write(f"Epoch {epoch + 1}/{self.params['epochs']} {text}\n")
        self.stream.flush()


# -- Keras's callbacks ---------------------------------------------------------

def _mode(mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"Invalid value for argument `mode`. Expected one of 'auto', 'min', "
                          f"'max'. Received mode={mode!r}.")
    if mode == "auto":
        return "max" if ("acc" in monitor or monitor.startswith("fmeasure")) else "min"
    return mode


def _better(mode: str, value: float, best: float, min_delta: float) -> bool:
    return value < best - min_delta if mode == "min" else value > best + min_delta


class EarlyStopping(Callback):
    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor, self.min_delta, self.patience = monitor, abs(min_delta), patience
        self.mode = _mode(mode, monitor)
        self.baseline, self.restore_best_weights = baseline, restore_best_weights
        self.start_from_epoch, self.verbose = start_from_epoch, verbose
        self.stopped_epoch = 0

    def on_train_begin(self, logs=None):
        self.wait = 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if _better(self.mode, value, self.best, self.min_delta):
            self.best, self.best_epoch = value, epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            if self.baseline is None or _better(self.mode, value, self.baseline, 0):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            if self.restore_best_weights and self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class TerminateOnNaN(Callback):
    """Stops at the first NaN/inf loss, naming the epoch and step."""

    def on_train_batch_end(self, batch, logs=None):
        loss = self.trainer.last_loss
        if loss is not None and not math.isfinite(float(loss)):
            pos = self.trainer.position
            self.trainer.stop_reason = "nan"
            self.trainer.nan_message = (f"Loss became {float(loss)} at epoch {pos.epoch + 1}, "
                                        f"step {batch + 1}: training stopped (TerminateOnNaN).")
            self.model.stop_training = True


class ReduceLROnPlateau(Callback):
    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        if factor >= 1.0:
            raise ConfigError(f"Invalid value for argument `factor`. Expected a number below 1. "
                              f"Received factor={factor!r}.")
        self.monitor, self.factor, self.patience = monitor, factor, patience
        self.mode = _mode(mode, monitor)
        self.min_delta, self.cooldown, self.min_lr, self.verbose = min_delta, cooldown, min_lr, verbose

    def on_train_begin(self, logs=None):
        self.wait, self.cooldown_counter = 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        value = logs.get(self.monitor)
        if value is not None:
            if self.cooldown_counter > 0:
                self.cooldown_counter -= 1
                self.wait = 0
            if _better(self.mode, value, self.best, self.min_delta):
                self.best, self.wait = value, 0
            elif self.cooldown_counter <= 0:
                self.wait += 1
                if self.wait >= self.patience:
                    old = self.model.optimizer.learning_rate
                    new = max(old * self.factor, self.min_lr)
                    if old > new:
                        self.model.optimizer.learning_rate = new
                        if self.verbose:
                            print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
                        self.cooldown_counter, self.wait = self.cooldown, 0
        logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class LearningRateScheduler(Callback):
    """schedule(epoch, lr) -> new lr, applied at the start of each epoch."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.schedule(epoch, float(self.model.optimizer.learning_rate)))
        if not math.isfinite(lr) or lr <= 0:
            raise ConfigError(f"The learning-rate schedule returned {lr} at epoch {epoch + 1}. "
                              "Expected a strictly positive number.")
        self.model.optimizer.learning_rate = lr

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class CSVLogger(Callback):
    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename, self.sep, self.append = str(filename), separator, append
        self.keys = None

    def on_train_begin(self, logs=None):
        self.file = open(self.filename, "a" if self.append else "w", newline="")
        self.writer = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.writer is None:
            self.keys = sorted(logs)
            self.writer = csv.DictWriter(self.file, ["epoch", *self.keys], delimiter=self.sep)
            if not self.append or self.file.tell() == 0:
                self.writer.writeheader()
        self.writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
        self.file.flush()

    def on_train_end(self, logs=None):
        self.file.close()


class ModelCheckpoint(Callback):
    """Saves the weights (safetensors) at each epoch end, or only when `monitor` improves."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, mode="auto",
                 save_weights_only=True):
        super().__init__()
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only, self.mode = save_best_only, _mode(mode, monitor)
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            value = logs.get(self.monitor)
            if value is None or not _better(self.mode, value, self.best, 0):
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{value:.5f}, saving model to {path}")
            self.best = value
        self.model.save_weights(path)


CALLBACKS = {c.__name__: c for c in (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau,
                                     TerminateOnNaN, CSVLogger)}


def from_config(entries, run_dir=None) -> list[Callback]:
    """`train.callbacks` in YAML: [{EarlyStopping: {patience: 2}}, TerminateOnNaN, ...]."""
    out = []
    for i, entry in enumerate(entries or []):
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ConfigError(f"train.callbacks[{i}]: expected a one-key mapping such as "
                              f"{{EarlyStopping: {{patience: 2}}}}. Received {entry!r}.")
        (name, args), = entry.items()
        if name not in CALLBACKS:
            raise ConfigError(f"train.callbacks[{i}]: " + unknown_name("callback", name, CALLBACKS))
        args = dict(args or {})
        for key in ("filepath", "filename"):
            if key in args and run_dir is not None:
                args[key] = str(run_dir / args[key])
        try:
            out.append(CALLBACKS[name](**args))
        except TypeError as err:
            raise ConfigError(f"train.callbacks[{i}] ({name}): {err}.") from None
    return out
