"""Keras's BatchNormalization in training, as one forward and one backward kernel.

The literal formula (layers/modules.py, `BatchNorm.forward`) costs about a dozen passes
over the activation: `var_mean` over (N, H, W) of a channels-last tensor reduces along a
strided axis (the slowest op of the whole batchnorm variant), and autograd differentiates
the broadcasts and the statistics op by op. torch's own `native_batch_norm` does the same
maths in one pass for the statistics and one for the output, vectorized over channels in
channels-last memory, and `native_batch_norm_backward` the gradient in one pass for its
two reductions and one for the input gradient. This module wraps that pair in an autograd
Function and keeps Keras's conventions: the moving statistics are updated with the
*biased* batch variance, moving = moving * momentum + batch * (1 - momentum) (torch's own
update would use the unbiased variance), and epsilon is Keras's.

Results equal the literal formula's up to float32 rounding (a different summation order:
tests/test_fast_batchnorm.py states the tolerance); inference keeps the literal formula.

    >>> y = batch_norm_train(x, gamma, beta, moving_mean, moving_var, momentum=0.99, eps=1e-3)
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable


class _BatchNormTrain(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps: float):
        out, mean, invstd = torch.native_batch_norm(x, weight, bias, None, None, True, 0.0, eps)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.eps, ctx.has_bias = eps, bias is not None
        ctx.mark_non_differentiable(mean, invstd)
        return out, mean, invstd

    @staticmethod
    @once_differentiable
    def backward(ctx, grad, _gmean, _ginvstd):
        x, weight, mean, invstd = ctx.saved_tensors
        mask = [ctx.needs_input_grad[0], weight is not None and ctx.needs_input_grad[1],
                ctx.has_bias and ctx.needs_input_grad[2]]
        gx, gw, gb = torch.ops.aten.native_batch_norm_backward(
            grad.contiguous(memory_format=_memory_format(x)), x, weight, None, None, mean,
            invstd, True, ctx.eps, mask)
        return gx, gw, gb, None


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def batch_norm_train(x, weight, bias, running_mean, running_var, momentum: float, eps: float,
                     image: bool = True) -> torch.Tensor:
    """Normalize `x` with its batch statistics over every axis but the channels and update
    the moving statistics in place as Keras does.

    x: (N, C, H, W) when `image` (any memory format; channels-last is the fast one), else
    (..., C) with the channels last. weight/bias: (C,) or None (scale/center off).
    """
    shape = x.shape
    if not image:  # (..., C) -> (M, C): native_batch_norm wants the channels on axis 1
        x = x.reshape(-1, shape[-1])
    out, mean, invstd = _BatchNormTrain.apply(x, weight, bias, eps)
    with torch.no_grad():
        # The biased batch variance back from 1 / sqrt(var + eps); clamped because a channel
        # with no spread (a dead ReLU) can come back a rounding error below zero.
        var = invstd.pow(-2).sub_(eps).clamp_(min=0)
    update_moving(running_mean, running_var, mean, var, momentum)
    return out if image else out.reshape(shape)


@torch.no_grad()
def update_moving(running_mean, running_var, mean, var, momentum: float) -> None:
    """Keras's moving statistics, in place: moving = moving * momentum + batch * (1 - momentum),
    with the batch's biased variance."""
    running_mean.lerp_(mean, 1 - momentum)
    running_var.lerp_(var, 1 - momentum)
