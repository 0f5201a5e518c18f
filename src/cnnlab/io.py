"""Atomic file writes: a crash or a full disk never leaves a half-written file.

    >>> atomic_write(path, b"...")            # bytes or str
    >>> with atomic_path(path) as tmp: save_file(tensors, tmp)

The data goes to a temporary file in the same directory, is flushed and
fsynced, then renamed over the target (atomic on POSIX). On any error the
temporary file is removed and the previous file, if any, is left intact.
"""
from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from .errors import DiskError


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _disk_error(path: Path, err: OSError) -> DiskError:
    reason = "the disk is full" if err.errno == errno.ENOSPC else (err.strerror or str(err))
    return DiskError(f"Could not write {path}: {reason}. The previous version (if any) is "
                     "unchanged.")


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path to write; renames it over `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, DiskError):
            raise
        raise _disk_error(path, err) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write(path, data: bytes | str) -> None:
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
