"""Arrays held for training: images kept as uint8 until a batch is taken.

    >>> arrays = to_arrays(x, y, spec, loss, "training", sample_weight=None, class_weight=None)
    >>> xb, yb, yi = arrays.batch(index)      # float32 images in [0, 1], loss targets, class ids
    >>> train, val = split_validation(arrays, 0.2)   # Keras's validation_split: the last 20%
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.preprocess import fit_to_input
from ..errors import DataError
from ..layers.reshaping import takes_raw_pixels
from ..losses import Loss


@dataclass
class Arrays:
    x: torch.Tensor        # (N, *input_shape), uint8 (scaled per batch) or float32
    y: torch.Tensor        # what the loss takes: one-hot float, class index, or values
    y_index: torch.Tensor  # class index per sample (for accuracy)
    scale: float           # 1/255 for uint8 images, else 1
    onehot: bool = False   # y is one-hot rows (y_index says it all: the loss can take it)
    weights: torch.Tensor | None = None  # per-sample loss weights (sample_weight, class_weight)

    def __len__(self) -> int:
        return self.x.shape[0]

    def batch(self, index):
        """The samples at `index` (a slice, or a tensor of positions: gathered with
        index_select, half the time of indexing for a shuffled batch of images)."""
        take = ((lambda t: torch.index_select(t, 0, index)) if isinstance(index, torch.Tensor)
                else (lambda t: t[index]))
        xb = take(self.x)
        xb = xb.float().mul_(self.scale) if self.scale != 1.0 else xb
        return xb, take(self.y), take(self.y_index)

    def batch_weights(self, index) -> torch.Tensor | None:
        if self.weights is None:
            return None
        return (torch.index_select(self.weights, 0, index) if isinstance(index, torch.Tensor)
                else self.weights[index])

    def take(self, index: slice) -> "Arrays":
        w = None if self.weights is None else self.weights[index]
        return Arrays(self.x[index], self.y[index], self.y_index[index], self.scale, self.onehot, w)


def split_validation(data: Arrays, fraction: float) -> tuple[Arrays, Arrays]:
    """Keras's validation_split: the last `fraction` of the samples, before any shuffling."""
    split = int(len(data) * (1 - fraction))
    return data.take(slice(0, split)), data.take(slice(split, None))


def to_images(x, input_shape, what, raw_pixels: bool = False) -> tuple[torch.Tensor, float]:
    """Images as a tensor (N, *input_shape) and the factor that scales a batch to [0, 1].

    `raw_pixels`: the model scales its input itself (a first Rescaling layer), so uint8
    pixels go in as 0..255, as Keras feeds them; scaled here too, they would be scaled twice."""
    x = np.asarray(x)
    if x.dtype == np.uint8 and not raw_pixels:
        return torch.from_numpy(np.ascontiguousarray(fit_to_input(x, input_shape, what))), 1 / 255
    if not np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_:
        raise DataError(f"Expected {what} as numbers (uint8 or float). Received dtype {x.dtype}.")
    x = fit_to_input(x, input_shape, what).astype(np.float32, copy=False)
    if not np.isfinite(x).all():
        raise DataError(f"The {what} contain NaN or infinite values.")
    return torch.from_numpy(np.ascontiguousarray(x)), 1.0


def _targets(y, n: int, loss: Loss, num_outputs: int, what: str):
    y = np.asarray(y)
    if y.ndim == 0:
        raise DataError(f"Expected {what} as an array with one entry per image. Received "
                        f"{y!r}.")
    if y.shape[0] != n:
        raise DataError(f"Data cardinality is ambiguous. Make sure all arrays contain the same "
                        f"number of samples. 'x' sizes: {n}, 'y' sizes: {y.shape[0]} ({what}).")
    if loss.target in ("onehot", "value") and y.ndim == 2:
        if y.shape[1] != num_outputs:
            raise DataError(f"Expected {what} with {num_outputs} columns to match the model's "
                            f"{num_outputs} output units. Received shape {tuple(y.shape)}.")
        yt = torch.from_numpy(np.ascontiguousarray(y.astype(np.float32)))
        return yt, yt.argmax(dim=1)
    # class labels for a loss that compares whole output vectors (mse, binary_crossentropy,
    # hinge, ... on a softmax of several units): one-hot rows, as to_categorical would give
    from_labels = (loss.target in ("binary", "value") and num_outputs > 1
                   and (y.ndim == 1 or (y.ndim == 2 and y.shape[1] == 1)))
    if loss.target == "binary" and not from_labels:
        yt = torch.from_numpy(np.ascontiguousarray(y.astype(np.float32)))
        return yt, yt
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or
                           (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise DataError(f"Expected {what} as class indices of shape ({n},) or one-hot rows of "
                        f"shape ({n}, {num_outputs}). Received shape {tuple(y.shape)}, dtype {y.dtype}.")
    if n and (y.min() < 0 or y.max() >= num_outputs):
        raise DataError(f"{what.capitalize()} out of range: expected class indices 0..{num_outputs - 1} "
                        f"for a model with {num_outputs} output units. Received values from "
                        f"{int(y.min())} to {int(y.max())}.")
    index = torch.from_numpy(y.astype(np.int64))
    if loss.target == "onehot" or from_labels:  # integer labels: one-hot them
        onehot = torch.nn.functional.one_hot(index, num_outputs).float()
        # binary losses' accuracy is Keras's binary_accuracy, element by element
        return onehot, (onehot if loss.target == "binary" else index)
    return index, index


def check_output(spec, loss: Loss) -> None:
    """A classifier's last layer must give one vector per image: (None, classes)."""
    out = spec.output_shape
    if loss.target in ("onehot", "index", "binary") and len(out) != 1:
        from ..errors import SpecError
        shape = "(None, " + ", ".join(map(str, out)) + ")"
        raise SpecError(f"The model's output has shape {shape}, but {loss.name} needs one "
                        "vector per image, (None, classes). Is a Flatten or "
                        "GlobalAveragePooling2D missing before the last Dense?")


def to_arrays(x, y, spec, loss: Loss, what: str = "training", *, sample_weight=None,
              class_weight=None, allow_empty: bool = False) -> Arrays:
    """Images and labels for `spec`'s model and `loss`, checked against both; with
    `sample_weight` (one weight per sample) or `class_weight` ({class: weight}), the
    per-sample loss weights."""
    check_output(spec, loss)
    if x is None or y is None:
        missing = "x" if x is None else "y"
        raise DataError(f"Expected {what} data as x (images) and y (labels). Received "
                        f"{missing}=None.")
    xt, scale = to_images(x, spec.input_shape, f"{what} images", takes_raw_pixels(spec))
    if xt.shape[0] == 0 and not allow_empty:
        raise DataError(f"Expected at least one {what} sample. Received x with 0 samples "
                        f"(shape {tuple(xt.shape)}).")
    yt, yi = _targets(y, xt.shape[0], loss, spec.num_outputs, f"{what} labels")
    weights = sample_weights(yi, sample_weight, class_weight, xt.shape[0], what)
    return Arrays(xt, yt, yi, scale, onehot=loss.target == "onehot" and is_onehot(yt),
                  weights=weights)


def check_class_weight(class_weight) -> None:
    if class_weight is None:
        return
    ok = isinstance(class_weight, dict) and all(
        isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0
        and isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
        for k, v in class_weight.items())
    if not ok:
        raise DataError("Invalid value for argument `class_weight`. Expected a dict mapping "
                        f"class indices (integers) to weights. Received class_weight="
                        f"{class_weight!r}.")


def sample_weights(y_index, sample_weight, class_weight, n: int, what: str):
    """The loss weight of each sample, or None: Keras's sample_weight, or its class_weight
    looked up by class (a class missing from the dict weighs 1, as in Keras)."""
    if sample_weight is not None and class_weight is not None:
        raise DataError("You cannot `class_weight` and `sample_weight` at the same time.")
    if class_weight is not None:
        check_class_weight(class_weight)
        classes = y_index.long()  # binary labels are 0./1.
        table = torch.ones(max(int(classes.max()) + 1 if n else 0, max(class_weight, default=0) + 1))
        for k, v in class_weight.items():
            table[int(k)] = float(v)
        return table[classes]
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.ndim != 1 or w.shape[0] != n or not np.issubdtype(w.dtype, np.number):
        raise DataError(f"Invalid value for argument `sample_weight`. Expected one number per "
                        f"{what} sample, shape ({n},). Received shape {tuple(w.shape)}, "
                        f"dtype {w.dtype}.")
    w = w.astype(np.float32)
    if not np.isfinite(w).all():
        raise DataError(f"The {what} sample weights contain NaN or infinite values.")
    return torch.from_numpy(np.ascontiguousarray(w))


def is_onehot(y: torch.Tensor) -> bool:
    """Rows of zeros with a single 1 (not soft or smoothed labels)."""
    return y.dim() == 2 and bool(((y == 0) | (y == 1)).all()) and bool((y.sum(1) == 1).all())
