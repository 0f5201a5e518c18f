"""The Keras-style Python API: `Sequential` with add, summary, compile, fit, evaluate, predict.

The lecture's code runs with `tf.keras.` replaced by `cnnlab.`:

    >>> model = cnnlab.models.Sequential()
    >>> model.add(cnnlab.layers.Conv2D(32, (3, 3), input_shape=(28, 28, 1), activation="relu"))
    >>> ...
    >>> model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    >>> history = model.fit(x_train, y_train, batch_size=128, epochs=10,
    ...                     validation_data=(x_test, y_test))

A Sequential is a view of a `ModelSpec` (`model.to_spec()`, `Sequential.from_spec`),
and `fit` runs the same loop as `cnnlab train`.
"""
from __future__ import annotations

import numpy as np
import torch

from . import builder
from .errors import SpecError
from .layers.base import Layer
from .spec import ModelSpec
from .summary import summary_text
from .train.fit_api import FitMixin, resolve_device  # noqa: F401 (re-exported)


class Sequential(FitMixin):
    def __init__(self, layers=None, name: str = "sequential"):
        self.name = name
        self._layers: list[Layer] = []
        self._input_shape = None
        self._net = None
        self._trainer: Trainer | None = None
        self.optimizer = None
        self.loss = None
        self.metrics: list[str] = []
        self.label_smoothing = 0.0
        self.device = torch.device("cpu")
        for layer in layers or []:
            self.add(layer)

    # -- building ------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise SpecError(f"Sequential.add expects a cnnlab layer such as "
                            f"cnnlab.layers.Dense(10). Received {type(layer).__name__}.")
        self._layers.append(layer)
        self._net = None
        if self._known_input():
            self.to_spec()  # validates shapes now, as Keras does when the input is known

    def _known_input(self) -> bool:
        first = self._layers[0]
        if first.keras_name == "Input":
            return len(self._layers) > 1  # an Input alone is not a model yet
        return self._input_shape is not None or first.input_shape is not None

    @property
    def layers(self) -> list[Layer]:
        return [l for l in self._layers if l.keras_name != "Input"]

    def to_spec(self) -> ModelSpec:
        return ModelSpec.from_layers(self._layers, self._input_shape, self.name)

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "Sequential":
        model = cls(name=spec.name)
        model._input_shape = spec.input_shape
        model._layers = list(spec.layers)
        return model

    @property
    def net(self) -> builder.KerasSequential:
        """The torch module (built on first use)."""
        if self._net is None:
            self._net = builder.build(self.to_spec()).to(self.device)
        return self._net

    def build(self, input_shape=None):
        if input_shape is not None:
            self._input_shape = tuple(input_shape[1:]) if input_shape[0] is None else tuple(input_shape)
        return self.net

    def summary(self, print_fn=None) -> None:
        (print_fn or print)(summary_text(self.to_spec()))

    def count_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    # -- weights -------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        return [w.copy() for ws in self.net.keras_weights() for w in ws]

    def set_weights(self, weights) -> None:
        per_layer, i = [], 0
        for ws in self.net.keras_weights():
            per_layer.append(weights[i:i + len(ws)])
            i += len(ws)
        if i != len(weights):
            raise SpecError(f"Expected {i} weight arrays. Received {len(weights)}.")
        self.net.set_keras_weights(per_layer)

    # -- files (formats chosen by file name: cnnlab.saving) ----------------------
    def save(self, filepath, overwrite: bool = True, **kwargs) -> None:
        from .saving import save_model
        save_model(self, filepath, overwrite=overwrite, **kwargs)

    def save_weights(self, filepath, overwrite: bool = True) -> None:
        from .saving import save_weights
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath) -> None:
        from .saving import load_weights
        load_weights(self, filepath)


def load_model(filepath, custom_objects=None, compile: bool = True, safe_mode: bool = True):
    """Keras's `models.load_model`: a `.keras` file or a legacy Keras 2 `.h5` model."""
    from .saving import load_model as load
    return load(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)
