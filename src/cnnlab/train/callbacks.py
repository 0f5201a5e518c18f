"""Callbacks with Keras's names and semantics, around the plain loop.

    >>> model.fit(x, y, callbacks=[EarlyStopping(monitor="val_loss", patience=2)])

Each callback gets `self.model` (the Keras-style model: `stop_training`,
`get_weights`, `set_weights`, `optimizer.learning_rate`), `self.params`
(epochs, steps) and `self.trainer` (the loop itself).

Resuming: a callback with state (EarlyStopping's patience counter, CSVLogger's
file position, ...) returns it from `get_state()`; the checkpoint stores it and
a resumed run hands it back with `set_state()` before `on_train_begin`, so a
resumed run behaves exactly as if it had never stopped. Arrays in a state go
under the key "arrays" (a list of numpy arrays), stored as tensors.
"""
from __future__ import annotations

import csv
import inspect
import math
import os
import sys
from pathlib import Path
from typing import Callable

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

    # -- resume: what a resumed run needs to continue exactly --------------------
    def get_state(self) -> dict:
        """JSON-able state (plus optional "arrays": list of numpy arrays); {} if none."""
        return {}

    def set_state(self, state: dict) -> None:
        """Hand back `get_state()`'s value; applied at the next `on_train_begin`."""
        self._resume_state = state

    def _take_resume_state(self) -> dict | None:
        state = self.__dict__.pop("_resume_state", None)
        return state or None

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
        # one dict shared by every callback: a generator's step count, learnt in its first
        # epoch, reaches them all (Keras's progress bar shows it from the second epoch on)
        self.params = params = {"epochs": trainer.epochs, "steps": trainer.steps_per_epoch(),
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


# -- argument checks (callbacks come from YAML too: wrong types fail here, not mid-run) --

def _invalid(arg: str, expected: str, value) -> ConfigError:
    return ConfigError(f"Invalid value for argument `{arg}`. Expected {expected}. "
                       f"Received {arg}={value!r}.")


def _number(value, arg: str, *, low: float | None = None, optional: bool = False) -> float | None:
    if optional and value is None:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (low is not None and value < low):
        what = "a finite number" + (f" >= {low:g}" if low is not None else "")
        raise _invalid(arg, what + (" or null" if optional else ""), value)
    return float(value)


def _count(value, arg: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid(arg, "an integer >= 0", value)
    return value


def _flag(value, arg: str) -> bool:
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise _invalid(arg, "true or false", value)
    return bool(value)


def _text(value, arg: str) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(arg, "a non-empty string", value)
    return value


def _path_text(value):
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _mode(mode: str, monitor: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ConfigError(f"Invalid value for argument `mode`. Expected one of 'auto', 'min', "
                          f"'max'. Received mode={mode!r}.")
    if mode == "auto":
        return "max" if ("acc" in monitor or monitor.startswith("fmeasure")) else "min"
    return mode


def _better(mode: str, value: float, best: float, min_delta: float) -> bool:
    return value < best - min_delta if mode == "min" else value > best + min_delta


class _Monitoring(Callback):
    """Reads `monitor` from the epoch's logs; warns once (as Keras does) when it is absent."""

    def _monitored(self, logs) -> float | None:
        value = (logs or {}).get(self.monitor)
        if value is None and logs and not getattr(self, "_warned", False):
            self._warned = True
            print(f"cnnlab: warning: {type(self).__name__} is conditioned on `{self.monitor}`, "
                  f"which is not in the logs. Available: {', '.join(sorted(logs))}.",
                  file=sys.stderr)
        return value


# -- Keras's callbacks ---------------------------------------------------------

class EarlyStopping(_Monitoring):
    """Stops when `monitor` has not improved by `min_delta` for `patience` epochs (tf.keras 2)."""

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__()
        self.monitor = _text(monitor, "monitor")
        self.min_delta = abs(_number(min_delta, "min_delta"))
        self.patience = _count(patience, "patience")
        self.mode = _mode(mode, monitor)
        self.baseline = _number(baseline, "baseline", optional=True)
        self.restore_best_weights = _flag(restore_best_weights, "restore_best_weights")
        self.start_from_epoch = _count(start_from_epoch, "start_from_epoch")
        self.verbose = _flag(verbose, "verbose")
        self.stopped_epoch = 0

    def on_train_begin(self, logs=None):
        state = self._take_resume_state()
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None
        if state:
            self.wait, self.best, self.best_epoch = state["wait"], state["best"], state["best_epoch"]
            self.stopped_epoch = state["stopped_epoch"]
            self.best_weights = state["arrays"] if state.get("has_weights") else None

    def get_state(self) -> dict:
        return {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch,
                "stopped_epoch": self.stopped_epoch, "has_weights": self.best_weights is not None,
                "arrays": list(self.best_weights or [])}

    def on_epoch_end(self, epoch, logs=None):
        value = self._monitored(logs)
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
                if self.verbose:
                    print(f"Restoring model weights from the end of the best epoch: "
                          f"{self.best_epoch + 1}.")
                self.model.set_weights(self.best_weights)

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")


class TerminateOnNaN(Callback):
    """Stops at the first NaN/inf loss, naming the epoch and step; checkpoints stop too."""

    def on_train_batch_end(self, batch, logs=None):
        loss = self.trainer.last_loss
        if loss is not None and not math.isfinite(float(loss)):
            pos = self.trainer.position
            self.trainer.stop_reason = "nan"
            self.trainer.nan_message = (f"Loss became {float(loss)} at epoch {pos.epoch + 1}, "
                                        f"step {batch + 1}: training stopped (TerminateOnNaN).")
            self.model.stop_training = True


class ReduceLROnPlateau(_Monitoring):
    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0):
        super().__init__()
        factor = _number(factor, "factor", low=0)
        if factor >= 1.0:
            raise ConfigError(f"Invalid value for argument `factor`. Expected a number below 1. "
                              f"Received factor={factor!r}.")
        self.monitor, self.factor = _text(monitor, "monitor"), factor
        self.patience = _count(patience, "patience")
        self.mode = _mode(mode, monitor)
        self.min_delta = _number(min_delta, "min_delta")
        self.cooldown = _count(cooldown, "cooldown")
        self.min_lr = _number(min_lr, "min_lr", low=0)
        self.verbose = _flag(verbose, "verbose")

    def on_train_begin(self, logs=None):
        state = self._take_resume_state() or {}
        self.wait = state.get("wait", 0)
        self.cooldown_counter = state.get("cooldown_counter", 0)
        self.best = state.get("best", math.inf if self.mode == "min" else -math.inf)

    def get_state(self) -> dict:
        return {"wait": self.wait, "cooldown_counter": self.cooldown_counter, "best": self.best}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        value = self._monitored(logs)
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


def _step_schedule(table) -> Callable[[int, float], float]:
    """{epoch: lr} from YAML -> schedule(epoch, lr): the lr of the last key <= epoch."""
    if not isinstance(table, dict) or not table:
        raise _invalid("schedule", "a function schedule(epoch, lr) or, in YAML, a mapping "
                       "{epoch: learning_rate} such as {0: 0.001, 5: 0.0001}", table)
    steps = []
    for epoch, lr in table.items():
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise _invalid("schedule", "epochs (0-based) as integers >= 0", epoch)
        if _number(lr, f"schedule[{epoch}]") <= 0:
            raise _invalid(f"schedule[{epoch}]", "a strictly positive learning rate", lr)
        steps.append((epoch, float(lr)))
    steps.sort()

    def schedule(epoch, lr):
        for start, value in steps:
            if start <= epoch:
                lr = value
        return lr
    schedule.table = dict(steps)
    return schedule


class LearningRateScheduler(Callback):
    """schedule(epoch, lr) -> new lr, applied at the start of each epoch (0-based epoch).

    In YAML the schedule is a table {epoch: lr}: from that epoch on, that rate.
    A run resumed in the middle of an epoch keeps the epoch's rate (it is in the
    checkpoint) instead of applying the schedule twice.
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        if not callable(schedule):
            schedule = _step_schedule(schedule)
        self.schedule, self.verbose = schedule, _flag(verbose, "verbose")

    def on_epoch_begin(self, epoch, logs=None):
        if self.trainer is not None and self.trainer.position.step > 0:
            return  # resumed mid-epoch: this epoch's rate was applied before the checkpoint
        lr = self.schedule(epoch, float(self.model.optimizer.learning_rate))
        ok = isinstance(lr, (int, float, np.floating)) and not isinstance(lr, bool)
        if not ok or not math.isfinite(lr) or lr <= 0:
            raise ConfigError(f"The learning-rate schedule returned {lr!r} at epoch {epoch + 1}. "
                              "Expected a strictly positive number.")
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting learning rate to {float(lr)}.")
        self.model.optimizer.learning_rate = float(lr)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(self.model.optimizer.learning_rate)


class CSVLogger(Callback):
    """One row per epoch (Keras's columns: epoch, then the logs' keys sorted).

    A resumed run truncates the file back to where it was at the checkpoint,
    so rows written after it (and then redone) appear once.
    """

    def __init__(self, filename, separator=",", append=False):
        super().__init__()
        self.filename = _text(_path_text(filename), "filename")
        if not isinstance(separator, str) or len(separator) != 1:
            raise _invalid("separator", "a single character", separator)
        self.sep, self.append = separator, _flag(append, "append")
        self.keys = None
        self.file = None
        self.offset = None  # bytes of the file that hold finished epochs

    def on_train_begin(self, logs=None):
        from ..io import disk_error
        state = self._take_resume_state()
        self.writer = None
        try:
            if state and state.get("offset") is not None and os.path.isfile(self.filename):
                self.file = open(self.filename, "r+", newline="")
                self.file.truncate(state["offset"])
                self.file.seek(state["offset"])
                self.keys = state.get("keys")
                if self.keys is not None:
                    self._make_writer()
            else:
                self.file = open(self.filename, "a" if self.append else "w", newline="")
            self.offset = self.file.tell()
        except OSError as err:
            raise disk_error(self.filename, err) from None

    def _make_writer(self):
        self.writer = csv.DictWriter(self.file, ["epoch", *self.keys], delimiter=self.sep)

    def get_state(self) -> dict:
        return {} if self.offset is None else {"offset": self.offset, "keys": self.keys}

    def on_epoch_end(self, epoch, logs=None):
        from ..io import disk_error
        logs = logs or {}
        try:
            if self.writer is None:
                self.keys = sorted(logs)
                self._make_writer()
                if not self.append or self.file.tell() == 0:
                    self.writer.writeheader()
            self.writer.writerow({"epoch": epoch, **{k: logs.get(k, "NA") for k in self.keys}})
            self.file.flush()
            self.offset = self.file.tell()
        except OSError as err:
            raise disk_error(self.filename, err) from None

    def on_train_end(self, logs=None):
        if self.file is not None:
            self.file.close()


_FILEPATH_KEYS = {"epoch": 1, "loss": 0.0, "accuracy": 0.0, "val_loss": 0.0,
                  "val_accuracy": 0.0, "learning_rate": 0.0}


class ModelCheckpoint(_Monitoring):
    """Saves the model (`.keras`) or its weights at each epoch end, or when `monitor` improves.

    `filepath` may hold Keras's fields: "w-{epoch:02d}-{val_loss:.2f}.safetensors". Its
    suffix picks the file (cnnlab.saving): `.keras` the whole model, as Keras's default
    save_weights_only=False; `.weights.h5`, `.h5`, `.safetensors` the weights. When
    save_weights_only is not given it follows the suffix.
    """

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False, mode="auto",
                 save_weights_only=None):
        super().__init__()
        self.filepath = _text(_path_text(filepath), "filepath")
        try:
            self.filepath.format(**_FILEPATH_KEYS)
        except (KeyError, IndexError, ValueError) as err:
            raise _invalid("filepath", "a path whose {fields} are among "
                           f"{', '.join(_FILEPATH_KEYS)} ({type(err).__name__}: {err})",
                           filepath) from None
        if save_weights_only is None:
            save_weights_only = not self.filepath.endswith(".keras")
        self.save_weights_only = _flag(save_weights_only, "save_weights_only")
        if not self.save_weights_only and not self.filepath.endswith(".keras"):
            raise _invalid("filepath", "a path ending in `.keras` (Keras's model file) when "
                           "save_weights_only=False", filepath)
        if self.save_weights_only and not self.filepath.endswith(
                (".weights.h5", ".h5", ".safetensors")):
            raise _invalid("filepath", "a path ending in `.weights.h5`, `.h5` or `.safetensors` "
                           "when save_weights_only=True", filepath)
        self.monitor, self.verbose = _text(monitor, "monitor"), _flag(verbose, "verbose")
        self.save_best_only, self.mode = _flag(save_best_only, "save_best_only"), _mode(mode, monitor)
        self.best = math.inf if self.mode == "min" else -math.inf

    def get_state(self) -> dict:
        return {"best": self.best}

    def set_state(self, state: dict) -> None:
        self.best = state.get("best", self.best)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except KeyError as err:
            raise ConfigError(f"ModelCheckpoint: `filepath` {self.filepath!r} uses {err}, which "
                              f"is not in the logs of epoch {epoch + 1} (available: "
                              f"{', '.join(['epoch', *sorted(logs)])}).") from None
        if self.save_best_only:
            value = self._monitored(logs)
            if value is None or not _better(self.mode, value, self.best, 0):
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{value:.5f}, saving model to {path}")
            self.best = value
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


CALLBACKS = {c.__name__: c for c in (EarlyStopping, ModelCheckpoint, ReduceLROnPlateau,
                                     TerminateOnNaN, CSVLogger, LearningRateScheduler)}

from .tensorboard import TensorBoard  # noqa: E402 (it subclasses Callback, defined above)
CALLBACKS["TensorBoard"] = TensorBoard


def from_config(entries, run_dir=None) -> list[Callback]:
    """`train.callbacks` in YAML: [{EarlyStopping: {patience: 2}}, TerminateOnNaN, ...].

    Relative `filepath` / `filename` arguments are placed in `run_dir`.
    """
    if entries is not None and not isinstance(entries, list):
        raise ConfigError(f"Invalid value for `train.callbacks`. Expected a list. Received "
                          f"{entries!r}.")
    out = []
    for i, entry in enumerate(entries or []):
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ConfigError(f"train.callbacks[{i}]: expected a one-key mapping such as "
                              f"{{EarlyStopping: {{patience: 2}}}}. Received {entry!r}.")
        (name, args), = entry.items()
        if name not in CALLBACKS:
            raise ConfigError(f"train.callbacks[{i}]: " + unknown_name("callback", str(name), CALLBACKS))
        if args is not None and not isinstance(args, dict):
            raise ConfigError(f"train.callbacks[{i}] ({name}): expected a mapping of arguments. "
                              f"Received {args!r}.")
        args = dict(args or {})
        for key in ("filepath", "filename", "log_dir"):
            if isinstance(args.get(key), str) and run_dir is not None:
                args[key] = str(Path(run_dir) / args[key])
        try:
            out.append(CALLBACKS[name](**args))
        except ConfigError as err:
            raise ConfigError(f"train.callbacks[{i}] ({name}): {err}") from None
        except TypeError as err:
            valid = ", ".join(inspect.signature(CALLBACKS[name]).parameters)
            raise ConfigError(f"train.callbacks[{i}] ({name}): {err}. Expected arguments: "
                              f"{valid or 'none'}.") from None
    return out
