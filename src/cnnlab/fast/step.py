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
pooling after it), Flatten, Dense, Dropout (drop.py's kernel, the same seeds drawn in
the same order as the module's), any activation of those layers, L1/L2 penalties, and a
softmax/sigmoid folded into the loss. ReLU runs inside the kernels; another activation
(elu, selu, leaky_relu, ...) runs as the module runs it, on a detached input, and its
gradient is autograd's for that one op; so does the penalty's. Anything else (batch
normalization, frozen weights, a graph model) returns None from `plan_step`, and the
trainer uses autograd.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..layers.modules import Dropout, Flatten, Linear
from . import drop
from . import ops
from .elementwise import strided
from .rewrite import FusedConvPool, _is_relu


@dataclass(frozen=True)
class _Conv:
    module: FusedConvPool
    relu: bool
    act: object  # another activation, applied after the pooling (None: relu or none)
    first: bool  # sees the data: no input gradient
    direct: bool  # the module's "direct" path: conv_pool's own kernel (FusedConvPool.path)


@dataclass(frozen=True)
class _Dense:
    module: Linear
    relu: bool
    act: object  # another activation (None: relu or none)


@dataclass(frozen=True)
class _Drop:
    rate: float


@dataclass(frozen=True)
class _Flatten:
    pass


def _activation(act) -> tuple[bool, object]:
    """(is relu, the activation to run as an op: None for relu and for none)."""
    if act is None or act.fn is None:
        return False, None
    return (True, None) if _is_relu(act) else (False, act)


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
            relu, act = _activation(m.activation)
            path = m.path(input_needs_grad=not first)
            if path == "separate":  # that path runs through autograd's conv
                return None
            program.append(_Conv(m, relu, act, first, path == "direct"))
        elif isinstance(m, Flatten):
            program.append(_Flatten())
        elif isinstance(m, Linear) and not m.image:
            folded = i == last and net_logits
            relu, act = (False, None) if folded else _activation(m.activation)
            program.append(_Dense(m, relu, act))
        elif isinstance(m, Dropout):
            if m.p > 0:  # rate 0: the identity, as the module
                if m.p >= 1:  # everything dropped: torch's dropout, through autograd
                    return None
                program.append(_Drop(m.p))
            continue  # the layer after it still sees the data when this one did
        else:
            return None
        first = False
    return program


def plan_step(trainer) -> "FastStep | None":
    """The fast step for the trainer's model, or None where it does not apply."""
    net = trainer.net
    if (not ops.available() or trainer.device.type != "cpu"
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
        reg = self._penalty(grads)
        if reg is not None:
            loss = loss + reg
        with torch.no_grad():
            for p in self.params:
                g = grads[p]
                # as autograd's accumulation stores it: in the parameter's memory layout
                p.grad = g if g.stride() == p.stride() else torch.empty_like(p).copy_(g)
            tr._step()
            return loss.detach() * xb.shape[0], tr.hits(logits, yi)

    def _penalty(self, grads: dict) -> torch.Tensor | None:
        """The L1/L2 penalty (None: none); its gradients added to `grads`, as autograd
        adds a weight's two contributions."""
        net = self.trainer.net
        if not net.regularized:
            return None
        with torch.enable_grad():
            reg = net.regularization()
            params = [p for p in self.params if p in grads]
            extra = torch.autograd.grad(reg, params, allow_unused=True)
        with torch.no_grad():
            for p, g in zip(params, extra):
                if g is not None:
                    grads[p] = grads[p] + g
        return reg.detach()

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
                h, act = _activate(op.act, h, image=True)
                saved.append((x, arg, act))
            elif isinstance(op, _Flatten):
                saved.append(h.shape)
                h = h.reshape(h.shape[0], -1)
            elif isinstance(op, _Drop):
                seed = drop.new_seed()  # as the module draws it, in the same order
                h = drop.apply(h, seed, op.rate)
                saved.append((seed, h.stride()))
            else:
                m = op.module
                x = h
                h = F.linear(x, m.weight, m.bias)
                if op.relu:
                    h = torch.relu(h)
                h, act = _activate(op.act, h, image=False)
                saved.append((x, h, act))
        return h, saved

    def _backward(self, g, saved) -> dict:
        grads = {}
        for i in range(len(self.program) - 1, -1, -1):
            op, s = self.program[i], saved[i]
            if isinstance(op, _Conv):
                m = op.module
                conv = m.conv
                x, arg, act = s
                g = _activation_grad(act, g)
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
            elif isinstance(op, _Drop):
                if g is not None:
                    seed, stride = s
                    g = drop.apply(strided(g, stride), seed, op.rate)
            else:
                m = op.module
                x, out, act = s
                g = _activation_grad(act, g)
                if op.relu:
                    g = torch.ops.aten.threshold_backward(g, out, 0)
                # autograd's addmm backward: grad.t().mm(input) for the weight, the
                # batch sum for the bias, grad.mm(weight) for the input
                grads[m.weight] = g.t().mm(x)
                if m.bias is not None:
                    grads[m.bias] = g.sum(0)
                g = g.mm(m.weight) if i > 0 else None
        return grads


def _activate(act, h, image: bool):
    """(act(h), what its gradient needs) for an activation the kernels do not run (None:
    h itself). h is (N, H, W, C) for an image: the activation sees the (N, C, H, W) view,
    as the module applies it (a softmax over channels differs from one over W)."""
    if act is None:
        return h, None
    with torch.enable_grad():
        leaf = h.detach().requires_grad_()
        if image:
            out = act.apply(leaf.permute(0, 3, 1, 2), 1).permute(0, 2, 3, 1)
        else:
            out = act.apply(leaf, -1)
    return out.detach(), (leaf, out)


def _activation_grad(act, g):
    """The gradient before the activation from the one after it (autograd's, one op)."""
    if act is None or g is None:
        return g
    leaf, out = act
    (g,) = torch.autograd.grad(out, leaf, g)
    return g


@torch.no_grad()
def _cross_entropy_and_grad(logits, target):
    """F.cross_entropy(logits, target) (mean, class indices, no smoothing) and its gradient
    by the aten ops autograd runs for it, without autograd (~60 us against ~160)."""
    logp = torch._log_softmax(logits, 1, False)
    loss, total_weight = torch.ops.aten.nll_loss_forward(logp, target, None, 1, -100)
    g = torch.ops.aten.nll_loss_backward(torch.ones_like(loss), logp, target, None, 1, -100,
                                         total_weight)
    return loss, torch.ops.aten._log_softmax_backward_data(g, logp, 1, logits.dtype)
