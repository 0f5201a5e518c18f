"""Losses by Keras name, computed stably from logits when the model ends in softmax/sigmoid.

    >>> loss = get("categorical_crossentropy")
    >>> per_sample = loss.fn(output, target, from_logits=True)   # (N,)

Targets: one-hot (or soft) rows for categorical_crossentropy, integer class
indices for sparse_categorical_crossentropy, 0/1 for binary_crossentropy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .errors import ConfigError, unknown_name

_EPS = 1e-7  # Keras's backend epsilon: probabilities are clipped to [eps, 1 - eps]


def _categorical(out, target, from_logits):
    logp = F.log_softmax(out, dim=-1) if from_logits else out.clamp(_EPS, 1 - _EPS).log()
    return -(target * logp).sum(dim=-1)


def _sparse_categorical(out, target, from_logits):
    logp = F.log_softmax(out, dim=-1) if from_logits else out.clamp(_EPS, 1 - _EPS).log()
    return F.nll_loss(logp, target.long(), reduction="none")


def _binary(out, target, from_logits):
    target = target.to(out.dtype).reshape(out.shape)
    if from_logits:
        per = F.binary_cross_entropy_with_logits(out, target, reduction="none")
    else:
        per = F.binary_cross_entropy(out.clamp(_EPS, 1 - _EPS), target, reduction="none")
    return per.reshape(per.shape[0], -1).mean(dim=1)


def _mse(out, target, from_logits):
    return (out - target.to(out.dtype)).square().reshape(out.shape[0], -1).mean(dim=1)


def _mae(out, target, from_logits):
    return (out - target.to(out.dtype)).abs().reshape(out.shape[0], -1).mean(dim=1)


@dataclass(frozen=True)
class Loss:
    name: str
    fn: Callable  # (output, target, from_logits) -> per-sample loss (N,)
    logits_from: str | None  # output activation folded into the loss ("softmax"/"sigmoid")
    target: str  # "onehot", "index", "binary" or "value": what labels it takes
    accuracy: str  # which Keras accuracy "accuracy" means with this loss


LOSSES = {l.name: l for l in [
    Loss("categorical_crossentropy", _categorical, "softmax", "onehot", "categorical"),
    Loss("sparse_categorical_crossentropy", _sparse_categorical, "softmax", "index", "sparse"),
    Loss("binary_crossentropy", _binary, "sigmoid", "binary", "binary"),
    Loss("mean_squared_error", _mse, None, "value", "categorical"),
    Loss("mean_absolute_error", _mae, None, "value", "categorical"),
]}
ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error"}


def get(name) -> Loss:
    if isinstance(name, str):
        name = ALIASES.get(name, name)
    if not isinstance(name, str) or name not in LOSSES:
        raise ConfigError(unknown_name("loss", name, LOSSES))
    return LOSSES[name]


def correct(out: torch.Tensor, target_index: torch.Tensor, kind: str) -> torch.Tensor:
    """Number of correct predictions in a batch, as a 0-d tensor (no host sync)."""
    if kind == "binary":
        pred = (out.reshape(out.shape[0], -1) > 0.5).to(target_index.dtype)
        return (pred == target_index.reshape(pred.shape)).float().mean(dim=1).sum()
    return (out.argmax(dim=-1) == target_index).sum()
