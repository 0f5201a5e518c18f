"""Losses by Keras name, as classes and functions, computed stably from logits when the
model ends in softmax/sigmoid.

    >>> model.compile(loss=cnnlab.losses.SparseCategoricalCrossentropy(from_logits=True), ...)
    >>> cnnlab.losses.categorical_crossentropy(y_true, y_pred)      # per sample, as Keras's
    >>> cnnlab.losses.CategoricalCrossentropy(label_smoothing=0.1)(y_true, y_pred)  # batch mean
    >>> get("mse")      # -> the registry entry (Loss) that the training loop uses

Targets: one-hot (or soft) rows for categorical_crossentropy, integer class
indices for sparse_categorical_crossentropy, 0/1 for binary_crossentropy,
-1/1 (or 0/1) for hinge, probability rows for kl_divergence.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ConfigError, unknown_name

_EPS = 1e-7  # Keras's backend epsilon: probabilities are clipped to [eps, 1 - eps]


def _log_probs(out, from_logits):
    if from_logits:
        return F.log_softmax(out, dim=-1)
    # Keras rescales the rows to sum to 1 before clipping (a softmax output already does)
    out = out / out.sum(dim=-1, keepdim=True)
    return out.clamp(_EPS, 1 - _EPS).log()


def _categorical(out, target, from_logits):
    return -(target * _log_probs(out, from_logits)).sum(dim=-1)


def _sparse_categorical(out, target, from_logits):
    return F.nll_loss(_log_probs(out, from_logits), target.long(), reduction="none")


def _per_sample(per):
    """(N, ...) elementwise values -> (N,) means, as Keras's mean over the last axis
    followed by its mean over the batch gives when every sample has the same size."""
    return per.reshape(per.shape[0], -1).mean(dim=1)


def _binary(out, target, from_logits):
    target = target.to(out.dtype).reshape(out.shape)
    if from_logits:
        per = F.binary_cross_entropy_with_logits(out, target, reduction="none")
    else:
        per = F.binary_cross_entropy(out.clamp(_EPS, 1 - _EPS), target, reduction="none")
    return _per_sample(per)


def _mse(out, target, from_logits):
    return _per_sample((out - target.to(out.dtype).reshape(out.shape)).square())


def _mae(out, target, from_logits):
    return _per_sample((out - target.to(out.dtype).reshape(out.shape)).abs())


def _hinge(out, target, from_logits):
    target = target.to(out.dtype).reshape(out.shape)
    binary = ((target == 0) | (target == 1)).all()  # Keras: 0/1 labels mean -1/1
    target = torch.where(binary, 2 * target - 1, target)  # (a tensor test: no host sync)
    return _per_sample((1 - target * out).clamp_min(0))


def _kl_divergence(out, target, from_logits):
    target = target.to(out.dtype).reshape(out.shape).clamp(_EPS, 1)
    out = out.clamp(_EPS, 1)
    return (target * (target / out).log()).reshape(out.shape[0], -1).sum(dim=1)


@dataclass(frozen=True)
class Loss:
    """A registry entry: how the training loop computes one Keras loss."""

    name: str
    fn: Callable  # (output, target, from_logits) -> per-sample loss (N,)
    logits_from: str | None  # output activation folded into the loss ("softmax"/"sigmoid")
    target: str  # "onehot", "index", "binary" or "value": what labels it takes
    accuracy: str  # which Keras accuracy "accuracy" means with this loss
    from_logits: bool = False  # the user said the model's outputs are logits
    label_smoothing: float = 0.0


LOSSES = {l.name: l for l in [
    Loss("categorical_crossentropy", _categorical, "softmax", "onehot", "categorical"),
    Loss("sparse_categorical_crossentropy", _sparse_categorical, "softmax", "index", "sparse"),
    Loss("binary_crossentropy", _binary, "sigmoid", "binary", "binary"),
    Loss("mean_squared_error", _mse, None, "value", "categorical"),
    Loss("mean_absolute_error", _mae, None, "value", "categorical"),
    Loss("hinge", _hinge, None, "binary", "binary"),
    Loss("kl_divergence", _kl_divergence, None, "value", "categorical"),
]}
ALIASES = {"mse": "mean_squared_error", "mae": "mean_absolute_error",
           "kld": "kl_divergence", "kullback_leibler_divergence": "kl_divergence"}
_WITH_LOGITS = {"categorical_crossentropy", "sparse_categorical_crossentropy",
                "binary_crossentropy"}
_WITH_SMOOTHING = {"categorical_crossentropy", "binary_crossentropy"}


def smooth(target: torch.Tensor, kind: str, label_smoothing: float) -> torch.Tensor:
    """Keras's label smoothing: towards 1/classes (categorical) or towards 0.5 (binary)."""
    if not label_smoothing:
        return target
    if kind == "onehot":
        return target * (1 - label_smoothing) + label_smoothing / target.shape[-1]
    if kind == "binary":
        return target.float() * (1 - label_smoothing) + 0.5 * label_smoothing
    return target


def _check_args(name: str, from_logits, label_smoothing) -> None:
    if not isinstance(from_logits, (bool, np.bool_)):
        raise ConfigError(f"Invalid value for argument `from_logits`. Expected True or False. "
                          f"Received from_logits={from_logits!r}.")
    if (isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float))
            or not 0 <= label_smoothing <= 1):
        raise ConfigError(f"Invalid value for argument `label_smoothing`. Expected a number in "
                          f"[0, 1]. Received label_smoothing={label_smoothing!r}.")


def _tensors(y_true, y_pred):
    y_pred = torch.as_tensor(np.asarray(y_pred) if not torch.is_tensor(y_pred) else y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.float()
    y_true = torch.as_tensor(np.asarray(y_true) if not torch.is_tensor(y_true) else y_true)
    return y_true, y_pred


def _keras_values(name, y_true, y_pred, from_logits=False, label_smoothing=0.0):
    """Keras's loss function `name` on arrays: one value per sample (the last axis reduced)."""
    entry = LOSSES[name]
    y_true, y_pred = _tensors(y_true, y_pred)
    if entry.target != "index":
        y_true = smooth(y_true.to(y_pred.dtype), entry.target, label_smoothing)
    else:
        y_true = y_true.reshape(y_pred.shape[:-1])
    lead = y_pred.shape[:-1]  # Keras reduces the last axis only
    rows = y_pred.reshape(-1, y_pred.shape[-1]) if y_pred.dim() > 1 else y_pred.reshape(1, -1)
    per = entry.fn(rows, y_true.reshape(rows.shape[0], *(() if entry.target == "index"
                                                          else rows.shape[1:])), from_logits)
    return per.reshape(lead)


class LossFunctionWrapper:
    """A Keras loss object: `loss(y_true, y_pred, sample_weight=None)` -> the batch's mean
    (Keras's "sum_over_batch_size"), and what `compile(loss=...)` accepts."""

    _key = ""  # registry name

    def __init__(self, from_logits=False, label_smoothing=0.0, name=None,
                 reduction="sum_over_batch_size"):
        _check_args(self._key, from_logits, label_smoothing)
        if reduction not in ("sum_over_batch_size", "sum", "none", None):
            raise ConfigError(f"Invalid value for argument `reduction`. Expected one of: "
                              f"sum_over_batch_size, sum, none. Received reduction={reduction!r}.")
        self.from_logits, self.label_smoothing = bool(from_logits), float(label_smoothing)
        self.name, self.reduction = name or self._key, reduction

    def __call__(self, y_true, y_pred, sample_weight=None):
        per = _keras_values(self._key, y_true, y_pred, self.from_logits, self.label_smoothing)
        if sample_weight is not None:
            w = torch.as_tensor(np.asarray(sample_weight), dtype=per.dtype)
            per = per * w.reshape(w.shape + (1,) * (per.dim() - w.dim()))
        if self.reduction in ("none", None):
            return per
        total = per.sum()
        return total if self.reduction == "sum" else total / max(per.numel(), 1)

    def get_config(self) -> dict:
        config = {"name": self.name, "reduction": self.reduction}
        if self._key in _WITH_LOGITS:
            config["from_logits"] = self.from_logits
        if self._key in _WITH_SMOOTHING:
            config["label_smoothing"] = self.label_smoothing
        return config

    def entry(self) -> Loss:
        """The registry entry the training loop runs, with this object's settings."""
        return dataclasses.replace(LOSSES[self._key], from_logits=self.from_logits,
                                   label_smoothing=self.label_smoothing)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "reduction")
        return f"{type(self).__name__}({args})"


class CategoricalCrossentropy(LossFunctionWrapper):
    _key = "categorical_crossentropy"


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    _key = "sparse_categorical_crossentropy"

    def __init__(self, from_logits=False, name=None, reduction="sum_over_batch_size"):
        super().__init__(from_logits, 0.0, name, reduction)


class BinaryCrossentropy(LossFunctionWrapper):
    _key = "binary_crossentropy"


class _NoLogits(LossFunctionWrapper):
    def __init__(self, name=None, reduction="sum_over_batch_size"):
        super().__init__(False, 0.0, name, reduction)


class MeanSquaredError(_NoLogits):
    _key = "mean_squared_error"


class MeanAbsoluteError(_NoLogits):
    _key = "mean_absolute_error"


class Hinge(_NoLogits):
    _key = "hinge"


class KLDivergence(_NoLogits):
    _key = "kl_divergence"


def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    _check_args("categorical_crossentropy", from_logits, label_smoothing)
    return _keras_values("categorical_crossentropy", y_true, y_pred, from_logits, label_smoothing)


def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False):
    _check_args("sparse_categorical_crossentropy", from_logits, 0.0)
    return _keras_values("sparse_categorical_crossentropy", y_true, y_pred, from_logits)


def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0):
    _check_args("binary_crossentropy", from_logits, label_smoothing)
    return _keras_values("binary_crossentropy", y_true, y_pred, from_logits, label_smoothing)


def mean_squared_error(y_true, y_pred):
    return _keras_values("mean_squared_error", y_true, y_pred)


def mean_absolute_error(y_true, y_pred):
    return _keras_values("mean_absolute_error", y_true, y_pred)


def hinge(y_true, y_pred):
    return _keras_values("hinge", y_true, y_pred)


def kl_divergence(y_true, y_pred):
    return _keras_values("kl_divergence", y_true, y_pred)


mse, mae, kld = mean_squared_error, mean_absolute_error, kl_divergence
_FUNCTIONS = {f: f.__name__ for f in (categorical_crossentropy, sparse_categorical_crossentropy,
                                      binary_crossentropy, mean_squared_error,
                                      mean_absolute_error, hinge, kl_divergence)}
_CLASSES = {c.__name__: c for c in (CategoricalCrossentropy, SparseCategoricalCrossentropy,
                                    BinaryCrossentropy, MeanSquaredError, MeanAbsoluteError,
                                    Hinge, KLDivergence)}


def get(value) -> Loss:
    """A loss name ('categorical_crossentropy', 'mse', or a class name), a loss object, one of
    this module's loss functions, or a Loss entry -> the Loss entry the loop runs."""
    if isinstance(value, Loss):
        return value
    if isinstance(value, LossFunctionWrapper):
        return value.entry()
    if callable(value) and value in _FUNCTIONS:
        return LOSSES[_FUNCTIONS[value]]
    if isinstance(value, str):
        if value in _CLASSES:
            return _CLASSES[value]().entry()
        name = ALIASES.get(value, value)
        if name in LOSSES:
            return LOSSES[name]
    if isinstance(value, type) and value in _CLASSES.values():
        raise ConfigError(f"Expected a loss object such as {value.__name__}(). Received the "
                          f"class {value.__name__} itself: add the parentheses.")
    if callable(value) and not isinstance(value, type):
        name = getattr(value, "__name__", type(value).__name__)
        raise ConfigError(f"Custom loss functions are not supported: received {name!r}. "
                          f"Expected a Keras loss: one of {', '.join(sorted(LOSSES))}, or its "
                          f"class (e.g. CategoricalCrossentropy()).")
    raise ConfigError(unknown_name("loss", value, [*LOSSES, *ALIASES]))


def correct(out: torch.Tensor, target_index: torch.Tensor, kind: str,
            sigmoid_folded: bool = False) -> torch.Tensor:
    """Number of correct predictions in a batch, as a 0-d tensor (no host sync).

    `sigmoid_folded`: `out` holds logits of a model whose sigmoid the loss applies, so
    Keras's "probability > 0.5" is computed on the probabilities it would have seen."""
    if kind == "binary":
        probs = torch.sigmoid(out) if sigmoid_folded else out
        pred = (probs.reshape(probs.shape[0], -1) > 0.5).to(target_index.dtype)
        return (pred == target_index.reshape(pred.shape)).float().mean(dim=1).sum()
    return (out.argmax(dim=-1) == target_index).sum()
