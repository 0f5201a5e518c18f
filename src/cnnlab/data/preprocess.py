"""The lecture's preprocessing, in one place: shape for the model, scale, one-hot labels.

Images stay uint8 in memory (a quarter of float32's size); `prepare_images` only reshapes
(views, no copy) and the training loop scales each batch with `x.float() / 255`, the same
arithmetic as `scale_images` here. `to_categorical` is Keras's.

    >>> x = prepare_images(ds.x_train, (28, 28, 1))   # (N, 28, 28) -> (N, 28, 28, 1), uint8
    >>> x = prepare_images(ds.x_train, (784,))        # flattened for an MLP
    >>> to_categorical([0, 2], num_classes=3)
    array([[1., 0., 0.],
           [0., 0., 1.]], dtype=float32)
"""
from __future__ import annotations

import numpy as np

from ..errors import DataError

PIXEL_MAX = 255.0   # uint8 full scale


def _shape_text(shape) -> str:
    size = int(np.prod([d for d in shape if d is not None], dtype=np.int64))
    return f"{tuple(shape)} ({size} values)"


def prepare_images(x, input_shape) -> np.ndarray:
    """Reshape uint8 images (N, ...) to (N, *input_shape) without scaling or copying.

    Adds a channel axis ((28, 28) -> (28, 28, 1)), flattens ((28, 28) -> (784,)), or reshapes
    when the number of values per image matches. `None` in `input_shape` matches any size.
    Raises DataError naming the expected and received shapes otherwise.
    """
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise DataError(f"Invalid images. Expected uint8 pixels (0-255), scaled later per batch. "
                        f"Received dtype {x.dtype}.")
    return fit_to_input(x, input_shape)


def fit_to_input(x: np.ndarray, input_shape, what: str = "images") -> np.ndarray:
    """`prepare_images`'s reshaping for arrays of any dtype (the lecture's float images too)."""
    if x.ndim < 2:
        raise DataError(f"Invalid {what}. Expected an array of shape (N, H, W) or (N, H, W, C). "
                        f"Received shape {x.shape}.")
    target = tuple(None if d is None else int(d) for d in input_shape)
    image = x.shape[1:]
    if len(target) == len(image) and all(t is None or t == s for t, s in zip(target, image)):
        return x
    if len(target) == len(image) + 1 and target[-1] in (1, None) and \
            all(t is None or t == s for t, s in zip(target[:-1], image)):
        return x[..., np.newaxis]                       # (N, H, W) -> (N, H, W, 1)
    if None not in target and int(np.prod(target, dtype=np.int64)) == int(np.prod(image, dtype=np.int64)):
        return x.reshape((len(x), *target))             # (N, 28, 28) -> (N, 784), etc.
    raise DataError(f"The data does not fit the model's input. Expected {what} of shape "
                    f"{_shape_text(target)}. Received {what} of shape {_shape_text(image)}.")


def scale_images(x) -> np.ndarray:
    """uint8 -> float32 in [0, 1] (x / 255), as the lecture does; use per batch."""
    return np.asarray(x, dtype=np.float32) / np.float32(PIXEL_MAX)


def to_categorical(y, num_classes: int | None = None) -> np.ndarray:
    """One-hot float32 encoding of integer labels, as `keras.utils.to_categorical`.

    Shape `y.shape + (num_classes,)` (a trailing axis of size 1 is dropped first);
    `num_classes` defaults to max(y) + 1. Raises DataError for non-integer labels or
    labels outside [0, num_classes).
    """
    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y.reshape(y.shape[:-1])
    if y.size and y.dtype.kind == "f" and not np.all(np.isfinite(y) & (y == np.round(y))):
        raise DataError(f"Invalid labels for to_categorical. Expected integers. "
                        f"Received non-integer values such as {y[y != np.round(y)].ravel()[:3].tolist()}.")
    if y.size and y.dtype.kind not in "iuf" and y.dtype != bool:
        raise DataError(f"Invalid labels for to_categorical. Expected integers. Received dtype {y.dtype}.")
    labels = y.astype(np.int64)
    if num_classes is None:
        if not labels.size:
            raise DataError("Invalid labels for to_categorical. Expected at least one label to "
                            "infer num_classes from. Received an empty array; pass num_classes.")
        num_classes = int(labels.max()) + 1
    if isinstance(num_classes, bool) or int(num_classes) != num_classes or num_classes < 1:
        raise DataError(f"Invalid value for argument `num_classes`. Expected a strictly positive "
                        f"integer. Received num_classes={num_classes!r}.")
    num_classes = int(num_classes)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"Invalid labels for to_categorical. Expected labels in [0, {num_classes - 1}]. "
                        f"Received labels in [{labels.min()}, {labels.max()}].")
    out = np.zeros(labels.shape + (num_classes,), dtype=np.float32)
    np.put_along_axis(out, labels[..., np.newaxis], 1.0, axis=-1)
    return out
