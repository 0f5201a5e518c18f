"""The Keras layer vocabulary, looked up by Keras class name.

    >>> from cnnlab import layers
    >>> layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1))
    >>> layers.get("MaxPooling2D")            # the class
    >>> x = layers.Input(shape=(28, 28, 1))   # a symbolic tensor (the functional API)
"""
from __future__ import annotations

from ..errors import SpecError, unknown_name
from .base import Layer
from .convolutional import (AveragePooling2D, Conv2D, GlobalAveragePooling2D,
                            GlobalMaxPooling2D, MaxPooling2D)
from .core import Activation, BatchNormalization, Dense, Dropout, Flatten, Reshape
from .core import Input as InputLayer
from .merging import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from .nested import ModelLayer
from .objects import Input, KerasTensor

LAYERS: dict[str, type[Layer]] = {
    cls.keras_name: cls
    for cls in (InputLayer, Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
                GlobalMaxPooling2D, Flatten, Dense, Dropout, BatchNormalization, Activation,
                Reshape, Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate)
}
LAYERS["InputLayer"] = InputLayer
LAYERS["Sequential"] = LAYERS["Functional"] = ModelLayer  # a model used as a layer


def get(name: str) -> type[Layer]:
    if not isinstance(name, str) or name not in LAYERS:
        raise SpecError(unknown_name("layer", name, LAYERS))
    return LAYERS[name]


__all__ = ["Layer", "LAYERS", "get", "Input", "InputLayer", "KerasTensor", "ModelLayer",
           *(n for n in LAYERS if n not in ("Sequential", "Functional"))]
