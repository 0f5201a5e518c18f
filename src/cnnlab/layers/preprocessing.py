"""Deterministic image preprocessing layers: Resizing and CenterCrop, as Keras 3 computes them
(the same at training and inference).

    >>> from cnnlab import layers
    >>> layers.Resizing(180, 180, crop_to_aspect_ratio=True)
    >>> layers.CenterCrop(24, 24)

Both run on the device inside the model, on (N, C, H, W) batches (layers/image_ops.py).
"""
from __future__ import annotations

import torch.nn as nn

from .base import REQUIRED, Layer, boolean, choice, invalid, number, positive_int, register
from .base import require_rank
from .image_ops import resize

IMAGES = "images of shape (height, width, channels)"


class PixelLayer(Layer):
    """A weightless layer on images that keeps the channels; marks the layers that may come
    before a model's Rescaling (the model still takes raw 0..255 pixels: reshaping.py)."""

    pixel_preprocessing = True

    def output_shape(self, input_shape):
        require_rank(self, input_shape, 3, IMAGES)
        return input_shape


class SizedLayer(PixelLayer):
    """A layer whose output is (height, width, channels) from its `height`/`width` arguments."""

    def normalize(self, c):
        c["height"] = positive_int(c["height"], "height")
        c["width"] = positive_int(c["width"], "width")
        return c

    def output_shape(self, input_shape):
        require_rank(self, input_shape, 3, IMAGES)
        return (self.config["height"], self.config["width"], input_shape[2])


@register
class Resizing(SizedLayer):
    keras_name, auto_name = "Resizing", "resizing"
    POSITIONAL = ("height", "width", "interpolation", "crop_to_aspect_ratio")
    ARGS = {"height": REQUIRED, "width": REQUIRED, "interpolation": "bilinear",
            "crop_to_aspect_ratio": False, "pad_to_aspect_ratio": False,
            "fill_mode": "constant", "fill_value": 0.0, "antialias": False}
    # the torch backend's own list (Keras refuses lanczos there too)
    INTERPOLATIONS = ("bilinear", "nearest", "bicubic")

    def normalize(self, c):
        c = super().normalize(c)
        c["interpolation"] = choice(c["interpolation"], "interpolation", self.INTERPOLATIONS)
        c["crop_to_aspect_ratio"] = boolean(c["crop_to_aspect_ratio"], "crop_to_aspect_ratio")
        c["pad_to_aspect_ratio"] = boolean(c["pad_to_aspect_ratio"], "pad_to_aspect_ratio")
        if c["crop_to_aspect_ratio"] and c["pad_to_aspect_ratio"]:
            raise invalid("pad_to_aspect_ratio", "false when crop_to_aspect_ratio is true (only "
                          "one of them can be true)", True)
        c["fill_mode"] = choice(c["fill_mode"], "fill_mode", ("constant",))
        c["fill_value"] = number(c["fill_value"], "fill_value")
        c["antialias"] = boolean(c["antialias"], "antialias")
        return c

    def build(self, input_shape):
        c = self.config
        return Resize((c["height"], c["width"]), c["interpolation"],
                      crop=c["crop_to_aspect_ratio"], pad=c["pad_to_aspect_ratio"],
                      fill_value=c["fill_value"], antialias=c["antialias"])


class Resize(nn.Module):
    def __init__(self, size, interpolation="bilinear", *, crop=False, pad=False, fill_value=0.0,
                 antialias=False):
        super().__init__()
        self.size, self.interpolation = tuple(size), interpolation
        self.crop, self.pad, self.fill_value, self.antialias = crop, pad, fill_value, antialias

    def forward(self, x):  # (N, C, H, W) -> (N, C, height, width)
        return resize(x, self.size, self.interpolation, crop_to_aspect_ratio=self.crop,
                      pad_to_aspect_ratio=self.pad, fill_value=self.fill_value,
                      antialias=self.antialias)


@register
class CenterCrop(SizedLayer):
    """The centre window; an input smaller than the window along either axis is cropped to the
    window's aspect ratio and resized instead (Keras's smart_resize)."""

    keras_name, auto_name = "CenterCrop", "center_crop"
    POSITIONAL = ("height", "width")
    ARGS = {"height": REQUIRED, "width": REQUIRED}

    def build(self, input_shape):
        return CenterCropModule(self.config["height"], self.config["width"])


class CenterCropModule(nn.Module):
    def __init__(self, height: int, width: int):
        super().__init__()
        self.height, self.width = height, width

    def forward(self, x):  # (N, C, H, W) -> (N, C, height, width)
        h, w = x.shape[-2:]
        if h >= self.height and w >= self.width:
            top, left = (h - self.height) // 2, (w - self.width) // 2
            return x[:, :, top:top + self.height, left:left + self.width]
        return resize(x, (self.height, self.width), crop_to_aspect_ratio=True)
