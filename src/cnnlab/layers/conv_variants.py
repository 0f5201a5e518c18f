"""Conv2DTranspose, DepthwiseConv2D and SeparableConv2D, as Keras 3 computes them.

    >>> from cnnlab import layers
    >>> layers.Conv2DTranspose(16, 3, strides=2, padding="same")     # 7x7 -> 14x14
    >>> layers.DepthwiseConv2D(3, depth_multiplier=2)                # one 3x3 per channel
    >>> layers.SeparableConv2D(32, 3, padding="same", activation="relu")

Weights go in and out in Keras's layout (`keras_weights`, `set_keras_weights`):
Conv2DTranspose kernel (kh, kw, filters, in); DepthwiseConv2D kernel (kh, kw, in, mult);
SeparableConv2D depthwise_kernel (kh, kw, in, mult), pointwise_kernel (1, 1, in*mult,
filters), bias. Depthwise output channel c*mult + m comes from input channel c (TF's order,
which is also torch's grouped-conv order).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import activations, initializers, regularizers
from .base import (REQUIRED, Layer, boolean, choice, int_pair, invalid, is_int, positive_int,
                   register, require_rank)
from .convolutional import PADDINGS, _pads, _window_shape
from .modules import _apply

IMAGES = "images of shape (height, width, channels)"


def _weight_args(c: dict, kernels: tuple[str, ...]) -> dict:
    """activation, use_bias and each kernel's `<name>_initializer` / `<name>_regularizer`."""
    activations.get(c["activation"])
    c["use_bias"] = boolean(c["use_bias"], "use_bias")
    for k in (*kernels, "bias"):
        initializers.check(c[f"{k}_initializer"])
        c[f"{k}_regularizer"] = regularizers.get(c[f"{k}_regularizer"])
    return c


def _conv_args(c: dict) -> dict:
    c["kernel_size"] = int_pair(c["kernel_size"], "kernel_size")
    c["strides"] = int_pair(c["strides"], "strides")
    c["padding"] = choice(c["padding"], "padding", PADDINGS)
    return c


def _tensor(a) -> torch.Tensor:
    return torch.from_numpy(np.asarray(a, dtype=np.float32))


class _Weighted(nn.Module):
    """Regularization and Keras initialization of named kernels plus an optional bias."""

    def __init__(self, use_bias: bool, channels: int, activation):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels)) if use_bias else None
        self.activation = activation
        self.regularizers: dict[str, object] = {}  # parameter name -> regularizer

    @property
    def kernel_regularizer(self):  # what the builder checks to know a module has a penalty
        return next((r for r in self.regularizers.values() if r is not None), None)

    bias_regularizer = None

    def regularization(self):
        terms = [r.penalty(getattr(self, name)) for name, r in self.regularizers.items()
                 if r is not None and getattr(self, name) is not None]
        return sum(terms) if terms else None

    def init(self, name: str, initializer: str, fan_in: int, fan_out: int):
        initializers.get(initializer)(getattr(self, name), fan_in=fan_in, fan_out=fan_out)

    def init_bias(self, initializer: str):
        if self.bias is not None:  # a bias vector's fans are its length, as Keras counts them
            n = self.bias.numel()
            initializers.get(initializer)(self.bias, fan_in=n, fan_out=n)

    def finish(self, y):  # + bias, then the activation; y is (N, C, H, W)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return _apply(self.activation, y, image=True)


# -- Conv2DTranspose ------------------------------------------------------------------------

def transpose_out(size: int, kernel: int, stride: int, padding: str, output_padding) -> int:
    """Output length along one axis (keras backend_utils._get_output_shape_given_tf_padding)."""
    if padding == "valid":
        extra = max(kernel, stride) - kernel if output_padding is None else output_padding
        return (size - 1) * stride + kernel + extra
    if output_padding is None:
        return size * stride
    return (size - 1) * stride + kernel % 2 + output_padding


def transpose_crop(kernel: int, stride: int, padding: str, output_padding) -> tuple[int, int]:
    """(left, right) pixels to cut from torch's full transposed output ((size-1)*stride +
    kernel long); negative means zeros to add. Keras/JAX's padding rule (TF's), as in
    keras backend_utils._convert_conv_transpose_padding_args_from_keras_to_jax."""
    if padding == "valid":
        extra = max(kernel, stride) - kernel if output_padding is None else output_padding
        left, right = kernel - 1, kernel - 1 + extra
    else:
        total = (stride + kernel - 2 if output_padding is None
                 else kernel + kernel % 2 - 2 + output_padding)
        left = min(total // 2 + total % 2, kernel - 1)
        right = total - left
    return kernel - 1 - left, kernel - 1 - right


@register
class Conv2DTranspose(Layer):
    keras_name, auto_name = "Conv2DTranspose", "conv2d_transpose"
    POSITIONAL = ("filters", "kernel_size", "strides", "padding")
    ARGS = {"filters": REQUIRED, "kernel_size": REQUIRED, "strides": (1, 1), "padding": "valid",
            "output_padding": None, "activation": None, "use_bias": True,
            "kernel_initializer": "glorot_uniform", "bias_initializer": "zeros",
            "kernel_regularizer": None, "bias_regularizer": None}

    def normalize(self, c):
        c["filters"] = positive_int(c["filters"], "filters")
        _conv_args(c)
        op = c["output_padding"]
        if op is not None:
            op = (op, op) if is_int(op) else op
            if (not isinstance(op, (list, tuple)) or len(op) != 2
                    or not all(is_int(v) and 0 <= v < s for v, s in zip(op, c["strides"]))):
                raise invalid("output_padding", "None, or a non-negative integer (or pair) "
                              f"strictly less than strides={list(c['strides'])}",
                              c["output_padding"])
            c["output_padding"] = tuple(op)
        return _weight_args(c, ("kernel",))

    def _per_axis(self):
        c = self.config
        op = c["output_padding"] or (None, None)
        return zip(c["kernel_size"], c["strides"], op)

    def output_shape(self, input_shape):
        require_rank(self, input_shape, 3, IMAGES)
        c = self.config
        h, w = (transpose_out(n, k, s, c["padding"], op)
                for n, (k, s, op) in zip(input_shape[:2], self._per_axis()))
        return (h, w, c["filters"])

    def param_counts(self, input_shape):
        c = self.config
        kh, kw = c["kernel_size"]
        return kh * kw * c["filters"] * input_shape[2] + (c["filters"] if c["use_bias"] else 0), 0

    def build(self, input_shape):
        c = self.config
        (th, bh), (lw, rw) = (transpose_crop(k, s, c["padding"], op)
                              for k, s, op in self._per_axis())
        m = ConvTranspose2d(input_shape[2], c["filters"], c["kernel_size"], c["strides"],
                            (-lw, -rw, -th, -bh), c["use_bias"], activations.get(c["activation"]))
        kh, kw = c["kernel_size"]
        # Keras's fans for a (kh, kw, filters, in) kernel
        m.init("weight", c["kernel_initializer"], kh * kw * c["filters"], kh * kw * input_shape[2])
        m.init_bias(c["bias_initializer"])
        m.regularizers = {"weight": c["kernel_regularizer"], "bias": c["bias_regularizer"]}
        return m


class ConvTranspose2d(_Weighted):
    def __init__(self, cin, filters, kernel, strides, pad, use_bias, activation):
        super().__init__(use_bias, filters, activation)
        self.weight = nn.Parameter(torch.empty(cin, filters, *kernel))  # torch's layout
        self.strides = tuple(strides)
        self.pad = pad  # (left, right, top, bottom) on torch's full output; negative crops

    def forward(self, x):  # (N, C_in, H, W) -> (N, filters, H', W')
        y = F.conv_transpose2d(x, self.weight, stride=self.strides)
        if any(self.pad):
            y = F.pad(y, self.pad)
        return self.finish(y)

    def keras_weights(self):
        w = [self.weight.detach().permute(2, 3, 1, 0).cpu().numpy()]  # -> (kh, kw, filters, in)
        return w + ([self.bias.detach().cpu().numpy()] if self.bias is not None else [])

    def set_keras_weights(self, arrays):
        with torch.no_grad():
            self.weight.copy_(_tensor(arrays[0]).permute(3, 2, 0, 1))
            if self.bias is not None:
                self.bias.copy_(_tensor(arrays[1]))


# -- DepthwiseConv2D and SeparableConv2D ----------------------------------------------------

def _depth_multiplier(c):
    c["depth_multiplier"] = positive_int(c["depth_multiplier"], "depth_multiplier")
    return c


def _depthwise_shape(layer, input_shape, channels):
    require_rank(layer, input_shape, 3, IMAGES)
    c = layer.config
    return (*_window_shape(layer, input_shape, c["kernel_size"], c["strides"], c["padding"],
                           "kernel_size"), channels)


def _depthwise_to_torch(a) -> torch.Tensor:
    kh, kw, cin, mult = a.shape  # Keras (kh, kw, in, mult) -> torch (in*mult, 1, kh, kw)
    return _tensor(a).reshape(kh, kw, cin * mult).permute(2, 0, 1).unsqueeze(1)


def _depthwise_to_keras(w: torch.Tensor, mult: int) -> np.ndarray:
    out, _, kh, kw = w.shape
    return w.detach()[:, 0].permute(1, 2, 0).reshape(kh, kw, out // mult, mult).cpu().numpy()


@register
class DepthwiseConv2D(Layer):
    keras_name, auto_name = "DepthwiseConv2D", "depthwise_conv2d"
    POSITIONAL = ("kernel_size", "strides", "padding", "depth_multiplier")
    ARGS = {"kernel_size": REQUIRED, "strides": (1, 1), "padding": "valid",
            "depth_multiplier": 1, "activation": None, "use_bias": True,
            "depthwise_initializer": "glorot_uniform", "bias_initializer": "zeros",
            "depthwise_regularizer": None, "bias_regularizer": None}

    def normalize(self, c):
        _conv_args(c)
        _depth_multiplier(c)
        return _weight_args(c, ("depthwise",))

    def output_shape(self, input_shape):
        return _depthwise_shape(self, input_shape, input_shape[-1] * self.config["depth_multiplier"])

    def param_counts(self, input_shape):
        c = self.config
        kh, kw = c["kernel_size"]
        out = input_shape[2] * c["depth_multiplier"]
        return kh * kw * out + (out if c["use_bias"] else 0), 0

    def build(self, input_shape):
        c = self.config
        cin, mult = input_shape[2], c["depth_multiplier"]
        kh, kw = c["kernel_size"]
        m = SeparableConv(cin, mult, None, c["kernel_size"], c["strides"],
                          _pads(input_shape, c["kernel_size"], c["strides"], c["padding"]),
                          c["use_bias"], activations.get(c["activation"]))
        m.init("depthwise", c["depthwise_initializer"], kh * kw * cin, kh * kw * mult)
        m.init_bias(c["bias_initializer"])
        m.regularizers = {"depthwise": c["depthwise_regularizer"], "bias": c["bias_regularizer"]}
        return m


@register
class SeparableConv2D(Layer):
    keras_name, auto_name = "SeparableConv2D", "separable_conv2d"
    POSITIONAL = ("filters", "kernel_size", "strides", "padding")
    ARGS = {"filters": REQUIRED, "kernel_size": REQUIRED, "strides": (1, 1), "padding": "valid",
            "depth_multiplier": 1, "activation": None, "use_bias": True,
            "depthwise_initializer": "glorot_uniform", "pointwise_initializer": "glorot_uniform",
            "bias_initializer": "zeros", "depthwise_regularizer": None,
            "pointwise_regularizer": None, "bias_regularizer": None}

    def normalize(self, c):
        c["filters"] = positive_int(c["filters"], "filters")
        _conv_args(c)
        _depth_multiplier(c)
        return _weight_args(c, ("depthwise", "pointwise"))

    def output_shape(self, input_shape):
        return _depthwise_shape(self, input_shape, self.config["filters"])

    def param_counts(self, input_shape):
        c = self.config
        kh, kw = c["kernel_size"]
        mid = input_shape[2] * c["depth_multiplier"]
        return (kh * kw * mid + mid * c["filters"]
                + (c["filters"] if c["use_bias"] else 0)), 0

    def build(self, input_shape):
        c = self.config
        cin, mult, filters = input_shape[2], c["depth_multiplier"], c["filters"]
        kh, kw = c["kernel_size"]
        m = SeparableConv(cin, mult, filters, c["kernel_size"], c["strides"],
                          _pads(input_shape, c["kernel_size"], c["strides"], c["padding"]),
                          c["use_bias"], activations.get(c["activation"]))
        m.init("depthwise", c["depthwise_initializer"], kh * kw * cin, kh * kw * mult)
        m.init("pointwise", c["pointwise_initializer"], cin * mult, filters)
        m.init_bias(c["bias_initializer"])
        m.regularizers = {"depthwise": c["depthwise_regularizer"],
                          "pointwise": c["pointwise_regularizer"], "bias": c["bias_regularizer"]}
        return m


class SeparableConv(_Weighted):
    """A depthwise convolution (one kernel per input channel and multiplier), then, for
    SeparableConv2D (`filters` given), a 1x1 convolution; bias and activation last."""

    def __init__(self, cin, mult, filters, kernel, strides, pad, use_bias, activation):
        super().__init__(use_bias, filters or cin * mult, activation)
        self.mult, self.strides = mult, tuple(strides)
        self.depthwise = nn.Parameter(torch.empty(cin * mult, 1, *kernel))
        self.pointwise = (nn.Parameter(torch.empty(filters, cin * mult, 1, 1))
                          if filters else None)
        top, bottom, left, right = pad
        self.pad = (left, right, top, bottom)  # TF's 'same' (the extra pixel after)

    def forward(self, x):  # (N, C_in, H, W) -> (N, C_in*mult or filters, H', W')
        if any(self.pad):
            x = F.pad(x, self.pad)
        y = F.conv2d(x, self.depthwise, stride=self.strides, groups=self.depthwise.shape[0]
                     // self.mult)
        if self.pointwise is not None:
            y = F.conv2d(y, self.pointwise)
        return self.finish(y)

    def keras_weights(self):
        w = [_depthwise_to_keras(self.depthwise, self.mult)]
        if self.pointwise is not None:  # (filters, in*mult, 1, 1) -> (1, 1, in*mult, filters)
            w.append(self.pointwise.detach().permute(2, 3, 1, 0).cpu().numpy())
        return w + ([self.bias.detach().cpu().numpy()] if self.bias is not None else [])

    def set_keras_weights(self, arrays):
        arrays = list(arrays)
        with torch.no_grad():
            self.depthwise.copy_(_depthwise_to_torch(arrays.pop(0)))
            if self.pointwise is not None:
                self.pointwise.copy_(_tensor(arrays.pop(0)).permute(3, 2, 0, 1))
            if self.bias is not None:
                self.bias.copy_(_tensor(arrays.pop(0)))
