"""Which compiled kernels this process runs, or why it runs none.

The binary for the best instruction set this CPU has (isa.py) is imported, unless the
environment variable CNNLAB_NO_KERNELS is set to anything but '' or '0' (CI runs the
suite both ways). Where that is only the AVX2 build, torch's own ops are faster, so it is
imported only with CNNLAB_KERNELS=on (the test suite sets it, to check the kernels). Without a binary every layer runs on torch's own ops with the same
results; `notice()` is the one line that says why, and how to build them. The kernels'
fast paths (Winograd, the winners-only backward, the vector code) are AVX-512 code;
built for AVX2 they are portable but not faster than torch's own ops.

    >>> from cnnlab.fast import kernels
    >>> kernels.EXT is None, kernels.REASON     # (False, '') where they run
"""
from __future__ import annotations

import importlib
import importlib.util
import os

from . import isa

ENV = "CNNLAB_NO_KERNELS"
FORCE = "CNNLAB_KERNELS"  # "on": use the best binary this CPU runs, even where it is slower
NO_AVX512 = ("this CPU has no AVX-512, and here torch's own ops train faster than the "
             "kernels' AVX2 build")
BUILD_HINT = ("install cnnlab where a C++ compiler is found to build them "
              "(`make venv`, or `pip install .`; see README, 'Compiled kernels')")


def _module(variant: str) -> str:
    return f"{__package__}._kernels_{variant}"


def built_variants() -> list[str]:
    """The variants whose binaries exist next to this file (none imported)."""
    return [v for v in isa.variants() if importlib.util.find_spec(_module(v)) is not None]


def _torch_capability() -> str | None:
    try:
        import torch
        return torch.backends.cpu.get_cpu_capability()
    except (ImportError, AttributeError):
        return None


def load(environ=os.environ):
    """(the imported binary, '') or (None, why not)."""
    if environ.get(ENV, "") not in ("", "0"):
        return None, f"{ENV}={environ[ENV]} is set"
    built = built_variants()
    if not built:
        return None, "they were not built with this install"
    variant, why = isa.choose({v: isa.variants()[v] for v in built}, isa.cpu_features(),
                              _torch_capability())
    if variant is None:
        return None, why
    # the kernels' fast paths (Winograd, the winners-only backward) are AVX-512 code; the
    # AVX2 build is correct but slower than torch's ops (benchmarks/kernels_ab.py: 1.22x
    # the epoch of the lecture's model on an AVX2-only EPYC), so it runs only when asked for
    if variant != "avx512" and environ.get(FORCE, "") != "on":
        return None, NO_AVX512
    try:
        return importlib.import_module(_module(variant)), ""
    except ImportError as err:  # built against another torch, or a broken file
        return None, f"the {variant} binary does not load ({err})"


EXT, REASON = load()


def notice(reason: str | None = None) -> str:
    """One line for the first fit without the kernels."""
    reason = REASON if reason is None else reason
    hint = (f"unset {ENV} to use them" if reason.startswith(ENV) else
            f"set {FORCE}=on to use their AVX2 build anyway" if reason == NO_AVX512 else
            BUILD_HINT)
    return (f"cnnlab: note: training without cnnlab's compiled CPU kernels ({reason}): "
            f"Conv2D + MaxPooling2D run on torch's own ops, with the same results, slower "
            f"on CPUs with AVX-512; {hint}.")
