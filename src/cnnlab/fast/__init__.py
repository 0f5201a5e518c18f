"""cnnlab's speed, fenced (helper `fastpkg` fills in the rest of this package).

    >>> y = fast.batch_norm_train(x, weight, bias, running_mean, running_var, 0.99, 1e-3)
"""
from __future__ import annotations

from .batchnorm import batch_norm_train

__all__ = ["batch_norm_train"]
