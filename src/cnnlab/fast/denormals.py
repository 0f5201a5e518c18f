"""Denormal floats flushed to zero while training on the CPU, as TensorFlow does.

Adam's first moment of a weight that never gets a gradient (the weights of a dead ReLU
unit) shrinks by beta_1 = 0.9 every step and becomes a denormal float after a few
hundred steps; the CPU computes on denormals about ten times slower. On the lecture's
model ~80,000 such moments made Adam's step 1.0-1.5 ms instead of 0.15 from the second
epoch on (a sixth of the step). Flushing them (flush-to-zero and denormals-are-zero)
changes only values below 1.2e-38. TensorFlow's CPU kernels run that way too.

    >>> with flushed(trainer.device):
    ...     ...  # the training loop
"""
from __future__ import annotations

import contextlib

import torch

from . import kernels


def set_flush(on: bool) -> bool:
    """Flush on this thread and torch's worker threads (the compiled kernels; without them,
    this thread only); returns whether it was on before."""
    if kernels.EXT is not None:
        return kernels.EXT.set_flush_denormal(on)
    torch.set_flush_denormal(on)
    return False


@contextlib.contextmanager
def flushed(device):
    """Denormals flushed inside the block on a CPU device, the previous mode restored after."""
    if torch.device(device).type != "cpu":
        yield
        return
    before = set_flush(True)
    try:
        yield
    finally:
        set_flush(before)
