"""Keras's training methods (compile, fit, evaluate, predict) for cnnlab's models.

A model class mixes these in; they need only `self.net` (the torch module),
`self.to_spec()` and the attributes set by `compile`. `cnnlab train` and the
Python API both call `fit` here.

    >>> model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    >>> history = model.fit(x, y, batch_size=128, epochs=10, validation_data=(xv, yv))
"""
from __future__ import annotations

import itertools
import sys

import numpy as np
import torch

from .. import losses, optimizers
from .. import metrics as metrics_module
from ..errors import ConfigError, DataError, RunError
from . import callbacks as cb
from ..layers.reshaping import takes_raw_pixels
from .data import Arrays, check_class_weight, split_validation, to_arrays, to_images
from .sources import BatchSource, is_array_like, kind_of, never_ends
from .progress import ProgressBar, format_logs
from .loop import Trainer, seed_everything


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "mps":  # Apple GPUs
        raise ConfigError(mps_message())
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ConfigError(f"Invalid device. Expected 'cpu', 'cuda' or 'auto'. Received {device!r}.")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("Device 'cuda' was asked for, but no CUDA GPU is available here. "
                          "Use --device cpu or auto.")
    return torch.device(device)


def mps_message() -> str:
    """Why --device mps does not train here: torch lacks MPS, or cnnlab's float64 sums do."""
    mps = getattr(torch.backends, "mps", None)
    if mps is None or not mps.is_available():
        built = mps is not None and mps.is_built()
        return ("Device 'mps' was asked for, but " + ("this machine has no Apple GPU that torch "
                "can use" if built else "this torch build has no MPS (Apple GPU) support") +
                ". Expected --device cpu, cuda or auto.")
    return ("Device 'mps' is not supported by cnnlab yet: the epoch's running sums are float64, "
            "which MPS lacks. Expected --device cpu (or cuda on an NVIDIA GPU).")


def _positive(name, value, optional=False):
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ConfigError(f"Invalid value for argument `{name}`. Expected a strictly positive "
                          f"integer{' or None' if optional else ''}. Received {name}={value!r}.")


def check_fit_args(*, batch_size, epochs, initial_epoch, steps_per_epoch, validation_steps,
                   validation_split, shuffle, verbose, validation_freq) -> None:
    """Keras's argument checks, before any data is touched."""
    _positive("batch_size", batch_size)
    _positive("epochs", epochs)
    _positive("validation_freq", validation_freq)
    _positive("steps_per_epoch", steps_per_epoch, optional=True)
    _positive("validation_steps", validation_steps, optional=True)
    if isinstance(initial_epoch, bool) or not isinstance(initial_epoch, (int, np.integer)) \
            or initial_epoch < 0:
        raise ConfigError("Invalid value for argument `initial_epoch`. Expected an integer >= 0. "
                          f"Received initial_epoch={initial_epoch!r}.")
    ok = isinstance(validation_split, (int, float)) and not isinstance(validation_split, bool)
    if not ok or not 0 <= validation_split < 1:
        raise ConfigError(f"Invalid value for argument `validation_split`. Expected a number "
                          f"in [0, 1). Received validation_split={validation_split!r}.")
    if isinstance(shuffle, str) and shuffle != "batch" or shuffle not in (True, False, "batch"):
        raise ConfigError("Invalid value for argument `shuffle`. Expected True, False or "
                          f"'batch'. Received shuffle={shuffle!r}.")
    if not (verbose == "auto" or isinstance(verbose, (bool, int, np.integer))
            and not isinstance(verbose, str) and verbose >= 0):
        raise ConfigError("Invalid value for argument `verbose`. Expected 'auto', 0 (silent), "
                          f"1 (progress bar) or 2 (one line per epoch). Received verbose={verbose!r}.")


class FitMixin:
    # -- training ------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, metrics=None, label_smoothing: float = 0.0,
                device: str = "auto"):
        if loss is None:
            raise ConfigError("compile() needs a loss, e.g. loss='categorical_crossentropy'.")
        self.loss = losses.get(loss)
        self.optimizer = optimizers.get(optimizer)
        resolved = metrics_module.resolve(metrics)
        self.metrics = [key for key, _ in resolved]  # the history keys, in Keras's order
        self.label_smoothing = float(label_smoothing)
        self.device = resolve_device(device)
        net = self.net.to(self.device)
        self._trainer = Trainer(net, self.optimizer.build(net.parameters()), self.loss,
                                label_smoothing=self.label_smoothing, device=self.device,
                                metrics=resolved)
        self._trainer.api_model = self

    def _require_compiled(self, what):
        if self._trainer is None:
            raise RunError(f"You must call compile() before {what}().")

    @property
    def stop_training(self) -> bool:
        return self._trainer.stop_training if self._trainer else False

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        if self._trainer:
            self._trainer.stop_training = bool(value)

    def _arrays(self, x, y, what, **weights):
        spec = self.to_spec()
        return to_arrays(x, y, spec, self.loss, what, **weights)

    def _source(self, data, what, steps=None, shuffle=False, class_weight=None):
        """A generator, PyDataset or DataLoader as batches checked like arrays."""
        spec, loss = self.to_spec(), self.loss

        def convert(x, y, w):
            a = to_arrays(x, y, spec, loss, what, sample_weight=w, class_weight=class_weight)
            return (*a.batch(slice(None)), a.weights)
        return BatchSource(data, convert, steps_per_epoch=steps, what=what, shuffle=shuffle)

    def fit(self, x=None, y=None, batch_size=None, epochs=None, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1, *, seed: int | None = None,
            recipe: str | None = None):
        """Keras's fit. `x` may be arrays (with `y`), a Python generator, a
        `cnnlab.utils.PyDataset` or a torch DataLoader (yielding `(x, y)` or
        `(x, y, sample_weight)`). cnnlab adds `seed` (the shuffling order and the random
        draws of training) and `recipe` ("fast": the settings of `cnnlab train --recipe
        fast`, which replace the compiled optimizer, batch size, epochs, label smoothing
        and learning-rate schedule unless given here). `validation_batch_size` is accepted;
        validation runs in batches of its own size (the results do not depend on it)."""
        self._require_compiled("fit")
        schedule = []
        if recipe is not None:
            r = self._apply_recipe(recipe)
            batch_size = r["batch_size"] if batch_size is None else batch_size
            epochs = r["epochs"] if epochs is None else epochs
            validation_freq = r["validation_freq"]
            from ..config import schedule_callbacks
            schedule = schedule_callbacks(r)
        batch_size = 32 if batch_size is None else batch_size
        epochs = 1 if epochs is None else epochs
        check_fit_args(batch_size=batch_size, epochs=epochs, initial_epoch=initial_epoch,
                       steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                       validation_split=validation_split, shuffle=shuffle, verbose=verbose,
                       validation_freq=validation_freq)
        train, val = self._fit_data(x, y, validation_split, validation_data, shuffle,
                                    class_weight, sample_weight, steps_per_epoch, validation_steps)
        if seed is not None:
            seed_everything(seed)
        run_seed = seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        cbs = schedule + list(callbacks or [])
        history = next((c for c in cbs if isinstance(c, cb.History)), None)
        if history is None:  # Keras's: a History the caller passed is the one returned
            history = cb.History()
            cbs.append(history)
        if verbose and not any(isinstance(c, ProgressBar) for c in cbs) and (
                verbose in ("auto", 1, True, 2)):
            bar = ProgressBar(live=None, per_epoch=verbose == 2)
            cbs.insert(cbs.index(history), bar)
        from .loop import Position
        self._trainer.fit(train, val, epochs=epochs, batch_size=batch_size, callbacks=cbs,
                          seed=run_seed, shuffle=shuffle, position=Position(epoch=initial_epoch),
                          validation_freq=validation_freq, steps_per_epoch=steps_per_epoch)
        history.model = self
        history.params = {"verbose": verbose, "epochs": epochs,
                          "steps": self._trainer.steps_per_epoch()}
        return history

    def _fit_data(self, x, y, validation_split, validation_data, shuffle, class_weight,
                  sample_weight, steps_per_epoch, validation_steps):
        """(training data, validation data or None): Arrays, or BatchSources."""
        if isinstance(x, Arrays):  # already checked (cnnlab train hands its data this way)
            train = x
        elif x is None or is_array_like(x):
            train = self._arrays(x, y, "training", sample_weight=sample_weight,
                                 class_weight=class_weight)
        else:
            train = self._fit_source(x, y, validation_split, class_weight, sample_weight,
                                     steps_per_epoch, shuffle)
        val = None
        if validation_split and validation_data is None:
            train, val = split_validation(train, validation_split)
            if not len(train):
                raise DataError(f"Expected at least one training sample after "
                                f"validation_split={validation_split!r}. Received "
                                f"{len(val)} samples in all: all went to validation.")
        if validation_data is not None:
            val = self._validation(validation_data, validation_steps)
        return train, val

    def _fit_source(self, x, y, validation_split, class_weight, sample_weight, steps, shuffle):
        kind = kind_of(x)
        name = {"iterator": "a Python generator", "pydataset": "a PyDataset"}.get(
            kind, f"a {type(x).__name__}")
        for arg, value in (("y", y), ("sample_weight", sample_weight)):
            if value is not None:
                raise DataError(f"Argument `{arg}` is not supported when `x` is {name}: "
                                f"its batches hold the labels and weights, (x, y) or "
                                f"(x, y, sample_weight). Received {arg} of type "
                                f"{type(value).__name__}.")
        if validation_split:
            raise DataError("Argument `validation_split` is only supported for tensors or "
                            "NumPy arrays. Found incompatible type in the input: "
                            f"{type(x).__name__}. Pass validation_data instead.")
        if class_weight is not None and kind == "iterator":
            raise DataError("Argument `class_weight` is not supported for Python generator "
                            f"inputs. Received: class_weight={class_weight!r}")
        check_class_weight(class_weight)
        if steps is None and never_ends(x):
            raise DataError("The training generator never ends (it has no return), so an "
                            "epoch would never end. Pass `steps_per_epoch`, the number of "
                            "batches that make one epoch.")
        return self._source(x, "training", steps, shuffle, class_weight)

    def _validation(self, data, steps):
        if isinstance(data, Arrays):
            return data
        if isinstance(data, (tuple, list)):
            if len(data) not in (2, 3):
                raise DataError("Expected validation_data as a tuple (x_val, y_val) or "
                                "(x_val, y_val, val_sample_weight). Received a "
                                f"{type(data).__name__} of length {len(data)}.")
            w = data[2] if len(data) == 3 else None
            return self._arrays(data[0], data[1], "validation", sample_weight=w)
        if steps is None and never_ends(data):
            raise DataError("The validation generator never ends (it has no return). Pass "
                            "`validation_steps`, the number of batches to validate on.")
        return self._source(data, "validation", steps)

    def _apply_recipe(self, name: str) -> dict:
        from ..config import recipe_settings
        r = recipe_settings(name)
        self.optimizer = optimizers.get(r["optimizer"])
        self._trainer.optimizer = self.optimizer.build(self.net.parameters())
        self._trainer.label_smoothing = float(r["label_smoothing"])
        return r

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, return_dict=False):
        self._require_compiled("evaluate")
        data = self._eval_data(x, y, sample_weight, steps)
        result = self._trainer.evaluate(data, batch_size or 32)
        if verbose:
            print(f"{format_logs(result)[3:]}", file=sys.stdout)
        if return_dict:
            return result
        # Keras: the loss alone, or [loss, *metrics] in compile's order
        return list(result.values()) if len(result) > 1 else result["loss"]

    def _eval_data(self, x, y, sample_weight, steps) -> Arrays:
        if isinstance(x, Arrays):
            return x
        if x is None or is_array_like(x):
            return self._arrays(x, y, "evaluation", sample_weight=sample_weight)
        if y is not None:
            raise DataError("Argument `y` is not supported when `x` is a generator, PyDataset "
                            f"or DataLoader: its batches hold the labels. Received y of type "
                            f"{type(y).__name__}.")
        if steps is None and never_ends(x):
            raise DataError("The evaluation generator never ends (it has no return). Pass "
                            "`steps`, the number of batches to evaluate.")
        data = self._source(x, "evaluation", steps).collect()
        if data is None:
            raise DataError("Expected at least one evaluation batch. Received data that "
                            "yielded none.")
        return data

    def predict(self, x, batch_size=None, verbose="auto", steps=None) -> np.ndarray:
        """Keras's predict: NumPy outputs for arrays, a generator, PyDataset or DataLoader
        (whose batches may hold labels too: only x is used). Runs without gradients and
        changes nothing: the model can train after it (the module is built outside torch's
        inference mode, whose tensors cannot be saved for a backward pass)."""
        spec = self.to_spec()
        net = self.net
        bs = batch_size or 32
        if is_array_like(x):
            xt, scale = to_images(x, spec.input_shape, "images", takes_raw_pixels(spec))
            chunks = ((xt[s:s + bs], scale) for s in range(0, xt.shape[0], bs))
        else:
            if steps is None and never_ends(x):
                raise DataError("The prediction generator never ends (it has no return). Pass "
                                "`steps`, the number of batches to predict.")
            chunks = (to_images(_inputs_of(raw), spec.input_shape, "images",
                                takes_raw_pixels(spec)) for raw in
                      itertools.islice(BatchSource(x, None).raw_batches(), steps))
        outs = []
        with _mode(net, training=False), torch.no_grad():
            for xb, scale in chunks:
                xb = xb.float().mul_(scale) if scale != 1.0 else xb
                outs.append(net(xb.to(self.device)).cpu())
        if not outs:
            return np.zeros((0, *spec.output_shape), np.float32)
        return torch.cat(outs).numpy()

    def __call__(self, x, training=None):
        """Keras's `model(x)` on the torch backend: a torch tensor (with gradients where torch
        records them), in inference mode unless `training=True`. Its `.numpy()` works even
        when it requires grad (Keras's raises there; tutorials written for TensorFlow call it)."""
        spec = self.to_spec()
        net = self.net
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            xb = x.to(self.device, torch.float32)
        else:
            xt, scale = to_images(x, spec.input_shape, "images", takes_raw_pixels(spec))
            xb = (xt.float().mul_(scale) if scale != 1.0 else xt).to(self.device)
        with _mode(net, training=bool(training)):
            if training is None:  # Keras: each layer's own default (augmentation's is True)
                for m in net.modules():
                    if getattr(m, "training_by_default", False):
                        m.train()
            return net(xb).as_subclass(ModelOutput)


class ModelOutput(torch.Tensor):
    """A torch tensor whose `.numpy()` detaches first (see FitMixin.__call__)."""

    def numpy(self, *, force: bool = False) -> np.ndarray:
        return torch.Tensor.numpy(self.detach().cpu().as_subclass(torch.Tensor))


class _mode:
    """The module in training or inference mode for a block, then as it was."""

    def __init__(self, net, training: bool):
        self.net, self.training = net, training

    def __enter__(self):
        self.was = self.net.training
        self.net.train(self.training)

    def __exit__(self, *exc):
        self.net.train(self.was)


def _inputs_of(raw):
    """x from one batch of predict's data: a batch may be x alone, or (x,), (x, y), (x, y, w)."""
    x = raw[0] if isinstance(raw, (tuple, list)) else raw
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
