"""The process settings a fit on the CPU runs under, and the one notice about the kernels.

    >>> with cpu_settings(trainer.device):
    ...     ...  # the training loop

Denormals are flushed to zero inside (denormals.py) and glibc's allocator keeps the
pages a step frees (memory.py). The first fit on the CPU without the compiled kernels
prints one line to stderr saying why and how to build them (kernels.notice).
"""
from __future__ import annotations

import contextlib
import sys

import torch

from . import denormals, kernels
from .memory import keep_freed_memory

_noticed = False


def notice_once(stream=None) -> bool:
    """Print kernels.notice() once per process where the kernels do not run; True if now."""
    global _noticed
    if _noticed or kernels.EXT is not None:
        return False
    _noticed = True
    print(kernels.notice(), file=stream or sys.stderr, flush=True)
    return True


@contextlib.contextmanager
def cpu_settings(device):
    """The settings above inside the block on a CPU device (nothing on others)."""
    if torch.device(device).type != "cpu":
        yield
        return
    notice_once()
    keep_freed_memory()  # steps reuse their pages instead of faulting them in again
    with denormals.flushed(device):
        yield
