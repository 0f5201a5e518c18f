"""Keras's utils: `cnnlab.utils.to_categorical(y, 10)`."""
from .data.preprocess import to_categorical as _one_hot


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot rows for integer labels, as Keras's to_categorical."""
    return _one_hot(y, num_classes).astype(dtype, copy=False)
