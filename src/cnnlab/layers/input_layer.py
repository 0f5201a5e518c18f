"""InputLayer: Keras 3's spelling of the model's input, as a first layer.

    >>> from cnnlab import layers
    >>> layers.InputLayer(shape=(28, 28, 1))
    >>> layers.InputLayer(batch_shape=(None, 28, 28, 1))   # the batch size is not kept

It behaves as `Input` (a model's first layer, not counted among its layers): a
subclass whose checks accept Keras's other forms of the shape.
"""
from __future__ import annotations

import warnings

from ..errors import SpecError
from .base import invalid, is_int, register, shape_tuple
from .core import Input


@register(name="InputLayer")
class InputLayer(Input):
    POSITIONAL = ("shape", "batch_size", "dtype")
    ARGS = {"shape": None, "batch_size": None, "dtype": None, "batch_shape": None}

    def __init__(self, *args, name=None, input_shape=None, batch_input_shape=None, **kwargs):
        # Keras 2 names, still read by Keras 3's InputLayer (with a warning for input_shape)
        if input_shape is not None:
            warnings.warn("InputLayer: argument `input_shape` is deprecated (Keras 2). Use "
                          "`shape` instead.", FutureWarning, stacklevel=2)
            kwargs["shape"] = input_shape
        if batch_input_shape is not None:
            kwargs["batch_shape"] = batch_input_shape
        super().__init__(*args, name=name, **kwargs)

    def normalize(self, c):
        shape, batch_shape, batch_size = c["shape"], c["batch_shape"], c["batch_size"]
        if shape is not None and batch_shape is not None:
            raise SpecError("InputLayer: you cannot pass both `shape` and `batch_shape`. "
                            "Expected one of them.")
        if batch_size is not None and (not is_int(batch_size) or batch_size <= 0):
            raise invalid("batch_size", "None or a strictly positive integer", batch_size)
        if batch_shape is not None:
            if (not isinstance(batch_shape, (list, tuple)) or len(batch_shape) < 2
                    or not (batch_shape[0] is None or is_int(batch_shape[0]))):
                raise invalid("batch_shape", "a list [batch, *shape] such as [None, 28, 28, 1]",
                              batch_shape)
            c["batch_shape"] = tuple(batch_shape)
            shape = tuple(batch_shape[1:])
        if shape is None:
            raise SpecError("InputLayer: missing argument `shape`. Expected `shape` (such as "
                            "[28, 28, 1]) or `batch_shape` (such as [None, 28, 28, 1]).")
        c["shape"] = shape_tuple(shape, "shape")
        if c["dtype"] not in (None, "float32"):
            raise invalid("dtype", "None or 'float32' (cnnlab computes in float32)", c["dtype"])
        return c
