"""Activations as layers: Softmax, ReLU, LeakyReLU and ELU, as Keras 3 computes them.

Each spec class (arguments, checks, shapes) sits beside its torch module.

    >>> from cnnlab import layers
    >>> layers.ReLU(max_value=6.0)            # relu6
    >>> layers.LeakyReLU(negative_slope=0.1)  # Keras 3's default slope is 0.3
    >>> layers.Softmax(axis=-1)
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import Layer, invalid, is_int, number, register

IMAGE_DIMS = {0: 0, 1: 2, 2: 3, 3: 1}  # Keras axis of an image (N, H, W, C) -> internal (N, C, H, W)


def internal_axes(axes: tuple[int, ...], input_shape: tuple) -> tuple[int, ...]:
    """Keras axes (batch axis included, negatives allowed) -> dims of the internal tensor,
    whose images are (N, C, H, W); every other tensor keeps Keras's layout."""
    rank = len(input_shape) + 1
    dims = []
    for a in axes:
        if not -rank <= a < rank:
            raise invalid("axis", f"an axis in [{-rank}, {rank - 1}] for an input of rank {rank}",
                          a)
        a %= rank
        dims.append(IMAGE_DIMS[a] if rank == 4 else a)
    return tuple(dims)


@register
class Softmax(Layer):
    keras_name, auto_name = "Softmax", "softmax"
    POSITIONAL = ("axis",)
    ARGS = {"axis": -1}

    def normalize(self, c):
        axis = c["axis"]
        if is_int(axis):
            return c
        if (isinstance(axis, (list, tuple)) and axis and all(is_int(a) for a in axis)
                and len(set(axis)) == len(axis)):
            c["axis"] = tuple(axis)
            return c
        raise invalid("axis", "an integer or a list of distinct integers", axis)

    def output_shape(self, input_shape):
        axis = self.config["axis"]
        internal_axes(axis if isinstance(axis, tuple) else (axis,), input_shape)  # checks range
        return input_shape

    def build(self, input_shape):
        axis = self.config["axis"]
        return SoftmaxModule(internal_axes(axis if isinstance(axis, tuple) else (axis,),
                                           input_shape))


class SoftmaxModule(nn.Module):
    def __init__(self, dims: tuple[int, ...]):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        if len(self.dims) == 1:
            return torch.softmax(x, dim=self.dims[0])
        # several axes: Keras's exp(x - logsumexp(x, axes))
        return torch.exp(x - torch.logsumexp(x, dim=self.dims, keepdim=True))


@register
class ReLU(Layer):
    keras_name, auto_name = "ReLU", "re_lu"
    POSITIONAL = ("max_value", "negative_slope", "threshold")
    ARGS = {"max_value": None, "negative_slope": 0.0, "threshold": 0.0}

    def normalize(self, c):
        c["max_value"] = number(c["max_value"], "max_value", minimum=0, allow_none=True)
        c["negative_slope"] = number(c["negative_slope"], "negative_slope", minimum=0)
        c["threshold"] = number(c["threshold"], "threshold", minimum=0)
        return c

    def build(self, input_shape):
        c = self.config
        return ReLUModule(c["max_value"], c["negative_slope"], c["threshold"])


class ReLUModule(nn.Module):
    """keras.activations.relu: a line of slope `negative_slope` below `threshold`,
    identity above it, clipped at `max_value`; the same operations in the same order
    as Keras's ReLU.static_call, so results agree to the last bit."""

    def __init__(self, max_value, negative_slope, threshold):
        super().__init__()
        self.max_value, self.negative_slope, self.threshold = max_value, negative_slope, threshold

    def forward(self, x):
        slope, top, t = self.negative_slope, self.max_value, self.threshold
        if slope != 0 and top is None and t == 0:
            return F.leaky_relu(x, slope)
        negative = F.relu(-x + t) if t != 0 else F.relu(-x) if slope != 0 else None
        if t != 0:
            y = torch.where(x > t, x, torch.zeros((), dtype=x.dtype, device=x.device))
        else:
            y = F.relu(x)
        if top is not None:
            y = torch.clamp(y, 0.0, top)
        if negative is not None:
            y = y - slope * negative
        return y


@register
class LeakyReLU(Layer):
    keras_name, auto_name = "LeakyReLU", "leaky_re_lu"
    POSITIONAL = ("negative_slope",)
    ARGS = {"negative_slope": 0.3}  # Keras 3's default (the `leaky_relu` activation's is 0.2)

    def __init__(self, *args, **kwargs):
        if "alpha" in kwargs:  # Keras 2's name; Keras 3 still reads it, with a warning
            if "negative_slope" in kwargs or args:
                raise invalid("alpha", "only one of `alpha` (Keras 2) and `negative_slope`",
                              kwargs["alpha"])
            warnings.warn("LeakyReLU: argument `alpha` is deprecated (Keras 2). Use "
                          "`negative_slope` instead.", FutureWarning, stacklevel=2)
            kwargs["negative_slope"] = kwargs.pop("alpha")
        super().__init__(*args, **kwargs)

    def normalize(self, c):
        c["negative_slope"] = number(c["negative_slope"], "negative_slope", minimum=0)
        return c

    def build(self, input_shape):
        return LeakyReLUModule(self.config["negative_slope"])


class LeakyReLUModule(nn.Module):
    def __init__(self, negative_slope):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


@register
class ELU(Layer):
    keras_name, auto_name = "ELU", "elu"
    POSITIONAL = ("alpha",)
    ARGS = {"alpha": 1.0}

    def normalize(self, c):
        c["alpha"] = number(c["alpha"], "alpha")  # Keras accepts any real alpha
        return c

    def build(self, input_shape):
        return ELUModule(self.config["alpha"])


class ELUModule(nn.Module):
    def __init__(self, alpha):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        from .. import fast  # here: cnnlab.fast imports the layers (a cycle at import time)
        return fast.elu(x, self.alpha)  # F.elu where the compiled kernels do not run
