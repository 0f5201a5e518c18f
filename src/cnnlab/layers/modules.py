"""The torch modules behind the Keras layers.

Internal layout: an image tensor whose Keras shape is (H, W, C) is held as
torch's (N, C, H, W) in channels-last memory (the permute of an NHWC array, so
no copy), which is what torch's CPU convolution kernels run fastest on. Every
other tensor keeps Keras's layout. Each module knows how to read and write its
weights in Keras's layout (`keras_weights` / `set_keras_weights`).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import initializers
from ..activations import Activation

IMAGE_CHANNEL_DIM = 1  # channel axis of internal image tensors (N, C, H, W)


def _apply(act: Activation | None, x: torch.Tensor, image: bool) -> torch.Tensor:
    if act is None:
        return x
    return act.apply(x, IMAGE_CHANNEL_DIM if image else -1)


class WeightedMixin:
    """Keras-style init, regularization and weight export for kernel/bias modules."""

    kernel_regularizer = None
    bias_regularizer = None

    def regularization(self) -> torch.Tensor | None:
        terms = []
        if self.kernel_regularizer is not None:
            terms.append(self.kernel_regularizer.penalty(self.weight))
        if self.bias_regularizer is not None and self.bias is not None:
            terms.append(self.bias_regularizer.penalty(self.bias))
        return sum(terms) if terms else None

    def init_keras(self, kernel_init: str, bias_init: str, fan_in: int, fan_out: int):
        initializers.get(kernel_init)(self.weight, fan_in=fan_in, fan_out=fan_out)
        if self.bias is not None:
            initializers.get(bias_init)(self.bias, fan_in=fan_in, fan_out=fan_out)


class Conv2d(WeightedMixin, nn.Conv2d):
    """Conv2D with TensorFlow's padding (asymmetric when needed) and its activation."""

    def __init__(self, cin, filters, kernel, strides, pad, use_bias, activation):
        top, bottom, left, right = pad
        symmetric = top == bottom and left == right
        super().__init__(cin, filters, kernel, stride=strides,
                         padding=(top, left) if symmetric else 0, bias=use_bias)
        self.extra_pad = None if symmetric else (left, right, top, bottom)
        self.activation = activation
        self.pad = pad  # (top, bottom, left, right), TensorFlow's

    def forward(self, x, activate: bool = True):  # (N, C_in, H, W) -> (N, filters, H', W')
        if self.extra_pad is not None:
            x = F.pad(x, self.extra_pad)
        y = super().forward(x)
        return _apply(self.activation, y, image=True) if activate else y

    def keras_weights(self):
        w = [self.weight.detach().permute(2, 3, 1, 0).cpu().numpy()]  # -> (kh, kw, c_in, c_out)
        return w + ([self.bias.detach().cpu().numpy()] if self.bias is not None else [])

    def set_keras_weights(self, arrays):
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(np.asarray(arrays[0])).permute(3, 2, 0, 1))
            if self.bias is not None:
                self.bias.copy_(torch.from_numpy(np.asarray(arrays[1])))


class Linear(WeightedMixin, nn.Linear):
    """Dense: applies to the last Keras axis (the channel axis of images)."""

    def __init__(self, fan_in, units, use_bias, activation, image):
        super().__init__(fan_in, units, bias=use_bias)
        self.activation = activation
        self.image = image

    def forward(self, x, activate: bool = True):
        if self.image:  # (N, C, H, W) -> (N, H, W, C) -> dense -> back
            y = super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        else:
            y = super().forward(x)
        return _apply(self.activation, y, self.image) if activate else y

    def keras_weights(self):
        w = [self.weight.detach().t().cpu().numpy()]  # -> (in, units)
        return w + ([self.bias.detach().cpu().numpy()] if self.bias is not None else [])

    def set_keras_weights(self, arrays):
        with torch.no_grad():
            self.weight.copy_(torch.from_numpy(np.asarray(arrays[0])).t())
            if self.bias is not None:
                self.bias.copy_(torch.from_numpy(np.asarray(arrays[1])))


def pooled_size(size: int, window: int, stride: int, ceil: bool = True) -> int:
    """Output length of torch's max_pool2d (padding 0), with or without ceil_mode."""
    span = size - window
    out = (-(-span // stride) if ceil else span // stride) + 1
    if ceil and (out - 1) * stride >= size:  # torch: the last window must start inside
        out -= 1
    return out


class Pool2d(nn.Module):
    """Max or average pooling with TensorFlow's 'same' semantics.

    'same' max pooling pads with -inf; 'same' average pooling divides by the
    number of real (unpadded) pixels in each window, as TensorFlow does.
    """

    def __init__(self, kind, pool, strides, pad, in_hw):
        super().__init__()
        self.kind, self.pool, self.strides = kind, pool, strides
        top, bottom, left, right = pad
        self.pad = (left, right, top, bottom) if any(pad) else None
        self.ceil_mode = False
        if (kind == "max" and self.pad is not None and top == 0 and left == 0
                and all(pooled_size(n, k, st) == pooled_size(n + p, k, st, ceil=False)
                        for n, k, st, p in zip(in_hw, pool, strides, (bottom, right)))):
            # Padding only after the last row/column: torch's ceil_mode drops the missing
            # pixels from the last window exactly as -inf padding does, without a padded copy.
            self.pad, self.ceil_mode = None, True
        if kind == "avg" and self.pad is not None:
            ones = torch.ones(1, 1, *in_hw)
            count = F.avg_pool2d(F.pad(ones, self.pad), pool, strides) * (pool[0] * pool[1])
            self.register_buffer("count", count, persistent=False)  # (1, 1, H', W')

    def forward(self, x):
        if self.kind == "max":
            if self.pad is not None:
                x = F.pad(x, self.pad, value=float("-inf"))
            y = F.max_pool2d(x, self.pool, self.strides, ceil_mode=self.ceil_mode)
        elif self.pad is None:
            y = F.avg_pool2d(x, self.pool, self.strides)
        else:
            summed = F.avg_pool2d(F.pad(x, self.pad), self.pool, self.strides) * (
                self.pool[0] * self.pool[1])
            y = summed / self.count
        return y


class GlobalPool2d(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, x):  # (N, C, H, W) -> (N, C)
        return x.mean(dim=(2, 3)) if self.kind == "avg" else x.amax(dim=(2, 3))


class Flatten(nn.Module):
    """Flatten in Keras's channels-last order, so Keras Dense weights map one to one."""

    def __init__(self, image):
        super().__init__()
        self.image = image

    def forward(self, x):
        if self.image:
            x = x.permute(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C): a view in channels-last memory
        return x.reshape(x.shape[0], -1)


class Reshape(nn.Module):
    def __init__(self, in_image, target):
        super().__init__()
        self.in_image, self.target = in_image, tuple(target)

    def forward(self, x):
        if self.in_image:
            x = x.permute(0, 2, 3, 1)
        y = x.reshape(x.shape[0], *self.target)
        if len(self.target) == 3:  # an image again: (N, H, W, C) -> (N, C, H, W) view
            y = y.permute(0, 3, 1, 2)
        return y


class ActivationModule(nn.Module):
    def __init__(self, activation, image):
        super().__init__()
        self.activation, self.image = activation, image

    def forward(self, x, activate: bool = True):
        return _apply(self.activation, x, self.image) if activate else x


class Dropout(nn.Dropout):
    def forward(self, x):
        from .. import fast  # here: cnnlab.fast imports the layers (a cycle at import time)
        return fast.dropout(x, self.p, self.training)


class BatchNorm(nn.Module):
    """Keras's BatchNormalization over the channel axis.

    Training: normalizes with the batch's biased variance and updates the
    moving statistics as Keras does: moving = moving * momentum + batch * (1 - momentum).
    Inference: uses the moving statistics. Training runs on fast.batch_norm_train (torch's
    one-pass kernels, the same maths up to float rounding) unless `literal` is set: the
    formula below, kept as the reference the tests compare the fast path with.
    """

    def __init__(self, channels, momentum, epsilon, center, scale, image):
        super().__init__()
        self.momentum, self.epsilon, self.image = momentum, epsilon, image
        self.weight = nn.Parameter(torch.ones(channels)) if scale else None   # gamma
        self.bias = nn.Parameter(torch.zeros(channels)) if center else None   # beta
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))
        self.literal = False

    def _view(self, t, x):
        if self.image:
            return t.view(1, -1, 1, 1)
        return t.view(*([1] * (x.dim() - 1)), -1)

    def forward(self, x):
        # a frozen layer (trainable=False) normalizes with its moving statistics, as in Keras 3
        training = self.training and not getattr(self, "frozen", False)
        if training and not self.literal:
            from .. import fast  # here: cnnlab.fast imports the layers (a cycle at import time)
            return fast.batch_norm_train(x, self.weight, self.bias, self.running_mean,
                                         self.running_var, self.momentum, self.epsilon, self.image)
        if training:
            dims = (0, 2, 3) if self.image else tuple(range(x.dim() - 1))
            var, mean = torch.var_mean(x, dim=dims, unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), 1 - self.momentum)
                self.running_var.lerp_(var.detach(), 1 - self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        inv = torch.rsqrt(var + self.epsilon)
        if self.weight is not None:
            inv = inv * self.weight
        shift = -mean * inv
        if self.bias is not None:
            shift = shift + self.bias
        return x * self._view(inv, x) + self._view(shift, x)

    def keras_weights(self):
        w = [p.detach().cpu().numpy() for p in (self.weight, self.bias) if p is not None]
        return w + [self.running_mean.cpu().numpy(), self.running_var.cpu().numpy()]

    def set_keras_weights(self, arrays):
        targets = [p for p in (self.weight, self.bias) if p is not None]
        targets += [self.running_mean, self.running_var]
        with torch.no_grad():
            for t, a in zip(targets, arrays, strict=True):
                t.copy_(torch.from_numpy(np.asarray(a)))
