"""Batched image geometry as Keras 3 computes it on the torch backend: affine resampling with
Keras's fill modes, resizing, aspect-ratio crops. Pure torch functions on (N, C, H, W) tensors,
used by the preprocessing and augmentation layers (layers/preprocessing.py, augmentation.py).

    >>> m = rotation_matrix(torch.tensor([90.0]), 32, 32)     # (N, 8), Keras's layout
    >>> y = affine_sample(x, m, "bilinear", "reflect", 0.0)    # x: (N, C, H, W)

Keras's `ops.image.affine_transform` samples output pixel (y, x) at input point
(x' = a0*x + a1*y + a2, y' = b0*x + b1*y + b2) with `map_coordinates`: each of the two (or
one, for nearest) integer neighbours per axis is moved inside the image by the fill mode's
index rule ("reflect": d c b a | a b c d | d c b a, "wrap", "nearest": clamp), and "constant"
replaces neighbours outside the image by `fill_value` *before* weighting. torch's grid_sample
reflects coordinates rather than indices, so the neighbours are gathered here by index, as
Keras does, in four gathers for the whole batch.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def rotation_matrix(angle_deg: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Keras's `_compute_affine_matrix` for a rotation by `angle_deg` (N,) about the centre
    -> (N, 8) [a0, a1, a2, b0, b1, b2, 0, 0]."""
    angle = angle_deg * (math.pi / 180.0)
    cx, cy = 0.5 * (width - 1), 0.5 * (height - 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    a0, a1 = cos, -sin
    b0, b1 = sin, cos
    a2 = cx - cx * a0 - cy * a1
    b2 = cy - cx * b0 - cy * b1
    zeros = torch.zeros_like(angle)
    return torch.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], dim=1)


def zoom_matrix(width_zoom: torch.Tensor, height_zoom: torch.Tensor, height: int,
                width: int) -> torch.Tensor:
    """Keras's `RandomZoom._get_zoom_matrix`: zooms (N,) about the centre -> (N, 8)."""
    x_off = (width - 1.0) / 2.0 * (1.0 - width_zoom)
    y_off = (height - 1.0) / 2.0 * (1.0 - height_zoom)
    zeros = torch.zeros_like(width_zoom)
    return torch.stack([width_zoom, zeros, x_off, zeros, height_zoom, y_off, zeros, zeros], dim=1)


def translation_matrix(dx: torch.Tensor, dy: torch.Tensor) -> torch.Tensor:
    """Keras's `RandomTranslation._get_translation_matrix`: shifts in pixels (N,) -> (N, 8)."""
    ones, zeros = torch.ones_like(dx), torch.zeros_like(dx)
    return torch.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], dim=1)


def _fix(index: torch.Tensor, size: int, fill_mode: str) -> torch.Tensor:
    """Keras's `_INDEX_FIXERS`: an integer index moved inside [0, size)."""
    if fill_mode == "wrap":
        return torch.remainder(index, size)
    if fill_mode == "reflect":  # half-sample symmetric: -1 -> 0, size -> size - 1
        s = 2 * size  # Keras's mirror of (2i + 1) over 2 * size + 1, halved: same values
        return torch.div(torch.abs(torch.remainder(2 * index + 1 + s, 2 * s) - s) - 1, 2,
                         rounding_mode="floor")
    return index.clamp(0, size - 1)  # nearest, and constant (masked after)


def affine_sample(x: torch.Tensor, matrix: torch.Tensor, interpolation: str, fill_mode: str,
                  fill_value: float) -> torch.Tensor:
    """(N, C, H, W) resampled by Keras's affine `matrix` (N, 8); same shape out."""
    n, c, h, w = x.shape
    m = matrix.to(device=x.device, dtype=torch.float32)
    ys = torch.arange(h, device=x.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=torch.float32).view(1, 1, w)
    a0, a1, a2, b0, b1, b2 = (m[:, k].view(n, 1, 1) for k in range(6))
    # as Keras's einsum over the (row, column) grid, then the offset
    src_y = (ys * b1 + xs * b0) + b2   # (N, H, W)
    src_x = (ys * a1 + xs * a0) + a2
    if interpolation == "nearest":
        nodes_y = [(torch.round(src_y).long(), None)]
        nodes_x = [(torch.round(src_x).long(), None)]
    else:
        fy, fx = torch.floor(src_y), torch.floor(src_x)
        wy, wx = src_y - fy, src_x - fx
        nodes_y = [(fy.long(), 1 - wy), (fy.long() + 1, wy)]
        nodes_x = [(fx.long(), 1 - wx), (fx.long() + 1, wx)]
    flat = x.reshape(n, c, h * w)
    out = None
    for iy, wy_ in nodes_y:
        for ix, wx_ in nodes_x:
            idx = (_fix(iy, h, fill_mode) * w + _fix(ix, w, fill_mode)).view(n, 1, h * w)
            value = flat.gather(2, idx.expand(n, c, h * w)).view(n, c, h, w)
            if fill_mode == "constant":
                inside = ((iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)).unsqueeze(1)
                value = torch.where(inside, value, torch.as_tensor(fill_value, dtype=x.dtype,
                                                                    device=x.device))
            if wy_ is not None:
                value = value * (wy_ * wx_).unsqueeze(1)
            out = value if out is None else out + value
    return out.contiguous(memory_format=torch.channels_last)


def aspect_crop_box(height: int, width: int, target_h: int, target_w: int):
    """Keras's crop_to_aspect_ratio box (top, left, crop_h, crop_w): the largest centred
    window with the target's aspect ratio."""
    crop_h = max(min(height, int(float(width * target_h) / target_w)), 1)
    crop_w = max(min(width, int(float(height * target_w) / target_h)), 1)
    return int(float(height - crop_h) / 2), int(float(width - crop_w) / 2), crop_h, crop_w


def resize(x: torch.Tensor, size: tuple[int, int], interpolation: str = "bilinear", *,
           crop_to_aspect_ratio: bool = False, pad_to_aspect_ratio: bool = False,
           fill_value: float = 0.0, antialias: bool = False) -> torch.Tensor:
    """Keras's `ops.image.resize` on torch: (N, C, H, W) -> (N, C, *size)."""
    h, w = x.shape[-2:]
    th, tw = size
    if crop_to_aspect_ratio:
        top, left, ch, cw = aspect_crop_box(h, w, th, tw)
        x = x[:, :, top:top + ch, left:left + cw]
    elif pad_to_aspect_ratio:
        ph = max(h, int(float(w * th) / tw))
        pw = max(w, int(float(h * tw) / th))
        top, left = int(float(ph - h) / 2), int(float(pw - w) / 2)
        # Keras pads both sides by the same amount (its own quirk: an odd gap loses a row)
        x = F.pad(x, (left, left, top, top), value=fill_value) if top or left else x
    if interpolation == "nearest":
        return F.interpolate(x, size=(th, tw), mode="nearest-exact")
    return F.interpolate(x, size=(th, tw), mode=interpolation, align_corners=False,
                         antialias=antialias and interpolation in ("bilinear", "bicubic"))
