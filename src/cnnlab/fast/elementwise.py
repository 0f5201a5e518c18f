"""Elementwise ops on the compiled kernels: ELU and SELU (and the helpers Dropout shares).

    >>> y = elu(x)                                   # F.elu(x), alpha 1
    >>> y = elu(x, SELU_ALPHA, SELU_SCALE)           # F.selu(x)

The kernels work on memory as it lies (any dense layout: channels-last maps too), so a
gradient must come back with its input's strides (`strided`). On a CPU without the
kernels, another device or dtype, these are torch's own F.elu / F.selu.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import kernels

# torch's (and Keras's) SELU constants
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


def covered(x: torch.Tensor) -> bool:
    """The kernels apply: CPU float32, kernels loaded."""
    return kernels.EXT is not None and x.device.type == "cpu" and x.dtype == torch.float32


def dense(x: torch.Tensor) -> torch.Tensor:
    """x, or a copy of it where its memory has gaps or overlaps (a strided view)."""
    if x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)):
        return x
    return x.contiguous()


def strided(g: torch.Tensor, stride: tuple) -> torch.Tensor:
    """g in memory with the forward input's strides: the kernels walk memory in order, so
    the gradient's elements must sit where the input's did."""
    if g.stride() == stride:
        return g
    return torch.empty_strided(g.shape, stride, dtype=g.dtype, device=g.device).copy_(g)


class _Elu(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha: float, scale: float):
        x = dense(x.detach())
        ctx.save_for_backward(x)
        ctx.alpha, ctx.scale = alpha, scale
        return kernels.EXT.elu_forward(x, alpha, scale)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        g = strided(grad, x.stride())
        return kernels.EXT.elu_backward(g, x, ctx.alpha, ctx.scale), None, None


def elu(x: torch.Tensor, alpha: float = 1.0, scale: float = 1.0) -> torch.Tensor:
    """scale * (x if x > 0 else alpha * (exp(x) - 1)): Keras's elu (1, 1) and selu."""
    if covered(x):
        return _Elu.apply(x, alpha, scale)
    if (alpha, scale) == (SELU_ALPHA, SELU_SCALE):
        return F.selu(x)
    y = F.elu(x, alpha)
    return y if scale == 1.0 else y * scale
