"""Training data whose images are decoded while the model trains: folder datasets.

`StreamedArrays` is an `Arrays` (labels in memory, checked as for arrays) whose images stay
files until a batch is taken, so `fit` runs it through the array path: the epoch's order
is `epoch_order(n, seed, epoch)` and a resumed run starts at its step, bit for bit as for
arrays. The loop asks it for the epoch's batches ahead of time (`stream`), and workers
decode them while the model trains; `batch(index)` serves any other read (validation
reads its slices in order, which are streamed the same way).

    >>> train, val = folder_arrays(folder_data, spec, loss)
    >>> for xb, yb, yi in train.stream(order, batch_size, start_step, steps): ...
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.folder_data import FolderData
from ..data.image_store import ImageStore
from ..layers.reshaping import takes_raw_pixels
from ..losses import Loss
from .data import Arrays, _targets, check_output, is_onehot


class StreamedArrays(Arrays):
    """Rows `rows` of an `ImageStore` with their loss targets (see the module doc)."""

    def __init__(self, store: ImageStore, rows: np.ndarray, y, y_index, scale: float,
                 onehot: bool = False):
        super().__init__(None, y, y_index, scale, onehot, None)
        self.store, self.rows = store, np.asarray(rows, dtype=np.int64)
        self._ahead = None  # (next slice start, its size, generator) while slices are read in order

    def __len__(self) -> int:
        return len(self.rows)

    def _finish(self, xb: torch.Tensor, index):
        """uint8 images and the targets at `index` as `Arrays.batch` returns them."""
        take = ((lambda t: torch.index_select(t, 0, index)) if isinstance(index, torch.Tensor)
                else (lambda t: t[index]))
        xb = xb.float().mul_(self.scale) if self.scale != 1.0 else xb.float()
        return xb, take(self.y), take(self.y_index)

    def stream(self, order: torch.Tensor, batch_size: int, start: int, steps: int):
        """Batches `start`..`steps`-1 of an epoch in `order`, decoded ahead in workers."""
        return self.stream_chunks([order[s * batch_size:(s + 1) * batch_size]
                                   for s in range(start, steps)])

    def stream_chunks(self, chunks):
        """The batches at each index tensor of `chunks`, in order, decoded ahead in workers
        (data parallelism hands in each process's share of every global batch)."""
        images = self.store.stream([self.rows[c.numpy()] for c in chunks])
        for index, xb in zip(chunks, images):
            yield self._finish(xb, index)

    def batch(self, index):
        if isinstance(index, slice) and index.step in (None, 1):
            return self._slice(index)
        pos = index.numpy() if isinstance(index, torch.Tensor) else np.arange(len(self))[index]
        return self._finish(torch.from_numpy(self.store.decode(self.rows[pos])), index)

    def _slice(self, index: slice):
        """In-order slices (validation, evaluation) come from one stream started at 0."""
        start, stop, _ = index.indices(len(self))
        size = stop - start
        if self._ahead is None or self._ahead[0] != start or self._ahead[1] != size:
            if start != 0:
                return self._finish(torch.from_numpy(self.store.decode(self.rows[start:stop])), index)
            chunks = [self.rows[s:s + size] for s in range(0, len(self), size)]
            self._ahead = [0, size, self.store.stream(chunks)]
        xb = next(self._ahead[2])
        self._ahead[0] = start + size
        if self._ahead[0] >= len(self):
            self._ahead = None
        return self._finish(xb, index)

    def take(self, index: slice) -> "StreamedArrays":
        return StreamedArrays(self.store, self.rows[index], self.y[index], self.y_index[index],
                              self.scale, self.onehot)

    def images(self, batch_size: int = 256):
        """The images as predict takes them, in order: float32 batches as `batch` gives."""
        for start in range(0, len(self), batch_size):
            yield self.batch(slice(start, start + batch_size))[0]


def folder_arrays(fd: FolderData, spec, loss: Loss) -> tuple[StreamedArrays, StreamedArrays | None]:
    """(training, validation or None) of a folder dataset for `spec`'s model and `loss`."""
    check_output(spec, loss)
    # uint8 pixels: scaled to [0, 1] per batch unless the model rescales them itself
    scale = 1.0 if takes_raw_pixels(spec) else 1 / 255

    def part(rows, what):
        y, yi = _targets(fd.labels[rows], len(rows), loss, spec.num_outputs, what)
        return StreamedArrays(fd.store, rows, y, yi, scale,
                              onehot=loss.target == "onehot" and is_onehot(y))
    train = part(fd.train_rows, "training labels")
    return train, (part(fd.val_rows, "validation labels") if len(fd.val_rows) else None)
