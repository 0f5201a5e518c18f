"""Dynamic batching: requests in flight share one forward pass.

    >>> batcher = Batcher(served.predict, max_batch=256, max_wait_s=0.002)
    >>> probs = await batcher.submit(uint8_images)     # inside the event loop
    >>> batcher.calls, batcher.images                  # forward passes run, images through them

The first request to arrive starts a batch; requests arriving within `max_wait_s`
(or until `max_batch` images are waiting) join it. The batch waits only for requests
it knows are coming: the app `announce()`s each request as it arrives, before its
body is read and decoded, so a lone request runs at once instead of waiting
`max_wait_s` for company that is not there. The model runs in one worker
thread, outside the event loop, so the server keeps accepting requests while it
computes; the next batch collects during the current one's forward pass. With
`max_wait_s=0` and `max_batch=1` every request runs alone (the benchmark's "off").
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Callable

import numpy as np


class Batcher:
    def __init__(self, predict: Callable[[np.ndarray], np.ndarray], max_batch: int = 256,
                 max_wait_s: float = 0.002):
        self.predict = predict
        self.max_batch = max_batch      # images per forward pass
        self.max_wait_s = max_wait_s    # seconds a batch waits for company after its first request
        self.calls = 0                  # forward passes run
        self.images = 0                 # images through them
        self.coming = 0                 # requests announced, not yet taken into a batch
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        # one thread: the model is not thread-safe, and one forward pass already uses every core
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="cnnlab-predict")

    def announce(self) -> None:
        """A request for this model has arrived; `submit` or `withdraw` follows."""
        self.coming += 1

    def withdraw(self) -> None:
        """An announced request was refused before it reached `submit`."""
        self.coming -= 1

    async def submit(self, batch: np.ndarray) -> np.ndarray:
        """Probabilities for `batch` (N, *input_shape), computed with whatever else is waiting.
        Counts as the arrival of an announced request (or of one that was not)."""
        if self._task is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._loop())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((batch, future))
        return await future

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self._queue.get()
            items, count = [first], len(first[0])
            deadline = loop.time() + self.max_wait_s
            while count < self.max_batch:
                if self.coming <= len(items):  # nothing else announced: no one to wait for
                    try:
                        item = self._queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    items.append(item)
                    count += len(item[0])
                    continue
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - loop.time()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self._queue.get(), left)
                    except asyncio.TimeoutError:
                        break
                items.append(item)
                count += len(item[0])
            self.coming = max(0, self.coming - len(items))
            items = [(b, f) for b, f in items if not f.cancelled()]  # timed-out requests
            if items:
                await self._run(loop, items)

    async def _run(self, loop, items) -> None:
        x = items[0][0] if len(items) == 1 else np.concatenate([b for b, _ in items])
        try:
            probs = await loop.run_in_executor(self._pool, self.predict, x)
        except Exception as err:  # hand the failure to every request of the batch
            for _, f in items:
                if not f.done():
                    f.set_exception(err)
            return
        self.calls += 1
        self.images += len(x)
        at = 0
        for b, f in items:
            if not f.done():
                f.set_result(probs[at:at + len(b)])
            at += len(b)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        self._pool.shutdown(wait=True)
