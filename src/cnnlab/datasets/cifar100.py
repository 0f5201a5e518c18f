"""CIFAR-100 as `keras.datasets.cifar100`: `load_data(label_mode="fine")`.

`label_mode="fine"` gives the 100 classes, `"coarse"` the 20 superclasses. As in Keras the
labels are an (N, 1) int64 column (CIFAR-10's are uint8).
"""
from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from .cifar10 import keras_arrays


def load_data(label_mode: str = "fine", *, data_dir=None, download: bool = True):
    """Return `(x_train, y_train), (x_test, y_test)`: uint8 images (N, 32, 32, 3), int64
    labels (N, 1)."""
    from ..data import load_dataset

    if label_mode not in ("fine", "coarse"):
        raise ConfigError("Invalid value for argument `label_mode`. Expected one of 'fine', "
                          f"'coarse'. Received label_mode={label_mode!r}.")
    name = "cifar100" if label_mode == "fine" else "cifar100-coarse"
    return keras_arrays(load_dataset(name, data_dir=data_dir, download=download), np.int64)
