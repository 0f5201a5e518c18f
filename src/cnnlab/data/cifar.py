"""Readers for CIFAR-10 and CIFAR-100 as their authors publish them, without running code.

The "python version" archives hold Python pickles: a pickle can name any importable
function and call it (a crafted one runs `os.system`), so they are read here by
`RestrictedUnpickler`, which refuses every global except the exact numpy names needed to
rebuild a uint8 array (and `_codecs.encode`, which Python 3 pickles of bytes use), each
replaced by a checking stand-in; the result must then be the plain structure CIFAR uses (a
dict of bytes/str keys to bytes, lists of ints and a (N, 3072) uint8 array). The "binary
version" (`data_batch_N.bin`: 1 label byte + 3072 pixel bytes per image; CIFAR-100's
`train.bin`: coarse, fine, 3072) involves no pickle at all.

Either form is read from the .tar.gz itself (members read in memory, nothing extracted)
or from its extracted folder. Arrays come out as Keras returns them: images (N, 32, 32, 3)
uint8 (the files hold channel planes, (N, 3, 32, 32)), labels (N,) uint8.

    >>> (x, y), (xt, yt) = read_cifar("cifar-py-tar", [Path("cifar-10-python.tar.gz")], "cifar10")
"""
from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ..errors import DataError

PIXELS = 32 * 32 * 3
MAX_MEMBER = 200 << 20   # bytes: CIFAR's largest member (cifar-100 train) is ~155 MB

# what each dataset's files are called, inside the archive folder
LAYOUT = {
    ("cifar10", "py"): ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)],
                        ["test_batch"]),
    ("cifar10", "bin"): ("cifar-10-batches-bin", [f"data_batch_{i}.bin" for i in range(1, 6)],
                         ["test_batch.bin"]),
    ("cifar100", "py"): ("cifar-100-python", ["train"], ["test"]),
    ("cifar100", "bin"): ("cifar-100-binary", ["train.bin"], ["test.bin"]),
}


def family(name: str) -> str:
    """"cifar10" or "cifar100" (for "cifar100" and "cifar100-coarse")."""
    return "cifar10" if name == "cifar10" else "cifar100"


def label_key(name: str) -> str:
    return {"cifar10": "labels", "cifar100": "fine_labels", "cifar100-coarse": "coarse_labels"}[name]


# -- the restricted unpickler ---------------------------------------------------------------

def _reconstruct(cls, shape, typecode):
    """numpy's `_reconstruct` (an empty array that BUILD then fills), for ndarray alone."""
    if cls is not np.ndarray:
        raise pickle.UnpicklingError(f"refusing to rebuild an object of type {cls!r}")
    if (not isinstance(shape, tuple) or not all(isinstance(n, int) and 0 <= n for n in shape)
            or int(np.prod(shape, dtype=np.float64)) > MAX_MEMBER):
        raise pickle.UnpicklingError(f"refusing an array of shape {shape!r}")
    return np.ndarray.__new__(np.ndarray, shape, np.uint8)


def _dtype(name, align=False, copy=True):
    """numpy's dtype constructor, for uint8 alone (an object dtype would unpickle objects)."""
    if name not in ("u1", b"u1"):
        raise pickle.UnpicklingError(f"refusing a numpy array of dtype {name!r}: CIFAR's "
                                     "arrays are uint8")
    return np.dtype("u1")


def _encode(text, encoding="latin1"):
    """`_codecs.encode` as Python 3 pickles use it for bytes (protocol < 3): text -> bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("refusing _codecs.encode with other than (str, 'latin1')")
    return text.encode("latin1")


ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in ALLOWED (to checking stand-ins)."""

    def find_class(self, module, name):
        found = ALLOWED.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"refusing to load `{module}.{name}`: a CIFAR batch "
                                         "needs no such object (the file may be malicious)")
        return found


def unpickle_batch(data: bytes, where: str) -> dict:
    """One CIFAR python batch: {str key: value}, checked to be CIFAR's plain structure."""
    try:
        obj = RestrictedUnpickler(io.BytesIO(data), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError, MemoryError) as e:
        raise DataError(f"{where}: not a readable CIFAR batch. Expected a pickled dict of "
                        f"plain data. Received a pickle that failed: {e}") from None
    if not isinstance(obj, dict):
        raise DataError(f"{where}: not a CIFAR batch. Expected a dict. Received "
                        f"{type(obj).__name__}.")
    out = {}
    for key, value in obj.items():
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        if not isinstance(key, str):
            raise DataError(f"{where}: not a CIFAR batch. Expected text keys. Received "
                            f"{key!r}.")
        out[key] = value
    return out


def _pixels(data, n_expected: int | None, where: str) -> np.ndarray:
    if isinstance(data, list):  # some re-exports store pixels as lists of ints
        data = np.asarray(data)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != PIXELS:
        got = (f"dtype {data.dtype}, shape {data.shape}" if isinstance(data, np.ndarray)
               else type(data).__name__)
        raise DataError(f"{where}: invalid `data`. Expected uint8 images of shape (N, 3072). "
                        f"Received {got}.")
    if n_expected is not None and len(data) != n_expected:
        raise DataError(f"{where}: `data` and labels differ in length. Expected "
                        f"{n_expected} images. Received {len(data)}.")
    return data


def _labels(batch: dict, key: str, where: str) -> np.ndarray:
    labels = batch.get(key)
    if not isinstance(labels, (list, np.ndarray)) or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v < 256
            for v in labels):
        raise DataError(f"{where}: invalid `{key}`. Expected a list of integer labels. "
                        f"Received {type(labels).__name__}.")
    return np.asarray(labels, dtype=np.int64).astype(np.uint8)


def _planes_to_images(data: np.ndarray) -> np.ndarray:
    # (N, 3072) channel planes -> (N, 3, 32, 32) -> Keras's (N, 32, 32, 3)
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))


def parse_py_batch(data: bytes, key: str, where: str):
    batch = unpickle_batch(data, where)
    labels = _labels(batch, key, where)
    return _planes_to_images(_pixels(batch.get("data"), len(labels), where)), labels


def parse_bin_batch(data: bytes, name: str, where: str):
    """Binary records: CIFAR-10 [label, 3072 pixels]; CIFAR-100 [coarse, fine, 3072]."""
    head = 1 if family(name) == "cifar10" else 2
    record = head + PIXELS
    if not data or len(data) % record:
        raise DataError(f"{where}: truncated or not a CIFAR binary batch. Expected a multiple "
                        f"of {record} bytes. Received {len(data)}.")
    rows = np.frombuffer(data, np.uint8).reshape(-1, record)
    col = 0 if name != "cifar100" else 1   # cifar100 fine labels are the second byte
    return _planes_to_images(rows[:, head:]), rows[:, col].copy()


# -- files and archives --------------------------------------------------------------------

def form(kind: str) -> str:
    return "bin" if kind.startswith("cifar-bin") else "py"


def dir_files(kind: str, path: Path, name: str) -> list[Path] | None:
    """The batch files of an extracted folder, or None unless all are present."""
    _, train, test = LAYOUT[(family(name), form(kind))]
    files = [path / f for f in train + test]
    return files if all(f.is_file() for f in files) else None


def absent(kind: str, path: Path, name: str) -> str:
    if not path.exists():
        return "not found"
    if kind.endswith("-tar"):
        return "not a file"
    _, train, test = LAYOUT[(family(name), form(kind))]
    have = sum((path / f).is_file() for f in train + test)
    return f"incomplete ({have} of {len(train) + len(test)} batch files)"


def _read_file(path: Path) -> bytes:
    size = path.stat().st_size
    if size > MAX_MEMBER:
        raise DataError(f"{path}: too large for a CIFAR batch. Expected at most "
                        f"{MAX_MEMBER >> 20} MiB. Received {size >> 20} MiB.")
    return path.read_bytes()


def _archive_members(path: Path, wanted: list[str]) -> dict[str, bytes]:
    """The named regular members of a .tar.gz, read in memory (nothing is extracted)."""
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.name not in wanted:
                    continue
                if not member.isfile() or member.size > MAX_MEMBER:
                    raise DataError(f"{path}: member {member.name} is not a plain file of at "
                                    f"most {MAX_MEMBER >> 20} MiB.")
                f = tar.extractfile(member)
                found[member.name] = f.read() if f is not None else b""
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:  # zlib errors are OSError
        raise DataError(f"{path}: damaged or truncated archive. Expected a complete .tar.gz "
                        f"of CIFAR batches. Received an archive that failed: {e}") from None
    missing = [w for w in wanted if w not in found]
    if missing:
        raise DataError(f"{path}: not the expected CIFAR archive. Expected members "
                        f"{', '.join(wanted)}. Missing: {', '.join(missing)}.")
    return found


def read_cifar(kind: str, files: list[Path], name: str):
    """((x_train, y_train), (x_test, y_test)) from an archive (kind *-tar, files [archive])
    or a folder's batch files (kind *-dir); DataError on anything not CIFAR's."""
    folder, train, test = LAYOUT[(family(name), form(kind))]
    if kind.endswith("-tar"):
        wanted = [f"{folder}/{f}" for f in train + test]
        members = _archive_members(files[0], wanted)
        blobs = [(f"{files[0]}:{w}", members[w]) for w in wanted]
    else:
        blobs = [(str(f), _read_file(f)) for f in files]
    parts = []
    for where, data in blobs:
        if form(kind) == "bin":
            parts.append(parse_bin_batch(data, name, where))
        else:
            parts.append(parse_py_batch(data, label_key(name), where))
    k = len(train)
    x = np.concatenate([p[0] for p in parts[:k]])
    y = np.concatenate([p[1] for p in parts[:k]])
    xt = np.concatenate([p[0] for p in parts[k:]])
    yt = np.concatenate([p[1] for p in parts[k:]])
    return (x, y), (xt, yt)
