"""Optional C++ kernel: the first Conv2D and the 2x2 max pooling after it, fused.

The lecture's first block (Conv2D(32, 3x3) then MaxPooling2D(2)) spends most of
its time writing, pooling and differentiating a full-resolution activation that
pooling immediately shrinks 4x. The kernel (csrc/fused.cpp) computes each pooled
pixel's four convolution outputs in registers, keeps the largest (remembering
which, in one byte), and computes the weight gradient straight from the input.
It applies where the convolution's input needs no gradient (the data), on CPU, in
float32. Without the compiled kernel (`available()` is False) the same layers run
as ordinary torch operations, with the same results.

    >>> if available(): out = conv_pool(x_nhwc_padded, w_keras_layout, bias, (13, 13))
"""
from __future__ import annotations

import torch

try:
    from . import _fused as _ext  # built by setup.py; optional
except ImportError:  # pragma: no cover - depends on the build
    _ext = None


def available() -> bool:
    return _ext is not None


class _ConvPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, out_h: int, out_w: int):
        # x (N, Hp, Wp, Cin) padded; w (KH, KW, Cin, Cout); -> (N, out_h, out_w, Cout)
        bias = b if b is not None else x.new_empty(0)
        out, arg = _ext.conv_pool_forward(x, w, bias, out_h, out_w)
        ctx.save_for_backward(x, arg)
        ctx.kernel = (w.shape[0], w.shape[1])
        ctx.has_bias = b is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        x, arg = ctx.saved_tensors
        gw, gb = _ext.conv_pool_backward(x, arg, grad.contiguous(), *ctx.kernel)
        return None, gw, (gb if ctx.has_bias else None), None, None


def conv_pool(x, w, b, out_hw: tuple[int, int]):
    """Max over each 2x2 window (stride 2) of the stride-1 convolution of x with w, plus b."""
    return _ConvPool.apply(x, w, b, out_hw[0], out_hw[1])


def usable(x: torch.Tensor) -> bool:
    return (_ext is not None and x.device.type == "cpu" and x.dtype == torch.float32
            and not x.requires_grad)
