"""Training arrays kept on the GPU: batches gathered there, no copy from the host per step.

    >>> train = resident(train, torch.device("cuda"))    # Arrays on the GPU when they fit

With `--device cuda`, a step's batch was gathered on the CPU from pageable memory
and copied synchronously: the GPU waited for the host every step. Arrays that
take at most `SHARE` of the GPU's free memory (MNIST's 60,000 uint8 images:
47 MB) are moved there once; each batch is then an `index_select` on the GPU
(the epoch's order is copied there, 8 bytes a sample, once per batch). The
images stay uint8 until a batch is taken, as on the CPU, so the results are the
same batches bit for bit. Larger arrays stay on the host (pinned memory is not
used: a gather from pinned memory makes a pageable tensor).
"""
from __future__ import annotations

from dataclasses import fields

import torch

from .data import Arrays

SHARE = 0.25   # at most this fraction of the GPU's free memory for the training arrays


class ResidentArrays(Arrays):
    """Arrays whose tensors live on a device; positions are moved there to gather."""

    def batch(self, index):
        if isinstance(index, torch.Tensor):
            index = index.to(self.x.device, non_blocking=True)
        return super().batch(index)

    def batch_weights(self, index):
        if isinstance(index, torch.Tensor) and self.weights is not None:
            index = index.to(self.weights.device, non_blocking=True)
        return super().batch_weights(index)


def nbytes(arrays: Arrays) -> int:
    return sum(t.numel() * t.element_size() for t in (arrays.x, arrays.y, arrays.y_index,
                                                       arrays.weights) if t is not None)


def resident(arrays, device: torch.device, force: bool = False):
    """`arrays` on `device` when it is a GPU with room for them (or `force`), else unchanged."""
    if not isinstance(arrays, Arrays) or isinstance(arrays, ResidentArrays):
        return arrays
    if not force:
        if device.type != "cuda":
            return arrays
        free, _ = torch.cuda.mem_get_info(device)
        if nbytes(arrays) > SHARE * free:
            return arrays
    moved = {f.name: getattr(arrays, f.name) for f in fields(arrays)}
    for name, value in moved.items():
        if isinstance(value, torch.Tensor):
            moved[name] = value.to(device)
    return ResidentArrays(**moved)
