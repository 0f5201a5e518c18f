"""The instruction sets cnnlab's C++ kernels are built for, and the one this CPU can run.

One binary per instruction set, each built with only its own flags (never
`-march=native`), so a venv copied to another CPU loads a binary that CPU runs, or
none: never one that dies on an illegal instruction. setup.py reads this file for the
compiler flags (standard library only, so the build can load it before cnnlab exists);
cnnlab.fast.kernels reads it to pick the binary.

    >>> choose(variants("x86_64"), {"avx2", "fma", "sse4_2"}, None)
    ('avx2', '')
"""
from __future__ import annotations

import platform

# variant -> (compiler flags, CPU features it needs as /proc/cpuinfo names them), best first.
# The AVX-512 set is the one torch's own AVX512 kernels need (vl, bw, dq and fma).
X86 = {
    "avx512": (("-mavx2", "-mfma", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq"),
               ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512dq")),
    "avx2": (("-mavx2", "-mfma"), ("avx2", "fma")),
}
# another architecture: the compiler's defaults for it, which every CPU of it runs
GENERIC = {"generic": ((), ())}
# torch.backends.cpu.get_cpu_capability() -> the x86 variants it guarantees (when the
# CPU's features cannot be read, e.g. outside Linux)
TORCH_CAPABILITY = {"AVX512": ("avx512", "avx2"), "AVX2": ("avx2",)}


def variants(machine: str | None = None) -> dict:
    machine = (machine or platform.machine()).lower()
    return X86 if machine in ("x86_64", "amd64") else GENERIC


def cpu_features(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU's feature flags as Linux lists them (only those the kernel also enabled),
    or None where they cannot be read."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def choose(table: dict, features: set[str] | None, torch_capability: str | None
           ) -> tuple[str | None, str]:
    """(the best variant this CPU runs, '') or (None, why none)."""
    for name, (_, needs) in table.items():
        if features is not None:
            if set(needs) <= features:
                return name, ""
        elif not needs or name in TORCH_CAPABILITY.get(torch_capability or "", ()):
            return name, ""
    baseline = "+".join(list(table.values())[-1][1]).upper()
    return None, f"this CPU lacks {baseline}, the least the kernels are built for"
