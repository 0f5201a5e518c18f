"""Keras's utils: `cnnlab.utils.to_categorical(y, 10)`, `PyDataset`, `set_random_seed(0)`."""
import sys

from . import np_utils
from .data.preprocess import to_categorical as _one_hot
from .train.loop import seed_everything as set_random_seed
from .train.sources import PyDataset, Sequence

__all__ = ["PyDataset", "Sequence", "set_random_seed", "to_categorical"]


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot rows for integer labels, as Keras's to_categorical."""
    return _one_hot(y, num_classes).astype(dtype, copy=False)


# Keras 2's `keras.utils.np_utils`, importable as a module too
# (`from cnnlab.utils.np_utils import to_categorical`)
sys.modules[__name__ + ".np_utils"] = np_utils
