"""Where datasets may live on this machine, resolved from the environment at call time.

Every location can be redirected by an environment variable, so tests and
air-gapped sites never touch the real ~/.cache, ~/.keras or the network:

| variable | meaning | default |
| --- | --- | --- |
| `CNNLAB_DATA` | a directory the user keeps datasets in (same as `--data-dir`) | unset |
| `XDG_CACHE_HOME` | cnnlab's cache is `$XDG_CACHE_HOME/cnnlab` | `~/.cache` |
| `KERAS_HOME` | Keras's home; its cache is `$KERAS_HOME/datasets` | `~/.keras` |
| `CNNLAB_SYSTEM_DATA` | `:`-separated roots of system-installed datasets; empty disables | `/usr/share/datasets` |
| `CNNLAB_MIRRORS` | `,`-separated base URLs that replace the canonical mirrors | unset |
| `CNNLAB_DOWNLOAD_TIMEOUT` | seconds a download may stall before it is abandoned | 30 |

An air-gapped mirror should copy Keras's layout, one base URL serving `mnist.npz` and
Fashion-MNIST's four `*-idx?-ubyte.gz` files: a file is fetched as base URL + file name.
Downloads also honour the usual `https_proxy` / `http_proxy` variables (urllib does).

    >>> from cnnlab.data import paths
    >>> paths.cache_dir()          # doctest: +SKIP
    PosixPath('/home/me/.cache/cnnlab')
"""
from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError

DEFAULT_SYSTEM_ROOTS = ("/usr/share/datasets",)   # Debian/Ubuntu `dataset-*` packages
DEFAULT_TIMEOUT_S = 30.0                          # seconds without data before a try is abandoned


def data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """The user's data directory: `explicit` (from --data-dir), else $CNNLAB_DATA, else None."""
    value = explicit if explicit is not None else os.environ.get("CNNLAB_DATA") or None
    return Path(value).expanduser() if value is not None else None


def cache_dir() -> Path:
    """cnnlab's download cache: `$XDG_CACHE_HOME/cnnlab`, default `~/.cache/cnnlab`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "cnnlab"


def keras_datasets_dir() -> Path:
    """Keras's dataset cache: `$KERAS_HOME/datasets`, default `~/.keras/datasets`."""
    base = os.environ.get("KERAS_HOME") or str(Path.home() / ".keras")
    return Path(base).expanduser() / "datasets"


def system_roots() -> list[Path]:
    """Roots of system-installed datasets ($CNNLAB_SYSTEM_DATA; empty string disables)."""
    value = os.environ.get("CNNLAB_SYSTEM_DATA")
    if value is None:
        return [Path(p) for p in DEFAULT_SYSTEM_ROOTS]
    return [Path(p) for p in value.split(":") if p]


def mirror_override() -> tuple[str, ...] | None:
    """Base URLs from $CNNLAB_MIRRORS (each ending in '/'), or None when unset."""
    value = os.environ.get("CNNLAB_MIRRORS")
    if value is None or not value.strip():
        return None
    return tuple(u.strip() if u.strip().endswith("/") else u.strip() + "/"
                 for u in value.split(",") if u.strip())


def download_timeout() -> float:
    """Seconds a download may go without receiving data ($CNNLAB_DOWNLOAD_TIMEOUT)."""
    value = os.environ.get("CNNLAB_DOWNLOAD_TIMEOUT")
    if value is None or value == "":
        return DEFAULT_TIMEOUT_S
    try:
        timeout = float(value)
    except ValueError:
        timeout = -1.0
    if not timeout > 0:
        raise ConfigError("Invalid value for environment variable `CNNLAB_DOWNLOAD_TIMEOUT`. "
                          f"Expected a positive number of seconds. Received {value!r}.")
    return timeout
