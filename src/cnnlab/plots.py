"""The lecture's two plots: accuracy and loss, train vs test, one figure each.

    >>> plot_history(history, run_dir)   # writes accuracy.png and loss.png
"""
from __future__ import annotations

from pathlib import Path

from .io import atomic_path


def _figure(train, val, title, legend_loc, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    epochs = range(1, len(train) + 1)
    ax.plot(epochs, train, label="train", marker="o" if len(train) < 3 else None)
    if val:
        ax.plot(range(1, len(val) + 1), val, label="test", marker="o" if len(val) < 3 else None)
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.legend(loc=legend_loc)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)


def plot_history(history: dict, out_dir) -> list[Path]:
    """As the lecture: 'Accuracy' (legend lower right) and 'Loss' (legend upper right)."""
    out_dir = Path(out_dir)
    written = []
    for key, title, loc in (("accuracy", "Accuracy", "lower right"), ("loss", "Loss", "upper right")):
        if history.get(key):
            path = out_dir / f"{key}.png"
            _figure(history[key], history.get(f"val_{key}"), title, loc, path)
            written.append(path)
    return written
