"""Keras's utils: `cnnlab.utils.to_categorical(y, 10)`."""
import numpy as np

from .errors import DataError


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot rows for integer labels, as Keras's to_categorical."""
    try:
        from .data.preprocess import to_categorical as impl
    except ImportError:  # the data package is optional here
        impl = None
    if impl is not None:
        return impl(y, num_classes).astype(dtype)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    n = int(y.max()) + 1 if num_classes is None else num_classes
    if y.size and (y.min() < 0 or y.max() >= n):
        raise DataError(f"Labels out of range: expected 0..{n - 1}. Received values from "
                        f"{int(y.min())} to {int(y.max())}.")
    out = np.zeros((y.size, n), dtype=dtype)
    out[np.arange(y.size), y] = 1
    return out
