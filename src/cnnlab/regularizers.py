"""L1/L2 weight penalties, Keras style: added to the training loss.

In a spec a regularizer is a string (`"l2"`: factor 0.01, Keras's default) or a
mapping with factors (`{l2: 0.001}`, `{l1: 1e-5, l2: 1e-4}`).

    >>> r = get({"l2": 0.001}); r.penalty(weight)   # 0.001 * sum(w**2)
    >>> cnnlab.regularizers.l2(0.001)               # the Python API
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import SpecError

DEFAULT_FACTOR = 0.01  # Keras's default for l1, l2 (and tf.keras's l1_l2)


@dataclass(frozen=True)
class Regularizer:
    l1: float = 0.0
    l2: float = 0.0

    def penalty(self, w: torch.Tensor) -> torch.Tensor:
        total = w.new_zeros(())
        if self.l1:
            total = total + self.l1 * w.abs().sum()
        if self.l2:
            total = total + self.l2 * w.square().sum()
        return total

    def to_config(self):
        if self.l1 and self.l2:
            return {"l1_l2": {"l1": self.l1, "l2": self.l2}}
        return {"l1": self.l1} if self.l1 else {"l2": self.l2}


def l1(l1: float = DEFAULT_FACTOR) -> Regularizer:
    return Regularizer(l1=float(l1))


def l2(l2: float = DEFAULT_FACTOR) -> Regularizer:
    return Regularizer(l2=float(l2))


def l1_l2(l1: float = DEFAULT_FACTOR, l2: float = DEFAULT_FACTOR) -> Regularizer:
    return Regularizer(l1=float(l1), l2=float(l2))


_EXPECTED = ("a regularizer: 'l1', 'l2', 'l1_l2', or a mapping such as "
             "{l2: 0.001} or {l1_l2: {l1: 1e-5, l2: 1e-4}}")


def _factor(value, key):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SpecError(f"Invalid factor for regularizer `{key}`. Expected a number >= 0. "
                        f"Received {key}={value!r}.")
    return float(value)


def get(value) -> Regularizer | None:
    """Parse a spec value into a Regularizer (None stays None)."""
    if value is None or isinstance(value, Regularizer):
        return value
    if isinstance(value, str):
        makers = {"l1": l1, "l2": l2, "l1_l2": l1_l2}
        if value in makers:
            return makers[value]()
    if isinstance(value, dict) and len(value) >= 1:
        if set(value) <= {"l1", "l2"}:
            return Regularizer(**{k: _factor(v, k) for k, v in value.items()})
        if set(value) == {"l1_l2"}:
            inner = value["l1_l2"] or {}
            if isinstance(inner, dict) and set(inner) <= {"l1", "l2"}:
                return l1_l2(**{k: _factor(v, k) for k, v in inner.items()})
    raise SpecError(f"Invalid regularizer. Expected {_EXPECTED}. Received {value!r}.")


def to_config(reg: Regularizer | None):
    return None if reg is None else reg.to_config()
