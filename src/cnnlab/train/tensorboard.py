"""Keras's `callbacks.TensorBoard`: event files TensorBoard opens (`tensorboard --logdir runs`).

    >>> model.fit(x, y, validation_data=(xv, yv),
    ...           callbacks=[TensorBoard(log_dir="logs", histogram_freq=1)])

The layout and names are Keras's: `log_dir/train/` holds `epoch_loss`,
`epoch_accuracy`, ..., `epoch_learning_rate` at step = epoch (0-based), and
`batch_<metric>` at step = the global batch number (1-based) when
`update_freq` is "batch" or N; `log_dir/validation/` holds the `val_` metrics
without their prefix (`epoch_loss`, `epoch_accuracy`). `histogram_freq=N`
writes each weight's histogram every N epochs as `<layer>/<weight>/histogram`
(Keras writes the bare weight name, `kernel/histogram`, which collides across
layers). Written with torch's `SummaryWriter`; TensorBoard's graph, profiler
and embeddings are not written (the graph is optional in the issue; Keras
writes it only for TensorFlow's functions).

Resuming: the global batch number travels in the checkpoint, so a resumed run
continues the curves at the right steps (TensorBoard reads every event file in
a folder; the resumed run writes a new one next to the old).
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .callbacks import Callback


def _summary_writer():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:  # tensorboard is pinned in requirements.lock; a bare install
        raise ConfigError("TensorBoard needs the `tensorboard` package. Expected it installed "
                          f"(pip install -r requirements.lock). Received: {err}.") from None
    return SummaryWriter


class TensorBoard(Callback):
    """Keras 3's `TensorBoard(log_dir="logs", histogram_freq=0, update_freq="epoch", ...)`."""

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0,
                 embeddings_freq=0, embeddings_metadata=None):
        super().__init__()
        if not isinstance(log_dir, (str, Path)) or not str(log_dir):
            raise ConfigError(f"Invalid value for argument `log_dir`. Expected a folder path. "
                              f"Received log_dir={log_dir!r}.")
        if isinstance(histogram_freq, bool) or not isinstance(histogram_freq, int) or \
                histogram_freq < 0:
            raise ConfigError("Invalid value for argument `histogram_freq`. Expected an integer "
                              f">= 0. Received histogram_freq={histogram_freq!r}.")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (isinstance(update_freq, bool) or
                                       not isinstance(update_freq, int) or update_freq <= 0):
            raise ConfigError("Invalid value for argument `update_freq`. Expected 'epoch', "
                              f"'batch' or a positive integer. Received update_freq={update_freq!r}.")
        for name, value in (("profile_batch", profile_batch), ("embeddings_freq", embeddings_freq)):
            if value not in (0, None):  # accepted for Keras's signature; nothing to profile/embed
                raise ConfigError(f"Invalid value for argument `{name}`. Expected 0: cnnlab's "
                                  f"TensorBoard writes scalars and histograms only. Received "
                                  f"{name}={value!r}.")
        self.log_dir, self.histogram_freq = Path(log_dir), histogram_freq
        self.update_freq, self.write_steps_per_second = update_freq, write_steps_per_second
        self.write_graph, self.write_images = write_graph, write_images
        self._writer_class = _summary_writer()
        self._writers: dict = {}
        self._global_train_batch = 0

    # -- writers ---------------------------------------------------------------------
    def _writer(self, which: str):
        if which not in self._writers:
            self._writers[which] = self._writer_class(log_dir=str(self.log_dir / which))
        return self._writers[which]

    def _close(self):
        for w in self._writers.values():
            w.close()
        self._writers = {}

    # -- resume ----------------------------------------------------------------------
    def get_state(self) -> dict:
        return {"global_train_batch": self._global_train_batch}

    # -- events ----------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        state = self._take_resume_state()
        self._global_train_batch = state["global_train_batch"] if state else 0

    def on_train_end(self, logs=None):
        self._close()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = (time.perf_counter(), self._global_train_batch)

    def on_train_batch_end(self, batch, logs=None):
        self._global_train_batch += 1
        if self.update_freq == "epoch" or self._global_train_batch % self.update_freq:
            return
        if not logs and self.trainer is not None:
            # the loop keeps the epoch's running sums on the device and hands no batch logs
            # (a host sync per step); Keras's batch logs are these running means
            logs = self.trainer.position.sums.logs()
        w = self._writer("train")
        for name, value in (logs or {}).items():
            if _scalar(value):
                w.add_scalar("batch_" + name, float(value), self._global_train_batch)

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        train = {k: v for k, v in logs.items() if not k.startswith("val_")}
        val = {k[4:]: v for k, v in logs.items() if k.startswith("val_")}
        if self.model is not None and getattr(self.model, "optimizer", None) is not None:
            train["learning_rate"] = float(self.model.optimizer.learning_rate)
        if self.write_steps_per_second:
            t0, b0 = self._epoch_start
            train["steps_per_second"] = (self._global_train_batch - b0) / max(
                time.perf_counter() - t0, 1e-9)
        for which, values in (("train", train), ("validation", val)):
            values = {k: v for k, v in values.items() if _scalar(v)}
            if values:
                w = self._writer(which)
                for name, value in values.items():
                    w.add_scalar("epoch_" + name, float(value), epoch)
                w.flush()  # the curves appear in TensorBoard as the run goes
        if self.histogram_freq and epoch % self.histogram_freq == 0:
            self._log_weights(epoch)

    def _log_weights(self, epoch):
        w = self._writer("train")
        for layer in self.model.layers:
            for weight in layer.weights:
                w.add_histogram(f"{weight.path}/histogram", np.asarray(weight.numpy()), epoch)
        w.flush()


def _scalar(value) -> bool:
    """A number (NaN and inf included, written as Keras writes them), not a string or array."""
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
