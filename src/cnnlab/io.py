"""Atomic file writes: a crash or a full disk never leaves a half-written file.

    >>> atomic_write(path, b"...")            # bytes or str
    >>> with atomic_path(path) as tmp: fig.savefig(tmp)

The data goes to a temporary file in the same directory (`.NAME.XXXX.tmp`), is
flushed and fsynced, then renamed over the target (atomic on POSIX), and the
directory is fsynced so the rename itself survives a power cut. On any error
the temporary file is removed, the previous file (if any) is left intact, and
an OSError becomes a `DiskError` (exit code 7) naming the file and the reason.

New files get the usual permissions (0o666 minus the umask), not mkstemp's
0o600; a file that is replaced keeps its mode.
"""
from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from pathlib import Path

from .errors import DiskError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask is process-wide and not thread-safe to probe


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


def disk_error(path, err: OSError) -> DiskError:
    """The DiskError for a failed write of `path`."""
    if err.errno == errno.ENOSPC:
        reason = "the disk is full"
    elif err.errno == errno.EDQUOT:
        reason = "the disk quota is exceeded"
    else:
        reason = err.strerror or str(err)
    return DiskError(f"Could not write {path}: {reason}. The previous version (if any) is "
                     "unchanged.")


def _mode_for(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_UMASK


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path to write; renames it over `path` on success."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        yield Path(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except DiskError:
        _remove(tmp)
        raise
    except OSError as err:
        _remove(tmp)
        raise disk_error(path, err) from None
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def write_all(fd: int, data) -> None:
    """os.write until every byte is written (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def atomic_write(path, data: bytes | str) -> None:
    if isinstance(data, str):
        data = data.encode("utf-8")
    with atomic_path(path) as tmp:
        fd = os.open(tmp, os.O_WRONLY | os.O_TRUNC)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
