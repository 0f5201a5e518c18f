"""Dropout on the compiled kernels (cnnlab.fast.drop): Keras's Dropout, another random stream."""
import importlib

import pytest
import torch
import torch.nn.functional as F

from cnnlab import fast
from cnnlab.layers.modules import Dropout

drop = importlib.import_module("cnnlab.fast.drop")  # the package's `dropout` is the function

pytestmark = pytest.mark.requires_kernels


def _keep_fraction(y):
    return (y != 0).double().mean().item()


@pytest.mark.parametrize("rate", [0.1, 0.25, 0.5, 0.9])
def test_each_element_is_kept_with_probability_one_minus_rate_and_scaled(rate):
    x = torch.rand(1 << 20) + 0.5  # never 0: a zero in the output is a dropped element
    y = fast.dropout(x, rate, training=True)
    n = x.numel()
    sd = ((1 - rate) * rate / n) ** 0.5
    assert abs(_keep_fraction(y) - (1 - rate)) < 5 * sd
    kept = y != 0
    # as torch's dropout: x times the float32 scale, bit for bit
    assert torch.equal(y[kept], x[kept] * torch.tensor(1 / (1 - rate), dtype=torch.float32))


def test_masks_are_fixed_by_torch_seed_and_unrelated_between_calls():
    x = torch.ones(1 << 20)
    torch.manual_seed(3)
    a, b = fast.dropout(x, 0.5, True), fast.dropout(x, 0.5, True)
    torch.manual_seed(3)
    assert torch.equal(fast.dropout(x, 0.5, True), a)
    ma, mb = (a != 0).double() - 0.5, (b != 0).double() - 0.5
    corr = (ma * mb).mean().item() * 4
    assert abs(corr) < 5 / x.numel() ** 0.5
    # not a shifted copy either: the mask against itself moved by a few positions
    for shift in (1, 2, 3, 64):
        assert abs((ma[shift:] * mb[:-shift]).mean().item() * 4) < 5 / x.numel() ** 0.5
    # neighbours are independent within one mask (a weak hash shows runs)
    assert abs((ma[1:] * ma[:-1]).mean().item() * 4) < 5 / x.numel() ** 0.5


def test_the_gradient_passes_where_the_forward_kept_with_the_same_scale():
    x = torch.randn(8, 6, 5, 7).to(memory_format=torch.channels_last).requires_grad_()
    y = fast.dropout(x, 0.3, True)
    assert y.stride() == x.stride()  # laid over memory as the input is
    g = torch.randn(8, 6, 5, 7)  # contiguous: other strides than the output's
    (gx,) = torch.autograd.grad(y, x, g)
    kept = y != 0
    scale = torch.tensor(1 / 0.7, dtype=torch.float32)
    assert torch.equal(gx[kept], g[kept] * scale)
    assert torch.equal(gx[~kept], torch.zeros_like(gx[~kept]))


def test_a_strided_view_is_dropped_as_its_copy_would_be():
    base = torch.randn(6, 40)
    view = base[:, ::2]
    torch.manual_seed(0)
    a = fast.dropout(view, 0.5, True)
    torch.manual_seed(0)
    b = fast.dropout(view.contiguous(), 0.5, True)
    assert torch.equal(a, b)


def test_nan_propagates_as_in_torchs_dropout():
    x = torch.full((4096,), float("nan"))
    y = fast.dropout(x, 0.5, True)
    assert torch.isnan(y).all()  # NaN * 0 is NaN, as torch's mask multiplication


def test_outside_training_and_at_rates_zero_and_one_it_is_torchs_dropout():
    x = torch.randn(100)
    assert torch.equal(fast.dropout(x, 0.5, training=False), x)
    assert torch.equal(fast.dropout(x, 0.0, training=True), x)
    assert torch.equal(fast.dropout(x, 1.0, training=True), F.dropout(x, 1.0, True))
    assert torch.equal(fast.dropout(x.double(), 0.5, training=False), x.double())


def test_the_dropout_module_runs_on_the_kernel_in_training_only():
    m = Dropout(0.4)
    x = torch.rand(4096) + 0.5
    torch.manual_seed(5)
    y = m(x)
    torch.manual_seed(5)
    seed = drop.new_seed()
    assert torch.equal(y, drop.apply(x, seed, 0.4))
    m.eval()
    assert torch.equal(m(x), x)


def test_without_the_kernels_dropout_is_torchs(monkeypatch):
    monkeypatch.setattr(fast.kernels, "EXT", None)
    x = torch.rand(4096) + 0.5
    torch.manual_seed(2)
    y = fast.dropout(x, 0.25, True)
    torch.manual_seed(2)
    assert torch.equal(y, F.dropout(x, 0.25, True))
