"""Readers for the two formats MNIST-like data comes in: Keras's .npz and LeCun's IDX files.

Both return uint8 arrays and raise DataError naming the file and what was wrong
(bad magic number, truncated data, a label count that does not match the images).

    >>> (x, y), (xt, yt) = read_npz("~/.keras/datasets/mnist.npz")    # doctest: +SKIP
    >>> (x, y), (xt, yt) = read_idx_dir("/usr/share/datasets/fashion-mnist")  # doctest: +SKIP
"""
from __future__ import annotations

import gzip
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..bounded import check_idx_size, check_npz_headers, check_regular
from ..errors import DataError
from .catalog import IDX_STEMS
from .dataset import SPLITS

IDX_UBYTE = 0x08            # IDX type code of unsigned bytes, the only one MNIST uses
MAX_IDX_BYTES = 8 << 30     # 8 GiB: a header claiming more is corrupt, not a dataset to allocate
GZIP_MAGIC = b"\x1f\x8b"


def _open(path: Path):
    """Open a file for reading, transparently un-gzipping it (detected by magic, not name)."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == GZIP_MAGIC
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def _read_exact(f, n: int, path: Path, what: str) -> bytearray:
    """Read exactly n bytes into a writable buffer (one allocation) or raise DataError."""
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        k = f.readinto(view[got:])
        if not k:
            raise DataError(f"{path}: truncated IDX file. Expected {n} bytes of {what}. "
                            f"Received {got}.")
        got += k
    return buf


def read_idx(path) -> np.ndarray:
    """Read one IDX file of unsigned bytes (gzipped or not) into a writable uint8 array."""
    path = Path(path)
    check_regular(path, "IDX file", DataError)  # a FIFO or device would block or never end
    try:
        with _open(path) as f:
            header = f.read(4)
            if len(header) < 4 or header[:2] != b"\0\0":
                raise DataError(f"{path}: not an IDX file. Expected the magic number 0x0000 "
                                f"followed by type and rank. Received {header.hex() or 'an empty file'}.")
            if header[2] != IDX_UBYTE:
                raise DataError(f"{path}: unsupported IDX data type. Expected 0x08 (unsigned byte). "
                                f"Received 0x{header[2]:02x}.")
            rank = header[3]
            dims = struct.unpack(f">{rank}I", _read_exact(f, 4 * rank, path, "dimensions"))
            size = int(np.prod(dims, dtype=object))
            check_idx_size(path, dims, 4 + 4 * rank, isinstance(f, gzip.GzipFile))
            if size > MAX_IDX_BYTES:
                raise DataError(f"{path}: implausible IDX header. Expected at most {MAX_IDX_BYTES} "
                                f"bytes of data. Received dimensions {dims}.")
            data = _read_exact(f, size, path, f"data {dims}")
            if f.read(1):
                raise DataError(f"{path}: trailing bytes after the data. Expected exactly "
                                f"{len(data)} bytes for shape {dims}.")
    except (OSError, EOFError, zlib.error) as e:   # gzip CRC/length errors are OSError/EOFError
        raise DataError(f"{path}: cannot read IDX file ({type(e).__name__}: {e}).") from e
    return np.frombuffer(data, dtype=np.uint8).reshape(dims)


def find_idx_files(directory) -> list[Path] | None:
    """The four IDX files in `directory` (x_train, y_train, x_test, y_test), or None if any is missing.

    Accepts the canonical names, gzipped or not, and the dotted variant some mirrors use
    (`train-images.idx3-ubyte`).
    """
    directory = Path(directory)
    found = []
    for stem in IDX_STEMS:
        dotted = stem.replace("-idx", ".idx")
        names = (stem + ".gz", stem, dotted + ".gz", dotted)
        match = next((directory / n for n in names if (directory / n).is_file()), None)
        if match is None:
            return None
        found.append(match)
    return found


def read_idx_files(files, where: str | None = None):
    """Read four IDX files into `(x_train, y_train), (x_test, y_test)`, checking they agree."""
    x_train, y_train, x_test, y_test = (read_idx(p) for p in files)
    where = where or str(Path(files[0]).parent)
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        if x.ndim != 3:
            raise DataError(f"{where}: {split} images must be a rank-3 IDX file (N, rows, cols). "
                            f"Received shape {x.shape}.")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{where}: {split} labels do not match the images. Expected {len(x)} "
                            f"labels of shape (N,). Received shape {y.shape}.")
    return (x_train, y_train), (x_test, y_test)


def read_idx_dir(directory):
    """Read the four IDX files of a directory; DataError naming the expected files if absent."""
    files = find_idx_files(directory)
    if files is None:
        expected = ", ".join(s + "[.gz]" for s in IDX_STEMS)
        raise DataError(f"{directory}: IDX files not found. Expected {expected}.")
    return read_idx_files(files)


def read_npz(path):
    """Read a Keras-style .npz holding x_train, y_train, x_test, y_test (no pickles).

    Returns `((x_train, y_train), (x_test, y_test), class_names)` where class_names is the
    optional `class_names` array of the file as a list, or None.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: file not found. Expected a .npz file with arrays "
                        f"{', '.join(SPLITS)}.")
    with open(path, "rb") as head:
        magic = head.read(4)
    if magic != b"PK\x03\x04":  # np.load would otherwise suggest allow_pickle for any non-zip
        raise DataError(f"{path}: not a .npz file (it does not start with the zip signature). "
                        f"Expected a .npz file with arrays {', '.join(SPLITS)}.")
    try:
        check_npz_headers(path, [*SPLITS, "class_names"])  # before anything is allocated
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in SPLITS if k not in f.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}. Expected arrays "
                                f"{', '.join(SPLITS)}. Received {sorted(f.files)}.")
            arrays = [f[k] for k in SPLITS]
            names = f["class_names"].tolist() if "class_names" in f.files else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e}). "
                        "It may be truncated or corrupt.") from e
    return (arrays[0], arrays[1]), (arrays[2], arrays[3]), names
