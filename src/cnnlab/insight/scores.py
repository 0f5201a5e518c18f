"""Classification scores from labels and predicted probabilities: the confusion matrix,
per-class precision/recall/F1, the most confused pairs, calibration (ECE).

Pure NumPy, no model: testable by hand in milliseconds.

    >>> cm = confusion_matrix([0, 1, 1], [0, 1, 0], num_classes=2)   # rows: true, cols: predicted
    >>> cm.tolist()
    [[1, 0], [1, 1]]
    >>> per_class(cm)["recall"].tolist()
    [1.0, 0.5]
    >>> calibration(probs, truth, bins=10)["ece"]
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError

__all__ = ["confusion_matrix", "row_normalized", "per_class", "most_confused", "calibration"]


def confusion_matrix(truth, pred, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: entry [t, p] = images of class t predicted p."""
    t = np.asarray(truth, dtype=np.int64).reshape(-1)
    p = np.asarray(pred, dtype=np.int64).reshape(-1)
    if t.shape != p.shape:
        raise DataError(f"Expected as many predictions as labels. Received {p.size} predictions "
                        f"and {t.size} labels.")
    k = int(num_classes)
    for what, a in (("labels", t), ("predictions", p)):
        if a.size and (a.min() < 0 or a.max() >= k):
            raise DataError(f"Expected {what} from 0 to {k - 1}. Received values from "
                            f"{a.min()} to {a.max()}.")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def row_normalized(cm: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (the share of each true class predicted as each class);
    a class without images gives a row of zeros."""
    cm = np.asarray(cm, dtype=np.float64)
    rows = cm.sum(axis=1, keepdims=True)
    return np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)


def per_class(cm: np.ndarray) -> dict:
    """precision = TP / predicted, recall = TP / true, F1 = their harmonic mean, support =
    true count; 0 where a denominator is 0 (as scikit-learn's zero_division=0)."""
    cm = np.asarray(cm, dtype=np.float64)
    tp = np.diag(cm)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1,
            "support": support.astype(np.int64)}


def most_confused(cm: np.ndarray, top: int = 5) -> list[tuple[int, int, int]]:
    """The `top` off-diagonal cells with the most images: (true, predicted, count), count > 0,
    largest first (ties: by true then predicted class)."""
    cm = np.asarray(cm)
    cells = [(int(cm[t, p]), t, p) for t in range(cm.shape[0]) for p in range(cm.shape[1])
             if t != p and cm[t, p] > 0]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [(t, p, n) for n, t, p in cells[:top]]


def calibration(probs, truth, bins: int = 10) -> dict:
    """Reliability of the top class's probability (confidence).

    Images fall into `bins` equal-width confidence bins over [0, 1] (bin b holds
    b/bins <= confidence < (b+1)/bins; confidence 1.0 goes into the last one). Per bin:
    count, mean confidence, accuracy (share whose top class is the true one).
    ECE = sum over bins of count/N * |accuracy - mean confidence| (Guo et al., 2017)."""
    probs = np.asarray(probs, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.int64).reshape(-1)
    if probs.ndim != 2 or probs.shape[0] != truth.shape[0]:
        raise DataError(f"Expected probabilities of shape (N, classes) for {truth.size} labels. "
                        f"Received shape {probs.shape}.")
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == truth).astype(np.float64)
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    count = np.bincount(which, minlength=bins)
    conf_sum = np.bincount(which, weights=conf, minlength=bins)
    acc_sum = np.bincount(which, weights=correct, minlength=bins)
    nz = count > 0
    mean_conf = np.divide(conf_sum, count, out=np.zeros(bins), where=nz)
    accuracy = np.divide(acc_sum, count, out=np.zeros(bins), where=nz)
    n = max(1, truth.size)
    ece = float(np.sum(count / n * np.abs(accuracy - mean_conf)))
    return {"bins": bins, "edges": np.linspace(0, 1, bins + 1), "count": count,
            "confidence": mean_conf, "accuracy": accuracy, "ece": ece}
