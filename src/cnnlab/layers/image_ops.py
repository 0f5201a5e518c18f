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
reflects coordinates rather than indices (its "reflection" differs from Keras's beyond half a
pixel outside), so Keras's rule is applied by index: a zoom or translation samples rows, then
columns, by gathers; a bilinear rotation extends the image by the fill rule as far as the map
reaches and then runs grid_sample (2x faster than per-pixel gathers on the CPU, coordinates
within ~1e-6 pixel of Keras's); a nearest-neighbour rotation gathers per pixel.
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


def _nodes(src: torch.Tensor, size: int, interpolation: str, fill_mode: str):
    """The integer neighbours of source coordinates along one axis, moved inside by the fill
    mode, with their weights (zeroed outside the image for "constant"), and the weight that
    fell inside: [(index, weight)], inside (None unless constant)."""
    if interpolation == "nearest":
        raw = [(torch.round(src).int(), torch.ones_like(src))]
    else:
        lower = torch.floor(src)
        upper_w = src - lower
        i = lower.int()  # int32: half the memory traffic of int64 in the index arithmetic
        raw = [(i, 1 - upper_w), (i + 1, upper_w)]
    nodes, inside = [], None
    for i, wt in raw:
        if fill_mode == "constant":
            wt = wt * ((i >= 0) & (i < size))
            inside = wt if inside is None else inside + wt
        nodes.append((_fix(i, size, fill_mode), wt))
    return nodes, inside


def affine_sample(x: torch.Tensor, matrix: torch.Tensor, interpolation: str, fill_mode: str,
                  fill_value: float) -> torch.Tensor:
    """(N, C, H, W) resampled by Keras's affine `matrix` (N, 8); same shape out.

    A neighbour outside the image under "constant" adds fill_value * its weight; the weights
    of a pixel sum to 1, so that is fill_value * (1 - the weight that fell inside)."""
    n, c, h, w = x.shape
    m = matrix.to(dtype=torch.float32)
    if not (m[:, 1].any() or m[:, 3].any()):  # no rotation or shear: rows and columns apart
        return _separable(x, m, interpolation, fill_mode, fill_value)
    if interpolation == "bilinear":
        return _padded_grid_sample(x, m, fill_mode, fill_value)
    m = m.to(x.device)
    ys = torch.arange(h, device=x.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=torch.float32).view(1, 1, w)
    a0, a1, a2, b0, b1, b2 = (m[:, k].view(n, 1, 1) for k in range(6))
    # as Keras's einsum over the (row, column) grid, then the offset
    src_y = (ys * b1 + xs * b0) + b2   # (N, H, W)
    src_x = (ys * a1 + xs * a0) + a2
    rows, inside_y = _nodes(src_y, h, interpolation, fill_mode)
    cols, inside_x = _nodes(src_x, w, interpolation, fill_mode)
    planes = x.contiguous().view(n, c, h * w)   # gathers along one contiguous axis
    out = None
    for iy, wy in rows:
        row = iy * w
        for ix, wx in cols:
            index = (row + ix).long().view(n, 1, h * w).expand(n, c, h * w)
            value = planes.gather(2, index) * (wy * wx).view(n, 1, h * w)
            out = value if out is None else out + value
    out = out.view(n, c, h, w)
    if fill_mode == "constant" and fill_value:
        out = out + fill_value * (1 - inside_y * inside_x).unsqueeze(1)
    return out.contiguous(memory_format=torch.channels_last)


def _padded_grid_sample(x, m, fill_mode, fill_value):
    """Bilinear affine_sample by torch's grid_sample: the image is first extended by Keras's
    fill-mode index rule as far as the map reaches outside it (its extremes are at the output
    corners: the map is affine), so that grid_sample's own "zeros" padding is never reached
    except under "constant", where zeros are Keras's rule (fill_value added after). The sums
    are Keras's; the coordinates differ from Keras's by float rounding (~1e-6 pixel)."""
    n, c, h, w = x.shape
    corners_y = torch.tensor([0.0, 0.0, h - 1.0, h - 1.0]).view(1, 4)
    corners_x = torch.tensor([0.0, w - 1.0, 0.0, w - 1.0]).view(1, 4)
    src_y = corners_y * m[:, 4:5] + corners_x * m[:, 3:4] + m[:, 5:6]   # (N, 4)
    src_x = corners_y * m[:, 1:2] + corners_x * m[:, 0:1] + m[:, 2:3]
    top, left = 0, 0
    if fill_mode != "constant":
        top = max(0, -int(math.floor(float(src_y.min()))))
        left = max(0, -int(math.floor(float(src_x.min()))))
        bottom = max(0, int(math.ceil(float(src_y.max()))) + 1 - (h - 1))
        right = max(0, int(math.ceil(float(src_x.max()))) + 1 - (w - 1))
        rows = _fix(torch.arange(-top, h + bottom), h, fill_mode).to(x.device)
        cols = _fix(torch.arange(-left, w + right), w, fill_mode).to(x.device)
        x = x.index_select(2, rows).index_select(3, cols)
    hp, wp = x.shape[-2:]
    mm = m.to(x.device)
    ys = torch.arange(h, device=x.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=x.device, dtype=torch.float32).view(1, 1, w)
    a0, a1, a2, b0, b1, b2 = (mm[:, k].view(n, 1, 1) for k in range(6))
    sy = (ys * b1 + xs * b0) + b2 + top     # source pixel in the padded image
    sx = (ys * a1 + xs * a0) + a2 + left
    # grid_sample's align_corners=True: -1 and 1 are the centres of the first and last pixel
    grid = torch.stack([sx * (2.0 / max(wp - 1, 1)) - 1, sy * (2.0 / max(hp - 1, 1)) - 1], -1)
    out = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros",
                                          align_corners=True)
    if fill_mode == "constant" and fill_value:
        inside = torch.nn.functional.grid_sample(torch.ones_like(x[:, :1]), grid,
                                                 mode="bilinear", padding_mode="zeros",
                                                 align_corners=True)
        out = out + fill_value * (1 - inside)
    return out.contiguous(memory_format=torch.channels_last)


def _separable(x, m, interpolation, fill_mode, fill_value):
    """affine_sample for a diagonal map (zoom, translation): source row = b1 * y + b2 and
    column = a0 * x + a2, so rows are sampled first, then columns (4 gathers of the image
    instead of index maps per pixel); the same sums as Keras's in another order."""
    n, c, h, w = x.shape
    ys = torch.arange(h, dtype=torch.float32).view(1, h)
    xs = torch.arange(w, dtype=torch.float32).view(1, w)
    src_y = ys * m[:, 4:5] + m[:, 5:6]   # (N, H), on the CPU: small
    src_x = xs * m[:, 0:1] + m[:, 2:3]   # (N, W)
    rows, inside_y = _nodes(src_y, h, interpolation, fill_mode)
    cols, inside_x = _nodes(src_x, w, interpolation, fill_mode)
    dev = x.device
    x = x.contiguous()
    t = None
    for iy, wy in rows:
        index = iy.long().to(dev).view(n, 1, h, 1).expand(n, c, h, w)
        v = x.gather(2, index) * wy.to(dev).view(n, 1, h, 1)
        t = v if t is None else t + v
    out = None
    for ix, wx in cols:
        index = ix.long().to(dev).view(n, 1, 1, w).expand(n, c, h, w)
        v = t.gather(3, index) * wx.to(dev).view(n, 1, 1, w)
        out = v if out is None else out + v
    if fill_mode == "constant" and fill_value:
        inside = (inside_y.view(n, h, 1) * inside_x.view(n, 1, w)).to(dev)
        out = out + fill_value * (1 - inside).unsqueeze(1)
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
