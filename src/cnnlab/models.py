"""The Keras-style Python API: `Sequential` and the functional `Model`.

The lecture's code runs with `tf.keras.` replaced by `cnnlab.`:

    >>> model = cnnlab.models.Sequential()
    >>> model.add(cnnlab.layers.Conv2D(32, (3, 3), input_shape=(28, 28, 1), activation="relu"))
    >>> ...
    >>> model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    >>> history = model.fit(x_train, y_train, batch_size=128, epochs=10,
    ...                     validation_data=(x_test, y_test))

and so does Keras's functional API:

    >>> inputs = cnnlab.Input(shape=(28, 28, 1))
    >>> x = cnnlab.layers.Conv2D(32, 3, activation="relu")(inputs)
    >>> outputs = cnnlab.layers.Dense(10)(cnnlab.layers.Flatten()(x))
    >>> model = cnnlab.Model(inputs, outputs, name="convnet")

A model is a view of a `ModelSpec` (`model.to_spec()`, `Model.from_spec`); its
layer objects are bound to the torch module's weights once it is built; `fit`
(train/fit_api.py) runs the same loop as `cnnlab train`.
"""
from __future__ import annotations

import numpy as np
import torch

from . import builder
from .errors import SpecError
from .layers.base import Layer
from .layers.nested import ModelLayer
from .layers.objects import KerasTensor, WeightLists, graph_from_tensors, is_symbolic
from .spec import ModelSpec
from .summary import summary_text
from .train.fit_api import FitMixin, resolve_device  # noqa: F401 (re-exported)


class Model(FitMixin, WeightLists):
    """Keras's `Model(inputs, outputs, name=...)`: a graph of layers between KerasTensors."""

    def __init__(self, inputs=None, outputs=None, name: str | None = None, **kwargs):
        trainable = kwargs.pop("trainable", True)
        if kwargs:
            raise SpecError(f"Unknown argument `{sorted(kwargs)[0]}` for Model. Expected: "
                            "inputs, outputs, name, trainable.")
        self._reset(name or "functional")
        if type(self) is not Model and "call" in vars(type(self)):
            raise SpecError(
                f"{type(self).__name__} subclasses Model and defines call(): subclassed models "
                "are not supported by cnnlab. Build the model with the functional API "
                "(cnnlab.Model(inputs, outputs)) or cnnlab.Sequential instead.")
        if inputs is None or outputs is None:
            raise SpecError("Model needs `inputs` and `outputs`: Model(inputs, outputs), where "
                            "inputs come from cnnlab.Input(...) and outputs from calling layers "
                            "on them.")
        ins, calls, outs = graph_from_tensors(inputs, outputs)
        self._spec = ModelSpec.graph(ins, calls, outs, self.name)
        self._inputs, self._outputs = inputs, outputs
        if trainable is False:
            self.trainable = False

    def _reset(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise SpecError(f"Invalid value for argument `name`. Expected a non-empty string. "
                            f"Received name={name!r}.")
        self.name = name
        self._net = None
        self._trainer = None
        self._as_layer = None
        self.optimizer = None
        self.loss = None
        self.metrics: list[str] = []
        self.label_smoothing = 0.0
        self.device = torch.device("cpu")

    # -- the spec and the module -------------------------------------------------
    def to_spec(self) -> ModelSpec:
        return self._spec

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> "Model":
        """The model of a spec: a Sequential for a sequential spec, else a functional Model.

        Its layer objects are new (the spec's own may be bound to another model's weights)."""
        spec = ModelSpec.from_dict(spec.to_dict())
        if spec.is_sequential:
            model = Sequential.__new__(Sequential)
            Sequential.__init__(model, name=spec.name)
            model._input_shape = spec.input_shape
            model._layers = list(spec.layers)
            return model
        model = Model.__new__(Model)
        model._reset(spec.name)
        model._spec = spec
        model._inputs = model._outputs = None
        return model

    @property
    def net(self) -> builder.GraphNet:
        """The torch module (built on first use); binds the layer objects to its weights."""
        if self._net is None:
            spec = self.to_spec()
            net = builder.build(spec, reuse=True).to(self.device)
            for layer, name, module in zip(spec.layers, spec.layer_names, net.layers):
                layer._module = module
                if layer._owner_name is None:
                    layer._owner_name = name
            self._net = net
        return self._net

    def build(self, input_shape=None):
        return self.net

    @property
    def built(self) -> bool:
        return self._net is not None

    # -- structure -------------------------------------------------------------
    @property
    def layers(self) -> list:
        """The layer objects (a functional model's start with its InputLayers, as in Keras;
        a nested model is the model object)."""
        spec = self.to_spec()
        self.net  # Keras's layers are built once the model is
        inputs = self._input_layers(spec)
        return [inputs[x] if kind == "input" else
                x.model if isinstance(x, ModelLayer) and x.model is not None else x
                for kind, x in spec.keras_order]

    def _input_layers(self, spec) -> list:
        from .layers import InputLayer
        cached = getattr(self, "_input_layer_objs", None)
        if cached is None:
            cached = [InputLayer(shape=i.shape, name=n) for n, i in zip(spec.input_names, spec.inputs)]
            self._input_layer_objs = cached
        return cached

    def get_layer(self, name: str | None = None, index: int | None = None):
        if (name is None) == (index is None):
            raise SpecError("get_layer() needs either `name` or `index` (exactly one).")
        layers = self.layers
        if index is not None:
            if not isinstance(index, int) or not -len(layers) <= index < len(layers):
                raise SpecError(f"Invalid value for argument `index`. Expected an integer below "
                                f"{len(layers)} (the model has {len(layers)} layers). "
                                f"Received index={index!r}.")
            return layers[index]
        for layer in layers:
            if layer.name == name:
                return layer
        raise SpecError(f"No such layer: {name}. Existing layers are: "
                        f"{[layer.name for layer in layers]}.")

    @property
    def inputs(self) -> list:
        if self._inputs is None:
            from .layers.objects import KerasTensor
            self._inputs = [KerasTensor(i.shape, i, n)
                            for n, i in zip(self.to_spec().input_names, self.to_spec().inputs)]
        return list(self._inputs) if isinstance(self._inputs, (list, tuple)) else [self._inputs]

    @property
    def outputs(self) -> list:
        if self._outputs is None:
            return [KerasTensor(self.to_spec().source_shape(o), None)
                    for o in self.to_spec().output_ids]
        return list(self._outputs) if isinstance(self._outputs, (list, tuple)) else [self._outputs]

    @property
    def input_shape(self):
        shapes = [(None, *i.shape) for i in self.to_spec().inputs]
        return shapes[0] if len(shapes) == 1 else shapes

    @property
    def output_shape(self):
        spec = self.to_spec()
        shapes = [(None, *spec.source_shape(o)) for o in spec.output_ids]
        return shapes[0] if len(shapes) == 1 else shapes

    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None) -> None:
        (print_fn or print)(summary_text(self.to_spec(), line_length=line_length))

    def count_params(self) -> int:
        """All weights, as Keras counts them (BatchNormalization's moving statistics too)."""
        return int(sum(w.size for w in self.get_weights()))

    def get_config(self) -> dict:
        return self.to_spec().to_dict()

    @classmethod
    def from_config(cls, config: dict) -> "Model":
        return cls.from_spec(ModelSpec.from_dict(config))

    # -- trainable -------------------------------------------------------------
    @property
    def trainable(self) -> bool:
        return all(layer.trainable for layer in self.to_spec().layers)

    @trainable.setter
    def trainable(self, value) -> None:
        for layer in self.to_spec().layers:
            layer.trainable = value

    # -- weights -------------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        self.net
        return [w for layer in self.to_spec().layers for w in layer.get_weights()]

    def set_weights(self, weights) -> None:
        weights = list(weights)
        per_layer, i = [], 0
        for ws in self.net.keras_weights():  # a nested model's arrays come flat
            per_layer.append(weights[i:i + len(ws)])
            i += len(ws)
        if i != len(weights):
            raise SpecError(f"You called `set_weights(weights)` on model {self.name!r} with a "
                            f"weight list of length {len(weights)}, but the model was expecting "
                            f"{i} weights.")
        for layer, ws in zip(self.to_spec().layers, per_layer):
            if ws:
                layer.set_weights(ws)

    @property
    def weights(self) -> list:
        self.net
        return [v for layer in self.to_spec().layers for v in _layer_vars(layer)]

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

    # -- calling ---------------------------------------------------------------
    def as_layer(self) -> ModelLayer:
        """This model as a layer of another model (its weights shared)."""
        if self._as_layer is None:
            self._as_layer = ModelLayer(self)
        return self._as_layer

    def predict(self, x, batch_size=None, verbose="auto", **kwargs):
        spec = self.to_spec()
        if len(spec.inputs) == 1 and len(spec.outputs) == 1:
            return super().predict(x, batch_size=batch_size, verbose=verbose, **kwargs)
        return self._predict_graph(spec, x, batch_size or 32)

    @torch.no_grad()  # not inference mode: a module built here must still train later
    def _predict_graph(self, spec, x, batch_size):
        """Several inputs (a list of arrays, one per input) or outputs (a list back)."""
        from .errors import DataError
        from .train.data import to_images
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(xs) != len(spec.inputs):
            raise DataError(f"Model {self.name!r} has {len(spec.inputs)} inputs. Expected a list "
                            f"of {len(spec.inputs)} arrays. Received {len(xs)}.")
        tensors = []
        for i, (a, inp) in enumerate(zip(xs, spec.inputs)):
            t, scale = to_images(a, inp.shape, f"input {i} ({spec.input_names[i]})")
            tensors.append((t, scale))
        n = {t.shape[0] for t, _ in tensors}
        if len(n) != 1:
            raise DataError(f"All inputs must have the same number of samples. Received "
                            f"{sorted(n)}.")
        net, was = self.net, self.net.training
        net.eval()
        outs = []
        for start in range(0, n.pop(), batch_size):
            batch = [(t[start:start + batch_size].float() * s).to(self.device) for t, s in tensors]
            y = net(batch)
            outs.append([o.cpu() for o in (y if isinstance(y, list) else [y])])
        net.train(was)
        res = [torch.cat(parts).numpy() for parts in zip(*outs)]
        return res[0] if len(res) == 1 else res

    def __call__(self, x, *args, **kwargs):
        if is_symbolic(x):
            return self.as_layer()(x, *args, **kwargs)
        return super().__call__(x, *args, **kwargs)


def _layer_vars(layer) -> list:
    if isinstance(layer, ModelLayer):
        model = layer.model
        return model.weights if model is not None else []
    return layer.weights


class Sequential(Model):
    """Keras's Sequential: a chain of layers, built with a list or `add`."""

    def __init__(self, layers=None, name: str | None = None, trainable: bool = True):
        self._reset(name or "sequential")
        self._layers: list[Layer] = []
        self._input_shape = None
        self._inputs = self._outputs = None
        for layer in layers or []:
            self.add(layer)
        if trainable is False:
            self.trainable = False

    def add(self, layer) -> None:
        if isinstance(layer, KerasTensor):  # Sequential([Input(shape=...), ...])
            from .layers import InputLayer
            if self._layers:
                raise SpecError("An Input can only be the first element of a Sequential.")
            layer = InputLayer(shape=layer._shape)
        elif isinstance(layer, Model):
            layer = layer.as_layer()
        if not isinstance(layer, Layer):
            raise SpecError(f"Sequential.add expects a cnnlab layer such as "
                            f"cnnlab.layers.Dense(10). Received {type(layer).__name__}.")
        if any(layer is seen for seen in self._layers):
            raise SpecError(f"Layer {layer.name!r} is already in this Sequential. Expected each "
                            "layer object once (use the functional API to share a layer).")
        self._layers.append(layer)
        self._net = None
        if self._known_input():
            self.to_spec()  # validates shapes now, as Keras does when the input is known

    @property
    def layers(self) -> list:
        if self._layers and self._known_input():
            return super().layers
        return [layer for layer in self._layers if layer.keras_name not in ("Input", "InputLayer")]

    def pop(self) -> Layer:
        if not self.layers:
            raise SpecError("There are no layers in the model to pop.")
        layer = self._layers.pop()
        self._net = None
        return layer

    def __call__(self, x, *args, **kwargs):
        if not is_symbolic(x) and self._layers and not self._known_input():
            # Keras builds a Sequential without an input shape on its first call on data
            self.build((None, *(tuple(x.shape) if hasattr(x, "shape") else np.shape(x))[1:]))
        return super().__call__(x, *args, **kwargs)

    def _known_input(self) -> bool:
        first = self._layers[0]
        if first.keras_name in ("Input", "InputLayer"):
            return len(self._layers) > 1  # an Input alone is not a model yet
        return (self._input_shape is not None or first.input_shape is not None
                or getattr(first, "implied_input_shape", None) is not None)

    def to_spec(self) -> ModelSpec:
        if not self._layers:
            raise SpecError(f"Sequential model {self.name!r} has no layers yet. Add layers "
                            "first: model.add(cnnlab.layers.Dense(10)).")
        return ModelSpec.from_layers(self._layers, self._input_shape, self.name)

    def build(self, input_shape=None):
        if input_shape is not None:
            self._input_shape = tuple(input_shape[1:]) if input_shape[0] is None else tuple(input_shape)
            self._net = None
        return self.net


def load_model(filepath, custom_objects=None, compile: bool = True, safe_mode: bool = True):
    """Keras's `models.load_model`: a `.keras` file or a legacy Keras 2 `.h5` model."""
    from .saving import load_model as load
    return load(filepath, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)
