"""cnnlab: build, train, compare and serve CNN image classifiers.

Keras's vocabulary, PyTorch's engine. The lecture's code runs with `tf.keras.`
replaced by `cnnlab.`:

    >>> import cnnlab
    >>> model = cnnlab.models.Sequential()
    >>> model.add(cnnlab.layers.Conv2D(32, (3, 3), input_shape=(28, 28, 1), activation="relu"))
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {"layers", "models", "optimizers", "regularizers", "callbacks", "utils", "datasets",
         "activations", "initializers", "losses", "metrics", "backend", "saving",
         "mixed_precision"}


def __getattr__(name):
    # Submodules load on first use so `import cnnlab` stays light (the CLI starts fast).
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    if name in ("Sequential", "Model"):
        from . import models
        return getattr(models, name)
    if name == "Input":
        from .layers import Input
        return Input
    if name == "keras":  # `from cnnlab import keras` stands for `from tensorflow import keras`
        import sys
        return sys.modules[__name__]
    if name == "load":
        from .runs import load
        return load
    raise AttributeError(f"module 'cnnlab' has no attribute {name!r}")


__all__ = ["Input", "Model", "Sequential", "load", "__version__", *sorted(_LAZY)]
