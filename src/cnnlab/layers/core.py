"""Dense, Flatten, Dropout, Activation, Reshape, BatchNormalization and Input."""
from __future__ import annotations

import math

from ..errors import SpecError
from .. import activations
from . import modules
from .base import (REQUIRED, Layer, boolean, invalid, is_int, positive_int, shape_str, weighted_args,
                   shape_tuple, unit_float)


class Input(Layer):
    """`- Input: {shape: [28, 28, 1]}` as the first layer: the model's input shape."""

    keras_name, auto_name = "Input", "input_layer"
    POSITIONAL = ("shape",)
    ARGS = {"shape": REQUIRED}

    def normalize(self, c):
        c["shape"] = shape_tuple(c["shape"], "shape")
        return c


class Dense(Layer):
    keras_name, auto_name = "Dense", "dense"
    POSITIONAL = ("units", "activation")
    ARGS = {"units": REQUIRED, "activation": None, "use_bias": True,
            "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros",
            "kernel_regularizer": None, "bias_regularizer": None}

    def normalize(self, c):
        c["units"] = positive_int(c["units"], "units")
        return weighted_args(c)

    def output_shape(self, input_shape):
        return (*input_shape[:-1], self.config["units"])

    def param_counts(self, input_shape):
        units = self.config["units"]
        return input_shape[-1] * units + (units if self.config["use_bias"] else 0), 0

    def build(self, input_shape):
        c = self.config
        m = modules.Linear(input_shape[-1], c["units"], c["use_bias"],
                           activations.get(c["activation"]), image=len(input_shape) == 3)
        m.init_keras(c["kernel_initializer"], c["bias_initializer"],
                     fan_in=input_shape[-1], fan_out=c["units"])
        m.kernel_regularizer, m.bias_regularizer = c["kernel_regularizer"], c["bias_regularizer"]
        return m


class Flatten(Layer):
    keras_name, auto_name = "Flatten", "flatten"

    def output_shape(self, input_shape):
        return (math.prod(input_shape),)

    def build(self, input_shape):
        return modules.Flatten(image=len(input_shape) == 3)


class Dropout(Layer):
    keras_name, auto_name = "Dropout", "dropout"
    POSITIONAL = ("rate",)
    ARGS = {"rate": REQUIRED}

    def normalize(self, c):
        c["rate"] = unit_float(c["rate"], "rate", high_open=False)  # Keras accepts 1.0
        return c

    def build(self, input_shape):
        return modules.Dropout(self.config["rate"])


class Activation(Layer):
    keras_name, auto_name = "Activation", "activation"
    POSITIONAL = ("activation",)
    ARGS = {"activation": REQUIRED}

    def normalize(self, c):
        activations.get(c["activation"])
        return c

    def build(self, input_shape):
        return modules.ActivationModule(activations.get(self.config["activation"]),
                                        image=len(input_shape) == 3)


class Reshape(Layer):
    keras_name, auto_name = "Reshape", "reshape"
    POSITIONAL = ("target_shape",)
    ARGS = {"target_shape": REQUIRED}

    def normalize(self, c):
        t = c["target_shape"]
        t = (t,) if is_int(t) else t
        ok = (isinstance(t, (list, tuple)) and t and all(is_int(v) and (v > 0 or v == -1) for v in t)
              and list(t).count(-1) <= 1)
        if not ok:
            raise invalid("target_shape", "a list of strictly positive integers, with at most "
                          "one -1", c["target_shape"])
        c["target_shape"] = tuple(t)
        return c

    def output_shape(self, input_shape):
        t = self.config["target_shape"]
        size, known = math.prod(input_shape), math.prod(v for v in t if v != -1)
        if -1 in t:
            if size % known:
                raise SpecError(f"Reshape cannot reshape input {shape_str(input_shape)} "
                                f"({size} values) into target_shape {list(t)}.")
            t = tuple(size // known if v == -1 else v for v in t)
        if math.prod(t) != size:
            raise SpecError(f"Reshape: total size of the new array must be unchanged: input "
                            f"{shape_str(input_shape)} has {size} values, target_shape {list(t)} "
                            f"has {math.prod(t)}.")
        return t

    def build(self, input_shape):
        return modules.Reshape(len(input_shape) == 3, self.output_shape(input_shape))


class BatchNormalization(Layer):
    keras_name, auto_name = "BatchNormalization", "batch_normalization"
    POSITIONAL = ("axis", "momentum", "epsilon", "center", "scale")
    ARGS = {"axis": -1, "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True}

    def normalize(self, c):
        if c["axis"] != -1:
            raise invalid("axis", "-1 (the channel axis; other axes are not supported)", c["axis"])
        c["momentum"] = unit_float(c["momentum"], "momentum")
        eps = c["epsilon"]
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps <= 0:
            raise invalid("epsilon", "a strictly positive number", eps)
        c["epsilon"] = float(eps)
        c["center"] = boolean(c["center"], "center")
        c["scale"] = boolean(c["scale"], "scale")
        return c

    def param_counts(self, input_shape):
        ch = input_shape[-1]
        return ch * (int(self.config["center"]) + int(self.config["scale"])), 2 * ch

    def build(self, input_shape):
        c = self.config
        return modules.BatchNorm(input_shape[-1], c["momentum"], c["epsilon"], c["center"],
                                 c["scale"], image=len(input_shape) == 3)
