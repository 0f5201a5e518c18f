"""Guards at cnnlab's edges: the names users give, the directories cnnlab owns, run locks.

    >>> check_name("../victim", "experiment")        # ConfigError: one rule for every name
    >>> path = make_owned_dir(Path("runs/x"))         # mkdir + the marker file `.cnnlab`
    >>> remove_owned(path)                            # refuses what cnnlab did not create
    >>> with DirLock() as lock:                       # an OS lock (flock) held while training
    ...     lock.acquire(path, "Run")                 # RunError naming the holder's pid

Every directory cnnlab creates (run directories, experiment folders) holds a marker
file, and nothing without it is ever deleted: a name or a path that points somewhere
else (a user's folder, a symlink) makes cnnlab refuse, never remove. The locks are
flock(2) locks, which the kernel releases when the process exits, however it exits:
a `kill -9` never leaves a stale lock.
"""
from __future__ import annotations

import errno
import fcntl
import os
import re
import shutil
import stat
from pathlib import Path

from .errors import ConfigError, RunError
from .io import disk_error, write_all

NAME_MAX = 100
# letters, digits, '.', '_', '-', starting with a letter or digit: no separators, no '..'
# component, no control characters (fullmatch: `$` would accept a trailing newline)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MARKER = ".cnnlab"        # in every directory cnnlab creates
LOCK = ".cnnlab.lock"     # flock'ed while a process works in the directory; holds its pid


def check_name(name, what: str = "run", max_len: int = NAME_MAX) -> str:
    """`name` if it is a valid run/experiment/variant name, else ConfigError (exit 2)."""
    if not isinstance(name, str) or len(name) > max_len or not _NAME.fullmatch(name):
        raise ConfigError(f"Invalid {what} name {name!r}. Expected letters, digits, '.', '_' or "
                          f"'-' (at most {max_len}, starting with a letter or digit).")
    return name


# -- directories cnnlab owns --------------------------------------------------------------

def mark(path: Path, kind: str) -> None:
    """Write the marker that makes `path` cnnlab's own (DiskError if that fails)."""
    marker = Path(path) / MARKER
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        try:
            write_all(fd, f"cnnlab {kind}\n".encode())
        finally:
            os.close(fd)
    except OSError as err:
        raise disk_error(marker, err) from None


def make_owned_dir(path, kind: str = "run") -> Path:
    """mkdir `path` (FileExistsError if it exists) and mark it; no directory if marking fails."""
    path = Path(path)
    path.mkdir()
    try:
        mark(path, kind)
    except BaseException:
        _remove_fresh(path)
        raise
    return path


def _remove_fresh(path: Path) -> None:
    """Remove a directory this process has just created (only the marker can be in it)."""
    try:
        (path / MARKER).unlink(missing_ok=True)
        path.rmdir()
    except OSError:
        pass


def is_owned(path) -> bool:
    """A real directory (not a symlink) holding cnnlab's marker as a regular file."""
    path = Path(path)
    try:
        return (stat.S_ISDIR(os.lstat(path).st_mode)
                and stat.S_ISREG(os.lstat(path / MARKER).st_mode))
    except OSError:
        return False


def _legacy_run(path: Path) -> bool:
    """A run directory made before the marker existed: its metrics.json says so."""
    from .runs import read_json
    try:
        m = read_json(path / "metrics.json", {})
    except Exception:  # noqa: BLE001 - unreadable: not provably ours
        return False
    return isinstance(m, dict) and m.get("format") == "cnnlab-run-1"  # runner.RUN_FORMAT


def check_removable(path, what: str = "Run directory") -> None:
    """RunError unless `path` may be deleted: cnnlab's own, not a symlink, not in use."""
    path = Path(path)
    if path.is_symlink():
        raise RunError(f"{what} {path} is a symbolic link. Expected a directory cnnlab created; "
                       "cnnlab never deletes through a link. Remove it yourself.")
    if not (is_owned(path) or _legacy_run(path)):
        raise RunError(f"{what} {path} was not created by cnnlab (it has no {MARKER} marker), so "
                       "cnnlab will not delete it. Move it away or choose another name.")
    check_not_held(path, what)


def remove_owned(path, what: str = "Run directory") -> None:
    """Delete a directory cnnlab created (RunError, and nothing deleted, otherwise)."""
    check_removable(path, what)
    # rmtree removes symlinks inside the tree without following them
    shutil.rmtree(path)


def remove_new_run(path) -> None:
    """Best effort: remove a run directory this process created, if it is still ours."""
    try:
        if is_owned(path) and not Path(path).is_symlink():
            shutil.rmtree(path)
    except OSError:
        pass


# -- locks --------------------------------------------------------------------------------

def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"


def lock_holder(directory) -> str | None:
    """The pid (as text) of the process holding `directory`'s lock, or None if it is free."""
    path = Path(directory) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read_pid(fd)
    finally:
        os.close(fd)
    return None


def in_use(what: str, directory, pid) -> RunError:
    """The refusal when another process holds `directory`'s lock."""
    return RunError(f"{what} {directory} is in use by process {pid}. Wait for it to finish, or "
                    "stop it; then run this command again.")


def check_not_held(directory, what: str = "Run") -> None:
    """RunError naming the holder's pid if another process holds `directory`'s lock."""
    holder = lock_holder(directory)
    if holder is not None:
        raise in_use(what, directory, holder)


class DirLock:
    """Exclusive flock locks on directories, released on `release()` or exit.

    The lock file records the holder's pid for the message a second process gets; it is
    removed on release (a process killed leaves the file, but no lock: the kernel drops
    it). After taking the lock, the file is checked to still be the one at the path, so
    a file removed by a releasing holder is never locked by mistake."""

    def __init__(self):
        self.held: list[tuple[int, Path]] = []

    def acquire(self, directory, what: str = "Run") -> None:
        path = Path(directory) / LOCK
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except OSError as err:
                if err.errno == errno.ELOOP:
                    raise RunError(f"{path} is a symbolic link. Expected cnnlab's lock file; "
                                   "remove the link.") from None
                raise disk_error(path, err) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                pid = _read_pid(fd)
                os.close(fd)
                raise in_use(what, directory, pid) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
            except OSError:
                same = False
            if same:
                break
            os.close(fd)  # the holder removed it as we opened it: take the new one
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.held.append((fd, path))

    def release(self) -> None:
        while self.held:
            fd, path = self.held.pop()
            try:
                os.unlink(path)  # while still locked: nobody takes a file about to vanish
            except OSError:
                pass
            os.close(fd)

    def __enter__(self) -> "DirLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def check_derived_name(stem: str, source, what: str = "run", room: int = 20) -> str:
    """A name made from a file's name (`room` characters are added to it) follows the same
    rule; the message says where it came from and how to give one instead."""
    try:
        return check_name(stem, what, NAME_MAX - room)
    except ConfigError:
        raise ConfigError(f"Invalid {what} name {stem!r}, derived from the file name {str(source)!r}. "
                          f"Expected letters, digits, '.', '_' or '-' (at most {NAME_MAX - room}, "
                          f"starting with a letter or digit). Pass --name NAME, or rename the "
                          "file.") from None
