"""Arrays held for training: images kept as uint8 until a batch is taken.

    >>> arrays = to_arrays(x, y, spec.input_shape, loss, num_classes=10)
    >>> xb, yb, yi = arrays.batch(index)      # float32 images in [0, 1], loss targets, class ids
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
    if y.shape[:1] != (n,):
        raise DataError(f"Expected {n} {what} (one per image). Received an array of shape "
                        f"{tuple(y.shape)}.")
    if loss.target in ("onehot", "value") and y.ndim == 2:
        if y.shape[1] != num_outputs:
            raise DataError(f"Expected {what} with {num_outputs} columns to match the model's "
                            f"{num_outputs} output units. Received shape {tuple(y.shape)}.")
        yt = torch.from_numpy(np.ascontiguousarray(y.astype(np.float32)))
        return yt, yt.argmax(dim=1)
    if loss.target == "binary":
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
    if loss.target == "onehot":  # integer labels with categorical_crossentropy: one-hot them
        return torch.nn.functional.one_hot(index, num_outputs).float(), index
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


def to_arrays(x, y, spec, loss: Loss, what: str = "training") -> Arrays:
    """Images and labels for `spec`'s model and `loss`, checked against both."""
    check_output(spec, loss)
    xt, scale = to_images(x, spec.input_shape, f"{what} images", takes_raw_pixels(spec))
    yt, yi = _targets(y, xt.shape[0], loss, spec.num_outputs, f"{what} labels")
    return Arrays(xt, yt, yi, scale, onehot=loss.target == "onehot" and is_onehot(yt))


def is_onehot(y: torch.Tensor) -> bool:
    """Rows of zeros with a single 1 (not soft or smoothed labels)."""
    return y.dim() == 2 and bool(((y == 0) | (y == 1)).all()) and bool((y.sum(1) == 1).all())
