"""The C allocator's settings for training on the CPU.

glibc's malloc hands freed blocks of a few hundred KB back to the kernel (munmap, or
trimming the top of the heap) and its mmap threshold moves with the sizes it sees. A
training step allocates and frees the same large activations every time, so a step
can page-fault hundreds of times on memory it just gave back: in the lecture's
training loop 100-470 minor faults per step, about 5% of the epoch (PyTorch's CPU
tuning guide suggests jemalloc or tcmalloc for the same reason). Fixing the mmap
threshold at its largest value and keeping up to 256 MB of freed memory makes the
steps reuse the pages they had (under 2 faults per step).

Only glibc has these knobs; elsewhere, or when the user set any MALLOC_* variable
(their choice wins), nothing is changed.
"""
from __future__ import annotations

import ctypes
import functools
import os
import platform

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
SETTINGS = ((M_MMAP_THRESHOLD, 32 << 20),   # glibc's maximum on 64-bit systems
            (M_TRIM_THRESHOLD, 256 << 20),
            (M_TOP_PAD, 16 << 20))


def _glibc():
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") else None


def apply(libc, environ) -> bool:
    """Set SETTINGS through `libc.mallopt` unless `environ` has a MALLOC_* variable or
    there is no glibc (`libc` None); True when all of them took."""
    if libc is None or any(k.startswith("MALLOC_") for k in environ):
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in SETTINGS)


@functools.cache
def keep_freed_memory() -> bool:
    """`apply` to this process, once."""
    return apply(_glibc(), os.environ)
