"""A training step without autograd's bookkeeping, for the models the fused kernels cover.

    >>> step = plan(trainer)          # None when the model has a layer it does not cover
    >>> loss_sum, hits = step(xb, yb, yi)

For the lecture's model a step does a few dozen tensor operations of real work, and
autograd adds a node, saved tensors and dispatch for each of about a hundred small
ones (permutes, views, detaches, gradient accumulation); on 2 cores that was ~0.7 ms of
a 7.6 ms step. This step runs the forward pass with the same kernels and torch ops as
the modules' `forward`, keeps what the backward pass needs, and calls the same backward
functions in reverse; only the loss (on the logits) goes through autograd, so every
loss works (softmax cross-entropy on class indices without smoothing, the lecture's,
calls autograd's own aten ops directly). Same kernels in the same order: the gradients
equal autograd's bit for bit (tests/test_train_step.py checks it).

Covered: Conv2D (stride 1) fused with the 2x2 max pooling after it (ReLU or no
activation), Flatten, Dense with ReLU or no activation, and a softmax/sigmoid folded
into the loss. Anything else (dropout, batch normalization, other activations,
regularizers, frozen weights) returns None from `plan`, and the trainer uses autograd.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import fused
from ..layers.modules import Conv2d, Flatten, Linear, Pool2d, _is_relu


@dataclass(frozen=True)
class _Conv:
    module: Conv2d
    relu: bool
    first: bool  # sees the data: no input gradient
    direct: bool  # the module's "direct" path: conv_pool's own kernel (Conv2d.fused_path)


@dataclass(frozen=True)
class _Dense:
    module: Linear
    relu: bool


@dataclass(frozen=True)
class _Flatten:
    pass


def _activation_ok(act) -> tuple[bool, bool]:
    """(covered, is relu) for an activation (None or 'linear': none)."""
    if act is None or act.fn is None:
        return True, False
    return _is_relu(act), _is_relu(act)


def _program(net, net_logits: bool) -> list | None:
    ops, first = [], True
    last = len(net.layers) - 1
    for i, m in enumerate(net.layers):
        if isinstance(m, Conv2d):
            if m.pooled_hw is None or m.activation is not None:
                return None
            ok, relu = _activation_ok(m.pooled_activation)
            path = m.fused_path(input_needs_grad=not first)
            if not ok or path == "separate":  # that path runs through autograd's conv
                return None
            ops.append(_Conv(m, relu, first, path == "direct"))
        elif isinstance(m, Pool2d):
            if not m.done_by_previous:
                return None
        elif isinstance(m, Flatten):
            ops.append(_Flatten())
        elif isinstance(m, Linear) and not m.image:
            folded = i == last and net_logits
            ok, relu = (True, False) if folded else _activation_ok(m.activation)
            if not ok:
                return None
            ops.append(_Dense(m, relu))
        else:
            return None
        first = False
    return ops


def plan(trainer) -> "FastStep | None":
    """The fast step for the trainer's model, or None where it does not apply."""
    net = trainer.net
    if (not fused.available() or trainer.device.type != "cpu" or net.regularized
            or any(not p.requires_grad for p in net.parameters())):
        return None
    ops = _program(net, trainer.net_logits)
    return FastStep(trainer, ops) if ops else None


class FastStep:
    def __init__(self, trainer, ops: list):
        self.trainer, self.ops = trainer, ops
        self.params = [p for g in trainer.optimizer.param_groups for p in g["params"]]

    def applies(self, xb: torch.Tensor) -> bool:
        return fused.usable(xb) and torch.is_grad_enabled()

    def __call__(self, xb, yb, yi) -> tuple[torch.Tensor, torch.Tensor]:
        tr = self.trainer
        with torch.no_grad():
            logits, saved = self._forward(xb)
        if tr.index_targets and not tr.label_smoothing:
            loss, grad = _cross_entropy_and_grad(logits, yi)
        else:
            with torch.enable_grad():  # the loss alone through autograd: any loss works
                leaf = logits.detach().requires_grad_()
                loss = tr._mean_loss(leaf, yb, yi)
                (grad,) = torch.autograd.grad(loss, leaf)
        with torch.no_grad():
            grads = self._backward(grad, saved)
            for p in self.params:
                g = grads[p]
                # as autograd's accumulation stores it: in the parameter's memory layout
                p.grad = g if g.stride() == p.stride() else torch.empty_like(p).copy_(g)
            tr._step()
            return loss.detach() * xb.shape[0], tr.hits(logits, yi)

    def _forward(self, h):
        saved = []
        for op in self.ops:
            if isinstance(op, _Conv):
                m = op.module
                x = m.pad_nhwc(h)
                if op.direct:
                    h, arg = fused.conv_pool_forward(x, m.weight, m.bias, m.pooled_hw, op.relu,
                                                     True)
                else:
                    h, arg = fused._conv_pool_forward(x, m.weight, m.bias, *m.pooled_hw,
                                                      op.relu, True)
                saved.append((x, arg))
            elif isinstance(op, _Flatten):
                saved.append(h.shape)
                h = h.reshape(h.shape[0], -1)
            else:
                m = op.module
                x = h
                h = F.linear(x, m.weight, m.bias)
                if op.relu:
                    h = torch.relu(h)
                saved.append((x, h))
        return h, saved

    def _backward(self, g, saved) -> dict:
        grads = {}
        for i in range(len(self.ops) - 1, -1, -1):
            op, s = self.ops[i], saved[i]
            if isinstance(op, _Conv):
                m = op.module
                x, arg = s
                if op.direct:
                    gw, gb = fused.conv_pool_backward(x, arg, g, m.kernel_size)
                    gx = None
                else:
                    gx, gw, gb = fused.conv_then_pool_backward(x, m.weight, g, arg, not op.first,
                                                               m.bias is not None)
                grads[m.weight] = gw
                if m.bias is not None:
                    grads[m.bias] = gb
                g = m.unpad_nhwc(gx) if gx is not None else None
            elif isinstance(op, _Flatten):
                g = g.reshape(s)
            else:
                m = op.module
                x, out = s
                if op.relu:
                    g = torch.ops.aten.threshold_backward(g, out, 0)
                # autograd's addmm backward: grad.t().mm(input) for the weight, the
                # batch sum for the bias, grad.mm(weight) for the input
                grads[m.weight] = g.t().mm(x)
                if m.bias is not None:
                    grads[m.bias] = g.sum(0)
                g = g.mm(m.weight) if i > 0 else None
        return grads


@torch.no_grad()
def _cross_entropy_and_grad(logits, target):
    """F.cross_entropy(logits, target) (mean, class indices, no smoothing) and its gradient
    by the aten ops autograd runs for it, without autograd (~60 us against ~160)."""
    logp = torch._log_softmax(logits, 1, False)
    loss, total_weight = torch.ops.aten.nll_loss_forward(logp, target, None, 1, -100)
    g = torch.ops.aten.nll_loss_backward(torch.ones_like(loss), logp, target, None, 1, -100,
                                         total_weight)
    return loss, torch.ops.aten._log_softmax_backward_data(g, logp, 1, logits.dtype)
