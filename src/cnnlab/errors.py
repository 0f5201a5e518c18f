"""Errors that users can cause, and the exit codes the CLI maps them to.

Every user mistake raises a subclass of :class:`CnnlabError` whose message says
what was expected and what was received. The CLI prints the message (never a
traceback) and exits with the class's ``exit_code``.

    >>> raise SpecError("Layer 2 (Conv2D): invalid value for argument `filters`. "
    ...                 "Expected a strictly positive integer. Received filters=0.")
"""
from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Documented exit codes of the `cnnlab` command (listed in the README)."""

    OK = 0
    ERROR = 1          # an unexpected internal error (a bug: please report it)
    USAGE = 2          # bad command line, bad config file (YAML, unknown keys, types)
    SPEC = 3           # a model spec that cannot be built
    DATA = 4           # missing, corrupt or mismatched data, images or labels
    RUN = 5            # run directory problems: exists, not found, resume refused, weights mismatch
    DOWNLOAD = 6       # a dataset could not be fetched or verified
    DISK = 7           # a file could not be written (disk full, permissions)
    NAN = 8            # training stopped by TerminateOnNaN
    INTERRUPTED = 130  # Ctrl-C (SIGINT); a checkpoint was saved
    TERMINATED = 143   # SIGTERM; a checkpoint was saved


class CnnlabError(Exception):
    """Base class of every error a user can cause."""

    exit_code: int = ExitStatus.ERROR


class ConfigError(CnnlabError, ValueError):
    """A config file or a command-line value is malformed."""

    exit_code = ExitStatus.USAGE


class SpecError(CnnlabError, ValueError):
    """A model spec is invalid (unknown layer, bad argument, impossible shape)."""

    exit_code = ExitStatus.SPEC


class DataError(CnnlabError, ValueError):
    """Data files, labels or images are missing, corrupt or do not match the model."""

    exit_code = ExitStatus.DATA


class DownloadError(CnnlabError):
    """A download failed or its checksum did not match."""

    exit_code = ExitStatus.DOWNLOAD


class RunError(CnnlabError):
    """A run directory cannot be created, found, resumed or loaded."""

    exit_code = ExitStatus.RUN


class DiskError(CnnlabError, OSError):
    """A file could not be written; the previous file (if any) is intact."""

    exit_code = ExitStatus.DISK


def unknown_name(kind: str, received: str, choices) -> str:
    """Message for an unknown registry name, listing the valid choices."""
    valid = ", ".join(sorted(choices))
    return f"Unknown {kind} {received!r}. Expected one of: {valid}."


def reject_unknown_keys(d: dict, valid, where: str, error=None) -> None:
    """Raise `error` (ConfigError by default) naming the first key of `d` not in `valid`."""
    unknown = sorted(set(d) - set(valid), key=str)
    if unknown:
        raise (error or ConfigError)(f"Unknown key `{unknown[0]}` in {where}. Expected keys: "
                                     f"{', '.join(valid)}.")
