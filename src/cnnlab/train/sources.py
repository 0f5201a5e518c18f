"""Batches from Python generators, `cnnlab.utils.PyDataset` and torch DataLoaders.

Arrays stay the fast path (the loop gathers their batches itself, by index); anything
else `fit`, `evaluate` and `predict` accept goes through a source, which checks and
converts each batch as arrays are checked and yields the same tensors, plus weights:

    >>> source = BatchSource(gen(), convert, steps_per_epoch=100)
    >>> for xb, yb, yi, w in source.batches(seed=0, epoch=0):   # w: None or (n,) float32
    ...     ...

As in Keras: with `steps_per_epoch` one iterator runs on across epochs (a generator that
loops forever needs it); without it every epoch iterates the data afresh (a generator,
which can be iterated only once, is spent after the first epoch). A source that runs out
sets `ran_out`, and the loop warns and stops training, as Keras does.
"""
from __future__ import annotations

import dis
import inspect
import itertools
from typing import Callable

import numpy as np
import torch

from ..errors import DataError


class PyDataset:
    """Keras 3's `keras.utils.PyDataset`: batches by index.

    Subclass it with `__len__` (the number of batches) and `__getitem__(index)` (one batch:
    `(x, y)` or `(x, y, sample_weight)`); `on_epoch_end` runs after every epoch. `workers`,
    `use_multiprocessing` and `max_queue_size` are accepted as in Keras; batches are read
    in this process, one at a time.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__ (batches per epoch).")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__(index).")

    @property
    def num_batches(self) -> int | None:
        return len(self)

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


Sequence = PyDataset  # Keras 2's keras.utils.Sequence, the same protocol


def is_array_like(x) -> bool:
    """NumPy arrays, torch tensors, nested lists of numbers: what arrays mean to `fit`."""
    return isinstance(x, (np.ndarray, torch.Tensor, list)) or (
        hasattr(x, "__array__") and not hasattr(x, "__next__"))


def never_ends(data) -> bool:
    """True for an iterator that provably never stops: itertools.count/cycle, or a
    generator whose code has no return (`while True: yield ...` compiles to none), so it
    can only end by raising."""
    if isinstance(data, (itertools.count, itertools.cycle)):
        return True
    if inspect.isgenerator(data) and data.gi_frame is not None:
        ops = {i.opname for i in dis.get_instructions(data.gi_code)}
        return not ops & {"RETURN_VALUE", "RETURN_CONST"}
    return False


def kind_of(data) -> str:
    """'pydataset', 'iterable' (a DataLoader or other re-iterable object) or 'iterator'
    (a generator: iterable once)."""
    if isinstance(data, PyDataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")
                                       and hasattr(data, "on_epoch_end")):
        return "pydataset"
    if hasattr(data, "__next__"):
        return "iterator"
    if hasattr(data, "__iter__"):
        return "iterable"
    raise DataError(f"Unrecognized data type: x={type(data).__name__}. Expected NumPy arrays, "
                    "a torch tensor, a Python generator, a cnnlab.utils.PyDataset or a torch "
                    "DataLoader.")


def known_length(data) -> int | None:
    try:
        n = len(data)
    except TypeError:  # a generator, an IterableDataset's loader
        return None
    return int(n)


def split_batch(raw, index: int, what: str):
    """(x, y, sample_weight or None) from one batch as yielded by the user's data."""
    if isinstance(raw, dict) or not isinstance(raw, (tuple, list)) or not 2 <= len(raw) <= 3:
        got = f"a {type(raw).__name__}" + (f" of length {len(raw)}" if isinstance(raw, (tuple, list))
                                           else "")
        raise DataError(f"Expected each {what} batch to be a tuple (x, y) or (x, y, "
                        f"sample_weight). Received {got} at batch {index}.")
    x, y = raw[0], raw[1]
    return _numpy(x), _numpy(y), (_numpy(raw[2]) if len(raw) == 3 else None)


def _numpy(a):
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().numpy()
    return a


class BatchSource:
    """Converted batches from a PyDataset, DataLoader or generator (see the module doc).

    `convert(x, y, w) -> (xb, yb, yi, w)` checks and converts one batch.
    """

    def __init__(self, data, convert: Callable, *, steps_per_epoch: int | None = None,
                 what: str = "training", shuffle=False):
        self.data, self.convert, self.what = data, convert, what
        self.kind = kind_of(data)
        self.steps_per_epoch = steps_per_epoch
        length = known_length(data) if self.kind != "iterator" else None
        self.steps = steps_per_epoch or length  # None: learnt after the first epoch
        self.shuffle = bool(shuffle) and self.kind == "pydataset"  # Keras shuffles its batches
        self.ran_out = False
        self._iterator = None

    def _fresh(self, seed: int, epoch: int):
        if self.kind == "pydataset":
            from .loop import epoch_order
            self.data.on_epoch_begin()
            return (self.data[int(i)] for i in epoch_order(len(self.data), seed, epoch,
                                                           self.shuffle))
        return iter(self.data)

    def batches(self, seed: int = 0, epoch: int = 0):
        """This epoch's converted batches: (xb, yb, yi, w)."""
        if self.steps_per_epoch:
            if self._iterator is None:
                self._iterator = self._fresh(seed, epoch)
            raw_batches = itertools.islice(self._run_on(), self.steps_per_epoch)
        else:
            raw_batches = self._fresh(seed, epoch)
        for i, raw in enumerate(raw_batches):
            yield self.convert(*split_batch(raw, i, self.what))

    def _run_on(self):
        """The persistent iterator; marks the source spent when it stops."""
        while True:
            try:
                yield next(self._iterator)
            except StopIteration:
                self._iterator, self.ran_out = None, True
                return

    def raw_batches(self, seed: int = 0, epoch: int = 0):
        """One epoch's batches as the data yields them (predict reads x from them)."""
        return self._fresh(seed, epoch)

    def end_epoch(self) -> None:
        if self.kind == "pydataset":
            self.data.on_epoch_end()

    def collect(self, seed: int = 0, epoch: int = 0):
        """All of one epoch's batches as one `Arrays` (validation and evaluation data)."""
        from .data import Arrays
        parts = list(self.batches(seed, epoch))
        if not parts:
            return None
        xs, ys, yis, ws = zip(*parts)
        weights = None if all(w is None for w in ws) else torch.cat(
            [w if w is not None else torch.ones(len(x)) for x, w in zip(xs, ws)])
        return Arrays(torch.cat(xs), torch.cat(ys), torch.cat(yis), 1.0, weights=weights)
