"""The graph rewrite: a chain of built layers -> the modules that run it, faster, same results.

    >>> modules, index = optimize_chain(zip(spec.layers, built_modules, spec.output_shapes))
    >>> for m in modules: x = m(x)         # the chain's output, as the layers' in order

Two rewrites, both exact:
- A Conv2D whose activation is monotone (relu, elu, ...), followed by MaxPooling2D,
  applies the activation after the pooling: max(f(x)) == f(max(x)) for a non-decreasing
  f, on a tensor 4x smaller.
- A Conv2D with stride 1 followed by 2x2/stride-2 max pooling (no padded copy: 'valid',
  or 'same' padded only at the end) runs as one op with the compiled kernels (ops.py):
  the full-resolution output is never written, and the backward pass differentiates only
  each window's winner.
Both make one `FusedConvPool` in place of the two modules. A 2x2/stride-2 max pooling
left on its own becomes `MaxPool2x2`, the kernels' pooling (winner in one byte).
- A Conv2D (ReLU or no activation), the BatchNormalization after it and a 2x2/stride-2 max
  pooling after that (the lecture's last bullet, as improve.yaml's batchnorm variant
  writes it) make one `FusedConvNormPool`: in training, with the kernels, the activation,
  the batch statistics, the normalization and the pooling run as one op (ops.norm_pool)
  that never writes the full-resolution normalized map, and whose backward pass computes
  batch norm's sums over the pooling's winners only.

The new modules hold the original ones (`.conv`, `.pool`) and call into their weights,
so parameters, Keras weights and state stay theirs; the originals are not changed.
Without the kernels the same modules run torch's ops.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..layers import BatchNormalization, Conv2D, MaxPooling2D
from ..layers.modules import BatchNorm, Conv2d, Pool2d, pooled_size
from . import ops
from .batchnorm import update_moving

DIRECT_MAX_CHANNELS = 4  # the conv+pool kernel computes the convolution itself up to here


def optimize_chain(chain: Iterable[tuple]) -> tuple[list[nn.Module], list[int]]:
    """Rewrite a linear chain of layers into the modules that run it.

    `chain`: (spec layer, its built module, its output shape (Keras's, no batch axis))
    for each layer in order, each layer's output read only by the next. Returns
    (modules, index): calling `modules` in order computes the chain's output, and
    index[i] is the position in `modules` of the one that computes layer i (a Conv2D and
    the pooling fused into one share it: the Conv2D's own output no longer exists).
    """
    chain = list(chain)
    modules, index = [], []
    i = 0
    while i < len(chain):
        layer, module, _ = chain[i]
        if i + 2 < len(chain) and _conv_norm_max_pool(chain[i:i + 3]):
            index += [len(modules)] * 3
            modules.append(FusedConvNormPool(module, chain[i + 1][1], chain[i + 2][1],
                                             chain[i + 2][2][:2]))
            i += 3
            continue
        nxt = chain[i + 1] if i + 1 < len(chain) else None
        fused = nxt is not None and _conv_then_max_pool(layer, module, nxt[0], nxt[1])
        if fused:
            index += [len(modules)] * 2
            modules.append(FusedConvPool(module, nxt[1], nxt[2][:2]))
            i += 2
            continue
        index.append(len(modules))
        modules.append(MaxPool2x2(module) if _max_pool_2x2(module) else module)
        i += 1
    return modules, index


def _conv_then_max_pool(layer, conv, next_layer, pool) -> bool:
    """A pair FusedConvPool runs: the pooling comes first (the activation is monotone, or
    there is none) and is worth it (an activation moves, or one kernel does both)."""
    if not (isinstance(layer, Conv2D) and isinstance(next_layer, MaxPooling2D)
            and isinstance(conv, Conv2d) and isinstance(pool, Pool2d)):
        return False
    act = _activation(conv)
    return (act is not None and act.monotone) or (act is None and _one_kernel(conv, pool))


def _conv_norm_max_pool(three) -> bool:
    """Conv2D (ReLU or none) > BatchNormalization over its channels > 2x2/stride-2 max pooling."""
    (conv_layer, conv, _), (norm_layer, norm, _), (pool_layer, pool, _) = three
    if not (isinstance(conv_layer, Conv2D) and isinstance(conv, Conv2d)
            and isinstance(norm_layer, BatchNormalization) and isinstance(norm, BatchNorm)
            and isinstance(pool_layer, MaxPooling2D) and _max_pool_2x2(pool)):
        return False
    act = _activation(conv)
    return norm.image and (act is None or _is_relu(act))


def _activation(conv):
    act = conv.activation
    return None if act is None or act.fn is None else act


def _is_relu(act) -> bool:
    return act is not None and act.name == "relu"


def _apply(act, y):
    """`act` (None: none) on an image tensor (N, C, H, W)."""
    return y if act is None else act.apply(y, 1)


def _max_pool_2x2(pool) -> bool:
    """2x2/stride-2 max pooling without a padded copy: the kernels' pooling applies."""
    return (isinstance(pool, Pool2d) and pool.kind == "max" and tuple(pool.pool) == (2, 2)
            and tuple(pool.strides) == (2, 2) and pool.pad is None)


def _one_kernel(conv, pool) -> bool:
    return (tuple(conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1) and conv.groups == 1
            and _max_pool_2x2(pool))


class MaxPool2x2(nn.Module):
    """A 2x2/stride-2 max pooling (`pool`, a Pool2d) on the kernels where they run,
    then `activation` (a monotone one moved after the pooling, or None)."""

    def __init__(self, pool: Pool2d, activation=None):
        super().__init__()
        self.pool, self.activation = pool, activation

    def forward(self, x):  # (N, C, H, W) -> (N, C, H', W'), channels-last memory
        act = self.activation
        if ops.usable(x):
            out_hw = tuple(pooled_size(n, 2, 2, self.pool.ceil_mode) for n in x.shape[2:])
            relu = _is_relu(act)
            y = ops.max_pool(x.permute(0, 2, 3, 1), out_hw, relu).permute(0, 3, 1, 2)
            return y if relu else _apply(act, y)
        return _apply(act, self.pool(x))


class FusedConvPool(nn.Module):
    """A Conv2D (`conv`) and the max pooling after it (`pool`) as one module, the conv's
    activation applied after the pooling (see the module docstring).

    `one_kernel`: stride 1 and 2x2/stride-2 pooling, so the kernels do both in one pass
    (`path`); otherwise the conv, then the pooling, then the activation."""

    def __init__(self, conv: Conv2d, pool: Pool2d, out_hw: tuple[int, int]):
        super().__init__()
        self.conv, self.pool = conv, pool
        self.activation = _activation(conv)
        self.out_hw = tuple(out_hw)  # the pooled output's (H, W)
        self.one_kernel = _one_kernel(conv, pool)
        # the pooling and activation when the kernels do not do all of it in one pass
        self.then = MaxPool2x2(pool, self.activation) if _max_pool_2x2(pool) else None

    def forward(self, x):  # (N, C_in, H, W) -> (N, filters, H', W'), pooled
        if not self.one_kernel:
            y = self.conv(x, activate=False)
            return self.then(y) if self.then is not None else _apply(self.activation, self.pool(y))
        act = self.activation
        if not ops.usable(x):
            y = F.max_pool2d(self.conv(x, activate=False), 2, 2, ceil_mode=self.pool.ceil_mode)
            return _apply(act, y)
        relu = _is_relu(act)
        xh = self.pad_nhwc(x.permute(0, 2, 3, 1))  # (N, H, W, C): channels-last memory
        path = self.path(x.requires_grad)
        w, b = self.conv.weight, self.conv.bias
        if path == "direct":
            y = ops.conv_pool(xh, w, b, self.out_hw, relu=relu)
        elif path == "then_pool":
            y = ops.conv_then_pool(xh, w, b, self.out_hw, relu=relu)
        else:
            y = ops.max_pool(ops.conv_nhwc(xh, w, b), self.out_hw, relu=relu)
        y = y.permute(0, 3, 1, 2)  # (N, C, H', W') view, channels-last memory
        return y if relu else _apply(act, y)

    def path(self, input_needs_grad: bool) -> str:
        """How the one-kernel pair runs: "direct" (on the data, few channels: one kernel),
        "then_pool" (ops.conv_then_pool) or "separate" (torch's convolution, then the
        pooling kernel)."""
        conv = self.conv
        cin = conv.in_channels
        if not input_needs_grad and cin <= DIRECT_MAX_CHANNELS:
            return "direct"
        if (ops.sparse_fits(cin, conv.kernel_size, self.out_hw)
                or ops.winograd_fits(cin, conv.kernel_size, conv.out_channels)):
            return "then_pool"
        return "separate"

    def pad_nhwc(self, xh):
        """The (N, H, W, C) input padded for the convolution ('same'), contiguous."""
        top, bottom, left, right = self.conv.pad
        if any(self.conv.pad):
            xh = F.pad(xh, (0, 0, left, right, top, bottom))
        return xh.contiguous()

    def unpad_nhwc(self, gx):
        """The gradient of `pad_nhwc`'s output cut back to its input (a view)."""
        top, bottom, left, right = self.conv.pad
        if not any(self.conv.pad):
            return gx
        return gx[:, top:gx.shape[1] - bottom, left:gx.shape[2] - right, :]


class FusedConvNormPool(nn.Module):
    """A Conv2D (`conv`, ReLU or no activation), the BatchNormalization after it (`norm`) and
    the 2x2/stride-2 max pooling after that (`pool`) as one module.

    Training with the kernels: the convolution (torch's), then ops.norm_pool does the
    activation, the batch statistics, the normalization and the pooling in one op, and
    the moving statistics are updated as BatchNorm's own training path does. Otherwise
    (inference: the moving statistics; a frozen or literal BatchNorm; no kernels; reduced
    precision) the three modules run in turn, unchanged."""

    def __init__(self, conv: Conv2d, norm: BatchNorm, pool: Pool2d, out_hw: tuple[int, int]):
        super().__init__()
        self.conv, self.norm, self.pool = conv, norm, pool
        self.relu = _is_relu(_activation(conv))
        self.out_hw = tuple(out_hw)  # the pooled output's (H, W)

    def fused(self, x) -> bool:
        bn = self.norm
        return (bn.training and not getattr(bn, "frozen", False) and not bn.literal
                and ops.usable(x) and not torch.is_autocast_enabled("cpu"))

    def forward(self, x):  # (N, C_in, H, W) -> (N, filters, H', W'), pooled
        if not self.fused(x):
            return self.pool(self.norm(self.conv(x)))
        bn = self.norm
        c = self.conv(x, activate=False).permute(0, 2, 3, 1).contiguous()  # NHWC memory
        y, mean, var = ops.norm_pool(c, bn.weight, bn.bias, bn.epsilon, self.out_hw, self.relu)
        update_moving(bn.running_mean, bn.running_var, mean, var, bn.momentum)
        return y.permute(0, 3, 1, 2)  # (N, C, H', W') view, channels-last memory
