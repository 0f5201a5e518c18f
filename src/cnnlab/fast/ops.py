"""The compiled kernels around 2x2/stride-2 max pooling (csrc/fused.cpp), as torch ops.

- `conv_pool`: the first Conv2D and the 2x2 max pooling after it, fused. The
  lecture's first block spends most of its time writing, pooling and
  differentiating a full-resolution activation that pooling immediately
  shrinks 4x. The kernel computes each pooled pixel's four convolution outputs
  in registers, keeps the largest (remembering which, in one byte), and
  computes the weight gradient straight from the input. It applies where the
  convolution's input needs no gradient (the data).
- `conv_then_pool`: any other Conv2D (stride 1) and the 2x2 max pooling after
  it. A 3x3 convolution with a multiple of 16 filters runs forward as Winograd's
  F(4x4, 3x3), whose 4x4 output tiles are exactly four pooling windows: the tile's
  sixteen outputs are pooled in registers (others: torch's convolution). Only the
  winning output of each window has a gradient, so the kernel updates the weight
  and input gradients once per winner (a quarter of a dense backward pass or
  less) and never writes the full-resolution gradient.
- `max_pool`: 2x2 max pooling of any activation, with the winner of each window
  in one byte, so the backward pass writes each input gradient once (torch's
  zero-fills the input gradient, then scatters through int64 indices).

Both can apply a ReLU after pooling in the same pass (max(relu(x)) == relu(max(x))).
They run on CPU in float32, channels last. Without the compiled kernels
(`available()` is False: kernels.py says why) the modules that call these
(rewrite.py) run ordinary torch operations instead, with the same results (up to
float rounding: Winograd and torch sum in other orders).

    >>> if usable(x): out = conv_pool(x_nhwc_padded, conv.weight, conv.bias, (13, 13), relu=True)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import kernels


def available() -> bool:
    return kernels.EXT is not None


def _tracked(*tensors) -> bool:
    """Autograd records this op: grad mode is on and a (non-None) input requires grad."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def conv_nhwc(x, w, b):
    """torch's stride-1 'valid' convolution of x (N, H, W, C), w in torch's layout, to NHWC.

    Channels-last in and out, so both permutes are views."""
    return F.conv2d(x.permute(0, 3, 1, 2), w, b).permute(0, 2, 3, 1).contiguous()


def _keras_layout(w):
    """A conv weight (Cout, Cin, KH, KW) as conv_pool's kernels read it, (KH, KW, Cin, Cout)."""
    return w.detach().permute(2, 3, 1, 0).contiguous()


class _ConvPool(torch.autograd.Function):
    # The weight goes in as the parameter itself and its gradient comes back in the
    # parameter's shape, so autograd records one node, not a permute and a copy around it.
    @staticmethod
    def forward(ctx, x, w, b, out_h: int, out_w: int, relu: bool):
        out, arg = conv_pool_forward(x, w, b, (out_h, out_w), relu, True)
        ctx.save_for_backward(x, arg)
        ctx.kernel = (w.shape[2], w.shape[3])
        ctx.has_bias = b is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        x, arg = ctx.saved_tensors
        gw, gb = conv_pool_backward(x, arg, grad, ctx.kernel)
        return None, gw, (gb if ctx.has_bias else None), None, None, None


def conv_pool_forward(x, w, b, out_hw: tuple[int, int], relu: bool, want_arg: bool):
    """conv_pool's kernel: x (N, Hp, Wp, Cin) padded, w (Cout, Cin, KH, KW) -> (out, arg),
    out (N, *out_hw, Cout) and the winners (defined if want_arg), as pool_forward's."""
    bias = b.detach() if b is not None else x.new_empty(0)
    return kernels.EXT.conv_pool_forward(x, _keras_layout(w), bias, out_hw[0], out_hw[1], relu,
                                  want_arg)


def conv_pool_backward(x, arg, grad, kernel: tuple[int, int]):
    """conv_pool's weight and bias gradients, the weight's in torch's shape (a permuted view)."""
    gw, gb = kernels.EXT.conv_pool_backward(x, arg, grad.contiguous(), *kernel)
    return gw.permute(3, 2, 0, 1), gb


def conv_pool(x, w, b, out_hw: tuple[int, int], relu: bool = False):
    """Max over each 2x2 window (stride 2) of the stride-1 convolution of x (N, Hp, Wp, Cin)
    with w (Cout, Cin, KH, KW, torch's layout), plus b."""
    if _tracked(w, b):
        return _ConvPool.apply(x, w, b, out_hw[0], out_hw[1], relu)
    return conv_pool_forward(x, w, b, out_hw, relu, False)[0]


class _MaxPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, out_h: int, out_w: int, relu: bool):
        out, arg = kernels.EXT.pool_forward(x, out_h, out_w, relu, True)
        ctx.save_for_backward(arg)
        ctx.in_hw = (x.shape[1], x.shape[2])
        return out

    @staticmethod
    def backward(ctx, grad):
        (arg,) = ctx.saved_tensors
        return kernels.EXT.pool_backward(grad.contiguous(), arg, *ctx.in_hw), None, None, None


def max_pool(x, out_hw: tuple[int, int], relu: bool = False):
    """2x2/stride-2 max pooling of x (N, H, W, C) into (N, *out_hw, C), then ReLU if asked.

    out_hw is H // 2 (valid) or ceil(H / 2) (TF 'same' padded at the end: the last
    window holds the pixels that exist)."""
    if _tracked(x):
        return _MaxPool.apply(x.contiguous(), out_hw[0], out_hw[1], relu)
    return kernels.EXT.pool_forward(x.contiguous(), out_hw[0], out_hw[1], relu, False)[0]


def _kernel_last(w):
    """A conv weight (Cout, Cin, KH, KW) as the kernels read it, (Cout, KH, KW, Cin): a view
    of a channels-last weight's memory (no copy), a copy otherwise."""
    return w.permute(0, 2, 3, 1).contiguous()


def conv_then_pool_forward(x, w, b, out_h: int, out_w: int, relu: bool, want_arg: bool):
    """Stride-1 convolution then 2x2 max pooling: Winograd F(4x4, 3x3) with the pooling in
    the same pass where it applies (`winograd_fits`), else torch's convolution + the pooling
    kernel. -> (out, arg) as `pool_forward`'s. A single image goes to torch: its few tiles
    do not pay for the kernel's threads (0.65 vs 0.56 ms for the lecture's predict)."""
    if x.shape[0] > 1 and winograd_fits(w.shape[1], (w.shape[2], w.shape[3]), w.shape[0]):
        bias = b.detach() if b is not None else x.new_empty(0)
        return kernels.EXT.winograd_pool_forward(x.detach(), _kernel_last(w.detach()), bias,
                                          out_h, out_w, relu, want_arg)
    return kernels.EXT.pool_forward(conv_nhwc(x, w, b), out_h, out_w, relu, want_arg)


class _ConvThenPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, w, b, out_h: int, out_w: int, relu: bool):
        # x (N, Hp, Wp, Cin) padded; w (Cout, Cin, KH, KW) -> (N, out_h, out_w, Cout)
        out, arg = conv_then_pool_forward(x, w, b, out_h, out_w, relu, True)
        ctx.save_for_backward(x, w, arg)
        ctx.has_bias = b is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        x, w, arg = ctx.saved_tensors
        gx, gw, gb = conv_then_pool_backward(x, w, grad, arg, ctx.needs_input_grad[0],
                                             ctx.has_bias)
        return gx, gw, (gb if ctx.has_bias else None), None, None, None


def conv_then_pool_backward(x, w, grad, arg, need_x: bool, has_bias: bool):
    """conv_then_pool's gradients (gx or None, gw in torch's shape, gb) from the pooled
    gradient and the winners `arg` of its forward pass."""
    grad = grad.contiguous()
    kh, kw = w.shape[2], w.shape[3]
    if sparse_fits(x.shape[3], (kh, kw), (grad.shape[1], grad.shape[2])):
        gx, gw, gb = kernels.EXT.conv_then_pool_backward(x, _kernel_last(w), grad, arg, need_x)
        return (gx if need_x else None), gw.permute(0, 3, 1, 2), gb
    # dense: the convolution output's gradient from the winners, then torch's
    gy = kernels.EXT.pool_backward(grad, arg, x.shape[1] - kh + 1, x.shape[2] - kw + 1)
    gx, gw, gb = torch.ops.aten.convolution_backward(
        gy.permute(0, 3, 1, 2), x.permute(0, 3, 1, 2), w, [w.shape[0]], [1, 1],
        [0, 0], [1, 1], False, [0, 0], 1, [need_x, True, has_bias])
    return (gx.permute(0, 2, 3, 1) if need_x else None), gw, gb


def conv_then_pool(x, w, b, out_hw: tuple[int, int], relu: bool = False):
    """Conv2D (stride 1, of the padded x (N, Hp, Wp, Cin), w in torch's layout) then 2x2 max
    pooling. Forward by Winograd where `winograd_fits`; the backward pass differentiates
    only the winners where `sparse_fits`, else it is torch's convolution backward."""
    if _tracked(x, w, b):
        return _ConvThenPool.apply(x, w, b, out_hw[0], out_hw[1], relu)
    return conv_then_pool_forward(x, w, b, out_hw[0], out_hw[1], relu, False)[0]


def sparse_fits(cin: int, kernel: tuple[int, int], out_hw: tuple[int, int]) -> bool:
    """Whether conv_then_pool's backward beats a dense one here (its fast path exists)."""
    return (kernels.EXT is not None
            and kernels.EXT.sparse_backward_fast(cin, kernel[0], kernel[1], *out_hw))


def winograd_fits(cin: int, kernel: tuple[int, int], cout: int) -> bool:
    """Whether conv_then_pool's forward runs as Winograd F(4x4, 3x3) with the pooling fused."""
    return kernels.EXT is not None and kernels.EXT.winograd_fits(cin, kernel[0], kernel[1], cout)


def usable(x: torch.Tensor) -> bool:
    """The kernels run on x: compiled, CPU, float32 (the convolution also needs x constant)."""
    return kernels.EXT is not None and x.device.type == "cpu" and x.dtype == torch.float32


def _or_empty(t, like):
    return t.detach() if t is not None else like.new_empty(0)


class _NormPool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gamma, beta, eps: float, out_h: int, out_w: int, relu: bool):
        out, arg, mean, var = kernels.EXT.norm_pool_forward(
            x, _or_empty(gamma, x), _or_empty(beta, x), eps, out_h, out_w, relu, True)
        ctx.save_for_backward(x, arg, mean, var, _or_empty(gamma, x))
        ctx.eps, ctx.relu = eps, relu
        ctx.has = (gamma is not None, beta is not None)
        ctx.mark_non_differentiable(mean, var)
        return out, mean, var

    @staticmethod
    def backward(ctx, grad, _gmean, _gvar):
        x, arg, mean, var, gamma = ctx.saved_tensors
        gx, ggamma, gbeta = kernels.EXT.norm_pool_backward(x, arg, grad.contiguous(), mean, var,
                                                           gamma, ctx.eps, ctx.relu)
        return (gx, ggamma if ctx.has[0] else None, gbeta if ctx.has[1] else None,
                None, None, None, None)


def norm_pool(x, gamma, beta, eps: float, out_hw: tuple[int, int], relu: bool):
    """ReLU (if `relu`), BatchNormalization with the batch's statistics, then 2x2/stride-2 max
    pooling of x (N, H, W, C) -> (pooled (N, *out_hw, C), batch mean, batch biased variance).

    The statistics are summed in double: they equal the literal formula's up to float32
    rounding of its own sums."""
    if _tracked(x, gamma, beta):
        return _NormPool.apply(x, gamma, beta, eps, out_hw[0], out_hw[1], relu)
    out, _, mean, var = kernels.EXT.norm_pool_forward(
        x, _or_empty(gamma, x), _or_empty(beta, x), eps, out_hw[0], out_hw[1], relu, False)
    return out, mean, var
