"""Keras 2's `keras.utils.np_utils`, which tutorials still import (`cnnlab.utils.np_utils`):
`to_categorical` with a one-line notice naming Keras 3's spelling.

    >>> from cnnlab.utils import np_utils
    >>> np_utils.to_categorical([0, 2], 3)      # FutureWarning: use cnnlab.utils.to_categorical
"""
from __future__ import annotations

from .deprecation import deprecated


def to_categorical(y, num_classes=None, dtype="float32"):
    from .utils import to_categorical as _to_categorical
    deprecated("keras.utils.np_utils.to_categorical", "cnnlab.utils.to_categorical")
    return _to_categorical(y, num_classes, dtype)
