"""Layers that move or rescale pixels without weights: ZeroPadding2D, Cropping2D,
UpSampling2D and Rescaling, as Keras 3 computes them.

    >>> from cnnlab import layers
    >>> layers.Rescaling(1 / 255)
    >>> layers.ZeroPadding2D(((1, 0), (2, 2)))   # (top, bottom), (left, right)
    >>> layers.UpSampling2D(2, interpolation="bilinear")

Images are (N, C, H, W) inside (channels-last memory), so H and W are dims 2 and 3.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import SpecError
from .base import (REQUIRED, Layer, choice, int_pair, invalid, number, pad_pairs, register,
                   require_rank, shape_str)

IMAGES = "images of shape (height, width, channels)"


@register
class ZeroPadding2D(Layer):
    keras_name, auto_name = "ZeroPadding2D", "zero_padding2d"
    POSITIONAL = ("padding",)
    ARGS = {"padding": (1, 1)}

    def normalize(self, c):
        c["padding"] = pad_pairs(c["padding"], "padding")
        return c

    def output_shape(self, input_shape):
        require_rank(self, input_shape, 3, IMAGES)
        (t, b), (l, r) = self.config["padding"]
        h, w, ch = input_shape
        return (h + t + b, w + l + r, ch)

    def build(self, input_shape):
        (t, b), (l, r) = self.config["padding"]
        return Pad2d((l, r, t, b))


@register
class Cropping2D(Layer):
    keras_name, auto_name = "Cropping2D", "cropping2d"
    POSITIONAL = ("cropping",)
    ARGS = {"cropping": ((0, 0), (0, 0))}

    def normalize(self, c):
        c["cropping"] = pad_pairs(c["cropping"], "cropping")
        return c

    def output_shape(self, input_shape):
        require_rank(self, input_shape, 3, IMAGES)
        (t, b), (l, r) = self.config["cropping"]
        h, w, ch = input_shape
        if t + b >= h or l + r >= w:
            raise SpecError(f"Cropping2D: `cropping` {[list(p) for p in self.config['cropping']]} "
                            f"removes every row or column of its input {shape_str(input_shape)}. "
                            "Expected each pair to sum to less than the height and width.")
        return (h - t - b, w - l - r, ch)

    def build(self, input_shape):
        (t, b), (l, r) = self.config["cropping"]
        return Pad2d((-l, -r, -t, -b))  # a negative pad crops


class Pad2d(nn.Module):
    """Zero padding (positive) or cropping (negative): (left, right, top, bottom) pixels."""

    def __init__(self, pad: tuple[int, int, int, int]):
        super().__init__()
        self.pad = pad

    def forward(self, x):  # (N, C, H, W) -> (N, C, H + top + bottom, W + left + right)
        return F.pad(x, self.pad) if any(self.pad) else x


@register
class UpSampling2D(Layer):
    keras_name, auto_name = "UpSampling2D", "up_sampling2d"
    POSITIONAL = ("size",)
    ARGS = {"size": (2, 2), "interpolation": "nearest"}
    # Keras also has bicubic and lanczos; torch's bicubic kernel differs from theirs
    INTERPOLATIONS = ("nearest", "bilinear")

    def normalize(self, c):
        c["size"] = int_pair(c["size"], "size")
        interp = c["interpolation"]
        c["interpolation"] = choice(interp.lower() if isinstance(interp, str) else interp,
                                    "interpolation", self.INTERPOLATIONS)
        return c

    def output_shape(self, input_shape):
        require_rank(self, input_shape, 3, IMAGES)
        (sh, sw), (h, w, ch) = self.config["size"], input_shape
        return (h * sh, w * sw, ch)

    def build(self, input_shape):
        h, w, _ = self.output_shape(input_shape)
        return Upsample2d(self.config["size"], (h, w), self.config["interpolation"])


class Upsample2d(nn.Module):
    def __init__(self, size, out_hw, mode):
        super().__init__()
        self.size, self.out_hw, self.mode = tuple(size), tuple(out_hw), mode

    def forward(self, x):  # (N, C, H, W) -> (N, C, H * sh, W * sw)
        if self.mode == "nearest":  # each pixel repeated, as Keras's ops.repeat
            return x.repeat_interleave(self.size[0], dim=2).repeat_interleave(self.size[1], dim=3)
        # half-pixel centres, no antialiasing: Keras's ops.image.resize on torch
        return F.interpolate(x, size=self.out_hw, mode="bilinear", align_corners=False)


@register
class Rescaling(Layer):
    """x * scale + offset; a list scales each channel (the last axis) on its own."""

    keras_name, auto_name = "Rescaling", "rescaling"
    POSITIONAL = ("scale", "offset")
    ARGS = {"scale": REQUIRED, "offset": 0.0}

    def normalize(self, c):
        for arg in ("scale", "offset"):
            v = c[arg]
            if isinstance(v, (list, tuple)) and v:
                c[arg] = tuple(_real(x, arg, v) for x in v)
            else:
                c[arg] = _real(v, arg, v)
        return c

    def output_shape(self, input_shape):
        for arg in ("scale", "offset"):
            v = self.config[arg]
            if isinstance(v, tuple) and len(v) not in (1, input_shape[-1]):
                raise invalid(arg, f"a number or a list of {input_shape[-1]} numbers (one per "
                              f"channel of the input {shape_str(input_shape)})", list(v))
        return input_shape

    def build(self, input_shape):
        return Rescale(self.config["scale"], self.config["offset"], image=len(input_shape) == 3)


def takes_raw_pixels(spec) -> bool:
    """Whether the model scales its own input (a first Rescaling layer, as in Keras's image
    tutorials, possibly after augmentation or resizing layers): then uint8 images must reach
    it as 0..255, not pre-scaled to [0, 1]."""
    return _scales_first(spec) is True


def _scales_first(spec):
    """True: a Rescaling comes before anything but pixel preprocessing; None: the spec is
    pixel preprocessing only (a nested `data_augmentation` Sequential, as in TensorFlow's
    tutorials); False: otherwise."""
    for layer in spec.layers:  # augmentation layers may come first (Keras's tutorials)
        if isinstance(layer, Rescaling):
            return True
        inner = getattr(layer, "spec", None)  # a model used as a layer
        verdict = _scales_first(inner) if inner is not None else (
            None if getattr(layer, "pixel_preprocessing", False) else False)
        if verdict is not None:
            return verdict
    return None


def _real(x, arg, whole):
    try:
        return number(x, arg)
    except SpecError:
        raise invalid(arg, "a number or a list of numbers", whole) from None


class Rescale(nn.Module):
    def __init__(self, scale, offset, image):
        super().__init__()
        # float32 constants, as Keras casts scale and offset to the layer's dtype
        for name, v in (("scale", scale), ("offset", offset)):
            t = torch.tensor(v, dtype=torch.float32)
            if t.dim() == 1 and image:
                t = t.view(1, -1, 1, 1)  # per channel: channels are dim 1 inside
            self.register_buffer(name, t, persistent=False)

    def forward(self, x):
        if not x.is_floating_point():
            x = x.to(torch.float32)
        return x * self.scale + self.offset
