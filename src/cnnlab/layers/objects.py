"""Layer objects as Keras users hold them: symbolic calls (the functional API) and weights.

A `Layer` is a validated description (layers/base.py); once a model builds it,
it is bound to the torch module holding its weights (`layer._module`), so
`layer.get_weights()`, `layer.kernel` and `layer.trainable = False` act on the
model's real weights, and a layer object used in two models shares them, as in
Keras.

    >>> inputs = cnnlab.Input(shape=(28, 28, 1))            # a KerasTensor
    >>> x = cnnlab.layers.Conv2D(32, 3, activation="relu")(inputs)
    >>> x.shape                                              # (None, 26, 26, 32)
    >>> model = cnnlab.Model(inputs, cnnlab.layers.Dense(10)(cnnlab.layers.Flatten()(x)))
    >>> model.layers[1].get_weights()[0].shape               # (3, 3, 1, 32)
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from ..errors import SpecError

_ORDER = itertools.count()  # creation order of symbolic calls: a graph's topological order

# Keras's names of a layer's weights, by the number of arrays its module holds
_DEFAULT_NAMES = {1: ("kernel",), 2: ("kernel", "bias")}


class KerasTensor:
    """A symbolic tensor: the shape (batch axis None) and the call that makes it."""

    def __init__(self, shape, source, name: str | None = None):
        self._shape = tuple(shape)
        self._source = source  # an InputSpec (a model input) or a _Call
        self.name = name
        self._order = next(_ORDER)

    @property
    def shape(self) -> tuple:
        return (None, *self._shape)

    dtype = "float32"
    ndim = property(lambda self: len(self._shape) + 1)

    def __repr__(self):
        return f"<KerasTensor shape={self.shape}, dtype=float32, name={self.name}>"

    def __bool__(self):
        raise SpecError("A KerasTensor is symbolic: it has no value to test. Build a Model from "
                        "it and call the model on data instead.")


class _Call:
    """One symbolic call: the layer and the KerasTensors it read."""

    def __init__(self, layer, inbound: tuple[KerasTensor, ...]):
        self.layer, self.inbound = layer, inbound


def is_symbolic(x) -> bool:
    if isinstance(x, KerasTensor):
        return True
    return isinstance(x, (list, tuple)) and bool(x) and all(isinstance(t, KerasTensor) for t in x)


def Input(shape=None, batch_size=None, name=None, dtype=None, batch_shape=None, **kwargs):
    """Keras's `Input`: a symbolic input tensor for the functional API or a Sequential."""
    from ..spec import InputSpec
    unknown = sorted(set(kwargs) - {"sparse", "tensor", "optional", "ragged"})
    if unknown:
        raise SpecError(f"Unknown argument `{unknown[0]}` for Input. Expected one of: "
                        "batch_shape, batch_size, dtype, name, shape.")
    if batch_shape is not None:
        if shape is not None:
            raise SpecError("Input takes `shape` or `batch_shape`, not both.")
        if not isinstance(batch_shape, (list, tuple)) or not batch_shape:
            raise SpecError(f"Invalid value for argument `batch_shape`. Expected a tuple such as "
                            f"(None, 28, 28, 1). Received batch_shape={batch_shape!r}.")
        shape = tuple(batch_shape[1:])
    if shape is None:
        raise SpecError("Input needs a `shape`, such as shape=(28, 28, 1) (without the batch axis).")
    if dtype not in (None, "float32", "float", "uint8", "int32"):
        raise SpecError(f"Invalid value for argument `dtype` of Input. Expected 'float32'. "
                        f"Received dtype={dtype!r}.")
    spec = InputSpec(tuple(shape) if isinstance(shape, (list, tuple)) else shape, name)
    return KerasTensor(spec.shape, spec, name=name)


def call_layer(layer, inputs, *args, **kwargs):
    """`layer(x)`: symbolic on KerasTensors, eager (a torch tensor) on data."""
    training = kwargs.pop("training", None)
    kwargs.pop("mask", None)
    if args or kwargs:
        extra = ", ".join([repr(a) for a in args] + list(kwargs))
        raise SpecError(f"{layer.keras_name} was called with extra arguments ({extra}). "
                        "Expected only its input (and `training`).")
    if is_symbolic(inputs):
        return _call_symbolic(layer, inputs)
    if training is None:  # Keras's preprocessing layers declare call(..., training=True)
        training = getattr(layer, "training_by_default", False)
    return _call_eager(layer, inputs, bool(training))


def _call_symbolic(layer, inputs) -> KerasTensor:
    listed = isinstance(inputs, (list, tuple))
    tensors = tuple(inputs) if listed else (inputs,)
    if layer.multi_input and not listed:
        raise SpecError(f"A merge layer should be called on a list of inputs. Received: "
                        f"inputs={inputs!r} (not a list of tensors).")
    if not layer.multi_input and len(tensors) != 1:
        raise SpecError(f"{layer.keras_name} expects one input tensor. Received {len(tensors)}.")
    shapes = [t._shape for t in tensors]
    try:
        out = layer.output_shape(shapes if layer.multi_input else shapes[0])
    except SpecError as err:
        raise SpecError(f"{layer.keras_name} {layer.name!r}: {err}") from None
    return KerasTensor(out, _Call(layer, tensors))


def _call_eager(layer, inputs, training: bool):
    """Call a layer on real data (Keras builds the layer on its first call)."""
    xs = inputs if isinstance(inputs, (list, tuple)) and layer.multi_input else [inputs]
    arrays = [torch.as_tensor(np.asarray(x, dtype=np.float32)) for x in xs]
    shapes = [tuple(a.shape[1:]) for a in arrays]
    shape = shapes if layer.multi_input else shapes[0]
    out_shape = layer.output_shape(shape)
    if layer._module is None:
        module = layer.build(shape)
        apply_trainable(module, layer.trainable)
        layer._module = module.to(memory_format=torch.channels_last) if len(out_shape) == 3 \
            else module
    module = layer._module
    inner = [a.permute(0, 3, 1, 2) if a.dim() == 4 else a for a in arrays]
    was = module.training
    module.train(training)
    try:
        y = module(inner if layer.multi_input else inner[0])
    finally:
        module.train(was)
    return y.permute(0, 2, 3, 1).contiguous() if y.dim() == 4 else y


def graph_from_tensors(inputs, outputs):
    """(InputSpecs, calls, output ids) of the graph between KerasTensors, for ModelSpec.graph."""
    ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    outs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
    for what, ts in (("inputs", ins), ("outputs", outs)):
        if not ts or not all(isinstance(t, KerasTensor) for t in ts):
            got = [type(t).__name__ for t in ts]
            raise SpecError(f"Model(inputs, outputs) expects KerasTensors made by cnnlab.Input "
                            f"and layer calls for `{what}`. Received {got}.")
    for t in ins:
        if isinstance(t._source, _Call):
            raise SpecError("Model `inputs` must be tensors made by cnnlab.Input(...). Received "
                            f"the output of layer {t._source.layer.name!r}.")
    found: dict[int, KerasTensor] = {}
    stack = list(outs)
    while stack:
        t = stack.pop()
        if id(t) in found:
            continue
        found[id(t)] = t
        if isinstance(t._source, _Call):
            stack.extend(t._source.inbound)
        elif not any(t is i for i in ins):
            raise SpecError("The outputs depend on an Input that is not in the model's `inputs`. "
                            "Expected every Input the outputs need to be listed in `inputs`.")
    ids = {id(t): k for k, t in enumerate(ins)}
    calls = []
    for t in sorted((t for t in found.values() if isinstance(t._source, _Call)),
                    key=lambda t: t._order):
        calls.append((t._source.layer, tuple(ids[id(s)] for s in t._source.inbound)))
        ids[id(t)] = len(ins) + len(calls) - 1
    for t in outs:
        if not isinstance(t._source, _Call):
            raise SpecError("A model output must be the output of a layer. Received an Input.")
    return [t._source for t in ins], calls, tuple(ids[id(t)] for t in outs)


# -- weights -------------------------------------------------------------------

def apply_trainable(module, trainable: bool) -> None:
    """Frozen weights get no gradient; a frozen BatchNormalization also stops updating its
    moving statistics and normalizes with them, as in Keras 3."""
    for p in module.parameters():
        p.requires_grad_(trainable)
    module.frozen = not trainable


def _require_built(layer, what: str):
    if layer._module is None:
        raise SpecError(f"You tried to call {what} on layer {layer.name!r}, but the layer isn't "
                        "built. Build it first: add it to a model with a known input shape, or "
                        "call it on data.")
    return layer._module


def get_weights(layer) -> list[np.ndarray]:
    m = layer._module
    if m is None or not hasattr(m, "keras_weights"):
        return []
    return [np.array(w, copy=True) for w in _flat(m.keras_weights())]


def _flat(ws):
    out = []
    for w in ws:
        out.extend(_flat(w) if isinstance(w, list) else [w])
    return out


def set_weights(layer, weights) -> None:
    m = _require_built(layer, "set_weights()")
    current = get_weights(layer)
    weights = list(weights)
    if len(weights) != len(current):
        raise SpecError(f"Layer {layer.name!r} expects {len(current)} weight arrays. "
                        f"Received {len(weights)}.")
    for i, (w, c) in enumerate(zip(weights, current)):
        if tuple(np.shape(w)) != c.shape:
            raise SpecError(f"Layer {layer.name!r} weight {i} has shape {c.shape}. Received an "
                            f"array of shape {tuple(np.shape(w))}.")
    if hasattr(m, "set_keras_weights_flat"):
        m.set_keras_weights_flat(weights)
    else:
        m.set_keras_weights([np.asarray(w, dtype=np.float32) for w in weights])


def weight_names(layer) -> tuple[str, ...]:
    m = layer._module
    names = getattr(m, "keras_weight_names", None)
    if callable(names):
        return tuple(names())
    n = len(get_weights(layer))
    if layer.keras_name == "BatchNormalization":
        c = layer.config
        return tuple(["gamma"] * c["scale"] + ["beta"] * c["center"]
                     + ["moving_mean", "moving_variance"])
    if not c_bias(layer) and n == 1:
        return ("kernel",)
    return _DEFAULT_NAMES.get(n, tuple(f"variable_{i}" for i in range(n)))


def c_bias(layer) -> bool:
    return bool(layer.config.get("use_bias", True))


class WeightLists:
    """Keras's trainable_weights / non_trainable_weights, from `weights` (layers and models)."""

    @property
    def trainable_weights(self) -> list:
        return [v for v in self.weights if v.trainable]

    @property
    def non_trainable_weights(self) -> list:
        return [v for v in self.weights if not v.trainable]


class Variable:
    """A Keras-style view of one weight: `.numpy()`, `.shape`, `.path`, `.assign()`."""

    def __init__(self, layer, index: int, name: str, trainable: bool):
        self._layer, self._index = layer, index
        self.name, self.trainable = name, trainable

    @property
    def path(self) -> str:
        return f"{self._layer.name}/{self.name}"

    def numpy(self) -> np.ndarray:
        return get_weights(self._layer)[self._index]

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a.astype(dtype) if dtype is not None else a

    @property
    def shape(self) -> tuple:
        return self.numpy().shape

    dtype = "float32"

    def assign(self, value) -> None:
        ws = get_weights(self._layer)
        ws[self._index] = np.asarray(value, dtype=np.float32)
        set_weights(self._layer, ws)

    def __repr__(self):
        return f"<Variable path={self.path}, shape={self.shape}, dtype=float32>"


def variables(layer) -> list[Variable]:
    if layer._module is None:
        return []
    names = weight_names(layer)
    moving = {"moving_mean", "moving_variance"}
    return [Variable(layer, i, n, layer.trainable and n not in moving)
            for i, n in enumerate(names)]


def variable(layer, name: str) -> Variable:
    _require_built(layer, f"`.{name}`")
    for v in variables(layer):
        if v.name == name:
            return v
    if name == "bias" and not c_bias(layer):
        return None  # Keras: use_bias=False leaves `bias` None
    raise AttributeError(f"Layer {layer.name!r} ({layer.keras_name}) has no weight {name!r}.")


def count_params(layer) -> int:
    _require_built(layer, "count_params()")
    return int(sum(w.size for w in get_weights(layer)))
