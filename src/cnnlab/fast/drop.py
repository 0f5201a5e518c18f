"""Dropout in training, on the compiled kernels where they run.

    >>> y = dropout(x, 0.25, training=True)     # x * mask / 0.75, as torch's F.dropout

torch's CPU dropout draws each element's mask from a serial Mersenne Twister and writes
it out: ~2.5 ms of a 7 ms step for the lecture's model with Keras's two Dropout layers
(improve.yaml's dropout variant). The kernel (csrc: dropout_apply) hashes a seed and the
element's position instead, a few vector instructions an element, and keeps no mask: the
backward pass recomputes it from the seed. The seed is drawn from torch's default
generator, so torch.manual_seed fixes the masks and a checkpoint's RNG state resumes
them. The masks are another random stream than torch's: without the kernels (or on a
GPU) Dropout is torch's own, with the same keep probability and scaling.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from . import kernels
from .elementwise import dense, strided

_BITS = 24  # the mask compares 24 bits of the hash with keep probability * 2**24


def covered(x: torch.Tensor, rate: float) -> bool:
    """The kernel applies: a CPU float32 tensor, and 0 < rate < 1."""
    return (kernels.EXT is not None and x.device.type == "cpu" and x.dtype == torch.float32
            and 0.0 < rate < 1.0)


def new_seed() -> int:
    """A seed for one dropout call, from torch's default generator."""
    return int(torch.empty((), dtype=torch.int64).random_())


def apply(x: torch.Tensor, seed: int, rate: float) -> torch.Tensor:
    """x times the call's mask (seed) and 1 / (1 - rate): the forward pass of dropout, and,
    on the output's gradient (same strides as x), its backward pass."""
    threshold = round((1.0 - rate) * (1 << _BITS))
    return kernels.EXT.dropout_apply(dense(x.detach()), seed, threshold, 1.0 / (1.0 - rate))


class _Dropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, rate: float):
        seed = new_seed()
        out = apply(x, seed, rate)
        ctx.seed, ctx.rate, ctx.stride = seed, rate, out.stride()
        return out

    @staticmethod
    def backward(ctx, grad):
        return apply(strided(grad, ctx.stride), ctx.seed, ctx.rate), None


def dropout(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Keras's Dropout(rate) on x: in training, each element zeroed with probability
    `rate` and the others scaled by 1 / (1 - rate); x itself otherwise."""
    if training and covered(x, rate):
        return _Dropout.apply(x, rate)
    return F.dropout(x, rate, training)
