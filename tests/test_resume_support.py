"""Shared helpers for the resume, callback and bad-input tests (no tests here).

Tiny data (96 train / 32 test 8x8 grey images, 3 classes) and a tiny model
(Conv2D(4) + Flatten + Dense(3)) so that a whole run takes well under a second,
with one torch thread so that results are bitwise reproducible.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

TINY_LAYERS = [
    {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
    {"Flatten": {}},
    {"Dense": {"units": 3, "activation": "softmax"}},
]


def tiny_npz(path, n_train=96, n_test=32, side=8, classes=3, seed=0, **overrides) -> Path:
    """Separable toy data: the class shifts the mean grey level."""
    rng = np.random.default_rng(seed)

    def split(n):
        y = rng.integers(0, classes, n).astype(np.uint8)
        x = (rng.integers(0, 60, (n, side, side)) + y[:, None, None] * (180 // classes))
        return x.astype(np.uint8), y

    x, y = split(n_train)
    xt, yt = split(n_test)
    arrays = {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt, **overrides}
    path = Path(path)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def write_config(path, data, *, layers=None, input_shape=(8, 8, 1), callbacks=None,
                 **train) -> Path:
    cfg = {"model": {"input_shape": list(input_shape), "layers": layers or TINY_LAYERS},
           "data": {"name": f"npz:{data}"},
           "train": {"epochs": 3, "batch_size": 16, "threads": 1, **train}}
    if callbacks is not None:
        cfg["train"]["callbacks"] = callbacks
    path = Path(path)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`cnnlab ARGV` in this process: (exit code, stdout, stderr)."""
    from cnnlab.cli import main
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def tree(root) -> dict[str, str]:
    """{relative path: sha256} of every file under root (what 'nothing changed' compares)."""
    root = Path(root)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def weights(path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def same_tensors(a: dict, b: dict) -> bool:
    """Bit for bit: same keys, dtypes, shapes and bytes."""
    return a.keys() == b.keys() and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        and a[k].contiguous().view(torch.uint8).equal(b[k].contiguous().view(torch.uint8))
        for k in a)


@pytest.fixture
def keep_threads():
    """train_run sets torch's thread count from the config; give the session its own back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def no_temp_files(run_dir) -> bool:
    return not [p for p in Path(run_dir).rglob(".*.tmp")]
