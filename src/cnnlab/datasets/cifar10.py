"""CIFAR-10 as `keras.datasets.cifar10`: `(x_train, y_train), (x_test, y_test) = load_data()`.

Found in your data dir, cnnlab's or Keras's cache (`~/.keras/datasets/cifar-10-batches-py...`),
or downloaded (SHA-256 checked); the archives' pickles are read without running code
(cnnlab.data.cifar).
"""
from __future__ import annotations

import numpy as np


def keras_arrays(ds, label_dtype):
    """Keras's shapes and dtypes: labels as an (N, 1) column."""
    (x, y), (xt, yt) = ds.as_keras()
    return ((x, y.reshape(-1, 1).astype(label_dtype)), (xt, yt.reshape(-1, 1).astype(label_dtype)))


def load_data(*, data_dir=None, download: bool = True):
    """Return `(x_train, y_train), (x_test, y_test)` as Keras does: uint8 images
    (50000, 32, 32, 3) and (10000, 32, 32, 3), uint8 labels (N, 1) in 0..9."""
    from ..data import load_dataset

    return keras_arrays(load_dataset("cifar10", data_dir=data_dir, download=download), np.uint8)
