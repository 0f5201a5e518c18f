"""Keras's training methods (compile, fit, evaluate, predict) for cnnlab's models.

A model class mixes these in; they need only `self.net` (the torch module),
`self.to_spec()` and the attributes set by `compile`. `cnnlab train` and the
Python API both call `fit` here.

    >>> model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    >>> history = model.fit(x, y, batch_size=128, epochs=10, validation_data=(xv, yv))
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from .. import losses, optimizers
from .. import metrics as metrics_module
from ..errors import ConfigError, DataError, RunError
from . import callbacks as cb
from ..layers.reshaping import takes_raw_pixels
from .data import to_arrays, to_images
from .progress import ProgressBar, format_logs
from .loop import Trainer, seed_everything


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not str(device).startswith("cuda:"):
        raise ConfigError(f"Invalid device. Expected 'cpu', 'cuda' or 'auto'. Received {device!r}.")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("Device 'cuda' was asked for, but no CUDA GPU is available here. "
                          "Use --device cpu or auto.")
    return torch.device(device)


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

    def _arrays(self, x, y, what):
        spec = self.to_spec()
        return to_arrays(x, y, spec, self.loss, what)

    def fit(self, x=None, y=None, batch_size=None, epochs=None, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, initial_epoch=0,
            seed: int | None = None, recipe: str | None = None, validation_freq: int = 1):
        """Keras's fit. cnnlab adds `seed` and `recipe` ("fast": the settings of
        `cnnlab train --recipe fast`, which replace the compiled optimizer, batch size,
        epochs, label smoothing and learning-rate schedule unless given here)."""
        self._require_compiled("fit")
        schedule = []
        if recipe is not None:
            r = self._apply_recipe(recipe)
            batch_size = r["batch_size"] if batch_size is None else batch_size
            epochs = r["epochs"] if epochs is None else epochs
            validation_freq = r["validation_freq"]
            if r["lr_schedule"]:
                from .schedules import OneCycle
                schedule = [OneCycle(**r["lr_schedule"]["one_cycle"])]
        batch_size = 32 if batch_size is None else batch_size
        epochs = 1 if epochs is None else epochs
        for name, value in (("batch_size", batch_size), ("epochs", epochs)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"Invalid value for argument `{name}`. Expected a strictly "
                                  f"positive integer. Received {name}={value!r}.")
        if not 0 <= validation_split < 1:
            raise ConfigError(f"Invalid value for argument `validation_split`. Expected a number "
                              f"in [0, 1). Received validation_split={validation_split!r}.")
        x_arr, y_arr = np.asarray(x), np.asarray(y)
        if validation_split and validation_data is None:
            split = int(len(x_arr) * (1 - validation_split))  # Keras: the last fraction, unshuffled
            validation_data = (x_arr[split:], y_arr[split:])
            x_arr, y_arr = x_arr[:split], y_arr[:split]
        train = self._arrays(x_arr, y_arr, "training")
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise DataError("Expected validation_data as a tuple (x_val, y_val).")
            val = self._arrays(validation_data[0], validation_data[1], "validation")
        if seed is not None:
            seed_everything(seed)
        run_seed = seed if seed is not None else int(torch.randint(0, 2**31 - 1, ()).item())
        history = cb.History()
        cbs = schedule + list(callbacks or [])
        if verbose:
            cbs.append(ProgressBar(live=None if verbose in ("auto", 1) else False))
        cbs.append(history)
        from .loop import Position
        self._trainer.fit(train, val, epochs=epochs, batch_size=batch_size, callbacks=cbs,
                          seed=run_seed, shuffle=shuffle, position=Position(epoch=initial_epoch),
                          validation_freq=validation_freq)
        history.model = self
        history.params = {"epochs": epochs, "steps": self._trainer.steps_per_epoch(),
                          "verbose": verbose}
        return history

    def _apply_recipe(self, name: str) -> dict:
        from ..config import RECIPES, TRAIN_DEFAULTS
        if name not in RECIPES:
            raise ConfigError(f"Unknown recipe {name!r}. Expected one of: {', '.join(RECIPES)}.")
        r = {**TRAIN_DEFAULTS, **RECIPES[name]}
        self.optimizer = optimizers.get(r["optimizer"])
        self._trainer.optimizer = self.optimizer.build(self.net.parameters())
        self._trainer.label_smoothing = float(r["label_smoothing"])
        return r

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", return_dict=False):
        self._require_compiled("evaluate")
        result = self._trainer.evaluate(self._arrays(x, y, "evaluation"), batch_size or 32)
        if verbose:
            print(f"{format_logs(result)[3:]}", file=sys.stdout)
        if return_dict:
            return result
        # Keras: the loss alone, or [loss, *metrics] in compile's order
        return list(result.values()) if len(result) > 1 else result["loss"]

    @torch.inference_mode()
    def predict(self, x, batch_size=None, verbose="auto") -> np.ndarray:
        spec = self.to_spec()
        xt, scale = to_images(x, spec.input_shape, "images", takes_raw_pixels(spec))
        net = self.net
        was = net.training
        net.eval()
        outs = []
        bs = batch_size or 32
        for start in range(0, xt.shape[0], bs):
            xb = xt[start:start + bs]
            xb = xb.float().mul_(scale) if scale != 1.0 else xb
            outs.append(net(xb.to(self.device)).cpu())
        net.train(was)
        if not outs:
            return np.zeros((0, *spec.output_shape), np.float32)
        return torch.cat(outs).numpy()

    def __call__(self, x):
        return self.predict(x)


