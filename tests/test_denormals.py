"""Denormals flushed to zero while training on the CPU (fast/denormals.py)."""
import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.fast import denormals

DENORMAL = 1e-39  # below float32's smallest normal, 1.18e-38


def _survives(n: int) -> bool:
    """Whether a denormal comes out of torch's arithmetic (n elements: over ~32k the
    work is split between torch's threads)."""
    x = torch.full((n,), DENORMAL)
    return bool(((x * 1.5) != 0).all())


@pytest.mark.requires_kernels  # the kernels set the flag on torch's threads too
def test_flush_reaches_torchs_worker_threads_and_is_undone():
    assert _survives(8) and _survives(1 << 21)
    before = denormals.set_flush(True)
    try:
        assert not _survives(8)          # this thread
        assert not _survives(1 << 21)    # and the chunks torch's other threads compute
    finally:
        denormals.set_flush(before)
    assert _survives(8) and _survives(1 << 21)


def test_fit_flushes_inside_and_restores_after():
    seen = []

    class Probe(cnnlab.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(_survives(8))

    m = cnnlab.Sequential([cnnlab.layers.Flatten(input_shape=(4, 4, 1)),
                           cnnlab.layers.Dense(2, activation="softmax")])
    m.compile(loss="categorical_crossentropy", optimizer="adam")
    m.fit(np.zeros((8, 4, 4, 1), np.float32), np.eye(2, dtype=np.float32)[[0, 1] * 4],
          batch_size=4, epochs=1, verbose=0, callbacks=[Probe()])
    assert seen == [False, False]
    assert _survives(8)
