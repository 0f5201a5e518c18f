"""Data-parallel training across processes: the callback that makes `fit` run as one of N.

    # in each of N processes started by torchrun (RANK, WORLD_SIZE, MASTER_ADDR... set)
    >>> model.fit(x, y, batch_size=128, callbacks=[DataParallel()])

`batch_size` is the global batch, as with Keras's distribution strategies:
every process walks the same epoch order (`loop.epoch_order`, seeded by
(seed, epoch)) and gathers only its contiguous share of each global batch
(`shard`: sizes differ by at most one). After the backward pass the
gradients are summed across processes in one all-reduce, each weighted by
its share's size, and divided by the global batch: the gradient of the mean
loss over the global batch, as one process computes it, up to float
rounding (the order of the additions differs). The step's loss sum and
number correct are summed the same way, so the history, the progress bar and
checkpoints hold the global batch's figures on every process, and every
process's callbacks make the same decisions (early stopping, NaN).

This is DistributedDataParallel's algorithm (identical initial weights, then
averaged gradients before each identical optimizer step) applied at the
optimizer step rather than through torch's `DistributedDataParallel` wrapper:
cnnlab's fast CPU step (`fast.plan_step`, no autograd graph) calls the same
optimizer step, so data parallelism combines with it. What it gives up is
DDP's overlap of communication with the backward pass (one bucket, after it).

Not sharded: validation (every process evaluates the whole validation set
and gets the same figures), and generators / PyDatasets / DataLoaders
(refused with a clear error). Metrics other than loss and accuracy (AUC,
precision, ...) are refused: their state is not summed across processes.
BatchNormalization's running statistics are made rank 0's at each epoch
end (DDP broadcasts them before every forward pass).
"""
from __future__ import annotations

import os
from datetime import timedelta

import torch

from ..errors import ConfigError
from .callbacks import Callback
from .data import Arrays

TIMEOUT_MINUTES = 10   # a collective waiting longer than this on a silent peer fails


def world() -> tuple[int, int]:
    """(rank, world size) from torchrun's environment; (0, 1) outside it."""
    try:
        return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    except ValueError:
        return 0, 1


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def init(device: torch.device) -> None:
    """The default process group (env:// from torchrun), once per process."""
    import torch.distributed as dist
    if not dist.is_initialized():
        dist.init_process_group(backend_for(device), timeout=timedelta(minutes=TIMEOUT_MINUTES))


def shard(index, rank: int, size: int):
    """This process's contiguous share of a global batch's sample positions."""
    if isinstance(index, slice):
        index = torch.arange(index.start or 0, index.stop)
    return torch.tensor_split(index, size)[rank]


class _Shards:
    """The training Arrays' gathers, narrowed to this process's share of each batch."""

    def __init__(self, arrays: Arrays, rank: int, size: int):
        self.rank, self.size = rank, size
        self.local, self.total = 0, 0
        self._batch, self._weights = arrays.batch, arrays.batch_weights
        arrays.batch, arrays.batch_weights = self.batch, self.batch_weights
        if hasattr(arrays, "stream_chunks"):  # folder data: decode only this process's share
            self._chunks = arrays.stream_chunks
            arrays.stream = self.stream

    def batch(self, index):
        mine = shard(index, self.rank, self.size)
        self.local, self.total = len(mine), len(index) if not isinstance(index, slice) else \
            index.stop - (index.start or 0)
        return self._batch(mine)

    def batch_weights(self, index):
        return self._weights(shard(index, self.rank, self.size))

    def stream(self, order, batch_size: int, start: int, steps: int):
        """The loop's read-ahead of an epoch (train/streamed.py), each global batch narrowed
        to this process's share before it is decoded."""
        chunks = [order[s * batch_size:(s + 1) * batch_size] for s in range(start, steps)]
        mine = [shard(c, self.rank, self.size) for c in chunks]
        for whole, part, item in zip(chunks, mine, self._chunks(mine)):
            # set as the batch is handed over: the step that follows reduces with these
            self.local, self.total = len(part), len(whole)
            yield item

    def restore(self, arrays: Arrays) -> None:
        del arrays.batch, arrays.batch_weights  # the class's methods again
        arrays.__dict__.pop("stream", None)


class DataParallel(Callback):
    """Makes `fit` one of `WORLD_SIZE` data-parallel processes (see the module's docstring)."""

    def __init__(self):
        super().__init__()
        self.rank, self.size = world()

    def on_train_begin(self, logs=None):
        t = self.trainer
        if not isinstance(t.train_data, Arrays):
            raise ConfigError("Data-parallel training reads arrays (a dataset by name, npz:, "
                              "idx:, folder:, or arrays given to fit). Received a "
                              f"{type(t.train_data).__name__}: a generator or loader is not "
                              "split across processes.")
        unsummed = [k for k, m in (t.metrics or []) if m is not None]
        if unsummed:
            raise ConfigError("Data-parallel training sums the loss and accuracy across "
                              "processes. Expected metrics=['accuracy'] (or none). Received "
                              f"metrics whose state is not summed: {', '.join(unsummed)}.")
        n, b = len(t.train_data), t.batch_size
        smallest = min(b, n % b or b)
        if smallest < self.size:
            raise ConfigError(f"Invalid value for `batch_size` with {self.size} processes: a "
                              f"batch of {smallest} samples (of {n}, batch_size={b}) cannot be "
                              f"split {self.size} ways. Expected batches of at least "
                              f"{self.size} samples.")
        init(t.device)
        self._params = [p for g in t.optimizer.param_groups for p in g["params"]]
        self._broadcast_state()  # DDP's start: every process from rank 0's weights
        self._shards = _Shards(t.train_data, self.rank, self.size)
        self._wrap(t)

    def on_epoch_end(self, epoch, logs=None):
        self._broadcast_buffers()

    def on_train_end(self, logs=None):
        t = self.trainer
        if getattr(self, "_shards", None) is not None:
            self._shards.restore(t.train_data)
            for name in ("train_step", "weighted_step"):
                t.__dict__.pop(name, None)
            t._step = self._plain_step
            self._shards = None

    # -- the step ------------------------------------------------------------------
    def _wrap(self, t) -> None:
        import torch.distributed as dist
        plain_step, plain_train, plain_weighted = t._step, t.train_step, t.weighted_step
        self._plain_step = plain_step

        def reduced_step():
            grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self._params]
            # weight each process's mean gradient by its share: sum / global batch = the mean
            flat = torch.cat([g.reshape(-1) for g in grads]).mul_(self._shards.local)
            dist.all_reduce(flat)
            flat.div_(self._shards.total)
            offset = 0
            for p, g in zip(self._params, grads):
                k = g.numel()
                p.grad = flat[offset:offset + k].view_as(g).clone(memory_format=torch.preserve_format) \
                    if p.grad is None else p.grad.copy_(flat[offset:offset + k].view_as(g))
                offset += k
            return plain_step()

        def summed(step):
            def run(*args):
                loss_sum, hits = step(*args)
                both = torch.stack([loss_sum.detach().double(), hits.double()])
                dist.all_reduce(both)
                return both[0], both[1]
            return run

        t._step = reduced_step
        t.train_step, t.weighted_step = summed(plain_train), summed(plain_weighted)

    def _broadcast_state(self) -> None:
        import torch.distributed as dist
        with torch.no_grad():
            for tensor in [*self.trainer.net.parameters(), *self.trainer.net.buffers()]:
                dist.broadcast(tensor.data, 0)

    def _broadcast_buffers(self) -> None:
        import torch.distributed as dist
        with torch.no_grad():
            for tensor in self.trainer.net.buffers():
                dist.broadcast(tensor.data, 0)
