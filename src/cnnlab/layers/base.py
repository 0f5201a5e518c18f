"""The base of every Keras layer in cnnlab, and argument checks shared by all.

A layer is a small, validated description: its Keras class name, its Keras
arguments (defaults filled in), and three rules derived from them:

- `output_shape(input_shape)`: the Keras shape (no batch axis) it produces,
- `param_counts(input_shape)`: (trainable, non_trainable) as Keras counts them,
- `build(input_shape)`: the torch module that computes it.

Shapes are always in Keras's channels-last order, e.g. (26, 26, 32).

New layers register themselves where they are defined (timm's `@register_model`):

    >>> @register
    ... class Softmax(Layer):
    ...     keras_name, auto_name = "Softmax", "softmax"
"""
from __future__ import annotations

import math
from typing import Any, ClassVar

from ..errors import SpecError, unknown_name
from .objects import WeightLists

REQUIRED = object()  # marks an argument without a default


class Layer(WeightLists):
    keras_name: ClassVar[str] = "Layer"
    auto_name: ClassVar[str] = "layer"      # prefix of generated names: conv2d, conv2d_1, ...
    POSITIONAL: ClassVar[tuple[str, ...]] = ()
    ARGS: ClassVar[dict[str, Any]] = {}     # Keras argument -> default (REQUIRED if none)
    multi_input: ClassVar[bool] = False     # merge layers read a list of tensors

    def __init__(self, *args, name: str | None = None, input_shape=None, trainable=True,
                 **kwargs):
        if len(args) > len(self.POSITIONAL):
            raise SpecError(f"{self.keras_name} takes at most {len(self.POSITIONAL)} positional "
                            f"arguments ({', '.join(self.POSITIONAL) or 'none'}). "
                            f"Received {len(args)}.")
        given = dict(zip(self.POSITIONAL, args))
        for key, value in kwargs.items():
            if key in given:
                raise SpecError(f"{self.keras_name} got argument `{key}` twice.")
            given[key] = value
        unknown = sorted(set(given) - set(self.ARGS))
        if unknown:
            valid = ", ".join(sorted(self.ARGS) + ["input_shape", "name"])
            raise SpecError(f"Unknown argument `{unknown[0]}` for {self.keras_name}. "
                            f"Expected one of: {valid}.")
        missing = [k for k, d in self.ARGS.items() if d is REQUIRED and k not in given]
        if missing:
            raise SpecError(f"Missing required argument `{missing[0]}` for {self.keras_name}.")
        if name is not None and (not isinstance(name, str) or not name):
            raise SpecError(f"Invalid value for argument `name`. Expected a non-empty string. "
                            f"Received name={name!r}.")
        self._name = name
        self._trainable = boolean(trainable, "trainable")
        self._module = None      # the torch module holding its weights, once a model built it
        self._owner_name = None  # the name the model that built it gave it (Keras's auto name)
        self.input_shape = None if input_shape is None else shape_tuple(input_shape, "input_shape")
        config = {k: d for k, d in self.ARGS.items() if d is not REQUIRED}
        config.update(given)
        self.config = self.normalize(config)
        self.given = {k: self.config[k] for k in given}  # what the user wrote, normalized

    # -- to override -------------------------------------------------------
    def normalize(self, config: dict) -> dict:
        """Check and normalize argument values; raise SpecError naming the argument."""
        return config

    def output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def param_counts(self, input_shape: tuple) -> tuple[int, int]:
        return 0, 0

    def build(self, input_shape: tuple):
        raise NotImplementedError

    # -- shared ------------------------------------------------------------
    def get_config(self) -> dict:
        """The arguments as written in a spec (user-given ones, normalized)."""
        out = {k: to_plain(v) for k, v in self.given.items()}
        if self._name is not None:
            out["name"] = self._name
        if not self._trainable:
            out["trainable"] = False
        return out

    def __getattr__(self, key):
        config = self.__dict__.get("config")
        if config is not None and key in config:
            return config[key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    # -- the layer object (functional API, weights: layers/objects.py) -------
    @property
    def name(self) -> str:
        """The name given, else the one its model gave it (Keras's conv2d, conv2d_1, ...)."""
        return self._name or self._owner_name or self.auto_name

    @property
    def trainable(self) -> bool:
        return self._trainable

    @trainable.setter
    def trainable(self, value) -> None:
        self._trainable = boolean(value, "trainable")
        if self._module is not None:
            from .objects import apply_trainable
            apply_trainable(self._module, self._trainable)

    def __call__(self, inputs, *args, **kwargs):
        from .objects import call_layer
        return call_layer(self, inputs, *args, **kwargs)

    def get_weights(self) -> list:
        """Its weights as NumPy arrays in Keras's order and layout ([] until built)."""
        from .objects import get_weights
        return get_weights(self)

    def set_weights(self, weights) -> None:
        from .objects import set_weights
        set_weights(self, weights)

    @property
    def weights(self) -> list:
        from .objects import variables
        return variables(self)

    @property
    def kernel(self):
        from .objects import variable
        return variable(self, "kernel")

    @property
    def bias(self):
        from .objects import variable
        return variable(self, "bias")

    def count_params(self) -> int:
        from .objects import count_params
        return count_params(self)

    @property
    def built(self) -> bool:
        return self._module is not None

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{self.keras_name}({args})"

    def __eq__(self, other):
        return (type(self) is type(other) and self.config == other.config
                and self._name == other._name and self._trainable == other._trainable)

    __hash__ = None


class Registry(dict):
    """Keras class name -> Layer class; unknown names fail listing the valid ones.

    A dict, so that `LAYERS` stays a plain mapping for its readers; `register`
    refuses a name twice (two classes answering to one YAML key would be a silent bug).
    """

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, cls=None, *, name: str | None = None):
        """Class decorator: `@register` (under its keras_name) or `@register(name="Alias")`."""
        def add(cls):
            key = name or cls.keras_name
            if key in self and self[key] is not cls:
                raise RuntimeError(f"{self.kind} {key!r} is registered twice "
                                   f"({self[key].__name__} and {cls.__name__}).")
            self[key] = cls
            return cls
        return add(cls) if cls is not None else add

    def get(self, name):
        if not isinstance(name, str) or name not in self:
            raise SpecError(unknown_name(self.kind, name, self))
        return self[name]


REGISTRY = Registry("layer")
register = REGISTRY.register


# -- argument checks: each returns the normalized value or raises SpecError ----

def invalid(arg: str, expected: str, value) -> SpecError:
    return SpecError(f"Invalid value for argument `{arg}`. Expected {expected}. "
                     f"Received {arg}={value!r}.")


def is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def positive_int(value, arg: str) -> int:
    if not is_int(value) or value <= 0:
        raise invalid(arg, "a strictly positive integer", value)
    return value


def int_pair(value, arg: str) -> tuple[int, int]:
    """An int or a pair of ints, all > 0 (Keras accepts both for kernel sizes)."""
    pair = (value, value) if is_int(value) else value
    if (not isinstance(pair, (list, tuple)) or len(pair) != 2
            or not all(is_int(v) and v > 0 for v in pair)):
        raise invalid(arg, "a strictly positive integer or a pair of them", value)  # as written
    return tuple(pair)


def choice(value, arg: str, choices) -> str:
    if value not in choices:
        raise invalid(arg, "one of " + ", ".join(repr(c) for c in choices), value)
    return value


def boolean(value, arg: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(arg, "true or false", value)
    return value


def unit_float(value, arg: str, *, low_open=False, high_open=True) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:
        ok = (value > 0 if low_open else value >= 0) and (value < 1 if high_open else value <= 1)
    if not ok:
        lo = "(0" if low_open else "[0"
        hi = "1)" if high_open else "1]"
        raise invalid(arg, f"a number in {lo}, {hi}", value)
    return float(value)


def number(value, arg: str, *, minimum: float | None = None, allow_none=False):
    """A real number (not a bool), optionally >= minimum; None only where Keras allows it."""
    if value is None and allow_none:
        return None
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or (minimum is not None and value < minimum) or value != value:  # NaN
        expected = "a number" if minimum is None else f"a number >= {minimum:g}"
        raise invalid(arg, expected + (" or None" if allow_none else ""), value)
    return float(value)


def pad_pairs(value, arg: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """Keras's 2-D padding/cropping forms -> ((top, bottom), (left, right)), all >= 0:
    an int, a pair (symmetric height, symmetric width) or a pair of pairs."""
    def nonneg(v):
        return is_int(v) and v >= 0
    expected = ("a non-negative integer, a pair of them (symmetric height, width) or a pair "
                "of pairs ((top, bottom), (left, right))")
    if nonneg(value):
        return ((value, value), (value, value))
    if isinstance(value, (list, tuple)) and len(value) == 2:
        out = []
        for v in value:
            if nonneg(v):
                out.append((v, v))
            elif isinstance(v, (list, tuple)) and len(v) == 2 and all(nonneg(x) for x in v):
                out.append(tuple(v))
            else:
                raise invalid(arg, expected, value)
        return tuple(out)
    raise invalid(arg, expected, value)


def weighted_args(c: dict) -> dict:
    """The arguments Conv2D and Dense share: activation, bias, initializers, regularizers."""
    from .. import activations, initializers, regularizers
    activations.get(c["activation"])
    c["use_bias"] = boolean(c["use_bias"], "use_bias")
    initializers.check(c["kernel_initializer"])
    initializers.check(c["bias_initializer"])
    c["kernel_regularizer"] = regularizers.get(c["kernel_regularizer"])
    c["bias_regularizer"] = regularizers.get(c["bias_regularizer"])
    return c


def shape_tuple(value, arg: str) -> tuple[int, ...]:
    if is_int(value):
        value = (value,)
    if (not isinstance(value, (list, tuple)) or not value
            or not all(is_int(v) and v > 0 for v in value)):
        raise invalid(arg, "a list of strictly positive integers such as [28, 28, 1]", value)
    return tuple(value)


def to_plain(v):
    """Tuples -> lists, regularizers -> mappings: what YAML/JSON can hold."""
    if isinstance(v, tuple):
        return [to_plain(x) for x in v]
    if hasattr(v, "to_config"):
        return v.to_config()
    return v


def window_out(size: int, window: int, stride: int, padding: str) -> int:
    """Output length of a conv/pool window along one axis, as TensorFlow computes it."""
    if padding == "same":
        return math.ceil(size / stride)
    return (size - window) // stride + 1 if size >= window else 0


def same_pad(size: int, window: int, stride: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after); the extra pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + window - size, 0)
    return total // 2, total - total // 2


def require_rank(layer: Layer, input_shape: tuple, rank: int, what: str):
    if len(input_shape) != rank:
        raise SpecError(f"{layer.keras_name} expects {what} (rank {rank} without the batch "
                        f"axis). Received input shape {shape_str(input_shape)}.")


def shape_str(shape: tuple) -> str:
    return "(None, " + ", ".join(str(s) for s in shape) + ")" if shape else "(None,)"


__all__ = ["Layer", "REQUIRED", "Registry", "REGISTRY", "register", "unknown_name"]
