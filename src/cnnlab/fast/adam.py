"""Adam's (and SGD's) update as one direct call of torch's fused kernel, instead of
Optimizer.step.

    >>> step = step_function(torch_optimizer)   # opt.step itself where it does not apply
    >>> step()                                  # after loss.backward()

For a model as small as the lecture's, Optimizer.step's Python (hooks, grouping tensors
by device and dtype, profiler records) costs more than the update itself. The update is
the same: tests/test_optimizers.py checks it bit for bit against opt.step().
"""
from __future__ import annotations

import torch


def step_function(opt: torch.optim.Optimizer):
    """`opt.step`, or for torch's fused Adam/AdamW with plain settings the same update as one
    direct call of torch's fused kernel.

    For a model as small as the lecture's, Optimizer.step's Python (hooks, grouping tensors
    by device and dtype, profiler records) costs more than the update itself. The direct
    call takes over once the state exists (after the first step) and whenever its
    conditions hold; anything else goes through `opt.step()` unchanged."""
    if isinstance(opt, torch.optim.SGD):
        return _sgd_step_function(opt)
    if not isinstance(opt, torch.optim.Adam):
        return opt.step
    counter = _StepCounter()

    def step():
        group = opt.param_groups[0] if len(opt.param_groups) == 1 else None
        plain = (group is not None and _plain(opt, group) and not group["amsgrad"]
                 and not group["capturable"])
        params = group["params"] if plain else ()
        states = [opt.state.get(p) for p in params]
        if not plain or any(p.grad is None or not s for p, s in zip(params, states)):
            return opt.step()
        steps = counter.advance(states)
        kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        beta1, beta2 = group["betas"]
        views = [_memory_order(p, p.grad, s["exp_avg"], s["exp_avg_sq"])
                 for p, s in zip(params, states)]
        kernel(*(list(t) for t in zip(*views)), [], steps, amsgrad=False, lr=group["lr"],
               beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
               maximize=False, grad_scale=None, found_inf=None)
        return None

    return step


def _plain(opt, group) -> bool:
    """One parameter group on torch's fused kernel, nothing that Optimizer.step would do
    around the update (hooks, a tensor learning rate, differentiable or maximizing)."""
    from torch.optim import optimizer as _optimizer
    return (group["fused"] and not group["maximize"] and not group["differentiable"]
            and not isinstance(group["lr"], torch.Tensor)
            and not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks
            and not _optimizer._global_optimizer_pre_hooks
            and not _optimizer._global_optimizer_post_hooks)


def _sgd_step_function(opt: torch.optim.SGD):
    """SGD's `opt.step`, as one direct call of torch's fused kernel once the momentum
    buffers exist (the first step, and any other case, goes through `opt.step()`):
    Optimizer.step's Python was ~0.5 ms of the lecture model's 7 ms SGD step."""

    def step():
        group = opt.param_groups[0] if len(opt.param_groups) == 1 else None
        if group is None or not _plain(opt, group) or group["nesterov"]:
            return opt.step()
        params = group["params"]
        momentum = group["momentum"]
        buffers = [opt.state.get(p, {}).get("momentum_buffer") for p in params]
        if any(p.grad is None for p in params) or (momentum != 0 and any(b is None for b in buffers)):
            return opt.step()
        views = [_memory_order(*((p, p.grad, b) if momentum != 0 else (p, p.grad)))
                 for p, b in zip(params, buffers)]
        torch._fused_sgd_([v[0] for v in views], [v[1] for v in views],
                          [v[2] for v in views] if momentum != 0 else [],
                          weight_decay=group["weight_decay"], momentum=momentum, lr=group["lr"],
                          dampening=group["dampening"], nesterov=False, maximize=False,
                          is_first_step=False, grad_scale=None, found_inf=None)
        return None

    return step


class _StepCounter:
    """Every parameter's Adam "step" as a view of one tensor, so a step adds 1 to all of them
    in one op (torch._foreach_add_ on eight 0-d tensors: ~100 us on the lecture's model, as
    long as its update). Rebuilt whenever the states hold other tensors (a first step, a
    loaded state_dict)."""

    def __init__(self):
        self.base, self.views = None, []

    def advance(self, states) -> list:
        steps = [s["step"] for s in states]
        if len(steps) != len(self.views) or any(a is not b for a, b in zip(steps, self.views)):
            self.base = torch.stack([t.detach() for t in steps])
            self.views = list(self.base.unbind(0))
            for s, v in zip(states, self.views):
                s["step"] = v
        self.base.add_(1)
        return self.views


def _memory_order(*tensors):
    """A parameter with its gradient and moments, as 1-D views of their memory when they are
    channels-last (a conv kernel's layout here) with identical strides: torch's fused kernel
    copies such tensors to contiguous and back on every step (~60 us for the lecture's second
    conv kernel). The update is elementwise, so it is the same either way."""
    p = tensors[0]
    if (p.dim() != 4 or p.is_contiguous() or not p.is_contiguous(memory_format=torch.channels_last)
            or any(t.stride() != p.stride() for t in tensors[1:])):
        return tensors
    return tuple(t.as_strided((t.numel(),), (1,)) for t in tensors)
