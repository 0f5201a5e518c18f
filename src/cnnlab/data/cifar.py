"""Readers for CIFAR-10 and CIFAR-100 as their authors publish them, without running code.

The "python version" archives hold Python pickles: a pickle can name any importable
function and call it (a crafted one runs `os.system`), so they are not unpickled: `load_plain`
interprets the opcodes of plain data itself and rebuilds a uint8 array from the exact numpy
names that describe one, without importing or calling anything the stream names; the result
must then be the plain structure CIFAR uses (a dict of bytes/str keys to bytes, lists of ints
and a (N, 3072) uint8 array). The "binary
version" (`data_batch_N.bin`: 1 label byte + 3072 pixel bytes per image; CIFAR-100's
`train.bin`: coarse, fine, 3072) involves no pickle at all.

Either form is read from the .tar.gz itself (members read in memory, nothing extracted)
or from its extracted folder. Arrays come out as Keras returns them: images (N, 32, 32, 3)
uint8 (the files hold channel planes, (N, 3, 32, 32)), labels (N,) uint8.

    >>> (x, y), (xt, yt) = read_cifar("cifar-py-tar", [Path("cifar-10-python.tar.gz")], "cifar10")
"""
from __future__ import annotations

import codecs
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
    """The batch key of `name`'s labels (CIFAR-100's python batches hold both kinds)."""
    return {"cifar10": "labels", "cifar100": "fine_labels",
            "cifar100-coarse": "coarse_labels"}[name]


# -- a pickle reader for CIFAR's plain data ---------------------------------------------------
#
# No `pickle` module here: a hand-written interpreter of the opcodes that plain data needs
# (dicts, lists, tuples, text, bytes, ints, floats, True/False/None, the memo), and of GLOBAL,
# REDUCE and BUILD only for the exact names that rebuild a uint8 numpy array (and Python 3's
# `_codecs.encode(text, "latin1")` for bytes). Every other opcode or global is refused, so a
# crafted file cannot make it call anything.

class Refused(ValueError):
    """The stream is not plain CIFAR data."""


class _Global:
    def __init__(self, name):
        self.name = name


NDARRAY, RECONSTRUCT, DTYPE, ENCODE = (_Global(n) for n in ("ndarray", "_reconstruct", "dtype",
                                                              "_codecs.encode"))
ALLOWED = {("numpy.core.multiarray", "_reconstruct"): RECONSTRUCT,
           ("numpy._core.multiarray", "_reconstruct"): RECONSTRUCT,
           ("numpy", "ndarray"): NDARRAY, ("numpy", "dtype"): DTYPE,
           ("_codecs", "encode"): ENCODE}


class _Uint8:
    """numpy's uint8 dtype, as the stream names it."""


class _PendingArray:
    """An array from `_reconstruct`, filled by BUILD."""

    array = None


def _reduce(func, args):
    if not isinstance(args, tuple):
        raise Refused("a call without an argument tuple")
    if func is RECONSTRUCT:
        if len(args) != 3 or args[0] is not NDARRAY:
            raise Refused("_reconstruct of something else than a numpy array")
        return _PendingArray()
    if func is DTYPE:
        if not args or args[0] not in ("u1", b"u1"):
            raise Refused(f"a numpy array of dtype {args[0] if args else None!r}: CIFAR's "
                          "arrays are uint8")
        return _Uint8()
    if func is ENCODE:
        if len(args) not in (1, 2) or not isinstance(args[0], str) or \
                (len(args) == 2 and args[1] not in ("latin1", "latin-1")):
            raise Refused("_codecs.encode with other than (text, 'latin1')")
        return args[0].encode("latin1")
    raise Refused(f"a call to {getattr(func, 'name', type(func).__name__)}")


def _build(obj, state):
    if isinstance(obj, _Uint8):
        return  # the dtype's own state (byte order, ...): nothing to set for uint8
    if not isinstance(obj, _PendingArray) or not isinstance(state, tuple) or len(state) != 5:
        raise Refused("state set on something else than a numpy array")
    _, shape, dtype, _, raw = state
    if not isinstance(dtype, _Uint8):
        raise Refused("an array that is not uint8")
    if isinstance(raw, str):
        raw = raw.encode("latin1")
    if (not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape)
            or not isinstance(raw, bytes) or len(raw) != int(np.prod(shape, dtype=np.int64))):
        raise Refused(f"an array whose {len(raw) if isinstance(raw, bytes) else '?'} bytes do "
                      f"not fill its shape {shape!r}")
    obj.array = np.frombuffer(raw, np.uint8).reshape(shape)


def _plain(value, depth=0):
    """The loaded value with every rebuilt array in place of its placeholder."""
    if depth > 8:  # CIFAR's batches nest two deep; a list holding itself would never end
        raise Refused("data nested deeper than a CIFAR batch")
    if isinstance(value, _PendingArray):
        if value.array is None:
            raise Refused("an array that was never filled")
        return value.array
    if isinstance(value, dict):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_plain(v, depth + 1) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, (_Global, _Uint8)):
        raise Refused("a bare numpy object")
    return value


def load_plain(data: bytes):
    """Python 2/3 pickle bytes of plain data (see above) -> the object; Refused otherwise.
    Python 2 byte strings come out as bytes (as Python's own loader gives them with
    encoding="bytes")."""
    buf = memoryview(data)
    pos, stack, marks, memo = 0, [], [], {}

    def take(n):
        nonlocal pos
        if pos + n > len(buf):
            raise Refused("truncated stream")
        out = bytes(buf[pos:pos + n])
        pos += n
        return out

    def line():
        nonlocal pos
        end = data.find(b"\n", pos)
        if end < 0:
            raise Refused("truncated stream")
        out = data[pos:end]
        pos = end + 1
        return out

    def since_mark():
        if not marks:
            raise Refused("no mark")
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    def pop():
        if not stack or (marks and len(stack) <= marks[-1]):
            raise Refused("stack underflow")
        return stack.pop()

    def uint(n):
        return int.from_bytes(take(n), "little")

    while True:
        op = take(1)
        if op == b".":                                   # STOP
            if len(stack) != 1:
                raise Refused("a stream that does not end with one object")
            return _plain(stack[0])
        if op == b"\x80":                                # PROTO
            if take(1)[0] > 5:
                raise Refused("an unknown pickle protocol")
        elif op == b"\x95":                              # FRAME (a length hint)
            take(8)
        elif op == b"(":
            marks.append(len(stack))
        elif op == b"}":
            stack.append({})
        elif op == b"]":
            stack.append([])
        elif op == b")":
            stack.append(())
        elif op in (b"d", b"l", b"t"):                   # DICT, LIST, TUPLE from the mark
            items = since_mark()
            if op == b"d":
                if len(items) % 2:
                    raise Refused("an odd dict")
                stack.append(dict(zip(items[::2], items[1::2])))
            else:
                stack.append(items if op == b"l" else tuple(items))
        elif op in (b"\x85", b"\x86", b"\x87"):        # TUPLE1..3
            k = op[0] - 0x84
            items = [pop() for _ in range(k)][::-1]
            stack.append(tuple(items))
        elif op in (b"a", b"e"):                         # APPEND, APPENDS
            items = [pop()] if op == b"a" else since_mark()
            target = pop()
            if not isinstance(target, list):
                raise Refused("an append to something else than a list")
            target.extend(items)
            stack.append(target)
        elif op in (b"s", b"u"):                         # SETITEM, SETITEMS
            if op == b"s":
                value, key = pop(), pop()
                items = [key, value]
            else:
                items = since_mark()
            target = pop()
            if not isinstance(target, dict) or len(items) % 2:
                raise Refused("an item set on something else than a dict")
            for key, value in zip(items[::2], items[1::2]):
                if not isinstance(key, (str, bytes, int)):
                    raise Refused("a dict key that is not text or a number")
                target[key] = value
            stack.append(target)
        elif op in (b"q", b"r", b"p", b"\x94"):         # BINPUT, LONG_BINPUT, PUT, MEMOIZE
            key = {b"q": lambda: uint(1), b"r": lambda: uint(4), b"p": lambda: int(line()),
                   b"\x94": lambda: len(memo)}[op]()
            if not stack:
                raise Refused("memo of nothing")
            memo[key] = stack[-1]
        elif op in (b"h", b"j", b"g"):                   # BINGET, LONG_BINGET, GET
            key = uint(1) if op == b"h" else uint(4) if op == b"j" else int(line())
            if key not in memo:
                raise Refused("a memo entry that does not exist")
            stack.append(memo[key])
        elif op == b"K":
            stack.append(uint(1))
        elif op == b"M":
            stack.append(uint(2))
        elif op == b"J":
            stack.append(int.from_bytes(take(4), "little", signed=True))
        elif op == b"\x8a":                              # LONG1
            stack.append(int.from_bytes(take(uint(1)), "little", signed=True))
        elif op == b"I":                                 # INT (protocol 0; I01/I00: bools)
            text = line()
            stack.append({b"01": True, b"00": False}.get(text) if text in (b"01", b"00")
                         else int(text))
        elif op == b"L":                                 # LONG (protocol 0)
            stack.append(int(line().rstrip(b"L")))
        elif op == b"G":                                 # BINFLOAT
            stack.append(float(np.frombuffer(take(8), ">f8")[0]))
        elif op == b"F":
            stack.append(float(line()))
        elif op == b"N":
            stack.append(None)
        elif op in (b"\x88", b"\x89"):
            stack.append(op == b"\x88")
        elif op in (b"U", b"T"):                         # SHORT_BINSTRING, BINSTRING (py2 str)
            stack.append(take(uint(1) if op == b"U" else uint(4)))
        elif op in (b"C", b"B", b"\x8e"):                # SHORT_BINBYTES, BINBYTES, BINBYTES8
            stack.append(take(uint({b"C": 1, b"B": 4, b"\x8e": 8}[op])))
        elif op in (b"X", b"\x8c", b"\x8d"):            # BINUNICODE, SHORT_, BINUNICODE8
            stack.append(take(uint({b"X": 4, b"\x8c": 1, b"\x8d": 8}[op])).decode("utf-8"))
        elif op == b"S":                                 # STRING (protocol 0, quoted)
            text = line()
            if len(text) < 2 or text[:1] != text[-1:] or text[:1] not in (b"'", b'"'):
                raise Refused("a malformed string")
            stack.append(codecs.escape_decode(text[1:-1])[0])
        elif op == b"V":                                 # UNICODE (protocol 0)
            stack.append(line().decode("raw-unicode-escape"))
        elif op in (b"c", b"\x93"):                      # GLOBAL, STACK_GLOBAL
            if op == b"c":
                module, name = line().decode("utf-8", "replace"), line().decode("utf-8",
                                                                                "replace")
            else:
                name, module = pop(), pop()
            found = ALLOWED.get((module, name))
            if found is None:
                raise Refused(f"refusing to load `{module}.{name}`: a CIFAR batch needs no "
                              "such object (the file may be malicious)")
            stack.append(found)
        elif op == b"R":                                 # REDUCE
            args, func = pop(), pop()
            stack.append(_reduce(func, args))
        elif op == b"b":                                 # BUILD
            state = pop()
            _build(stack[-1] if stack else None, state)
        elif op == b"0":
            pop()
        elif op == b"1":
            since_mark()
        elif op == b"2":
            stack.append(stack[-1] if stack else pop())
        else:
            raise Refused(f"opcode {op!r} (objects other than plain data)")


def unpickle_batch(data: bytes, where: str) -> dict:
    """One CIFAR python batch: {str key: value}, checked to be CIFAR's plain structure."""
    try:
        obj = load_plain(data)
    except (Refused, ValueError, TypeError, OverflowError, MemoryError) as e:
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
