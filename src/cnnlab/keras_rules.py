"""Torch optimizers that follow Keras 3's own update rules where torch's differ: Adadelta
(Keras adds epsilon inside both square roots and scales by the learning rate), Adamax
(epsilon added to u, bias correction on the step) and Nadam (Keras's momentum schedule
0.96 ** t, where torch's NAdam uses 0.96 ** (0.004 t)).

    >>> opt = KerasNadam(net.parameters(), lr=0.001)     # usually via cnnlab.optimizers.Nadam()

Each state holds tensors plus plain Python numbers (step count, Nadam's running product
of momentum factors), so checkpoints restore them exactly (train/checkpoint.py).
"""
from __future__ import annotations

import torch


class _KerasRule(torch.optim.Optimizer):
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        self._update(p, p.grad, self.state[p], group)
        return loss


class KerasAdadelta(_KerasRule):
    def __init__(self, params, lr=0.001, rho=0.95, eps=1e-7):
        super().__init__(params, dict(lr=lr, rho=rho, eps=eps))

    def _update(self, p, g, state, group):
        if not state:
            state["accumulated_grad"] = torch.zeros_like(p)
            state["accumulated_delta_var"] = torch.zeros_like(p)
        rho, eps = group["rho"], group["eps"]
        acc_g, acc_d = state["accumulated_grad"], state["accumulated_delta_var"]
        acc_g.mul_(rho).add_(g.square() * (1 - rho))
        delta = -((acc_d + eps).sqrt() * g / (acc_g + eps).sqrt())
        acc_d.mul_(rho).add_(delta.square() * (1 - rho))
        p.add_(delta * group["lr"])


class KerasAdamax(_KerasRule):
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-7):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    def _update(self, p, g, state, group):
        if not state:
            state["step"] = 0
            state["m"] = torch.zeros_like(p)
            state["u"] = torch.zeros_like(p)
        beta_1, beta_2 = group["betas"]
        state["step"] += 1
        m, u = state["m"], state["u"]
        m.add_((g - m) * (1 - beta_1))
        torch.maximum(u * beta_2, g.abs(), out=u)
        p.sub_(m * group["lr"] / ((1 - beta_1 ** state["step"]) * (u + group["eps"])))


class KerasNadam(_KerasRule):
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-7):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    def _update(self, p, g, state, group):
        if not state:
            state["step"] = 0
            state["u_product"] = 1.0
            state["m"] = torch.zeros_like(p)
            state["v"] = torch.zeros_like(p)
        beta_1, beta_2 = group["betas"]
        state["step"] += 1
        t = state["step"]
        u_t = beta_1 * (1.0 - 0.5 * 0.96 ** t)
        u_t_1 = beta_1 * (1.0 - 0.5 * 0.96 ** (t + 1))
        state["u_product"] *= u_t  # Keras updates the product before the step uses it
        u_product_t = state["u_product"]
        u_product_t_1 = u_product_t * u_t_1
        m, v = state["m"], state["v"]
        m.add_((g - m) * (1 - beta_1))
        v.add_((g.square() - v) * (1 - beta_2))
        m_hat = m * (u_t_1 / (1 - u_product_t_1)) + g * ((1 - u_t) / (1 - u_product_t))
        v_hat = v / (1 - beta_2 ** t)
        p.sub_(m_hat * group["lr"] / (v_hat.sqrt() + group["eps"]))
