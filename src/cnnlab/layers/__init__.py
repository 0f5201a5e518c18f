"""The Keras layer vocabulary, looked up by Keras class name.

    >>> from cnnlab import layers
    >>> layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1))
    >>> layers.get("MaxPooling2D")            # the class
"""
from __future__ import annotations

from ..errors import SpecError, unknown_name
from .base import Layer
from .convolutional import (AveragePooling2D, Conv2D, GlobalAveragePooling2D,
                            GlobalMaxPooling2D, MaxPooling2D)
from .core import Activation, BatchNormalization, Dense, Dropout, Flatten, Input, Reshape

LAYERS: dict[str, type[Layer]] = {
    cls.keras_name: cls
    for cls in (Input, Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
                GlobalMaxPooling2D, Flatten, Dense, Dropout, BatchNormalization, Activation,
                Reshape)
}
InputLayer = Input


def get(name: str) -> type[Layer]:
    if not isinstance(name, str) or name not in LAYERS:
        raise SpecError(unknown_name("layer", name, LAYERS))
    return LAYERS[name]


__all__ = ["Layer", "LAYERS", "get", *LAYERS, "InputLayer"]
