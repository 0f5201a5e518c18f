"""The direct fused-Adam step gives bit-identical updates to torch's Optimizer.step."""
from __future__ import annotations

import pytest
import torch

from cnnlab.fast import step_function
from cnnlab.optimizers import get


def _twins(name, args):
    torch.manual_seed(0)
    a = [torch.nn.Parameter(torch.randn(s)) for s in [(8, 4, 3, 3), (8,), (3, 8)]]
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    return a, get({"name": name, **args}).build(a), b, get({"name": name, **args}).build(b)


def _four_steps(a, step_a, b, step_b, opts):
    """Four steps of both twins on the same random gradients, the rate halved between steps
    (as a schedule would)."""
    for _ in range(4):
        for p, q in zip(a, b):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        step_a()
        step_b()
        for opt in opts:
            opt.param_groups[0]["lr"] *= 0.5


@pytest.mark.parametrize("name, args", [("adam", {}), ("adamw", {"weight_decay": 0.01}),
                                        ("adam", {"beta_2": 0.95, "learning_rate": 0.006})])
def test_direct_step_equals_optimizer_step_bit_for_bit(name, args):
    a, opt_a, b, opt_b = _twins(name, args)
    step_b = step_function(opt_b)
    assert step_b != opt_b.step
    _four_steps(a, opt_a.step, b, step_b, (opt_a, opt_b))
    for p, q in zip(a, b):
        assert torch.equal(p, q)
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_a.state[p][key], opt_b.state[q][key])


def test_direct_step_falls_back_to_optimizer_step_when_it_does_not_apply(monkeypatch):
    _, _, b, opt = _twins("adam", {})
    calls = []
    real = opt.step
    monkeypatch.setattr(opt, "step", lambda: calls.append(1) or real())
    step = step_function(opt)
    for q in b:
        q.grad = torch.ones_like(q)
    step()                                   # no state yet: torch creates it
    step()                                   # direct
    assert len(calls) == 1
    handle = opt.register_step_post_hook(lambda *a: None)
    step()                                   # a hook must run: through opt.step
    handle.remove()
    b[0].grad = None
    step()                                   # a parameter without gradient
    assert len(calls) == 3
    rms = get("rmsprop").build(b)
    assert step_function(rms) == rms.step   # no direct step for it


@pytest.mark.parametrize("args", [{}, {"momentum": 0.9}, {"momentum": 0.9, "learning_rate": 0.1},
                                  {"momentum": 0.5, "nesterov": True}])
def test_direct_sgd_step_equals_optimizer_step_bit_for_bit(args):
    """SGD's direct call of torch's fused kernel: the same parameters and momentum buffers
    as opt.step(), on a channels-last conv kernel too (updated through its memory)."""
    a, opt_a, b, opt_b = _twins("sgd", args)
    a[0].data = a[0].data.to(memory_format=torch.channels_last)
    b[0].data = b[0].data.to(memory_format=torch.channels_last)
    calls = []
    real = opt_b.step
    opt_b.step = lambda: calls.append(1) or real()
    step_b = step_function(opt_b)
    _four_steps(a, opt_a.step, b, step_b, (opt_a, opt_b))
    for p, q in zip(a, b):
        assert torch.equal(p, q)
        if args.get("momentum"):
            assert torch.equal(opt_a.state[p]["momentum_buffer"], opt_b.state[q]["momentum_buffer"])
    # direct after the first step (momentum: once its buffers exist); Nesterov: never
    direct = 0 if args.get("nesterov") else 3 if args.get("momentum") else 4
    assert len(calls) == 4 - direct


def test_direct_step_on_channels_last_kernels_and_after_loading_a_state():
    """Conv kernels in channels-last memory are updated through 1-D views of that memory;
    the step counts live in one tensor, and a loaded state_dict replaces it."""
    a, opt_a, b, opt_b = _twins("adam", {})
    b[0].data = b[0].data.to(memory_format=torch.channels_last)
    step_b = step_function(opt_b)
    for i in range(6):
        for p, q in zip(a, b):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone(memory_format=torch.preserve_format).to(
                memory_format=torch.channels_last) if q.dim() == 4 else p.grad.clone()
        opt_a.step()
        step_b()
        if i == 2:  # resume: the state comes back as separate tensors
            opt_b.load_state_dict(opt_b.state_dict())
    assert b[0].is_contiguous(memory_format=torch.channels_last)
    assert opt_b.state[b[0]]["exp_avg"].is_contiguous(memory_format=torch.channels_last)
    for p, q in zip(a, b):
        assert torch.equal(p, q)
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt_a.state[p][key], opt_b.state[q][key])
    assert float(opt_b.state[b[1]]["step"]) == 6
