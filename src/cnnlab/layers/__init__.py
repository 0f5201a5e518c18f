"""The Keras layer vocabulary, looked up by Keras class name.

    >>> from cnnlab import layers
    >>> layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1))
    >>> layers.get("MaxPooling2D")            # the class
    >>> x = layers.Input(shape=(28, 28, 1))   # a symbolic tensor (the functional API)

New layers register themselves with `@register` (layers/base.py) in the file that
defines them; importing that file here is all it takes (docs/adding-a-layer.md).
"""
from __future__ import annotations

from .base import REGISTRY, Layer, register
from .convolutional import (AveragePooling2D, Conv2D, GlobalAveragePooling2D,
                            GlobalMaxPooling2D, MaxPooling2D)
from .core import Activation, BatchNormalization, Dense, Dropout, Flatten, Reshape
from .core import Input as InputBase  # `- Input: {shape: ...}`, a first layer of a spec
from .merging import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from .nested import ModelLayer
from .objects import Input, KerasTensor  # Input: the functional API's symbolic input

for _cls in (InputBase, Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
             GlobalMaxPooling2D, Flatten, Dense, Dropout, BatchNormalization, Activation, Reshape,
             Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate):
    register(_cls)
register(ModelLayer, name="Sequential")  # a model used as a layer
register(ModelLayer, name="Functional")

# each of these files registers its layers as it is imported
from .activation_layers import ELU, LeakyReLU, ReLU, Softmax  # noqa: E402
from .augmentation import (RandomBrightness, RandomContrast, RandomCrop, RandomFlip,  # noqa: E402
                           RandomRotation, RandomTranslation, RandomZoom)
from .conv_variants import Conv2DTranspose, DepthwiseConv2D, SeparableConv2D  # noqa: E402
from .input_layer import InputLayer  # noqa: E402
from .preprocessing import CenterCrop, Resizing  # noqa: E402
from .regularization import SpatialDropout2D  # noqa: E402
from .reshaping import Cropping2D, Rescaling, UpSampling2D, ZeroPadding2D  # noqa: E402

LAYERS = REGISTRY  # Keras class name -> Layer class (a dict)
get = REGISTRY.get

__all__ = ["Layer", "LAYERS", "get", "register", "Input", "InputLayer", "KerasTensor",
           "ModelLayer", *(n for n in LAYERS if n not in ("Input", "Sequential", "Functional"))]
