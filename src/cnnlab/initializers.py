"""Weight initializers by Keras name, computing fans as Keras does.

Tensors are initialized in PyTorch layout; fans are derived from the Keras
kernel shape so that `glorot_uniform` draws from the same distribution:
conv kernel (kh, kw, c_in, c_out) -> fan_in = kh*kw*c_in, fan_out = kh*kw*c_out.

    >>> init = get("he_normal"); init(tensor, fan_in=288, fan_out=576)
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .errors import SpecError, unknown_name

# Keras draws "normal" variance-scaling inits from a normal truncated at 2 std;
# dividing by this constant (the std of the truncated unit normal) keeps the variance.
_TRUNC_STD = 0.87962566103423978

Init = Callable[..., None]


def _scaled_uniform(scale: float, mode: str) -> Init:
    def init(t: torch.Tensor, fan_in: int, fan_out: int) -> None:
        n = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2}[mode]
        limit = math.sqrt(3.0 * scale / max(1.0, n))
        with torch.no_grad():
            t.uniform_(-limit, limit)
    return init


def _scaled_normal(scale: float, mode: str) -> Init:
    def init(t: torch.Tensor, fan_in: int, fan_out: int) -> None:
        n = {"fan_in": fan_in, "fan_avg": (fan_in + fan_out) / 2}[mode]
        std = math.sqrt(scale / max(1.0, n)) / _TRUNC_STD
        with torch.no_grad():
            torch.nn.init.trunc_normal_(t, 0.0, std, -2 * std, 2 * std)
    return init


def _constant(value: float) -> Init:
    def init(t: torch.Tensor, fan_in: int = 0, fan_out: int = 0) -> None:
        with torch.no_grad():
            t.fill_(value)
    return init


INITIALIZERS: dict[str, Init] = {
    "glorot_uniform": _scaled_uniform(1.0, "fan_avg"),
    "glorot_normal": _scaled_normal(1.0, "fan_avg"),
    "he_uniform": _scaled_uniform(2.0, "fan_in"),
    "he_normal": _scaled_normal(2.0, "fan_in"),
    "lecun_uniform": _scaled_uniform(1.0, "fan_in"),
    "lecun_normal": _scaled_normal(1.0, "fan_in"),
    "zeros": _constant(0.0),
    "ones": _constant(1.0),
}


def check(name) -> str:
    """Validate an initializer name; returns it."""
    if not isinstance(name, str) or name not in INITIALIZERS:
        raise SpecError(unknown_name("initializer", name, INITIALIZERS))
    return name


def get(name: str) -> Init:
    return INITIALIZERS[check(name)]
