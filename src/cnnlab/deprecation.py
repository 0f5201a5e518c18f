"""One-line notices for Keras 2 spellings that cnnlab still accepts (`lr=`, `np_utils`).

    >>> deprecated("lr", "learning_rate")
    FutureWarning: cnnlab: `lr` is Keras 2's spelling; use `learning_rate` (Keras 3).

FutureWarning, not DeprecationWarning: Python shows it by default, in scripts and
notebooks alike. Each spelling is noticed once per process.
"""
from __future__ import annotations

import warnings

_NOTICED: set = set()


def deprecated(old: str, new: str, stacklevel: int = 3) -> None:
    if old not in _NOTICED:
        _NOTICED.add(old)
        warnings.warn(f"cnnlab: `{old}` is Keras 2's spelling; use `{new}` (Keras 3).",
                      FutureWarning, stacklevel=stacklevel)
