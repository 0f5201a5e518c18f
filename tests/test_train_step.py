"""The training step's fast paths give the results of the plain ones."""
import numpy as np
import pytest
import torch

from cnnlab import losses, optimizers
from cnnlab.builder import build
from cnnlab.config import LECTURE_MODEL
from cnnlab.spec import ModelSpec
from cnnlab.train.data import is_onehot, to_arrays
from cnnlab.train.loop import Trainer


def _trainer(spec, label_smoothing):
    net = build(spec, seed=0)
    opt = optimizers.get("adam").build(net.parameters())
    return Trainer(net, opt, losses.get("categorical_crossentropy"),
                   label_smoothing=label_smoothing)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_one_hot_targets_as_class_indices_give_the_same_loss_and_update(label_smoothing):
    spec = ModelSpec.from_dict(LECTURE_MODEL)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 28, 28, 1), dtype=np.uint8)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 16)]
    data = to_arrays(x, y, spec, losses.get("categorical_crossentropy"))
    assert data.onehot
    fast, plain = _trainer(spec, label_smoothing), _trainer(spec, label_smoothing)
    fast.index_targets = True
    batch = data.batch(torch.arange(16))
    for _ in range(3):
        (loss_f, hits_f), (loss_p, hits_p) = fast.train_step(*batch), plain.train_step(*batch)
        torch.testing.assert_close(loss_f, loss_p, rtol=1e-6, atol=1e-6)
        assert int(hits_f) == int(hits_p)
    for a, b in zip(fast.net.parameters(), plain.net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_only_one_hot_rows_take_the_index_path():
    assert is_onehot(torch.eye(3))
    assert not is_onehot(torch.full((2, 3), 1 / 3))                  # soft labels
    assert not is_onehot(torch.tensor([[0.9, 0.05, 0.05]]))         # smoothed by the user
    assert not is_onehot(torch.tensor([[1.0, 1.0, 0.0]]))           # two hot
    assert not is_onehot(torch.tensor([0.0, 1.0]))                  # not rows
