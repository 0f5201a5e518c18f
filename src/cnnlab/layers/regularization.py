"""SpatialDropout2D: Dropout that drops whole feature maps (channels), as Keras 3 does.

    >>> from cnnlab import layers
    >>> layers.SpatialDropout2D(0.2)   # each channel of each image zeroed with p = 0.2

Training only; at inference it is the identity. Kept channels are scaled by
1 / (1 - rate), so the expected value is unchanged.
"""
from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from .base import REQUIRED, Layer, register, require_rank, unit_float


@register
class SpatialDropout2D(Layer):
    keras_name, auto_name = "SpatialDropout2D", "spatial_dropout2d"
    POSITIONAL = ("rate",)
    ARGS = {"rate": REQUIRED}

    def normalize(self, c):
        c["rate"] = unit_float(c["rate"], "rate", high_open=False)  # Keras accepts [0, 1]
        return c

    def output_shape(self, input_shape):
        require_rank(self, input_shape, 3, "images of shape (height, width, channels)")
        return input_shape

    def build(self, input_shape):
        return SpatialDropout(self.config["rate"])


class SpatialDropout(nn.Module):
    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x):  # (N, C, H, W): the mask is (N, C, 1, 1), Keras's noise shape
        return F.dropout2d(x, self.rate, self.training)
