"""Conv2D and the 2-D pooling layers (Keras names, arguments and defaults)."""
from __future__ import annotations

from ..errors import SpecError
from .. import activations
from . import modules
from .base import (REQUIRED, Layer, choice, int_pair, positive_int, require_rank, weighted_args,
                   same_pad, shape_str, window_out)

PADDINGS = ("valid", "same")


def _window_shape(layer, input_shape, window, strides, padding, what):
    h, w = input_shape[:2]
    oh, ow = (window_out(h, window[0], strides[0], padding),
              window_out(w, window[1], strides[1], padding))
    if oh <= 0 or ow <= 0:
        raise SpecError(f"{layer.keras_name}: {what} {tuple(window)} is larger than its input "
                        f"{shape_str(input_shape)} with padding='valid'. Use a smaller {what}, "
                        "padding='same', or a larger input.")
    return oh, ow


def _pads(input_shape, window, strides, padding):
    """(top, bottom, left, right) padding in pixels."""
    if padding == "valid":
        return (0, 0, 0, 0)
    return same_pad(input_shape[0], window[0], strides[0]) + same_pad(input_shape[1], window[1], strides[1])


class Conv2D(Layer):
    keras_name, auto_name = "Conv2D", "conv2d"
    POSITIONAL = ("filters", "kernel_size", "strides", "padding")
    ARGS = {"filters": REQUIRED, "kernel_size": REQUIRED, "strides": (1, 1), "padding": "valid",
            "activation": None, "use_bias": True, "kernel_initializer": "glorot_uniform",
            "bias_initializer": "zeros", "kernel_regularizer": None, "bias_regularizer": None}

    def normalize(self, c):
        c["filters"] = positive_int(c["filters"], "filters")
        c["kernel_size"] = int_pair(c["kernel_size"], "kernel_size")
        c["strides"] = int_pair(c["strides"], "strides")
        c["padding"] = choice(c["padding"], "padding", PADDINGS)
        return weighted_args(c)

    def output_shape(self, input_shape):
        require_rank(self, input_shape, 3, "images of shape (height, width, channels)")
        c = self.config
        return (*_window_shape(self, input_shape, c["kernel_size"], c["strides"], c["padding"],
                               "kernel_size"), c["filters"])

    def param_counts(self, input_shape):
        c = self.config
        kh, kw = c["kernel_size"]
        return kh * kw * input_shape[2] * c["filters"] + (c["filters"] if c["use_bias"] else 0), 0

    def build(self, input_shape):
        c = self.config
        kh, kw = c["kernel_size"]
        cin = input_shape[2]
        m = modules.Conv2d(cin, c["filters"], c["kernel_size"], c["strides"],
                           _pads(input_shape, c["kernel_size"], c["strides"], c["padding"]),
                           c["use_bias"], activations.get(c["activation"]))
        m.init_keras(c["kernel_initializer"], c["bias_initializer"],
                     fan_in=kh * kw * cin, fan_out=kh * kw * c["filters"])
        m.kernel_regularizer, m.bias_regularizer = c["kernel_regularizer"], c["bias_regularizer"]
        return m


class _Pooling2D(Layer):
    kind = "max"
    POSITIONAL = ("pool_size", "strides", "padding")
    ARGS = {"pool_size": (2, 2), "strides": None, "padding": "valid"}

    def normalize(self, c):
        c["pool_size"] = int_pair(c["pool_size"], "pool_size")
        # Keras: strides default to pool_size
        c["strides"] = c["pool_size"] if c["strides"] is None else int_pair(c["strides"], "strides")
        c["padding"] = choice(c["padding"], "padding", PADDINGS)
        return c

    def output_shape(self, input_shape):
        require_rank(self, input_shape, 3, "images of shape (height, width, channels)")
        c = self.config
        return (*_window_shape(self, input_shape, c["pool_size"], c["strides"], c["padding"],
                               "pool_size"), input_shape[2])

    def build(self, input_shape):
        c = self.config
        return modules.Pool2d(self.kind, c["pool_size"], c["strides"],
                              _pads(input_shape, c["pool_size"], c["strides"], c["padding"]),
                              input_shape[:2])


class MaxPooling2D(_Pooling2D):
    keras_name, auto_name, kind = "MaxPooling2D", "max_pooling2d", "max"


class AveragePooling2D(_Pooling2D):
    keras_name, auto_name, kind = "AveragePooling2D", "average_pooling2d", "avg"


class _GlobalPooling2D(Layer):
    kind = "avg"

    def output_shape(self, input_shape):
        require_rank(self, input_shape, 3, "images of shape (height, width, channels)")
        return (input_shape[2],)

    def build(self, input_shape):
        return modules.GlobalPool2d(self.kind)


class GlobalAveragePooling2D(_GlobalPooling2D):
    keras_name, auto_name, kind = "GlobalAveragePooling2D", "global_average_pooling2d", "avg"


class GlobalMaxPooling2D(_GlobalPooling2D):
    keras_name, auto_name, kind = "GlobalMaxPooling2D", "global_max_pooling2d", "max"
