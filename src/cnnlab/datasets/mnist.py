"""MNIST as `keras.datasets.mnist`: `(x_train, y_train), (x_test, y_test) = load_data()`.

Found in your data dir, cnnlab's or Keras's cache, or downloaded; with no network and no
copy, the bundled `mnist-sample` (8,000 / 2,000 real digits) is used and a notice says so.
"""
from __future__ import annotations


def load_data(path=None, *, data_dir=None, fallback: bool = True):
    """Return `(x_train, y_train), (x_test, y_test)` as uint8 arrays, like Keras.

    `path`, when given, is an .npz file to read instead (Keras's `path` names a cached file);
    `fallback=False` raises instead of using the bundled sample.
    """
    from ..data import load_dataset

    name = f"npz:{path}" if path is not None else "mnist"
    return load_dataset(name, data_dir=data_dir, fallback=fallback).as_keras()
