"""Keras-compatible dataset loaders: `cnnlab.datasets.mnist.load_data()` works as Keras's does.

    >>> from cnnlab.datasets import mnist
    >>> (x_train, y_train), (x_test, y_test) = mnist.load_data()   # uint8, (N, 28, 28)

Thin wrappers over `cnnlab.data.load_dataset`, imported lazily so `import cnnlab` stays light.
"""
from . import cifar10, cifar100, fashion_mnist, mnist

__all__ = ["cifar10", "cifar100", "fashion_mnist", "mnist"]
