"""Arrays kept on the training device: the same batches as gathered on the host."""
import numpy as np
import torch

from cnnlab.train.data import Arrays
from cnnlab.train.device_data import ResidentArrays, nbytes, resident


def arrays():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (20, 4, 4, 1), dtype=np.uint8))
    yi = torch.from_numpy(rng.integers(0, 3, 20))
    return Arrays(x, torch.eye(3)[yi], yi, 1 / 255, True, torch.rand(20))


def test_resident_arrays_give_the_batches_and_weights_the_host_gathers():
    a = arrays()
    r = resident(a, torch.device("cpu"), force=True)
    assert isinstance(r, ResidentArrays) and nbytes(r) == nbytes(a)
    index = torch.tensor([7, 3, 19, 0])
    for got, want in zip(r.batch(index), a.batch(index)):
        assert torch.equal(got, want)
    assert torch.equal(r.batch_weights(index), a.batch_weights(index))
    assert torch.equal(r.batch(slice(2, 5))[0], a.batch(slice(2, 5))[0])


def test_only_a_gpu_keeps_the_arrays_and_sources_pass_through():
    a = arrays()
    assert resident(a, torch.device("cpu")) is a      # the host is where they already are
    assert resident(None, torch.device("cpu")) is None
    r = resident(a, torch.device("cpu"), force=True)
    assert resident(r, torch.device("cpu"), force=True) is r
