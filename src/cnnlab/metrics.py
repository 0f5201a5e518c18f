"""Keras's metrics: objects that accumulate on the device and are read once per epoch.

    >>> model.compile(loss="binary_crossentropy", optimizer="adam",
    ...               metrics=["acc", cnnlab.metrics.AUC(), "precision"])
    >>> m = cnnlab.metrics.Precision()
    >>> m.update_state(y_true, y_pred); m.result()          # Keras's spelling, on arrays
    >>> m.reset(); m.update(y_pred_tensor, y_true_tensor)   # the loop's: tensors, no host sync

Every metric keeps its running state as tensors (`state()` / `load_state()` for
checkpoints), so a training step adds to them without waiting for the host; `result()`
reads them. History keys are the metric's `name`: the string given in `compile`
(Keras keeps `"acc"` as `"acc"`), or the class's Keras name (`"precision"`, `"auc"`).
"accuracy"/"acc" are not objects here: the training step counts them itself (see
`resolve` and train/loop.py), which keeps the fast step for the lecture's model.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

from .errors import ConfigError, unknown_name


def _as_tensor(a) -> torch.Tensor:
    return a if torch.is_tensor(a) else torch.as_tensor(np.asarray(a))


def _weights_like(sample_weight: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """Per-sample weights (N,) broadcast to `like`'s shape, float64 (ones when None)."""
    if sample_weight is None:
        return torch.ones(like.shape, dtype=torch.float64, device=like.device)
    w = sample_weight.reshape(sample_weight.shape + (1,) * (like.dim() - sample_weight.dim()))
    return w.expand_as(like).double()


def _class_index(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Labels as class indices: argmax of one-hot/soft rows, or the indices themselves."""
    rows = y_true.dim() == y_pred.dim() and y_true.shape[-1] == y_pred.shape[-1]
    if rows and y_pred.shape[-1] > 1:
        return y_true.argmax(dim=-1)
    return y_true.reshape(y_pred.shape[:-1]).long()


def _like_pred(y_true: torch.Tensor, y_pred: torch.Tensor) -> torch.Tensor:
    """Labels in y_pred's shape: class indices become one-hot rows."""
    if y_true.numel() == y_pred.numel():
        return y_true.reshape(y_pred.shape).to(y_pred.dtype)
    index = y_true.reshape(y_pred.shape[:-1]).long()
    return torch.nn.functional.one_hot(index, y_pred.shape[-1]).to(y_pred.dtype)


def _float32(dtype) -> None:
    if dtype not in (None, "float32", torch.float32, np.float32):
        raise ConfigError(f"cnnlab's metrics compute in float32. Received dtype={dtype!r}.")


class Metric:
    """Base class: running state as tensors, `update`, `result`, `reset`."""

    default_name = "metric"

    def __init__(self, name: str | None = None, dtype=None):
        _float32(dtype)
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"Invalid value for argument `name`. Expected a string. "
                              f"Received name={name!r}.")
        self.name = name or self.default_name
        self.device = torch.device("cpu")
        self.reset()

    # -- state ------------------------------------------------------------------------
    def _zeros(self) -> list[torch.Tensor]:
        return [torch.zeros((), dtype=torch.float64, device=self.device) for _ in range(2)]

    def reset(self) -> None:
        self._state = self._zeros()

    reset_state = reset  # Keras's spelling

    def state(self) -> list[torch.Tensor]:
        return list(self._state)

    def load_state(self, tensors) -> None:
        self._state = [t.to(self.device, torch.float64).clone() for t in tensors]

    def to(self, device) -> "Metric":
        self.device = torch.device(device)
        self._state = [t.to(self.device) for t in self._state]
        return self

    def fresh(self) -> "Metric":
        """A copy of this metric with an empty state."""
        clone = copy.copy(self)
        clone.reset()
        return clone

    # -- updates ----------------------------------------------------------------------
    def update(self, y_pred: torch.Tensor, y_true: torch.Tensor, sample_weight=None) -> None:
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Keras's argument order, on arrays or tensors."""
        y_pred = _as_tensor(y_pred).float().to(self.device)
        w = None if sample_weight is None else _as_tensor(sample_weight).to(self.device).double()
        self.update(y_pred, _as_tensor(y_true).to(self.device), w)

    def result(self) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"name": self.name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class MeanMetricWrapper(Metric):
    """The weighted mean over samples of a per-sample value (Keras's MeanMetricWrapper)."""

    def values(self, y_pred, y_true) -> torch.Tensor:  # (N,) per-sample values
        raise NotImplementedError

    def update(self, y_pred, y_true, sample_weight=None):
        v = self.values(y_pred, y_true).double()
        total, count = self._state
        if sample_weight is None:
            total += v.sum()
            count += v.numel()
        else:
            w = _weights_like(sample_weight, v)
            total += (v * w).sum()
            count += w.sum()

    def result(self) -> float:
        total, count = self._state
        return float(total) / float(count) if float(count) else 0.0


class CategoricalAccuracy(MeanMetricWrapper):
    default_name = "categorical_accuracy"

    def values(self, y_pred, y_true):
        return (y_pred.argmax(dim=-1) == _class_index(y_true, y_pred)).float()


class SparseCategoricalAccuracy(CategoricalAccuracy):
    default_name = "sparse_categorical_accuracy"


class BinaryAccuracy(MeanMetricWrapper):
    default_name = "binary_accuracy"

    def __init__(self, name=None, dtype=None, threshold=0.5):
        self.threshold = float(threshold)
        super().__init__(name, dtype)

    def values(self, y_pred, y_true):
        hit = ((y_pred > self.threshold).to(y_pred.dtype) == _like_pred(y_true, y_pred)).float()
        return hit.reshape(hit.shape[0], -1).mean(dim=1) if hit.dim() > 1 else hit


class TopKCategoricalAccuracy(MeanMetricWrapper):
    default_name = "top_k_categorical_accuracy"

    def __init__(self, k=5, name=None, dtype=None):
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise ConfigError(f"Invalid value for argument `k`. Expected a strictly positive "
                              f"integer. Received k={k!r}.")
        self.k = k
        super().__init__(name, dtype)

    def values(self, y_pred, y_true):
        # Keras's in_top_k: the true class's score is at least the k-th largest (ties count)
        k = min(self.k, y_pred.shape[-1])
        kth = y_pred.topk(k, dim=-1).values[..., -1:]
        target = y_pred.gather(-1, _class_index(y_true, y_pred).unsqueeze(-1))
        return (target >= kth).float().squeeze(-1)


class SparseTopKCategoricalAccuracy(TopKCategoricalAccuracy):
    default_name = "sparse_top_k_categorical_accuracy"


class MeanSquaredError(MeanMetricWrapper):
    default_name = "mean_squared_error"

    def values(self, y_pred, y_true):
        d = (y_pred - _like_pred(y_true, y_pred)).square()
        return d.reshape(d.shape[0], -1).mean(dim=1)


class MeanAbsoluteError(MeanMetricWrapper):
    default_name = "mean_absolute_error"

    def values(self, y_pred, y_true):
        d = (y_pred - _like_pred(y_true, y_pred)).abs()
        return d.reshape(d.shape[0], -1).mean(dim=1)


class _Confusion(Metric):
    """Counts of true/false positives/negatives at thresholds, over every element of
    y_pred (Keras flattens multi-class outputs), optionally only column `class_id`."""

    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        if top_k is not None:
            raise ConfigError(f"{type(self).__name__}(top_k=...) is not supported by cnnlab. "
                              f"Received top_k={top_k!r}; use thresholds or class_id.")
        t = 0.5 if thresholds is None else thresholds
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 <= t <= 1:
            raise ConfigError(f"Invalid value for argument `thresholds`. Expected a number in "
                              f"[0, 1]. Received thresholds={thresholds!r}.")
        if class_id is not None and (isinstance(class_id, bool) or not isinstance(class_id, int)
                                     or class_id < 0):
            raise ConfigError(f"Invalid value for argument `class_id`. Expected an integer >= 0. "
                              f"Received class_id={class_id!r}.")
        self.thresholds, self.class_id = float(t), class_id
        super().__init__(name, dtype)

    def _zeros(self):
        return [torch.zeros((), dtype=torch.float64, device=self.device) for _ in range(3)]

    def update(self, y_pred, y_true, sample_weight=None):
        y_true = _like_pred(y_true, y_pred)
        if self.class_id is not None:
            y_pred, y_true = y_pred[..., self.class_id], y_true[..., self.class_id]
        pred, true = y_pred > self.thresholds, y_true > 0.5
        w = _weights_like(sample_weight, y_pred)
        tp, fp, fn = self._state
        tp += (w * (pred & true)).sum()
        fp += (w * (pred & ~true)).sum()
        fn += (w * (~pred & true)).sum()

    def get_config(self):
        return {"name": self.name, "thresholds": self.thresholds, "class_id": self.class_id}


class Precision(_Confusion):
    default_name = "precision"

    def result(self):
        tp, fp, _ = (float(t) for t in self._state)
        return tp / (tp + fp) if tp + fp else 0.0


class Recall(_Confusion):
    default_name = "recall"

    def result(self):
        tp, _, fn = (float(t) for t in self._state)
        return tp / (tp + fn) if tp + fn else 0.0


class AUC(Metric):
    """Area under the ROC (or PR) curve from counts at `num_thresholds` thresholds evenly
    spread over [0, 1] (plus -eps and 1+eps at the ends), summed as Keras does
    ("interpolation": trapezoids for ROC, Davis & Goadrich for PR; or "minoring"/"majoring")."""

    default_name = "auc"

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation",
                 name=None, dtype=None, thresholds=None, multi_label=False, num_labels=None,
                 label_weights=None, from_logits=False):
        if thresholds is not None or multi_label or label_weights is not None:
            raise ConfigError("AUC with explicit thresholds, multi_label or label_weights is "
                              "not supported by cnnlab; use num_thresholds.")
        self.from_logits = bool(from_logits)  # Keras: a sigmoid first
        if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, int) \
                or num_thresholds <= 1:
            raise ConfigError(f"Invalid value for argument `num_thresholds`. Expected an integer "
                              f"> 1. Received num_thresholds={num_thresholds!r}.")
        if curve not in ("ROC", "PR"):
            raise ConfigError(f"Invalid value for argument `curve`. Expected one of: ROC, PR. "
                              f"Received curve={curve!r}.")
        if summation_method not in ("interpolation", "minoring", "majoring"):
            raise ConfigError(f"Invalid value for argument `summation_method`. Expected one of: "
                              f"interpolation, majoring, minoring. "
                              f"Received summation_method={summation_method!r}.")
        self.num_thresholds, self.curve, self.summation_method = num_thresholds, curve, \
            summation_method
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        self._thresholds = torch.tensor([-1e-7, *inner, 1 + 1e-7], dtype=torch.float32)
        super().__init__(name, dtype)

    def _zeros(self):
        return [torch.zeros(self.num_thresholds, dtype=torch.float64, device=self.device)
                for _ in range(4)]

    def to(self, device) -> "AUC":
        self._thresholds = self._thresholds.to(device)
        return super().to(device)

    def update(self, y_pred, y_true, sample_weight=None):
        y_true = _like_pred(y_true, y_pred).reshape(-1) > 0.5
        if self.from_logits:
            y_pred = torch.sigmoid(y_pred)
        if self._thresholds.device != y_pred.device:  # once: `to` moves them with the state
            self._thresholds = self._thresholds.to(y_pred.device)
        pred = y_pred.reshape(-1, 1) > self._thresholds  # (elements, T)
        w = _weights_like(sample_weight, y_pred).reshape(-1)
        pos, neg = (w * y_true).unsqueeze(1), (w * ~y_true).unsqueeze(1)
        predf = pred.double()
        tp, fp, tn, fn = self._state
        tp += (predf * pos).sum(0)
        fp += (predf * neg).sum(0)
        tn += ((1 - predf) * neg).sum(0)
        fn += ((1 - predf) * pos).sum(0)

    def result(self):
        tp, fp, tn, fn = (t.cpu() for t in self._state)
        if self.curve == "PR" and self.summation_method == "interpolation":
            return _interpolated_pr_auc(tp, fp, fn)
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        else:
            x, y = recall, _divide_no_nan(tp, tp + fp)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / 2
        elif self.summation_method == "minoring":
            heights = torch.minimum(y[:-1], y[1:])
        else:
            heights = torch.maximum(y[:-1], y[1:])
        return float(((x[:-1] - x[1:]) * heights).sum())

    def get_config(self):
        return {"name": self.name, "num_thresholds": self.num_thresholds, "curve": self.curve,
                "summation_method": self.summation_method, "from_logits": self.from_logits}


def _divide_no_nan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a / b, 0 where b is 0 (Keras's ops.divide_no_nan)."""
    return torch.where(b != 0, a / torch.where(b != 0, b, torch.ones_like(b)), torch.zeros_like(a))


def _interpolated_pr_auc(tp, fp, fn) -> float:
    """Keras's AUC(curve="PR"): Davis & Goadrich's interpolation of precision between
    thresholds (keras/src/metrics/confusion_metrics.py, AUC.interpolate_pr_auc)."""
    dtp = tp[:-1] - tp[1:]
    p = tp + fp
    dp = p[:-1] - p[1:]
    slope = _divide_no_nan(dtp, dp.clamp_min(0))
    intercept = tp[1:] - slope * p[1:]
    ratio = torch.where((p[:-1] > 0) & (p[1:] > 0), _divide_no_nan(p[:-1], p[1:].clamp_min(0)),
                        torch.ones_like(p[1:]))
    increments = _divide_no_nan(slope * (dtp + intercept * ratio.log()),
                                (tp[1:] + fn[1:]).clamp_min(0))
    return float(increments.sum())


def _per_sample(metric: MeanMetricWrapper, y_true, y_pred) -> torch.Tensor:
    return metric.values(_as_tensor(y_pred).float(), _as_tensor(y_true))


# Keras's metric functions: per-sample values, e.g. categorical_accuracy(y_true, y_pred) -> (N,)
def categorical_accuracy(y_true, y_pred):
    return _per_sample(CategoricalAccuracy(), y_true, y_pred)


def sparse_categorical_accuracy(y_true, y_pred):
    return _per_sample(SparseCategoricalAccuracy(), y_true, y_pred)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    return _per_sample(BinaryAccuracy(threshold=threshold), y_true, y_pred)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _per_sample(TopKCategoricalAccuracy(k=k), y_true, y_pred)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _per_sample(SparseTopKCategoricalAccuracy(k=k), y_true, y_pred)


# name in compile(metrics=[...]) -> class; "accuracy"/"acc" are resolved by `resolve`
METRICS = {
    "categorical_accuracy": CategoricalAccuracy,
    "sparse_categorical_accuracy": SparseCategoricalAccuracy,
    "binary_accuracy": BinaryAccuracy,
    "top_k_categorical_accuracy": TopKCategoricalAccuracy,
    "sparse_top_k_categorical_accuracy": SparseTopKCategoricalAccuracy,
    "precision": Precision,
    "recall": Recall,
    "auc": AUC,
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "mean_absolute_error": MeanAbsoluteError,
    "mae": MeanAbsoluteError,
}
_CLASSES = {c.__name__: c for c in set(METRICS.values())}
ACCURACY = ("accuracy", "acc")
_FUNCTIONS = {f.__name__: f for f in (categorical_accuracy, sparse_categorical_accuracy,
                                      binary_accuracy, top_k_categorical_accuracy,
                                      sparse_top_k_categorical_accuracy)}


def get(value) -> Metric | str:
    """A metric object for a name, class name or object; "accuracy"/"acc" come back as the
    string (the training step counts them)."""
    if isinstance(value, Metric):
        return value
    if isinstance(value, type) and issubclass(value, Metric):
        raise ConfigError(f"Expected a metric object such as {value.__name__}(). Received the "
                          f"class {value.__name__} itself: add the parentheses.")
    if callable(value) and getattr(value, "__name__", None) in _FUNCTIONS \
            and value is _FUNCTIONS[value.__name__]:  # metrics=[cnnlab.metrics.binary_accuracy]
        return METRICS[value.__name__](name=value.__name__)
    if isinstance(value, str):
        if value.lower() in ACCURACY:
            return value
        cls = METRICS.get(value) or _CLASSES.get(value)
        if cls is not None:
            return cls(name=value)
    raise ConfigError(unknown_name("metric", value, [*ACCURACY, *METRICS]))


def resolve(metrics) -> list[tuple[str, Metric | None]]:
    """compile's `metrics` -> [(history key, metric object or None)], in the given order;
    None: the accuracy the training step counts ("accuracy" as the loss implies it)."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, Metric)) or not hasattr(metrics, "__iter__"):
        raise ConfigError(f"Invalid value for argument `metrics`. Expected a list such as "
                          f"['accuracy']. Received metrics={metrics!r}.")
    out, seen = [], set()
    for item in metrics:
        m = get(item)
        key = m if isinstance(m, str) else m.name
        if key in seen:
            raise ConfigError(f"The metric name {key!r} is given twice in `metrics`. Each "
                              f"metric needs its own name (the history key): pass name=... .")
        seen.add(key)
        out.append((key, None if isinstance(m, str) else m))
    return out
