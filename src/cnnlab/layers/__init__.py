"""The Keras layer vocabulary, looked up by Keras class name.

    >>> from cnnlab import layers
    >>> layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1))
    >>> layers.get("MaxPooling2D")            # the class

New layers register themselves with `@register` (layers/base.py) in the file that
defines them; importing that file here is all it takes (docs/adding-a-layer.md).
"""
from __future__ import annotations

from .base import REGISTRY, Layer, register
from .convolutional import (AveragePooling2D, Conv2D, GlobalAveragePooling2D,
                            GlobalMaxPooling2D, MaxPooling2D)
from .core import Activation, BatchNormalization, Dense, Dropout, Flatten, Input, Reshape

for _cls in (Input, Conv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D,
             GlobalMaxPooling2D, Flatten, Dense, Dropout, BatchNormalization, Activation, Reshape):
    register(_cls)

# each of these files registers its layers as it is imported
from .activation_layers import ELU, LeakyReLU, ReLU, Softmax  # noqa: E402
from .conv_variants import Conv2DTranspose, DepthwiseConv2D, SeparableConv2D  # noqa: E402
from .input_layer import InputLayer  # noqa: E402
from .regularization import SpatialDropout2D  # noqa: E402
from .reshaping import Cropping2D, Rescaling, UpSampling2D, ZeroPadding2D  # noqa: E402

LAYERS = REGISTRY  # Keras class name -> Layer class (a dict)
get = REGISTRY.get

__all__ = ["Layer", "LAYERS", "get", "register", *LAYERS]
