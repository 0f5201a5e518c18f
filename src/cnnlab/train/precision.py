"""Mixed precision: Keras's dtype policies, run as torch's autocast (+ loss scaling for fp16).

    >>> cnnlab.mixed_precision.set_global_policy("mixed_bfloat16")   # Keras's call
    >>> model.fit(...)                      # forward passes in bfloat16, weights float32
    cnnlab train --precision bf16           # the same for a run (train.precision)

Policies, with the command line's short names:

    float32          "32"        everything in float32 (the default)
    mixed_bfloat16   "bf16"      the forward pass and loss under autocast(bfloat16);
                                 weights, gradients and optimizer state float32
    mixed_float16    "16-mixed"  the same in float16, with dynamic loss scaling
                                 (torch's GradScaler: the loss is multiplied before
                                 the backward pass, the gradients divided after; a step
                                 with inf/NaN gradients is skipped and the scale halved)

As in Keras, the variables stay float32 and only the computation is cast.
autocast(bfloat16) works on the CPU too (that is what the tests run);
float16 autocast and loss scaling are meant for CUDA GPUs. Anything but
float32 turns off the fast CPU step (it computes in float32 without autograd).
"""
from __future__ import annotations

import contextlib

import torch

from ..errors import ConfigError

POLICIES = {"float32": None, "mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16}
ALIASES = {"32": "float32", "bf16": "mixed_bfloat16", "16-mixed": "mixed_float16",
           "float32": "float32", "mixed_bfloat16": "mixed_bfloat16",
           "mixed_float16": "mixed_float16"}
_global = "float32"


def policy_name(value) -> str:
    """A policy's Keras name from it or its short name; ConfigError listing both."""
    name = ALIASES.get(str(value)) if isinstance(value, (str, int)) else None
    if name is None:
        raise ConfigError("Invalid value for `precision`. Expected one of: 32, bf16, 16-mixed "
                          "(Keras's float32, mixed_bfloat16, mixed_float16). Received "
                          f"{value!r}.")
    return name


def set_global_policy(policy) -> None:
    """Keras's `mixed_precision.set_global_policy`: the policy of the next fits."""
    global _global
    _global = policy_name(getattr(policy, "name", policy))


def global_policy() -> "Precision":
    return Precision(_global)


@contextlib.contextmanager
def policy_scope(policy):
    """The global policy set to `policy` for a block (a run's train.precision)."""
    global _global
    old = _global
    set_global_policy(policy)
    try:
        yield
    finally:
        _global = old


def check_device(policy, device: str) -> None:
    """ConfigError for mixed_float16 off a CUDA GPU ("auto": where none is found)."""
    if policy_name(policy) != "mixed_float16":
        return
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not str(device).startswith("cuda"):
        raise ConfigError("Invalid value for `precision`: 16-mixed (mixed_float16) needs a CUDA "
                          "GPU (float16 loss scaling). Expected bf16 or 32 on "
                          f"{device}. Received precision=16-mixed.")


class Precision:
    """A policy as the training loop runs it: `autocast()` around the forward pass and loss,
    `backward(loss, step)` for the backward pass and the optimizer step."""

    def __init__(self, name="float32"):
        self.name = policy_name(name)
        self.dtype = POLICIES[self.name]
        self.scaler = None

    @property
    def exact(self) -> bool:
        """float32: the fast CPU step may run."""
        return self.dtype is None

    @property
    def compute_dtype(self) -> str:
        return "float32" if self.dtype is None else str(self.dtype).replace("torch.", "")

    def start(self, device: torch.device) -> None:
        """At fit's start: check the device takes the policy; make fp16's loss scaler."""
        check_device(self.name, device.type)
        if self.dtype is torch.float16:
            self.scaler = torch.amp.GradScaler("cuda")

    def autocast(self, device: torch.device):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor, optimizer, step) -> None:
        """loss.backward() and `step()`; with fp16, scaled, unscaled and checked first."""
        if self.scaler is None:
            loss.backward()
            step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)   # the gradients as float32 would give them
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        finite = torch.stack([torch.isfinite(g).all() for g in grads]).all() if grads else True
        # GradScaler.step(optimizer) would call optimizer.step itself; the loop's step may be
        # a scheduled or fused one, so the skip-on-overflow rule is applied here
        if bool(finite):
            step()
        self.scaler.update()
