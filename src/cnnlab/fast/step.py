"""A training step without autograd's bookkeeping, for the models the fused kernels cover.

    >>> step = plan_step(trainer)     # None when the model has a layer it does not cover
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

Covered: a FusedConvPool on one kernel (rewrite.py: Conv2D with stride 1 and the 2x2 max
pooling after it, ReLU or no activation), Flatten, Dense with ReLU or no activation, and
a softmax/sigmoid folded into the loss. Anything else (dropout, batch normalization,
other activations, regularizers, frozen weights) returns None from `plan_step`, and the
trainer uses autograd.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..layers.modules import Flatten, Linear
from . import ops
from .rewrite import FusedConvPool, _is_relu


@dataclass(frozen=True)
class _Conv:
    module: FusedConvPool
    relu: bool
    first: bool  # sees the data: no input gradient
    direct: bool  # the module's "direct" path: conv_pool's own kernel (FusedConvPool.path)


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
    chain = getattr(net, "chain", None)  # a sequential model's modules, as they run
    if chain is None:
        return None
    program, first = [], True
    last = len(chain) - 1
    for i, m in enumerate(chain):
        if isinstance(m, FusedConvPool):
            if not m.one_kernel:
                return None
            ok, relu = _activation_ok(m.activation)
            path = m.path(input_needs_grad=not first)
            if not ok or path == "separate":  # that path runs through autograd's conv
                return None
            program.append(_Conv(m, relu, first, path == "direct"))
        elif isinstance(m, Flatten):
            program.append(_Flatten())
        elif isinstance(m, Linear) and not m.image:
            folded = i == last and net_logits
            ok, relu = (True, False) if folded else _activation_ok(m.activation)
            if not ok:
                return None
            program.append(_Dense(m, relu))
        else:
            return None
        first = False
    return program


def plan_step(trainer) -> "FastStep | None":
    """The fast step for the trainer's model, or None where it does not apply."""
    net = trainer.net
    if (not ops.available() or trainer.device.type != "cpu" or net.regularized
            or any(not p.requires_grad for p in net.parameters())):
        return None
    program = _program(net, trainer.net_logits)
    return FastStep(trainer, program) if program else None


class FastStep:
    def __init__(self, trainer, program: list):
        self.trainer, self.program = trainer, program
        self.params = [p for g in trainer.optimizer.param_groups for p in g["params"]]

    def applies(self, xb: torch.Tensor) -> bool:
        return ops.usable(xb) and torch.is_grad_enabled()

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
        for op in self.program:
            if isinstance(op, _Conv):
                m = op.module
                x = m.pad_nhwc(h)
                w, b = m.conv.weight, m.conv.bias
                if op.direct:
                    h, arg = ops.conv_pool_forward(x, w, b, m.out_hw, op.relu, True)
                else:
                    h, arg = ops.conv_then_pool_forward(x, w, b, *m.out_hw, op.relu, True)
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
        for i in range(len(self.program) - 1, -1, -1):
            op, s = self.program[i], saved[i]
            if isinstance(op, _Conv):
                m = op.module
                conv = m.conv
                x, arg = s
                if op.direct:
                    gw, gb = ops.conv_pool_backward(x, arg, g, conv.kernel_size)
                    gx = None
                else:
                    gx, gw, gb = ops.conv_then_pool_backward(x, conv.weight, g, arg, not op.first,
                                                             conv.bias is not None)
                grads[conv.weight] = gw
                if conv.bias is not None:
                    grads[conv.bias] = gb
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
