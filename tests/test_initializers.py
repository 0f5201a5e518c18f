"""Keras's initializers: the same distributions, with fans computed as Keras does."""
import math

import pytest
import torch

from cnnlab.builder import build
from cnnlab.spec import ModelSpec


def dense_kernel(init, fan_in=1000, units=500):
    spec = ModelSpec.from_dict({"input_shape": [fan_in], "layers": [
        {"Dense": {"units": units, "kernel_initializer": init, "bias_initializer": "ones"}}]})
    torch.manual_seed(0)
    layer = build(spec).layers[0]
    return layer.weight.detach(), layer.bias.detach()


@pytest.mark.parametrize("init, std, bound", [
    ("glorot_uniform", math.sqrt(2 / 1500), math.sqrt(6 / 1500)),
    ("he_uniform", math.sqrt(2 / 1000), math.sqrt(6 / 1000)),
    ("lecun_uniform", math.sqrt(1 / 1000), math.sqrt(3 / 1000)),
    # truncated at 2 std of the underlying normal, rescaled to keep the variance
    ("glorot_normal", math.sqrt(2 / 1500), 2 * math.sqrt(2 / 1500) / 0.87962566),
    ("he_normal", math.sqrt(2 / 1000), 2 * math.sqrt(2 / 1000) / 0.87962566),
    ("lecun_normal", math.sqrt(1 / 1000), 2 * math.sqrt(1 / 1000) / 0.87962566),
])
def test_variance_scaling_initializers(init, std, bound):
    w, b = dense_kernel(init)
    assert w.std().item() == pytest.approx(std, rel=0.02)
    assert w.abs().max().item() <= bound * 1.0001
    assert w.abs().max().item() >= bound * 0.95  # the support really reaches the bound
    assert torch.all(b == 1)


def test_conv_fans_count_the_receptive_field():
    # Conv2D kernel (3, 3, 16, 32): fan_in = 144, fan_out = 288, as Keras computes them
    spec = ModelSpec.from_dict({"input_shape": [20, 20, 16], "layers": [
        {"Conv2D": {"filters": 32, "kernel_size": 3}}]})
    torch.manual_seed(0)
    w = build(spec).layers[0].weight.detach()
    bound = math.sqrt(6 / (144 + 288))
    assert w.abs().max().item() <= bound and w.abs().max().item() > 0.95 * bound
    assert torch.all(build(spec).layers[0].bias == 0)  # bias_initializer defaults to zeros
