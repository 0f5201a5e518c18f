"""Download one file from a list of mirrors, safely: verified, atomic, never half-written.

The file is streamed into a temporary `.NAME.*.part` file next to its destination while
its SHA-256 is computed; only a complete file whose SHA-256 matches is renamed into place.
Any failure (HTTP error, stall past the timeout, truncated transfer, checksum mismatch,
Ctrl-C) deletes the temporary file, so the cache never holds a partial or unverified file.
Standard library only (urllib).

    >>> fetch("mnist.npz", "731c5ac6...", Path("~/.cache/cnnlab"),
    ...       ["https://storage.googleapis.com/tensorflow/tf-keras-datasets/"])  # doctest: +SKIP
    Fetched(path=PosixPath('/home/me/.cache/cnnlab/mnist.npz'), url='https://...')
"""
from __future__ import annotations

import hashlib
import http.client
import os
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import DownloadError
from . import paths

CHUNK = 1 << 16              # bytes per read
STALE_PART_S = 600           # a .part file untouched this long belongs to a dead process


@dataclass(frozen=True)
class Fetched:
    """A verified file in place, and the URL it came from."""

    path: Path
    url: str


@dataclass(frozen=True)
class Attempt:
    """One try of one URL and what happened."""

    url: str
    outcome: str


class _Failed(Exception):
    """A failed try; `retry` says whether the same mirror may succeed if tried again."""

    def __init__(self, outcome: str, retry: bool):
        super().__init__(outcome)
        self.outcome, self.retry = outcome, retry


class _Progress:
    """A one-line progress bar on a TTY stream, redrawn at most every 0.1 s."""

    def __init__(self, stream, label: str, total: int | None):
        self.stream, self.label, self.total = stream, label, total
        self.done, self.start, self.last = 0, time.monotonic(), 0.0

    def update(self, n: int):
        self.done += n
        now = time.monotonic()
        if now - self.last >= 0.1 or (self.total and self.done >= self.total):
            self.last = now
            self._draw(now)

    def _draw(self, now: float):
        mb, rate = self.done / 1e6, self.done / 1e6 / max(now - self.start, 1e-6)
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 30)
            text = f"{frac:4.0%} [{bar:<30}] {mb:.1f}/{self.total / 1e6:.1f} MB {rate:.1f} MB/s"
        else:
            text = f"{mb:.1f} MB {rate:.1f} MB/s"
        self.stream.write(f"\r{self.label} {text}")
        self.stream.flush()

    def close(self):
        self.stream.write("\n")
        self.stream.flush()


def sha256_file(path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _user_agent() -> str:
    try:
        from importlib.metadata import version
        return f"cnnlab/{version('cnnlab')}"
    except Exception:   # not installed as a distribution (e.g. run from a source tree)
        return "cnnlab"


def _describe(error: BaseException, timeout: float) -> _Failed:
    """Turn a urllib/socket exception into a sentence and a retry decision."""
    if isinstance(error, urllib.error.HTTPError):
        return _Failed(f"HTTP {error.code} {error.reason}", retry=error.code >= 500)
    connecting = isinstance(error, urllib.error.URLError)   # urlopen wraps connect errors
    reason = error.reason if connecting else error
    if isinstance(reason, (TimeoutError, socket.timeout)):
        # A host that never answers (a firewall dropping packets) is not retried: offline
        # machines must reach the fallback quickly. A stall mid-transfer is retried.
        if connecting:
            return _Failed(f"timed out connecting: no answer for {timeout:g} s", retry=False)
        return _Failed(f"timed out: no data for {timeout:g} s", retry=True)
    if isinstance(reason, socket.gaierror):
        return _Failed(f"host not found, no network? ({reason.strerror or reason})", retry=False)
    if isinstance(reason, ConnectionRefusedError):
        return _Failed("connection refused", retry=False)
    if isinstance(reason, http.client.IncompleteRead):
        return _Failed(f"truncated transfer: connection closed after {len(reason.partial)} "
                       "bytes of a chunk", retry=True)
    if isinstance(reason, ValueError):   # malformed URL in CNNLAB_MIRRORS
        return _Failed(f"invalid URL ({reason})", retry=False)
    return _Failed(f"{type(reason).__name__}: {reason}", retry=True)


def _try_once(url: str, sha256: str, dest: Path, timeout: float, progress: bool) -> None:
    """Fetch `url` into `dest` atomically, or raise _Failed leaving nothing behind."""
    request = urllib.request.Request(url, headers={"User-Agent": _user_agent()})
    tmp = None
    bar = None
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if progress and sys.stderr.isatty():
                bar = _Progress(sys.stderr, f"Downloading {dest.name}", total)
            elif progress:
                print(f"cnnlab: downloading {url}", file=sys.stderr)
            try:   # created only now, so an offline try leaves no empty folders behind
                dest.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
            except OSError as e:
                raise _Failed(f"cannot write to {dest.parent} ({e})", retry=False) from e
            digest, received = hashlib.sha256(), 0
            with os.fdopen(fd, "wb") as out:
                while chunk := response.read(CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    received += len(chunk)
                    if bar:
                        bar.update(len(chunk))
                out.flush()
                os.fsync(out.fileno())
        if total is not None and received != total:
            raise _Failed(f"truncated transfer: received {received} of {total} bytes", retry=True)
        if digest.hexdigest() != sha256:
            raise _Failed(f"checksum mismatch: expected sha256 {sha256}, received "
                          f"{digest.hexdigest()} ({received} bytes); file discarded", retry=False)
        os.replace(tmp, dest)
        tmp = None
    except _Failed:
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        raise _describe(e, timeout) from e
    finally:
        if bar:
            bar.close()
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _remove_stale_parts(directory: Path, name: str) -> None:
    """Delete .part files of `name` left by processes killed mid-download."""
    now = time.time()
    for part in directory.glob(f".{name}.*.part"):
        try:
            if now - part.stat().st_mtime > STALE_PART_S:
                part.unlink()
        except OSError:
            pass


def fetch(name: str, sha256: str, dest_dir, mirrors, *, timeout: float | None = None,
          attempts_per_mirror: int = 2, retry_wait_s: float = 1.0, progress: bool = True) -> Fetched:
    """Download `name` from the first of `mirrors` (base URLs) that serves it with `sha256`.

    Each mirror is tried up to `attempts_per_mirror` times for transient failures (stall,
    truncation, 5xx), once for permanent ones (404, checksum mismatch, unknown host).
    `timeout` is the seconds a connection may go without data (default $CNNLAB_DOWNLOAD_TIMEOUT
    or 30). Returns where `dest_dir/name` came from; raises DownloadError listing every try.
    """
    dest_dir = Path(dest_dir)
    timeout = paths.download_timeout() if timeout is None else timeout
    if dest_dir.is_dir():
        _remove_stale_parts(dest_dir, name)
    dest = dest_dir / name
    attempts: list[Attempt] = []
    for base in mirrors:
        url = base + name
        for attempt in range(attempts_per_mirror):
            try:
                _try_once(url, sha256, dest, timeout, progress)
                return Fetched(dest, url)
            except _Failed as failure:
                attempts.append(Attempt(url, failure.outcome))
                if not failure.retry or attempt + 1 == attempts_per_mirror:
                    break
                time.sleep(retry_wait_s * (attempt + 1))
    raise download_error(name, dest_dir, attempts)


def download_error(name: str, dest_dir: Path, attempts: list[Attempt]) -> DownloadError:
    """DownloadError listing each try; `.attempts` keeps them for callers."""
    tried = "\n".join(f"  {a.url}: {a.outcome}" for a in attempts) or "  (no mirror configured)"
    error = DownloadError(
        f"Could not download {name}: every mirror failed.\n{tried}\n"
        f"Nothing was written to {dest_dir}. Place a copy of {name} there, or set "
        "CNNLAB_MIRRORS to comma-separated base URLs you can reach.")
    error.attempts = attempts
    return error
