"""Keras 3's random augmentation layers: RandomFlip, RandomRotation, RandomZoom,
RandomTranslation, RandomContrast, RandomBrightness, RandomCrop. Active in training only; the
identity at inference (RandomCrop: see its class).

    >>> from cnnlab import layers
    >>> layers.RandomFlip("horizontal"), layers.RandomRotation(0.1), layers.RandomZoom(0.2)

Where they run: on the device, inside the model, on whole batches (flips by torch.where per
sample, rotations/zooms/translations by batched resampling: layers/image_ops.py), not on the
CPU in data workers. Why: every data source (arrays, generators, folders) is augmented the
same way and by the same code as Keras's layers; the draws live in the model and are
checkpointed with it, so resuming is exact without coordinating worker RNGs; on a GPU the
work is a few gathers or one grid_sample per batch. The price is on a CPU-only machine: there
the stack runs in the training step instead of beside it (benchmarks/augment_cost.py prints
its share of a step, about a quarter to a third on a 2-core machine).

Seeds and resuming: each layer's module owns a CPU `torch.Generator`, seeded from the layer's
`seed` argument, else from torch's global RNG when the model is built (so
`set_random_seed(s)` before building fixes it, as Keras's SeedGenerator does). Only the
per-sample parameters are drawn (a few floats per image, on the CPU, then moved to the
device), so a CPU and a GPU run draw the same augmentations. The generators' states are saved
in checkpoints (`generator_states` / `load_generator_states`, train/checkpoint.py), so a run
resumed after kill -9 draws exactly what an uninterrupted one draws.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .base import REQUIRED, choice, invalid, is_int, number, register
from .image_ops import (aspect_crop_box, affine_sample, resize, rotation_matrix,
                        translation_matrix, zoom_matrix)
from .preprocessing import PixelLayer, SizedLayer

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")


def _seed(value):
    if value is not None and (not is_int(value) or value < 0):
        raise invalid("seed", "None or a non-negative integer", value)
    return value


def _real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v


def base_factor(value, arg: str, low: float, high: float) -> tuple[float, float]:
    """Keras's BaseImagePreprocessingLayer._set_factor: a number f in [low, high] means
    (max(-|f|, low), |f|); a pair is sorted. Returns (lower, upper)."""
    expected = f"a number (or a list of two numbers) in the range [{low:g}, {high:g}]"
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or not all(_real(v) for v in value) or value[0] > high or value[1] < low:
            raise invalid(arg, expected, value)
        lo, hi = sorted(value)
        return float(lo), float(hi)
    if not _real(value) or value < low or value > high:
        raise invalid(arg, expected, value)
    f = abs(float(value))
    return max(-f, low), f


def shift_factor(value, arg: str, low_open: bool) -> tuple[float, float]:
    """RandomZoom's and RandomTranslation's factors: a number f -> (-|f|, |f|), a pair sorted;
    each number in [-1, 1] ((-1, 1] for zoom: a zoom of -1 would shrink to nothing)."""
    interval = "(-1.0, 1.0]" if low_open else "[-1.0, 1.0]"

    def ok(v):
        return _real(v) and v <= 1.0 and (v > -1.0 if low_open else v >= -1.0)
    pair = isinstance(value, (list, tuple))
    if (pair and len(value) != 2) or not all(ok(v) for v in (value if pair else [value])):
        raise invalid(arg, f"a number (or a list of two numbers) in the range {interval}", value)
    if isinstance(value, (list, tuple)):
        lo, hi = sorted(value)
        return float(lo), float(hi)
    return -abs(float(value)), abs(float(value))


def _pair(value, arg: str):
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(_real(v) for v in value)):
        raise invalid(arg, "a list of two numbers", value)
    return tuple(float(v) for v in value)


class RandomLayer(PixelLayer):
    """An augmentation layer: weightless, random in training, registered with a `seed`.
    Called on data outside a model it augments unless told `training=False`, as Keras's
    (`data_augmentation(images)` in Keras's examples)."""

    training_by_default = True


class RandomModule(nn.Module):
    """An augmentation's torch module: its own CPU generator, the identity in eval mode."""

    training_by_default = True  # `model(x)` without `training` augments, as Keras's

    def __init__(self, seed: int | None):
        super().__init__()
        self.generator = torch.Generator()
        if seed is None:  # from torch's global RNG: fixed by set_random_seed before building
            seed = int(torch.randint(0, 2**62, ()).item())
        self.generator.manual_seed(seed)

    def uniform(self, shape, low: float, high: float) -> torch.Tensor:
        """U[low, high) floats on the CPU, as Keras's random.uniform."""
        return low + (high - low) * torch.rand(shape, generator=self.generator)

    def forward(self, x):  # (N, C, H, W) in and out
        return self.augment(x) if self.training else x


def generator_states(net: nn.Module) -> dict[str, torch.Tensor]:
    """Every augmentation generator's state in `net`, by module name (for checkpoints)."""
    return {name: m.generator.get_state() for name, m in net.named_modules()
            if isinstance(m, RandomModule)}


def load_generator_states(net: nn.Module, states: dict[str, torch.Tensor], where: str) -> None:
    """Put back the states `generator_states` saved; the modules must be the same."""
    modules = {name: m for name, m in net.named_modules() if isinstance(m, RandomModule)}
    if set(modules) != set(states):
        from ..errors import RunError
        raise RunError(f"{where} holds augmentation states for layers "
                       f"{sorted(states) or 'none'}, but this model's augmentation layers are "
                       f"{sorted(modules) or 'none'}. Resume with the run's own model.")
    for name, m in modules.items():
        m.generator.set_state(states[name])


# -- the layers ------------------------------------------------------------------

@register
class RandomFlip(RandomLayer):
    """Each image flipped with probability 1/2; "horizontal_and_vertical" flips both ways
    together (one draw per image, as Keras 3 does)."""

    keras_name, auto_name = "RandomFlip", "random_flip"
    POSITIONAL = ("mode", "seed")
    ARGS = {"mode": "horizontal_and_vertical", "seed": None}
    MODES = ("horizontal_and_vertical", "horizontal", "vertical")

    def normalize(self, c):
        c["mode"] = choice(c["mode"], "mode", self.MODES)
        c["seed"] = _seed(c["seed"])
        return c

    def build(self, input_shape):
        return Flip(self.config["mode"], self.config["seed"])


class Flip(RandomModule):
    def __init__(self, mode: str, seed):
        super().__init__(seed)
        self.mode = mode

    def augment(self, x):
        return self.apply(x, self.uniform((x.shape[0],), 0.0, 1.0) <= 0.5)

    def apply(self, x, flips):
        """x flipped where `flips` (N,) bools is true."""
        flips = flips.to(x.device).view(-1, 1, 1, 1)
        if self.mode in ("horizontal", "horizontal_and_vertical"):
            x = torch.where(flips, x.flip(3), x)
        if self.mode in ("vertical", "horizontal_and_vertical"):
            x = torch.where(flips, x.flip(2), x)
        return x


class AffineLayer(RandomLayer):
    """Arguments shared by the layers that resample through an affine map."""

    def affine_args(self, c):
        c["fill_mode"] = choice(c["fill_mode"], "fill_mode", FILL_MODES)
        c["interpolation"] = choice(c["interpolation"], "interpolation", INTERPOLATIONS)
        c["fill_value"] = number(c["fill_value"], "fill_value")
        c["seed"] = _seed(c["seed"])
        return c

    def sampling(self) -> dict:
        c = self.config
        return {"interpolation": c["interpolation"], "fill_mode": c["fill_mode"],
                "fill_value": c["fill_value"], "seed": c["seed"]}


@register
class RandomRotation(AffineLayer):
    """Rotation by a uniform angle in factor * 360 degrees about the image centre."""

    keras_name, auto_name = "RandomRotation", "random_rotation"
    POSITIONAL = ("factor", "fill_mode", "interpolation", "seed", "fill_value")
    ARGS = {"factor": REQUIRED, "fill_mode": "reflect", "interpolation": "bilinear",
            "seed": None, "fill_value": 0.0}

    def normalize(self, c):
        c["factor"] = base_factor(c["factor"], "factor", -1.0, 1.0)
        return self.affine_args(c)

    def build(self, input_shape):
        return Rotate(self.config["factor"], **self.sampling())


class Affine(RandomModule):
    def __init__(self, *, interpolation, fill_mode, fill_value, seed):
        super().__init__(seed)
        self.interpolation, self.fill_mode, self.fill_value = interpolation, fill_mode, fill_value

    def augment(self, x):
        n, _, h, w = x.shape
        return self.apply(x, self.matrix(n, h, w))

    def apply(self, x, matrix):
        """x resampled by Keras's affine matrices (N, 8)."""
        return affine_sample(x, matrix, self.interpolation, self.fill_mode, self.fill_value)


class Rotate(Affine):
    def __init__(self, factor, **kw):
        super().__init__(**kw)
        self.lower, self.upper = factor[0] * 360.0, factor[1] * 360.0

    def matrix(self, n, h, w):
        return rotation_matrix(self.uniform((n,), self.lower, self.upper), h, w)


@register
class RandomZoom(AffineLayer):
    """Zoom by 1 + a uniform draw in each factor's range (positive: zoom out, as in Keras 3);
    without `width_factor` both axes zoom alike."""

    keras_name, auto_name = "RandomZoom", "random_zoom"
    POSITIONAL = ("height_factor", "width_factor", "fill_mode", "interpolation", "seed",
                  "fill_value")
    ARGS = {"height_factor": REQUIRED, "width_factor": None, "fill_mode": "reflect",
            "interpolation": "bilinear", "seed": None, "fill_value": 0.0}

    def normalize(self, c):
        shift_factor(c["height_factor"], "height_factor", low_open=True)
        if c["width_factor"] is not None:
            shift_factor(c["width_factor"], "width_factor", low_open=True)
        return self.affine_args(c)

    def build(self, input_shape):
        c = self.config
        width = (None if c["width_factor"] is None
                 else shift_factor(c["width_factor"], "width_factor", True))
        return Zoom(shift_factor(c["height_factor"], "height_factor", True), width,
                    **self.sampling())


class Zoom(Affine):
    def __init__(self, height, width, **kw):
        super().__init__(**kw)
        self.height, self.width = height, width

    def matrix(self, n, h, w):
        hz = self.uniform((n,), 1.0 + self.height[0], 1.0 + self.height[1])
        wz = hz if self.width is None else self.uniform((n,), 1.0 + self.width[0],
                                                        1.0 + self.width[1])
        return zoom_matrix(wz, hz, h, w)


@register
class RandomTranslation(AffineLayer):
    """A shift by a uniform fraction of the height and of the width."""

    keras_name, auto_name = "RandomTranslation", "random_translation"
    POSITIONAL = ("height_factor", "width_factor", "fill_mode", "interpolation", "seed",
                  "fill_value")
    ARGS = {"height_factor": REQUIRED, "width_factor": REQUIRED, "fill_mode": "reflect",
            "interpolation": "bilinear", "seed": None, "fill_value": 0.0}

    def normalize(self, c):
        for arg in ("height_factor", "width_factor"):
            shift_factor(c[arg], arg, low_open=False)
        return self.affine_args(c)

    def build(self, input_shape):
        c = self.config
        return Translate(shift_factor(c["height_factor"], "height_factor", False),
                         shift_factor(c["width_factor"], "width_factor", False),
                         **self.sampling())


class Translate(Affine):
    def __init__(self, height, width, **kw):
        super().__init__(**kw)
        self.height, self.width = height, width

    def matrix(self, n, h, w):
        dy = self.uniform((n,), *self.height) * h   # pixels, as Keras: fraction * size
        dx = self.uniform((n,), *self.width) * w
        return translation_matrix(dx, dy)


@register
class RandomContrast(RandomLayer):
    """(x - mean) * c + mean per image and channel, c uniform in [1 - lower, 1 + upper] of
    Keras's factor (a number f gives [1, 1 + f] in Keras 3.15), clipped to value_range."""

    keras_name, auto_name = "RandomContrast", "random_contrast"
    POSITIONAL = ("factor", "value_range", "seed")
    ARGS = {"factor": REQUIRED, "value_range": (0, 255), "seed": None}

    def normalize(self, c):
        c["factor"] = base_factor(c["factor"], "factor", 0.0, 1.0)
        c["value_range"] = _pair(c["value_range"], "value_range")
        c["seed"] = _seed(c["seed"])
        return c

    def build(self, input_shape):
        return Contrast(self.config["factor"], self.config["value_range"], self.config["seed"])


class Contrast(RandomModule):
    def __init__(self, factor, value_range, seed):
        super().__init__(seed)
        self.factor, self.value_range = factor, value_range

    def augment(self, x):
        return self.apply(x, self.uniform((x.shape[0],), 1.0 - self.factor[0],
                                          1.0 + self.factor[1]))

    def apply(self, x, c):
        """x with each image's contrast scaled by c (N,)."""
        c = c.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
        mean = x.mean(dim=(2, 3), keepdim=True)
        return ((x - mean) * c + mean).clamp(*self.value_range)


@register
class RandomBrightness(RandomLayer):
    """x + delta per image, delta uniform in factor * (value_range width), clipped."""

    keras_name, auto_name = "RandomBrightness", "random_brightness"
    POSITIONAL = ("factor", "value_range", "seed")
    ARGS = {"factor": REQUIRED, "value_range": (0, 255), "seed": None}

    def normalize(self, c):
        c["factor"] = base_factor(c["factor"], "factor", -1.0, 1.0)
        c["value_range"] = tuple(sorted(_pair(c["value_range"], "value_range")))
        c["seed"] = _seed(c["seed"])
        return c

    def build(self, input_shape):
        return Brightness(self.config["factor"], self.config["value_range"],
                          self.config["seed"])


class Brightness(RandomModule):
    def __init__(self, factor, value_range, seed):
        super().__init__(seed)
        self.factor, self.value_range = factor, value_range

    def augment(self, x):
        lo, hi = self.value_range
        return self.apply(x, self.uniform((x.shape[0],), *self.factor) * (hi - lo))

    def apply(self, x, delta):
        """x plus delta (N,) per image, clipped to the value range."""
        delta = delta.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)
        return (x + delta).clamp(*self.value_range)


@register
class RandomCrop(SizedLayer, RandomLayer):
    """In training, one random (height, width) window for the whole batch, as Keras 3 draws
    it. At inference Keras 3.15 returns its input unchanged, which keeps the declared output
    shape only when the input already has it; cnnlab does what Keras's documentation says
    instead, the largest centred window of the target's aspect ratio, resized (bilinear),
    which equals Keras wherever Keras's output has the declared shape."""

    keras_name, auto_name = "RandomCrop", "random_crop"
    POSITIONAL = ("height", "width", "seed")
    ARGS = {"height": REQUIRED, "width": REQUIRED, "seed": None}

    def normalize(self, c):
        c = super().normalize(c)
        c["seed"] = _seed(c["seed"])
        return c

    def build(self, input_shape):
        return Crop(self.config["height"], self.config["width"], self.config["seed"])


class Crop(RandomModule):
    def __init__(self, height: int, width: int, seed):
        super().__init__(seed)
        self.height, self.width = height, width

    def forward(self, x):
        if not self.training:
            return resize(x, (self.height, self.width), crop_to_aspect_ratio=True)
        return self.augment(x)

    def augment(self, x):
        h, w = x.shape[-2:]
        th, tw = self.height, self.width
        if h > th and w > tw:
            # two scalar draws, truncated as Keras's cast to int32
            top = int(self.uniform((), 0.0, float(h - th + 1)))
            left = int(self.uniform((), 0.0, float(w - tw + 1)))
        else:  # Keras's branch for an input not larger on both axes: its window start, cut
            top, left, _, _ = aspect_crop_box(h, w, th, tw)
        return self.apply(x, top, left)

    def apply(self, x, top: int, left: int):
        """The (height, width) window at (top, left), resized where the input is smaller."""
        th, tw = self.height, self.width
        out = x[:, :, top:top + th, left:left + tw]
        if out.shape[-2:] != (th, tw):
            out = resize(out, (th, tw))
        return out

