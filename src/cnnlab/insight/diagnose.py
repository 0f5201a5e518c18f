"""Diagnoses in plain words: what went wrong in a run, each with the numbers that show it.

Pure functions over a run's history (Keras's `history.history`: per-epoch lists), its
predictions, labels and layer activations; each returns a `Finding` or None. A finding
only exists with its evidence, and the thresholds below are the whole rule: none fires
on numbers that do not meet them.

    >>> h = {"loss": [0.8, 0.2, 0.1], "accuracy": [0.78, 0.94, 0.96],
    ...      "val_loss": [2.4, 2.6, 2.5], "val_accuracy": [0.11, 0.11, 0.1125]}
    >>> f = batchnorm_warmup(h, num_classes=10, momentum=0.99, steps=189)
    >>> f.kind, f.evidence["val_accuracy"]
    ('batchnorm_warmup', 0.1125)
    >>> diagnose_history(h, num_classes=10, bn_momentum=0.99, steps=189)  # the same, alone
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# -- the rules' thresholds, in one place ---------------------------------------------------
OVERFIT_VAL_RISE = 0.15     # val loss at the end >= 15% above its minimum ...
OVERFIT_MIN_EPOCHS = 2      # ... reached at least 2 epochs before the end
UNDERFIT_ACCURACY = 0.80    # final train accuracy below 80% ...
UNDERFIT_PLATEAU = 0.02     # ... and the train loss fell < 2% (relative) over the last epoch
LR_LOW_DROP = 0.20          # train loss fell every epoch, but < 20% in all, from first to last
LR_HIGH_RISE = 0.01         # an epoch's train loss > 1% above the previous one counts as a rise
CHANCE_MARGIN = 1.5         # "at chance": accuracy <= 1.5 / classes, and <= chance + 10 pt
CHANCE_POINTS = 0.10        #   (for 2 or 3 classes 1.5x chance would be far from chance)
TRAIN_HIGH = 0.5            # "training is high": train accuracy >= 50%, and at least half-way
                            #   from chance to 100%
BN_RESIDUE = 0.01           # moving statistics "warm" once momentum**steps < 1%
DEAD_SHARE = 0.5            # a layer with >= 50% of its ReLU units never active (the
                            # lecture's 10-epoch run has 14 of 64 dense units dead, 22%)
DOMINANT_SHARE = 0.5        # one class holds > 50% of the training labels (3+ classes)
PIXEL_TOLERANCE = 1e-3      # inputs outside [0 - tol, 1 + tol] are "not in [0, 1]"
TWICE_SCALED = 1.5 / 255    # every input <= this: pixels look divided by 255 twice

ACCURACY_KEYS = ("accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy",
                 "binary_accuracy")


@dataclass(frozen=True)
class Finding:
    """A diagnosis: `kind` (a stable key), `title` and `text` (plain words, numbers in them),
    `advice` (what to try), `evidence` (the numbers that triggered it, by name)."""

    kind: str
    title: str
    text: str
    advice: str
    evidence: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "title": self.title, "text": self.text,
                "advice": self.advice, "evidence": self.evidence}

    def __str__(self) -> str:
        return f"{self.title}: {self.text} {self.advice}"


def _series(history: dict, key: str) -> list[float]:
    return [float(v) for v in (history.get(key) or [])]


def accuracy_key(history: dict) -> str | None:
    for k in ACCURACY_KEYS:
        if history.get(k) and history.get(f"val_{k}"):
            return k
    for k in ACCURACY_KEYS:
        if history.get(k):
            return k
    return None


def _pt(x: float) -> str:
    return f"{100 * x:.1f}%"


def chance(num_classes: int) -> float:
    return 1.0 / max(1, int(num_classes))


def at_chance(accuracy: float, num_classes: int) -> bool:
    c = chance(num_classes)
    return accuracy <= min(CHANCE_MARGIN * c, c + CHANCE_POINTS)


def well_learned(accuracy: float, num_classes: int) -> bool:
    c = chance(num_classes)
    return accuracy >= max(TRAIN_HIGH, c + (1 - c) / 2)


# -- over histories --------------------------------------------------------------------------

def learning_rate_too_high(history: dict) -> Finding | None:
    """The train loss became NaN/infinite, ended above where it started, or rose in at
    least a third of the epochs (and at least twice): an oscillating loss."""
    loss = _series(history, "loss")
    bad = [i for i, v in enumerate(loss) if not math.isfinite(v)]
    if bad:
        return Finding("lr_too_high", "Learning rate too high (the loss became NaN)",
                       f"The training loss was not a finite number at epoch {bad[0] + 1}.",
                       "Lower the learning rate (e.g. 10x), or clip gradients (clipnorm=1.0).",
                       {"first_nan_epoch": bad[0] + 1, "loss": loss[:bad[0] + 1]})
    if len(loss) < 3:
        return None
    rises = [i + 1 for i in range(1, len(loss)) if loss[i] > loss[i - 1] * (1 + LR_HIGH_RISE)]
    transitions = len(loss) - 1
    if loss[-1] > loss[0]:
        return Finding("lr_too_high", "Learning rate too high (the loss went up)",
                       f"The training loss ended at {loss[-1]:.4g}, above its first epoch's "
                       f"{loss[0]:.4g}; it rose at epochs {', '.join(map(str, rises))}.",
                       "Lower the learning rate (e.g. 10x).",
                       {"first_loss": loss[0], "final_loss": loss[-1], "rising_epochs": rises})
    if len(rises) >= max(2, math.ceil(transitions / 3)):
        return Finding("lr_too_high", "Learning rate too high (the loss oscillates)",
                       f"The training loss rose in {len(rises)} of {transitions} epochs "
                       f"(epochs {', '.join(map(str, rises))}) instead of falling steadily.",
                       "Lower the learning rate, or use a schedule that decays it.",
                       {"rising_epochs": rises, "epochs": len(loss), "loss": loss})
    return None


def learning_rate_too_low(history: dict) -> Finding | None:
    """The train loss fell every epoch (3 or more) yet less than LR_LOW_DROP in all, and the
    train accuracy is below UNDERFIT_ACCURACY: steady but slow progress."""
    loss = _series(history, "loss")
    key = accuracy_key(history)
    acc = _series(history, key) if key else []
    if len(loss) < 3 or not all(map(math.isfinite, loss)) or loss[0] <= 0:
        return None
    falling = all(b < a for a, b in zip(loss, loss[1:]))
    drop = (loss[0] - loss[-1]) / loss[0]
    if falling and drop < LR_LOW_DROP and (not acc or acc[-1] < UNDERFIT_ACCURACY):
        return Finding("lr_too_low", "Learning rate too low (slow, steady progress)",
                       f"The training loss fell in every epoch, but only {_pt(drop)} in "
                       f"{len(loss)} epochs ({loss[0]:.4g} -> {loss[-1]:.4g})"
                       + (f"; train accuracy {_pt(acc[-1])}." if acc else "."),
                       "Raise the learning rate (e.g. 10x) or train for more epochs.",
                       {"first_loss": loss[0], "final_loss": loss[-1], "relative_drop": drop,
                        **({"final_accuracy": acc[-1]} if acc else {})})
    return None


def stuck_at_chance(history: dict, num_classes: int) -> Finding | None:
    """Training accuracy at chance (`at_chance`) and the training loss flat
    (fell < UNDERFIT_PLATEAU over the last epoch) within 5% of ln(classes), the loss of
    predicting every class equally: the model gives (nearly) the same output for every image.
    The learning rate is named as the likely cause when the first epoch's loss was above
    ln(classes), i.e. training made the model worse than guessing before it went flat.
    A loss that fell in each of the last two epochs without that jump is slow progress
    (learning_rate_too_low), not this."""
    key = accuracy_key(history)
    loss, acc = _series(history, "loss"), _series(history, key) if key else []
    k = max(2, int(num_classes))
    if len(loss) < 2 or not acc or not all(map(math.isfinite, loss)) or loss[-2] <= 0:
        return None
    uniform = math.log(k)
    change = (loss[-2] - loss[-1]) / loss[-2]
    if not (at_chance(acc[-1], k) and abs(loss[-1] - uniform) <= 0.05 * uniform
            and change < UNDERFIT_PLATEAU):
        return None
    jumped = loss[0] > uniform * 1.05
    tail = loss[-3:]
    if not jumped and len(tail) == 3 and tail[0] > tail[1] > tail[2]:
        return None  # still falling, slowly: learning_rate_too_low's case, not stuck
    return Finding("stuck_at_chance", "Training stuck at chance" + (
                       " (learning rate too high)" if jumped else ""),
                   f"Training accuracy is {_pt(acc[-1])} (chance: {_pt(chance(k))}) and the "
                   f"training loss sits at {loss[-1]:.4g}, the loss of giving all {k} classes "
                   f"the same probability (ln {k} = {uniform:.4g}): the model outputs nearly "
                   "the same for every image."
                   + (f" The first epoch's loss, {loss[0]:.4g}, was above that: the first "
                      "updates threw the weights off (ReLU units die, outputs collapse)."
                      if jumped else ""),
                   "Lower the learning rate (e.g. 10x)" + ("" if jumped else
                   ", check that the labels match the images") + ", and start again.",
                   {"final_accuracy": acc[-1], "final_loss": loss[-1], "uniform_loss": uniform,
                    "first_loss": loss[0], "chance": chance(k)})


def underfitting(history: dict, num_classes: int) -> Finding | None:
    """The train accuracy ended below UNDERFIT_ACCURACY and the train loss has levelled off
    (fell less than UNDERFIT_PLATEAU over the last epoch), validation no better: the model
    does not fit even its training data."""
    key = accuracy_key(history)
    loss, acc = _series(history, "loss"), _series(history, key) if key else []
    val = _series(history, f"val_{key}") if key else []
    if len(loss) < 2 or not acc or not all(map(math.isfinite, loss)) or loss[-2] <= 0:
        return None
    change = (loss[-2] - loss[-1]) / loss[-2]
    if acc[-1] < UNDERFIT_ACCURACY and change < UNDERFIT_PLATEAU and \
            (not val or val[-1] <= acc[-1] + 0.05) and acc[-1] > 0:
        return Finding("underfitting", "Underfitting",
                       f"Training accuracy ended at {_pt(acc[-1])}"
                       + (f" (validation {_pt(val[-1])})" if val else "")
                       + f" and the training loss has levelled off ({loss[-2]:.4g} -> "
                       f"{loss[-1]:.4g}, {_pt(change)} over the last epoch).",
                       "Give the model more capacity (more filters or units, another "
                       "convolution block), less regularization, or a higher learning rate.",
                       {"final_accuracy": acc[-1], "final_val_accuracy": val[-1] if val else None,
                        "last_epoch_loss_drop": change, "chance": chance(num_classes)})
    return None


def overfitting(history: dict, num_classes: int) -> Finding | None:
    """Validation loss ended >= OVERFIT_VAL_RISE above its minimum, reached at least
    OVERFIT_MIN_EPOCHS epochs before the end, while the train loss kept falling: the
    train-val loss gap grew. With accuracies, the accuracy gap must not have shrunk and
    validation must be above chance (at chance, see batchnorm_warmup). The overfitting
    began in the epoch after the minimum. Needs validation every epoch."""
    key = accuracy_key(history)
    loss, vloss = _series(history, "loss"), _series(history, "val_loss")
    acc = _series(history, key) if key else []
    vacc = _series(history, f"val_{key}") if key else []
    n = len(vloss)
    if n < OVERFIT_MIN_EPOCHS + 1 or len(loss) != n or not all(map(math.isfinite, vloss + loss)):
        return None
    best = int(np.argmin(vloss))
    if n - 1 - best < OVERFIT_MIN_EPOCHS or vloss[best] <= 0:
        return None
    rise = (vloss[-1] - vloss[best]) / vloss[best]
    if rise < OVERFIT_VAL_RISE or not loss[-1] < loss[best]:
        return None
    evidence = {"best_val_loss_epoch": best + 1, "min_val_loss": vloss[best],
                "final_val_loss": vloss[-1], "val_loss_rise": rise,
                "train_loss_at_best": loss[best], "final_train_loss": loss[-1],
                "loss_gap_at_best": vloss[best] - loss[best], "final_loss_gap": vloss[-1] - loss[-1],
                "began_epoch": best + 2}
    gap_words = (f"; the val-train loss gap grew from {vloss[best] - loss[best]:.4g} to "
                 f"{vloss[-1] - loss[-1]:.4g}")
    if len(acc) == n and len(vacc) == n:
        gap0, gap1 = acc[best] - vacc[best], acc[-1] - vacc[-1]
        if gap1 < gap0 or at_chance(vacc[-1], num_classes):
            return None
        evidence.update({"gap_at_best": gap0, "final_gap": gap1})
        gap_words += (f" and the train-val accuracy gap from {100 * gap0:.1f} to "
                      f"{100 * gap1:.1f} points")
    return Finding("overfitting", f"Overfitting from epoch {best + 2}",
                   f"Validation loss was lowest at epoch {best + 1} ({vloss[best]:.4g}) and "
                   f"rose {_pt(rise)} to {vloss[-1]:.4g} by epoch {n} while the training loss "
                   f"kept falling ({loss[best]:.4g} -> {loss[-1]:.4g}){gap_words}.",
                   f"Stop around epoch {best + 1} (EarlyStopping(monitor='val_loss', "
                   "restore_best_weights=True)), add Dropout or augmentation, or use more data.",
                   evidence)


def batchnorm_warmup(history: dict, num_classes: int, momentum: float | None,
                     steps: int | None) -> Finding | None:
    """A model with BatchNormalization (`momentum`: its moving statistics' momentum; None:
    no BN) whose validation accuracy is at chance (`at_chance`) while its training
    accuracy is high (`well_learned`): inference uses the moving
    statistics, which after `steps` updates still weigh momentum**steps of their initial
    values (mean 0, variance 1). Silent once that weight is under BN_RESIDUE."""
    key = accuracy_key(history)
    if momentum is None or key is None:
        return None
    acc, vacc = _series(history, key), _series(history, f"val_{key}")
    if not acc or not vacc:
        return None
    c = chance(num_classes)
    residue = float(momentum) ** steps if steps else None
    if not (at_chance(vacc[-1], num_classes) and well_learned(acc[-1], num_classes)):
        return None
    if residue is not None and residue < BN_RESIDUE:
        return None
    need = math.ceil(math.log(BN_RESIDUE) / math.log(momentum)) if 0 < momentum < 1 else None
    steps_words = (f"after {steps} training steps the moving statistics still hold "
                   f"{_pt(residue)} of their initial values (momentum {momentum}: "
                   f"{momentum}^{steps})") if steps else f"the moving statistics (momentum {momentum}) "\
        "have not caught up"
    return Finding("batchnorm_warmup", "BatchNormalization not warmed up (not overfitting)",
                   f"Validation accuracy is {_pt(vacc[-1])}, chance level for {num_classes} "
                   f"classes, while training accuracy is {_pt(acc[-1])}. Training normalizes "
                   "with each batch's statistics; validation uses the moving averages, and "
                   f"{steps_words}. This is not overfitting: the model has learned, its "
                   "inference-time statistics have not.",
                   ("Train longer" + (f" (about {need} steps for the initial values to fall "
                                      f"under {_pt(BN_RESIDUE)})" if need else "")
                    + ", or lower BatchNormalization's momentum (e.g. momentum=0.9), "
                    "or use a smaller batch size (more steps per epoch)."),
                   {"val_accuracy": vacc[-1], "train_accuracy": acc[-1], "chance": c,
                    "momentum": momentum, "steps": steps, "initial_weight_left": residue,
                    "steps_needed": need})


def diagnose_history(history: dict, num_classes: int, bn_momentum: float | None = None,
                     steps: int | None = None) -> list[Finding]:
    """Every history diagnosis that applies, most fundamental first: a NaN or diverging
    loss hides the rest; the BN warm-up explains a gap that would otherwise read as
    overfitting; training stuck at chance is not underfitting; underfitting and a too-low
    rate exclude each other."""
    high = learning_rate_too_high(history)
    if high is not None and "first_nan_epoch" in high.evidence:
        return [high]
    found = [high]
    bn = batchnorm_warmup(history, num_classes, bn_momentum, steps)
    found.append(bn)
    if bn is None:
        found.append(overfitting(history, num_classes))
    stuck = stuck_at_chance(history, num_classes) if high is None else None
    found.append(stuck)
    low = learning_rate_too_low(history) if high is None and stuck is None else None
    found.append(low)
    if low is None and bn is None and stuck is None:
        found.append(underfitting(history, num_classes))
    return [f for f in found if f is not None]


# -- over predictions, labels, activations and inputs ------------------------------------

def never_predicted(pred, truth, class_names) -> Finding | None:
    """Classes present in `truth` that the model never predicts (`pred`: predicted indices)."""
    pred, truth = np.asarray(pred).reshape(-1), np.asarray(truth).reshape(-1)
    k = len(class_names)
    counts = np.bincount(pred, minlength=k)[:k]
    support = np.bincount(truth, minlength=k)[:k]
    missing = [i for i in range(k) if support[i] > 0 and counts[i] == 0]
    if not missing:
        return None
    names = [str(class_names[i]) for i in missing]
    return Finding("class_never_predicted",
                   f"Class{'es' if len(missing) > 1 else ''} never predicted: {', '.join(names)}",
                   f"Of {len(pred)} validation images the model predicted "
                   + ", ".join(f"{class_names[i]!s} 0 times ({int(support[i])} are {class_names[i]!s})"
                               for i in missing) + ".",
                   "Check the class balance and the labels of the training data; train longer "
                   "or use class_weight if the class is rare.",
                   {"classes": names, "support": [int(support[i]) for i in missing],
                    "images": int(len(pred))})


def dead_relu(ever_active: dict, images: int) -> Finding | None:
    """`ever_active`: {layer name: bool array, one per unit (a Dense unit or a Conv2D filter),
    True if it was > 0 for some validation image}. Fires for layers with >= DEAD_SHARE dead."""
    layers = {}
    for name, active in ever_active.items():
        active = np.asarray(active, dtype=bool).reshape(-1)
        if active.size and (1 - active.mean()) >= DEAD_SHARE:
            layers[name] = {"dead": int((~active).sum()), "units": int(active.size),
                            "share": float(1 - active.mean())}
    if not layers:
        return None
    words = "; ".join(f"{n}: {v['dead']} of {v['units']} units ({_pt(v['share'])})"
                      for n, v in layers.items())
    return Finding("dead_relu", "Dead ReLU units",
                   f"Units whose ReLU output was 0 for every one of {images} validation "
                   f"images: {words}. They pass no signal and get no gradient.",
                   "Lower the learning rate, or use LeakyReLU / a smaller initialization; "
                   "BatchNormalization before the ReLU also helps.",
                   {"layers": layers, "images": images})


def class_imbalance(labels, class_names) -> Finding | None:
    """One class holds more than DOMINANT_SHARE of the training labels (3+ classes), or a
    class has no training image at all."""
    y = np.asarray(labels).reshape(-1)
    k = len(class_names)
    if y.size == 0 or k < 2:
        return None
    counts = np.bincount(y, minlength=k)[:k]
    top = int(np.argmax(counts))
    share = counts[top] / y.size
    empty = [str(class_names[i]) for i in range(k) if counts[i] == 0]
    if not empty and (k < 3 or share <= DOMINANT_SHARE):
        return None
    text = (f"Class {class_names[top]!s} holds {_pt(share)} of the {y.size} training labels "
            f"({int(counts[top])}; the smallest class has {int(counts.min())})")
    if empty:
        text += f"; no training image at all for {', '.join(empty)}"
    return Finding("data_imbalance", "The training labels look wrong (one class dominates)"
                   if not empty else "The training labels look wrong (classes missing)",
                   text + ".",
                   "Check the labels; balance the data, or pass class_weight to fit.",
                   {"counts": [int(c) for c in counts], "dominant": str(class_names[top]),
                    "share": float(share), "missing": empty})


def pixel_range(x_min: float, x_max: float, raw_pixels: bool = False) -> Finding | None:
    """The model's inputs (as it sees them: after cnnlab scales uint8 pixels) outside
    [0, 1], or all under TWICE_SCALED (scaled twice). `raw_pixels`: the model rescales its
    input itself (a first Rescaling layer): then no rule applies."""
    if raw_pixels:
        return None
    lo, hi = float(x_min), float(x_max)
    if lo < -PIXEL_TOLERANCE or hi > 1 + PIXEL_TOLERANCE:
        return Finding("data_range", "The input pixels look wrong (not in [0, 1])",
                       f"The model's inputs range from {lo:.4g} to {hi:.4g}, but it expects "
                       "pixels scaled to [0, 1] (it has no Rescaling layer).",
                       "Divide float pixels by 255 (or store the images as uint8, which "
                       "cnnlab scales), or add Rescaling(1/255) as the first layer.",
                       {"min": lo, "max": hi})
    if hi > 0 and hi <= TWICE_SCALED:
        return Finding("data_range", "The input pixels look wrong (scaled twice)",
                       f"The model's inputs range from {lo:.4g} to {hi:.4g}: pixels divided by "
                       "255 twice would look like this.",
                       "Scale the pixels once (cnnlab scales uint8 images itself).",
                       {"min": lo, "max": hi})
    return None


# -- a run's history diagnoses from its files' contents ------------------------------------

BN_DEFAULT_MOMENTUM = 0.99  # Keras's BatchNormalization default


def bn_momentum(model_config) -> float | None:
    """The largest BatchNormalization momentum in a run config's `model` section (the slowest
    to warm up; Keras's default 0.99 where none is given), None without BatchNormalization.
    Walks the whole section, so nested models count too."""
    found = []

    def walk(v):
        if isinstance(v, dict):
            for k, sub in v.items():
                if k == "BatchNormalization":
                    m = (sub or {}).get("momentum") if isinstance(sub, dict) else None
                    found.append(float(m) if m is not None else BN_DEFAULT_MOMENTUM)
                walk(sub)
        elif isinstance(v, list):
            for sub in v:
                walk(sub)
    walk(model_config)
    return max(found) if found else None


def run_history_findings(history: dict, config: dict, metrics: dict) -> list[Finding]:
    """`diagnose_history` for a run directory's history.json, config.yaml (as a dict) and
    metrics.json: the classes, BatchNormalization's momentum and the steps taken come from
    them (steps = steps_per_epoch x epochs trained)."""
    data = metrics.get("data") or {}
    k = data.get("num_classes") or len(data.get("class_names") or []) or 0
    if not k or not history.get("loss"):
        return []
    per_epoch = metrics.get("steps_per_epoch")
    steps = int(per_epoch) * len(history["loss"]) if per_epoch else None
    return diagnose_history(history, int(k), bn_momentum(config.get("model")), steps)
