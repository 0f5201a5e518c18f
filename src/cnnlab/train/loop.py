"""The training step and the plain loop around it, firing Keras's callback events.

    >>> trainer = Trainer(net, torch_optimizer, losses.get("categorical_crossentropy"))
    >>> history = trainer.fit(train_arrays, val_arrays, epochs=10, batch_size=128,
    ...                       callbacks=[ProgressBar(...)], seed=0)

`model.fit` (train/fit_api.py) is its only caller, for the Python API and for
`cnnlab train` alike. Everything around it (progress, history, checkpoints, a
run's files, signals, resuming) is a callback. Arrays are gathered by index
(the fast path, resumable bit for bit); generators, PyDatasets and DataLoaders
come from a `BatchSource` (train/sources.py) with the same batch tensors.
Metrics are summed on the device and read only at the end of an epoch or when
the progress bar redraws, so the hot loop never waits on the host.
"""
from __future__ import annotations

import math
import random
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .. import fast
from ..errors import DataError
from ..losses import Loss, correct, smooth
from ..metrics import CategoricalAccuracy, SparseCategoricalAccuracy
from .callbacks import CallbackList
from .data import Arrays
from .device_data import resident
from .precision import Precision, global_policy
from .sources import BatchSource


def epoch_order(n: int, seed: int, epoch: int, shuffle=True, batch_size: int = 0) -> torch.Tensor:
    """The sample order of one epoch: reshuffled every epoch, reproducible from (seed, epoch).
    shuffle="batch" (Keras's): batches in order, samples shuffled within each batch."""
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    if shuffle == "batch":
        return torch.cat([start + torch.randperm(min(batch_size, n - start), generator=g)
                          for start in range(0, n, batch_size)])
    return torch.randperm(n, generator=g)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class EpochSums:
    """Running sums of one epoch (tensors: no host sync until read).

    `metrics`: compile's metrics as [(history key, Metric or None)], None standing for the
    accuracy the step counts itself (`correct`); the list itself None: a trainer made
    without compile, which logs loss and accuracy."""

    loss: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    correct: torch.Tensor = field(default_factory=lambda: torch.zeros((), dtype=torch.float64))
    seen: int = 0
    metrics: list | None = None

    def on(self, device) -> "EpochSums":
        """These sums with their tensors on `device`, where the steps' results are (a GPU's
        results cannot be added to a CPU tensor); returns self."""
        self.loss, self.correct = self.loss.to(device), self.correct.to(device)
        for _, m in self.metrics or ():
            if m is not None:
                m.to(device)
        return self

    def objects(self) -> list:
        """The metric objects that need the model's outputs (not the step's own count)."""
        return [m for _, m in self.metrics or () if m is not None]

    def logs(self) -> dict[str, float]:
        n = max(self.seen, 1)
        logs = {"loss": float(self.loss) / n}
        for key, m in self.metrics if self.metrics is not None else [("accuracy", None)]:
            logs[key] = float(self.correct) / n if m is None else m.result()
        return logs


@dataclass
class Position:
    """Where training stands: restored from a checkpoint to resume exactly."""

    epoch: int = 0   # epoch being run (0-based)
    step: int = 0    # steps done in this epoch
    sums: EpochSums = field(default_factory=EpochSums)
    global_step: int = 0


class Trainer:
    def __init__(self, net, optimizer: torch.optim.Optimizer, loss: Loss, *,
                 label_smoothing: float = 0.0, device: torch.device | str = "cpu",
                 metrics: list | None = None):
        self.net, self.optimizer, self.loss = net, optimizer, loss
        # metrics.resolve(...) from compile; None: loss and accuracy
        self.metrics = None if metrics is None else [
            (key, None if self._counted_by_step(m) else m) for key, m in metrics]
        # net_logits: the model's own softmax/sigmoid is left out and the loss applies it
        # stably; from_logits: the loss receives logits (that, or the user said so)
        self.net_logits = (not loss.from_logits and loss.logits_from is not None
                           and net.output_activation == loss.logits_from)
        self.from_logits = self.net_logits or loss.from_logits
        self.label_smoothing = label_smoothing or loss.label_smoothing
        self.device = torch.device(device)
        self.stop_training = False
        self.stop_reason: str | None = None
        self.position = Position()
        self.seed = 0
        self.batch_size = 32
        self.epochs = 1
        self.train_data: Arrays | None = None
        self.history: dict[str, list] = {}
        self._last_batch: tuple[torch.Tensor, int] | None = None  # (loss sum, size)
        self.api_model = None  # the Keras-style model that callbacks see as `self.model`
        self.index_targets = False  # set by fit: the training labels are one-hot rows
        self.fast_step = None  # set by fit where the model allows (fast.plan_step)
        self.steps_limit: int | None = None  # steps_per_epoch given for arrays
        self.precision = Precision()  # set by fit from the global policy (train/precision.py)

    @property
    def last_loss(self) -> torch.Tensor | None:
        """The last batch's mean loss (divided when read: the loop does not pay for it)."""
        return None if self._last_batch is None else self._last_batch[0] / self._last_batch[1]

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._optimizer

    @optimizer.setter
    def optimizer(self, opt: torch.optim.Optimizer) -> None:
        self._optimizer = opt
        step = fast.step_function(opt)  # opt.step, or torch's fused Adam called directly
        schedule = getattr(opt, "cnnlab_schedule", None)
        if schedule is None:
            self._step = step
            return

        def scheduled_step():
            # Keras's rule: the step with index i (from 0) runs at schedule(i); the index is
            # the loop's own counter, so a resumed run continues the schedule exactly
            lr = schedule(self.position.global_step)
            for group in opt.param_groups:
                group["lr"] = lr
            return step()

        self._step = scheduled_step

    # -- one step ------------------------------------------------------------
    def _loss(self, out, yb):
        yb = smooth(yb, self.loss.target, self.label_smoothing)
        per = self.loss.fn(out, yb, self.from_logits)
        return per

    def _mean_loss(self, out, yb, yi):
        """The batch's mean loss. One-hot targets with softmax folded in: torch's fused
        cross-entropy on the class indices (two ops forward and back instead of six; Keras's
        label smoothing and torch's are the same formula), else the loss's own function."""
        if self.index_targets:
            return F.cross_entropy(out, yi, label_smoothing=self.label_smoothing)
        return self._loss(out, yb).mean()

    def hits(self, out, yi) -> torch.Tensor:
        """The batch's number correct for "accuracy" (0-d tensor, no host sync)."""
        return correct(out, yi, self.loss.accuracy,
                       sigmoid_folded=self.net_logits and self.loss.logits_from == "sigmoid")

    def _counted_by_step(self, m) -> bool:
        """A categorical or sparse categorical accuracy object is the count every step makes
        anyway (argmax of the outputs against the class index): counted there, the model
        keeps its fast step."""
        return (type(m) in (CategoricalAccuracy, SparseCategoricalAccuracy)
                and self.loss.accuracy != "binary")

    def new_sums(self) -> EpochSums:
        """Empty sums for an epoch, with fresh copies of the compiled metrics."""
        if self.metrics is None:
            return EpochSums().on(self.device)
        return EpochSums(metrics=[(k, m if m is None else m.fresh())
                                  for k, m in self.metrics]).on(self.device)

    def metric_view(self, out: torch.Tensor) -> torch.Tensor:
        """The outputs as Keras's metrics see them: the model's own softmax/sigmoid applied
        where the loss took it over (net_logits)."""
        if not self.net_logits:
            return out
        return torch.sigmoid(out) if self.loss.logits_from == "sigmoid" else out.softmax(-1)

    def _update_metrics(self, objects, out, yb) -> None:
        if objects:
            view = self.metric_view(out)
            for m in objects:
                m.update(view, yb)

    def train_step(self, xb, yb, yi) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step; returns (sum of loss over the batch, number correct)."""
        step = self.fast_step
        if step is not None and step.applies(xb):
            return step(xb, yb, yi)
        with self.precision.autocast(self.device):
            out = self.net(xb, logits=self.net_logits)
            loss = self._mean_loss(out, yb, yi)
        return self._descend(out, loss, xb, yb, yi)

    def weighted_step(self, xb, yb, yi, w) -> tuple[torch.Tensor, torch.Tensor]:
        """train_step with per-sample loss weights: Keras's mean of weight * loss over the
        batch (its "sum_over_batch_size"); the accuracy stays unweighted, as Keras's."""
        with self.precision.autocast(self.device):
            out = self.net(xb, logits=self.net_logits)
            if self.index_targets:
                per = F.cross_entropy(out, yi, label_smoothing=self.label_smoothing,
                                      reduction="none")
            else:
                per = self._loss(out, yb)
        return self._descend(out, (per * w).mean(), xb, yb, yi)

    def _descend(self, out, loss, xb, yb, yi) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's loss plus the regularization penalty, backward, one optimizer step;
        returns (sum of loss over the batch, number correct)."""
        reg = self.net.regularization()
        if reg is not None:
            loss = loss + reg
        self.optimizer.zero_grad(set_to_none=True)
        self.precision.backward(loss, self.optimizer, self._step)  # fp16: loss scaling
        with torch.no_grad():
            self._update_metrics(self.position.sums.objects(), out.detach(), yb)
            return loss.detach() * xb.shape[0], self.hits(out.detach(), yi)

    @torch.no_grad()
    def evaluate(self, data: Arrays, batch_size: int = 1000,
                 predictions: list | None = None) -> dict[str, float]:
        """Loss (with the regularization penalty, as Keras reports it) and the compiled
        metrics, in compile's order.

        `predictions`, when given, receives each batch's predicted class indices."""
        was = self.net.training
        self.net.eval()
        sums = self.new_sums()
        objects = sums.objects()
        for start in range(0, len(data), batch_size):
            index = slice(start, start + batch_size)
            xb, yb, yi = data.batch(index)
            xb, yb, yi = xb.to(self.device), yb.to(self.device), yi.to(self.device)
            with self.precision.autocast(self.device):
                out = self.net(xb, logits=self.net_logits)
            out = out.float()  # the loss and metrics in float32, as Keras's mixed policies
            w = data.batch_weights(index)  # Keras's weighted loss: sum of w * loss over N
            sums.loss += (self._loss(out, yb) * w.to(self.device) if w is not None
                          else self._loss(out, yb)).sum()
            sums.correct += self.hits(out, yi)
            self._update_metrics(objects, out, yb)
            if predictions is not None:
                predictions.append(out.argmax(dim=-1).cpu())
        self.net.train(was)
        sums.seen = len(data)
        reg = self.net.regularization()
        logs = sums.logs()
        logs["loss"] += float(reg) if reg is not None else 0.0
        return logs

    # -- the loop ------------------------------------------------------------
    def steps_per_epoch(self, n: int | None = None) -> int | None:
        """Batches per epoch; None for a source whose length is learnt in its first epoch."""
        if n is None and isinstance(self.train_data, BatchSource):
            return self.train_data.steps
        n = len(self.train_data) if n is None else n
        batches = math.ceil(n / self.batch_size)
        return min(batches, self.steps_limit) if self.steps_limit else batches

    def fit(self, train, val, *, epochs: int, batch_size: int,
            callbacks=(), seed: int = 0, shuffle=True,
            position: Position | None = None, validation_freq: int = 1,
            steps_per_epoch: int | None = None) -> None:
        """Train on `train` (Arrays or a BatchSource), validating on `val` (the same or None).
        Callbacks may replace `self.position` in on_train_begin (a resumed run)."""
        with fast.cpu_settings(self.device):
            self._fit(train, val, epochs=epochs, batch_size=batch_size, callbacks=callbacks,
                      seed=seed, shuffle=shuffle, position=position,
                      validation_freq=validation_freq, steps_per_epoch=steps_per_epoch)

    def _fit(self, train, val, *, epochs, batch_size, callbacks, seed, shuffle, position,
             validation_freq, steps_per_epoch) -> None:
        # on a GPU, arrays that fit are gathered there (train/device_data.py)
        train, val = resident(train, self.device), resident(val, self.device)
        self.train_data, self.val_data = train, val
        arrays = isinstance(train, Arrays)
        self.index_targets = (arrays and train.onehot and self.from_logits
                              and self.loss.name == "categorical_crossentropy")
        self.epochs, self.batch_size, self.seed, self.shuffle = epochs, batch_size, seed, shuffle
        self.steps_limit = steps_per_epoch if arrays else None
        self.position = position or Position()
        cbs = callbacks if isinstance(callbacks, CallbackList) else CallbackList(callbacks, self)
        self.stop_training = False
        self.precision = global_policy()
        self.precision.start(self.device)
        cbs.on_train_begin()  # a resumed run's callback replaces self.position here
        if self.position.sums.metrics is None and self.metrics is not None:
            self.position.sums.metrics = self.new_sums().metrics
        # metric objects need every step's outputs, which the fast step does not return
        self.fast_step = (None if self.position.sums.objects() or not self.precision.exact
                          else fast.plan_step(self))
        self.position.sums.on(self.device)  # a resumed run's sums come from the checkpoint on CPU
        run_epoch = self._array_epoch if arrays else self._source_epoch
        while self.position.epoch < epochs and not self.stop_training:
            pos = self.position
            epoch = pos.epoch
            cbs.on_epoch_begin(epoch)
            self.net.train()
            steps = run_epoch(train, pos, cbs)
            if steps is None:  # stopped mid-epoch (signal, NaN): no epoch end
                break
            logs = pos.sums.logs()
            validate = (epoch + 1) % validation_freq == 0 or epoch + 1 == epochs
            if val is not None and validate:
                logs.update({f"val_{k}": v for k, v in self._validate(val, epoch).items()})
            self.position = Position(epoch + 1, 0, self.new_sums(), pos.global_step)
            if cbs.params.get("steps") is None:
                cbs.params["steps"] = steps  # Keras's count, known from the first epoch's end
            cbs.on_epoch_end(epoch, logs)
            if not arrays:
                train.end_epoch()
                if train.ran_out:
                    self._ran_out(cbs.params)
        cbs.on_train_end()

    def _array_epoch(self, train: Arrays, pos: Position, cbs) -> int | None:
        """One epoch over arrays, from `pos` (a resumed run starts mid-epoch); the number
        of steps, or None when training stopped before the epoch's end."""
        steps, batch_size = self.steps_per_epoch(), self.batch_size
        order = epoch_order(len(train), self.seed, pos.epoch, self.shuffle, batch_size)
        weighted = train.weights is not None
        # folder data (train/streamed.py) decodes the epoch's batches ahead, in workers
        ahead = train.stream(order, batch_size, pos.step, steps) if hasattr(train, "stream") else None
        while pos.step < steps and not self.stop_training:
            cbs.on_train_batch_begin(pos.step)
            index = order[pos.step * batch_size:(pos.step + 1) * batch_size]
            xb, yb, yi = next(ahead) if ahead is not None else train.batch(index)
            xb, yb, yi = xb.to(self.device), yb.to(self.device), yi.to(self.device)
            if weighted:
                loss_sum, hits = self.weighted_step(xb, yb, yi,
                                                    train.batch_weights(index).to(self.device))
            else:
                loss_sum, hits = self.train_step(xb, yb, yi)
            self._last_batch = (loss_sum, len(index))
            pos.sums.loss += loss_sum
            pos.sums.correct += hits
            pos.sums.seen += len(index)
            pos.step += 1
            pos.global_step += 1
            cbs.on_train_batch_end(pos.step - 1)
        if ahead is not None:
            ahead.close()  # stopped early: its workers go now, not when collected
        return steps if pos.step >= steps else None

    def _source_epoch(self, train: BatchSource, pos: Position, cbs) -> int | None:
        """One epoch over a generator, PyDataset or DataLoader (not resumable mid-epoch)."""
        for xb, yb, yi, w in train.batches(self.seed, pos.epoch):
            cbs.on_train_batch_begin(pos.step)
            xb, yb, yi = xb.to(self.device), yb.to(self.device), yi.to(self.device)
            if w is not None:
                loss_sum, hits = self.weighted_step(xb, yb, yi, w.to(self.device))
            else:
                loss_sum, hits = self.train_step(xb, yb, yi)
            self._last_batch = (loss_sum, xb.shape[0])
            pos.sums.loss += loss_sum
            pos.sums.correct += hits
            pos.sums.seen += xb.shape[0]
            pos.step += 1
            pos.global_step += 1
            cbs.on_train_batch_end(pos.step - 1)
            if self.stop_training:  # before the next batch is drawn from the data
                break
        if self.stop_training and (train.steps is None or pos.step < train.steps):
            return None  # stopped mid-epoch (NaN, a signal): no epoch end, as for arrays
        if pos.step == 0:
            if pos.global_step == 0:
                raise DataError(f"Expected at least one {train.what} batch. Received a "
                                f"{type(train.data).__name__} that yielded none.")
            self._ran_out(cbs.params)
            return None
        return pos.step

    def _ran_out(self, params) -> None:
        """Keras's warning and stop when the data has fewer batches than asked for."""
        if not self.stop_training:
            print("cnnlab: warning: Your input ran out of data; interrupting training. Make "
                  "sure that your dataset or generator can generate at least "
                  "`steps_per_epoch * epochs` batches.", file=sys.stderr)
        self.stop_training = True

    def _validate(self, val, epoch: int) -> dict[str, float]:
        if isinstance(val, BatchSource):  # a generator's batches, gathered for this epoch
            data = val.collect(self.seed, epoch)
            val.end_epoch()
            if data is None:
                return {}
            return self.evaluate(data)
        return self.evaluate(val) if len(val) else {}
