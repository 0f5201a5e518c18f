"""Fashion-MNIST as `keras.datasets.fashion_mnist`: `(x_train, y_train), (x_test, y_test) = load_data()`.

Found in your data dir, cnnlab's or Keras's cache, Debian's/Ubuntu's `dataset-fashion-mnist`
package, or downloaded. Class names: `cnnlab.data.catalog.FASHION_CLASSES`.
"""
from __future__ import annotations


def load_data(*, data_dir=None):
    """Return `(x_train, y_train), (x_test, y_test)` as uint8 arrays, like Keras."""
    from ..data import load_dataset

    return load_dataset("fashion-mnist", data_dir=data_dir).as_keras()
