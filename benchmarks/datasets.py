"""The data every system trains on, written once as .npz by the driver.

Two sources: synthetic images (random but learnable, any count; for epoch
times, which do not depend on what the pixels show) and the full Fashion-MNIST
from Debian's dataset-fashion-mnist (for time-to-accuracy). Both are uint8
(N, 28, 28) with uint8 labels; workers scale them to [0, 1] as the lecture does.

    path, info = datasets.synthetic(Path("benchmarks/out/data"), images=60000, seed=0)
    path, info = datasets.fashion_mnist(Path("benchmarks/out/data"), FASHION_MNIST_DIR)
"""
from __future__ import annotations

import gzip
import hashlib
import math
import os
import struct
from pathlib import Path

import numpy as np

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_val": "t10k-images-idx3-ubyte.gz",  # the lecture validates on the test set
    "y_val": "t10k-labels-idx1-ubyte.gz",
}
IMAGE_SIDE = 28
SYNTHETIC_VERSION = 2  # bump when synthetic_arrays changes: it names the cached file
CLASSES = 10
SYNTHETIC_NOISE = 0.5  # std of the per-pixel Gaussian noise, in units of full scale
CLASS_SHARE = 0.3  # how much of a template is the class's own pattern (the rest is shared)
TEMPLATE_CELLS = 7  # each template is a 7 x 7 random pattern blown up to 28 x 28


def synthetic_arrays(images: int, seed: int) -> dict[str, np.ndarray]:
    """Random but learnable images: one blocky template per class, plus noise.

    The classes share most of their template and the noise is strong, so the
    best possible accuracy is about 89%: the loss stays away from zero as on
    real data (no run into denormal gradients), and a broken training loop
    shows (its accuracy stays near 10%). The data costs a second to make.
    """
    rng = np.random.default_rng(seed)
    block = IMAGE_SIDE // TEMPLATE_CELLS
    own = rng.random((CLASSES, TEMPLATE_CELLS, TEMPLATE_CELLS), dtype=np.float32)
    shared = rng.random((TEMPLATE_CELLS, TEMPLATE_CELLS), dtype=np.float32)
    coarse = own * CLASS_SHARE + shared * (1.0 - CLASS_SHARE)
    templates = np.kron(coarse, np.ones((block, block), np.float32))  # (10, 28, 28) in [0, 1]
    labels = rng.integers(0, CLASSES, size=images).astype(np.uint8)
    x = templates[labels] * 0.7 + 0.15  # (N, 28, 28), mid-grey range
    x += rng.standard_normal(x.shape, dtype=np.float32) * SYNTHETIC_NOISE
    x = np.clip(x * 255.0, 0, 255).astype(np.uint8)
    return {"x_train": x, "y_train": labels}


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not, as a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes "
                         f"(expected magic 00 00 08 xx; received {raw[:4].hex(' ')}).")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != math.prod(dims):
        raise ValueError(f"{path} holds {data.size} bytes of data; its header says {dims}.")
    return data.reshape(dims)


def fashion_mnist_arrays(directory: Path) -> dict[str, np.ndarray]:
    missing = [n for n in FASHION_MNIST_FILES.values() if not (directory / n).exists()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST not found in {directory} (missing {', '.join(missing)}). "
            "Install Debian's dataset-fashion-mnist or pass --fashion-dir.")
    return {key: read_idx(directory / name) for key, name in FASHION_MNIST_FILES.items()}


def fingerprint(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for key in sorted(arrays):
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()[:16]


def write_once(path: Path, make) -> tuple[Path, dict]:
    """Write `make()`'s arrays to `path` unless it exists; describe what is there."""
    if not path.exists():
        arrays = make()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    with np.load(path) as arrays:
        loaded = {k: arrays[k] for k in arrays.files}
    info = {"path": str(path), "sha256_16": fingerprint(loaded),
            "shapes": {k: list(v.shape) for k, v in loaded.items()}}
    return path, info


def synthetic(out_dir: Path, images: int, seed: int) -> tuple[Path, dict]:
    path, info = write_once(out_dir / f"synthetic-v{SYNTHETIC_VERSION}-{images}-seed{seed}.npz",
                            lambda: synthetic_arrays(images, seed))
    return path, {"name": "synthetic", "seed": seed, **info}


def fashion_mnist(out_dir: Path, directory: Path, images: int | None = None) -> tuple[Path, dict]:
    """Fashion-MNIST's train set (first `images` of it; all when None) and its test set."""
    def make():
        arrays = fashion_mnist_arrays(directory)
        if images is not None:
            arrays["x_train"], arrays["y_train"] = arrays["x_train"][:images], arrays["y_train"][:images]
        return arrays

    suffix = "" if images is None else f"-{images}"
    path, info = write_once(out_dir / f"fashion-mnist{suffix}.npz", make)
    return path, {"name": "fashion-mnist", "source": str(directory), **info}
