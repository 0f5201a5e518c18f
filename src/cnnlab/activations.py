"""Activation functions by Keras name.

    >>> get("relu")            # -> Activation(name='relu', ...)
    >>> get("relu").apply(x, channel_dim=1)

`monotone` marks activations that never decrease (relu, elu, ...): for those,
max pooling may run before the activation with exactly the same result, which
the builder uses to save work (pooling shrinks the tensor 4x first).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .errors import SpecError, unknown_name


@dataclass(frozen=True)
class Activation:
    name: str
    fn: Callable[[torch.Tensor], torch.Tensor] | None  # None: identity
    monotone: bool  # non-decreasing, so max(f(x)) == f(max(x))
    channelwise: bool = False  # softmax: normalizes over the channel axis

    def apply(self, x: torch.Tensor, channel_dim: int = -1) -> torch.Tensor:
        if self.fn is None:
            return x
        if self.channelwise:
            return torch.softmax(x, dim=channel_dim)
        return self.fn(x)


def _elu(x):
    from . import fast  # here: cnnlab.fast imports the layers, which import this module
    return fast.elu(x)  # F.elu (alpha 1) where the compiled kernels do not run


def _selu(x):
    from . import fast
    return fast.elu(x, fast.SELU_ALPHA, fast.SELU_SCALE)  # F.selu without the kernels


def _leaky_relu(x):
    return F.leaky_relu(x, negative_slope=0.2)  # Keras 3's default slope


ACTIVATIONS: dict[str, Activation] = {
    a.name: a
    for a in [
        Activation("linear", None, monotone=True),
        Activation("relu", F.relu, monotone=True),
        Activation("elu", _elu, monotone=True),  # alpha = 1.0
        Activation("selu", _selu, monotone=True),
        Activation("sigmoid", torch.sigmoid, monotone=True),
        Activation("tanh", torch.tanh, monotone=True),
        Activation("leaky_relu", _leaky_relu, monotone=True),
        Activation("softmax", torch.softmax, monotone=False, channelwise=True),
        Activation("gelu", F.gelu, monotone=False),  # exact erf form, as Keras's default
        Activation("swish", F.silu, monotone=False),  # x * sigmoid(x): dips below 0
        Activation("relu6", F.relu6, monotone=True),
        Activation("hard_sigmoid", F.hardsigmoid, monotone=True),  # Keras 3: relu6(x + 3) / 6
        Activation("hard_silu", F.hardswish, monotone=False),
        Activation("hard_tanh", F.hardtanh, monotone=True),
        Activation("softplus", F.softplus, monotone=True),
        Activation("softsign", F.softsign, monotone=True),
        Activation("exponential", torch.exp, monotone=True),
        Activation("log_sigmoid", F.logsigmoid, monotone=True),
        Activation("celu", F.celu, monotone=True),  # alpha = 1.0
        Activation("mish", F.mish, monotone=False),
    ]
}
# Keras's second names for the same functions
ACTIVATIONS["silu"] = ACTIVATIONS["swish"]
ACTIVATIONS["hard_swish"] = ACTIVATIONS["hard_silu"]


def get(name: str | None) -> Activation:
    """The activation called `name` (None means linear, as in Keras)."""
    if name is None:
        return ACTIVATIONS["linear"]
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise SpecError(unknown_name("activation", name, ACTIVATIONS))
    return ACTIVATIONS[name]
