"""The pictures of `cnnlab explain` and `cnnlab report`, drawn with matplotlib (Agg).

Every function takes arrays and returns PNG bytes; callers write them atomically.
Figures are `matplotlib.figure.Figure` objects, never pyplot's global ones, so drawing
is safe next to other threads (the prediction server) and leaves no figure open.

    >>> png = pipeline_png(picture, outputs, probs, class_names, sal_map, cam_map, "seven.png")
    >>> png = confusion_png(cm, class_names)
"""
from __future__ import annotations

import io
import math

import numpy as np

MAPS_PER_ROW = 16        # feature maps per row of a layer's grid
VECTOR_ROW = 64          # values per row when a vector (Flatten, Dense) is drawn as a strip
DPI = 100                # px per inch of every PNG
PANEL_W = 11.0           # in, width of the pipeline and report figures


def _figure(w: float, h: float):
    from matplotlib.figure import Figure
    return Figure(figsize=(w, h), dpi=DPI)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def picture(x: np.ndarray, input_shape) -> np.ndarray | None:
    """One input (as the model sees it) as something imshow draws: (H, W) grey, (H, W, 3)
    RGB clipped to [0, 1]; a flat input of n = side² values as a side x side image; else None."""
    x = np.asarray(x, dtype=np.float32)
    shape = tuple(input_shape)
    if len(shape) == 3 and shape[2] == 1:
        return x.reshape(shape[:2])
    if len(shape) == 3 and shape[2] == 3:
        lo, hi = float(x.min()), float(x.max())
        return np.clip(x, 0, 1) if lo >= 0 and hi <= 1 else (x - lo) / max(hi - lo, 1e-12)
    if len(shape) == 2:
        return x
    if len(shape) == 1:
        side = round(math.sqrt(shape[0]))
        return x.reshape(side, side) if side * side == shape[0] else None
    return None


def mosaic(maps: np.ndarray, cols: int = MAPS_PER_ROW) -> np.ndarray:
    """(H, W, C) feature maps -> one 2-D array of C tiles, `cols` a row, 1 px NaN gaps, each
    map scaled to its own [min, max] (a constant map is drawn as 0)."""
    h, w, c = maps.shape
    cols = max(1, min(cols, c))
    rows = math.ceil(c / cols)
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan, dtype=np.float32)
    for k in range(c):
        m = maps[..., k]
        lo, hi = float(m.min()), float(m.max())
        tile = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        r, q = divmod(k, cols)
        out[r * (h + 1):r * (h + 1) + h, q * (w + 1):q * (w + 1) + w] = tile
    return out


def _strip(v: np.ndarray) -> np.ndarray:
    """A vector as rows of VECTOR_ROW values (padded with NaN)."""
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    cols = min(VECTOR_ROW, v.size)
    rows = math.ceil(v.size / cols)
    out = np.full(rows * cols, np.nan, dtype=np.float32)
    out[:v.size] = v
    return out.reshape(rows, cols)


def _cmap(name):
    import matplotlib
    return matplotlib.colormaps[name].with_extremes(bad="white")  # the NaN gaps between tiles


def _show(ax, img, title=None, cmap="gray", **kw):
    if img.ndim == 2:
        ax.imshow(img, cmap=_cmap(cmap), interpolation="nearest", **kw)
    else:
        ax.imshow(img, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def _overlay(ax, base, heat, title):
    grey = base if base.ndim == 2 else base.mean(axis=-1)
    ax.imshow(grey, cmap="gray", interpolation="nearest")
    ax.imshow(heat, cmap="jet", alpha=0.45, interpolation="bilinear", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=9)


def _layer_rows(o) -> float:
    """Height in inches of one layer's panel in the pipeline figure."""
    if o.array.ndim == 4:
        h, w, c = o.array.shape[1:]
        rows = math.ceil(c / min(MAPS_PER_ROW, c))
        return 0.5 + min(6.0, rows * PANEL_W / min(MAPS_PER_ROW, c) * h / w)
    return 0.45 + min(1.6, 0.1 * math.ceil(int(np.prod(o.array.shape[1:])) / VECTOR_ROW))


def pipeline_png(pic, outputs, probs, class_names, sal_map=None, cam=None, title="",
                 index: int = 0) -> bytes:
    """The lecture's pipeline for image `index` of the batch: the input (and where the model
    looked: saliency, Grad-CAM), each layer's output in order, the probabilities.

    outputs: `maps.layer_outputs` of the batch; probs: (N, classes); sal_map/cam: (N, H, W)
    or None."""
    heights = [2.4] + [_layer_rows(o) for o in outputs] + [0.5 + 0.16 * len(class_names)]
    fig = _figure(PANEL_W, sum(heights) + 1.1)
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights, hspace=0.5,
                            left=0.06, right=0.97, top=1 - 1.0 / (sum(heights) + 1.1),
                            bottom=0.02)
    fig.suptitle(title, fontsize=11, y=1 - 0.15 / (sum(heights) + 1.1), va="top")
    top = grid[0].subgridspec(1, 3, wspace=0.3)
    if pic is not None:
        _show(fig.add_subplot(top[0]), pic, "input, as the model sees it")
        if sal_map is not None:
            s = sal_map[index]
            s = s.reshape(pic.shape[:2]) if s.size == pic.shape[0] * pic.shape[1] else None
            if s is not None:
                _show(fig.add_subplot(top[1]), s, "saliency |d score / d input|", cmap="hot")
        if cam is not None:
            _overlay(fig.add_subplot(top[2]), pic, cam["map"][index],
                     f"Grad-CAM on {cam['layer']}")
        else:
            ax = fig.add_subplot(top[2])
            ax.set_axis_off()
            ax.text(0.5, 0.5, "no Grad-CAM:\nthe model has no\nconvolution layer",
                    ha="center", va="center", fontsize=9)
    for k, o in enumerate(outputs, start=1):
        ax = fig.add_subplot(grid[k])
        a = o.array[index]
        shape = "(None, " + ", ".join(map(str, o.shape[1:])) + ")"
        label = f"{o.name} ({o.type}) {shape}"
        if a.ndim == 3:
            _show(ax, mosaic(a), f"{label}: {a.shape[-1]} feature maps", cmap="viridis")
        else:
            _show(ax, _strip(a), f"{label}: {a.size} values", cmap="viridis", aspect="auto")
    ax = fig.add_subplot(grid[len(heights) - 1])
    p = np.asarray(probs[index], dtype=np.float64)
    ys = np.arange(len(p))
    best = int(np.argmax(p))
    ax.barh(ys, p, color=["#d62728" if i == best else "#1f77b4" for i in ys])
    ax.set_yticks(ys, [str(c) for c in class_names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_title(f"probabilities: {class_names[best]} {p[best]:.1%}", fontsize=9)
    return _png(fig)


# -- report figures ------------------------------------------------------------------------

def curves_png(history: dict, acc_key: str | None) -> bytes:
    fig = _figure(PANEL_W, 3.6)
    keys = [k for k in (acc_key, "loss") if k and history.get(k)]
    for i, key in enumerate(keys):
        ax = fig.add_subplot(1, len(keys), i + 1)
        train = history[key]
        ax.plot(range(1, len(train) + 1), train, label="train", marker="o")
        val = history.get(f"val_{key}")
        if val:
            ax.plot(range(1, len(val) + 1), val, label="validation", marker="o")
        ax.set_title(key.capitalize())
        ax.set_xlabel("epoch")
        ax.legend(loc="lower right" if key != "loss" else "upper right")
    # fixed margins: tight_layout measured every text and cost a third of the figure's time
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.9, wspace=0.2)
    return _png(fig)


def confusion_png(cm: np.ndarray, class_names, normalized: np.ndarray) -> bytes:
    k = len(class_names)
    side = min(7.0, 1.5 + 0.45 * k)
    fig = _figure(2 * side + 1, side + 0.6)
    for i, (m, title, fmt) in enumerate(((cm, "counts", "d"), (normalized, "row-normalized "
                                         "(share of each true class)", ".2f"))):
        ax = fig.add_subplot(1, 2, i + 1)
        im = ax.imshow(m, cmap="Blues", vmin=0)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_xticks(range(k), [str(c) for c in class_names], rotation=90 if k > 10 else 0,
                      fontsize=8)
        ax.set_yticks(range(k), [str(c) for c in class_names], fontsize=8)
        if k <= 20:
            hi = float(np.max(m)) if m.size else 0
            for t in range(k):
                for p in range(k):
                    v = m[t, p]
                    ax.text(p, t, format(v, fmt) if fmt == ".2f" else str(int(v)),
                            ha="center", va="center", fontsize=7,
                            color="white" if v > hi / 2 else "black")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.subplots_adjust(left=0.06, right=0.97, bottom=0.1, top=0.93, wspace=0.25)
    return _png(fig)


def _tiles(pics, cols: int, gap: int, background=(1.0, 1.0, 1.0)) -> np.ndarray:
    """Same-sized pictures ((h, w) grey in any range, or (h, w, 3) in [0, 1]; None: an
    empty slot) -> one RGB array, `cols` a row, `gap` px of `background` between them;
    grey pictures keep their own scale (0 black .. max white)."""
    h, w = next(p for p in pics if p is not None).shape[:2]
    rows = math.ceil(len(pics) / cols)
    out = np.empty((rows * (h + gap) - gap, cols * (w + gap) - gap, 3), dtype=np.float32)
    out[...] = background
    for i, p in enumerate(pics):
        if p is None:
            continue
        p = np.asarray(p, dtype=np.float32)
        if p.ndim == 2:
            lo, hi = float(p.min()), float(p.max())
            lo = min(lo, 0.0)
            p = np.repeat(((p - lo) / (hi - lo) if hi > lo else np.zeros_like(p))[..., None], 3, -1)
        r, q = divmod(i, cols)
        out[r * (h + gap):r * (h + gap) + h, q * (w + gap):q * (w + gap) + w] = np.clip(p, 0, 1)
    return out


def gallery_png(pics, captions, cols: int = 8, title: str = "") -> bytes:
    """Images in a grid, a caption (up to 3 short lines) under each: one image drawn once
    (a grid of axes costs matplotlib ~15 ms per picture)."""
    n = len(pics)
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    h, w = next(p for p in pics if p is not None).shape[:2]
    gap_y = max(2, round(0.55 * h))              # room for two lines of caption under each
    sheet = _tiles(pics, cols, 2)
    # the captions need space: re-tile with a taller gap below each row
    tall = np.ones((rows * (h + gap_y), sheet.shape[1], 3), dtype=np.float32)
    for r in range(rows):
        tall[r * (h + gap_y):r * (h + gap_y) + h] = sheet[r * (h + 2):r * (h + 2) + h]
    fig = _figure(PANEL_W, PANEL_W * tall.shape[0] / tall.shape[1] + (0.4 if title else 0.1))
    ax = fig.add_axes((0, 0, 1, 1 - (0.4 / fig.get_figheight() if title else 0)))
    ax.imshow(tall, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11)
    for i, cap in enumerate(captions):
        r, q = divmod(i, cols)
        ax.text(q * (w + 2) + w / 2, r * (h + gap_y) + h + 0.5, cap, ha="center", va="top",
                fontsize=7)
    return _png(fig)


def filters_png(kernels: np.ndarray, layer: str) -> bytes:
    """(filters, kh, kw, c_in) kernels; RGB for 3 input channels, else the channel mean;
    each scaled to its own [min, max]."""
    f = kernels.shape[0]
    cols = min(MAPS_PER_ROW, f)
    pics = []
    for i in range(f):
        k = kernels[i]
        k = k if k.shape[-1] == 3 else k.mean(axis=-1)
        lo, hi = float(k.min()), float(k.max())
        pics.append((k - lo) / (hi - lo) if hi > lo else np.zeros_like(k))
    sheet = _tiles(pics, cols, 1, background=(0.55, 0.7, 0.95))  # gaps unlike any pixel
    fig = _figure(PANEL_W, PANEL_W * sheet.shape[0] / sheet.shape[1] + 0.5)
    ax = fig.add_axes((0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    ax.imshow(sheet, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    fig.suptitle(f"{layer}: {f} learned filters {kernels.shape[1]}x{kernels.shape[2]}"
                 + (" (RGB)" if kernels.shape[3] == 3 else
                    "" if kernels.shape[3] == 1 else f" (mean of {kernels.shape[3]} channels)")
                 + ", each scaled to its own range", fontsize=10)
    return _png(fig)


def _grey_rgb(a: np.ndarray) -> np.ndarray:
    """(h, w) in [0, 1] (NaN: white) -> (h, w, 3) through viridis; RGB stays RGB."""
    if a.ndim == 3:
        return a
    return _cmap("viridis")(np.ma.masked_invalid(a))[..., :3].astype(np.float32)


def class_maps_png(rows) -> bytes:
    """rows: [(caption, picture, [(layer label, (H, W, C) maps), ...]), ...], one per class.
    Each column (the pictures, then each layer's mosaics) is one image of stacked blocks,
    drawn once: a grid of axes would cost ~50 ms a panel."""
    n_maps = max(len(r[2]) for r in rows) if rows else 0
    label_px = 9                                    # px above each block for its label
    blocks = [[_tiles([r[1]], 1, 0)] + [_grey_rgb(mosaic(m)) for _, m in r[2]] for r in rows]
    heights = [max(b.shape[0] for b in row) + label_px for row in blocks]
    widths = [max(row[c].shape[1] for row in blocks if c < len(row)) for c in range(1 + n_maps)]
    gap = 6                                         # px between columns
    total_w = sum(widths) + gap * (len(widths) - 1)
    total_h = sum(heights)
    sheet = np.ones((total_h, total_w, 3), dtype=np.float32)
    fig = _figure(PANEL_W, PANEL_W * total_h / total_w)
    ax = fig.add_axes((0, 0, 1, 1))
    y = 0
    for r, (row, height) in enumerate(zip(blocks, heights)):
        x = 0
        for c, block in enumerate(row):
            sheet[y + label_px:y + label_px + block.shape[0], x:x + block.shape[1]] = block
            label = rows[r][0] if c == 0 else rows[r][2][c - 1][0]
            ax.text(x, y + label_px - 1, label, fontsize=7, va="bottom", ha="left")
            x += widths[c] + gap
        y += height
    ax.imshow(sheet, interpolation="nearest", aspect="auto")
    ax.set_axis_off()
    return _png(fig)


def reliability_png(cal: dict) -> bytes:
    fig = _figure(5.5, 4.6)
    ax = fig.add_subplot(1, 1, 1)
    b = cal["bins"]
    centres = (np.arange(b) + 0.5) / b
    has = cal["count"] > 0
    ax.bar(centres[has], cal["accuracy"][has], width=1 / b, edgecolor="black",
           label="accuracy in the bin")
    ax.plot([0, 1], [0, 1], "--", color="gray", label="perfectly calibrated")
    ax.plot(cal["confidence"][has], cal["accuracy"][has], "o", color="#d62728",
            label="(mean confidence, accuracy)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram, ECE = {cal['ece']:.4f}")
    ax.legend(loc="upper left", fontsize=8)
    fig.subplots_adjust(left=0.13, right=0.97, bottom=0.12, top=0.92)
    return _png(fig)
