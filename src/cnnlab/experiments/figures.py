"""The report's pictures: overlaid curves (mean over seeds, ±1 std band) and the effects.

    >>> curves(summaries, "val_accuracy", "Validation accuracy", folder / "val_accuracy.png")
    >>> effects(summaries, folder / "effects.png")
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..io import atomic_path
from .collect import POINTS, Summary

BASE_COLOR = "black"


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _styles(n: int) -> list[tuple]:
    """(color, linestyle) per variant: ten distinct colors, then the same with dashes, ..."""
    import matplotlib
    cmap = matplotlib.colormaps["tab10"]
    return [(cmap(i % 10), ("-", "--", ":", "-.")[i // 10 % 4]) for i in range(n)]


def mean_curve(runs, key: str):
    """(epochs, mean, std) of history[key] over runs, per epoch (runs may differ in length)."""
    by_epoch: dict[int, list[float]] = {}
    for r in runs:
        for e, v in zip(r.val_epochs() if key.startswith("val_") else
                        range(1, len(r.history.get(key) or []) + 1), r.history.get(key) or []):
            if v is not None and math.isfinite(v):
                by_epoch.setdefault(e, []).append(v)
    epochs = sorted(by_epoch)
    mean = np.array([np.mean(by_epoch[e]) for e in epochs])
    std = np.array([np.std(by_epoch[e], ddof=1) if len(by_epoch[e]) > 1 else 0.0 for e in epochs])
    return epochs, mean, std


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return path


def curves(rows: list[Summary], key: str, title: str, path) -> Path:
    """One line per variant (the base in black, thicker), mean over seeds, ±1 std band."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 5.5))
    scale = POINTS if "accuracy" in key else 1.0
    for row, (color, style) in zip(rows, [(BASE_COLOR, "-")] + _styles(len(rows) - 1)):
        epochs, mean, std = mean_curve(row.finished, key)
        if not epochs:
            continue
        base = row is rows[0]
        ax.plot(epochs, mean * scale, color=color, ls=style, lw=2.6 if base else 1.4,
                marker="o" if len(epochs) < 6 else None, ms=4, label=row.group.name,
                zorder=3 if base else 2)
        ax.fill_between(epochs, (mean - std) * scale, (mean + std) * scale, color=color,
                        alpha=0.12, lw=0)
    ax.set_title(f"{title} (mean over seeds, band: ±1 std)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{key} (%)" if scale == POINTS else key)
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
    ax.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, Path(path))


def effects(rows: list[Summary], path) -> Path:
    """Each variant's final val accuracy minus the base's mean: bar = mean, whisker = the
    noise (standard error of the difference), dots = the single seeds."""
    plt = _plt()
    others = rows[1:]
    fig, ax = plt.subplots(figsize=(10, 0.42 * max(len(others), 2) + 1.2))
    base_mean = float(np.mean(rows[0].final)) if rows[0].final else math.nan
    for i, row in enumerate(others):
        y = len(others) - 1 - i
        d = row.delta
        if d is None or math.isnan(d.diff):
            continue
        color = ("tab:green" if d.diff > 0 else "tab:red") if d.significant else "tab:gray"
        se = d.se * POINTS if d.tested or d.se == 0 else 0.0
        ax.barh(y, d.diff * POINTS, color=color, alpha=0.55, height=0.6,
                xerr=se if se else None, capsize=3)
        ax.plot([(v - base_mean) * POINTS for v in row.final], [y] * len(row.final), "o",
                color="black", ms=3)
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(range(len(others)))
    ax.set_yticklabels([r.group.name for r in reversed(others)], fontsize=9)
    ax.set_xlabel(f"final val_accuracy minus the {rows[0].group.name}'s mean (points)")
    ax.set_title("Effect of each change (green/red: beyond the noise; whisker: ±1 noise SE; "
                 "dots: seeds)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, Path(path))


def draw_all(rows: list[Summary], folder) -> list[Path]:
    folder = Path(folder)
    out = [curves(rows, "val_accuracy", "Validation accuracy", folder / "val_accuracy.png"),
           curves(rows, "val_loss", "Validation loss", folder / "val_loss.png")]
    if len(rows) > 1:
        out.append(effects(rows, folder / "effects.png"))
    return out
