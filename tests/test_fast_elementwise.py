"""ELU and SELU on the compiled kernels (cnnlab.fast.elu) against torch's, within rounding."""
import pytest
import torch
import torch.nn.functional as F

from cnnlab import activations, fast

pytestmark = pytest.mark.requires_kernels

SELU = (fast.SELU_ALPHA, fast.SELU_SCALE)
CASES = {"elu": ((1.0, 1.0), lambda x: F.elu(x)), "selu": (SELU, F.selu),
         "elu_alpha_0.3": ((0.3, 1.0), lambda x: F.elu(x, 0.3))}


def _inputs():
    span = torch.linspace(-100, 100, 200_001, dtype=torch.float64)
    small = torch.linspace(-1e-3, 1e-3, 2001, dtype=torch.float64)
    x = torch.cat([span, small, torch.tensor([0.0, -0.0, -88.5, -1e-30], dtype=torch.float64)])
    return x.float().double()  # exactly float32 values: the reference sees the kernel's inputs


@pytest.mark.parametrize("name", sorted(CASES))
def test_values_and_gradients_match_torchs_in_double_within_float_rounding(name):
    (alpha, scale), ref = CASES[name]
    x64 = _inputs().requires_grad_()
    y64 = ref(x64)
    g64 = torch.randn_like(x64)
    (gx64,) = torch.autograd.grad(y64, x64, g64)
    x = x64.detach().float().requires_grad_()
    y = fast.elu(x, alpha, scale)
    (gx,) = torch.autograd.grad(y, x, g64.float())
    # float32 rounding of the output and the exponential: worst seen 1.2e-7 relative
    bound = 4e-7
    assert ((y.double() - y64.detach()).abs() <= bound * y64.detach().abs() + 1e-37).all()
    assert ((gx.double() - gx64).abs() <= bound * gx64.abs() + 1e-37).all()


def test_special_values_as_torch():
    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0])
    for alpha, scale in ((1.0, 1.0), SELU):
        y = fast.elu(x, alpha, scale)
        assert torch.isnan(y[0]) and y[1] == float("inf")
        assert y[2] == -alpha * scale and y[3] == 0 and y[4] == 0


def test_channels_last_maps_and_gradients_in_other_strides():
    x = torch.randn(4, 6, 5, 7).to(memory_format=torch.channels_last).requires_grad_()
    y = fast.elu(x)
    assert y.stride() == x.stride()
    g = torch.randn(4, 6, 5, 7)  # contiguous
    (gx,) = torch.autograd.grad(y, x, g)
    xr = x.detach().requires_grad_()
    (gr,) = torch.autograd.grad(F.elu(xr), xr, g)
    torch.testing.assert_close(y, F.elu(x.detach()), rtol=4e-7, atol=1e-7)
    torch.testing.assert_close(gx, gr, rtol=4e-7, atol=1e-7)


def test_keras_elu_and_selu_activations_run_on_them_and_torchs_without(monkeypatch):
    x = torch.randn(1000)
    for name, (alpha, scale), ref in (("elu", (1.0, 1.0), F.elu), ("selu", SELU, F.selu)):
        act = activations.get(name)
        assert torch.equal(act.apply(x), fast.elu(x, alpha, scale))
        torch.testing.assert_close(act.apply(x), ref(x), rtol=4e-7, atol=1e-7)
    monkeypatch.setattr(fast.kernels, "EXT", None)
    assert torch.equal(activations.get("elu").apply(x), F.elu(x))
    assert torch.equal(activations.get("selu").apply(x), F.selu(x))
    assert torch.equal(fast.elu(x, 0.5, 2.0), F.elu(x, 0.5) * 2.0)
