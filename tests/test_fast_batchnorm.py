"""fast.batch_norm_train equals the literal BatchNormalization formula (modules.BatchNorm
with `literal = True`): outputs, every gradient and Keras's moving statistics.

Different summation orders (torch's one-pass kernels against var_mean and autograd's op by
op differentiation), so the comparison is within float32 rounding: rtol 1e-5, atol 1e-5
on values of order 1 (float32's epsilon is 1.2e-7; reductions over a few thousand values).
"""
import copy

import pytest
import torch

from cnnlab.builder import build
from cnnlab.layers.modules import BatchNorm
from cnnlab.spec import ModelSpec

TOL = dict(rtol=1e-5, atol=1e-5)


def _pair(channels, center=True, scale=True, image=True, momentum=0.99):
    fast = BatchNorm(channels, momentum, 1e-3, center, scale, image)
    with torch.no_grad():  # not the initial 1/0, so that a mixed-up gamma/beta shows
        for p in fast.parameters():
            p.uniform_(0.5, 1.5)
    literal = copy.deepcopy(fast)
    literal.literal = True
    return fast, literal


def _run(module, x, g):
    x = x.detach().clone().requires_grad_()
    module.train()
    y = module(x)
    y.backward(g)
    return y, x.grad, [p.grad for p in module.parameters()]


@pytest.mark.parametrize("layout", ["channels_last", "contiguous"])
@pytest.mark.parametrize("center,scale", [(True, True), (False, True), (True, False),
                                          (False, False)])
def test_image_batchnorm_matches_the_literal_formula(layout, center, scale):
    torch.manual_seed(0)
    fast, literal = _pair(5, center, scale)
    x = torch.randn(6, 5, 7, 9) * 3 + 2
    x = x.relu()  # as after Conv2D(relu): skewed, with zeros
    if layout == "channels_last":
        x = x.to(memory_format=torch.channels_last)
    g = torch.randn_like(x)
    y1, gx1, gp1 = _run(fast, x, g)
    y2, gx2, gp2 = _run(literal, x, g)
    torch.testing.assert_close(y1, y2, **TOL)
    torch.testing.assert_close(gx1, gx2, **TOL)
    for a, b in zip(gp1, gp2, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    torch.testing.assert_close(fast.running_mean, literal.running_mean, **TOL)
    torch.testing.assert_close(fast.running_var, literal.running_var, **TOL)
    assert not torch.equal(fast.running_var, torch.ones(5))  # really updated


def test_dense_batchnorm_matches_the_literal_formula_over_every_leading_axis():
    torch.manual_seed(1)
    fast, literal = _pair(4, image=False, momentum=0.9)
    x = torch.randn(3, 8, 4) * 2 - 1  # (N, T, C): statistics over N and T
    g = torch.randn_like(x)
    for _ in range(3):  # moving statistics over several steps
        y1, gx1, gp1 = _run(fast, x, g)
        y2, gx2, gp2 = _run(literal, x, g)
        for p in (*fast.parameters(), *literal.parameters()):
            p.grad = None
    torch.testing.assert_close(y1, y2, **TOL)
    torch.testing.assert_close(gx1, gx2, **TOL)
    for a, b in zip(gp1, gp2, strict=True):
        torch.testing.assert_close(a, b, **TOL)
    torch.testing.assert_close(fast.running_var, literal.running_var, **TOL)


def test_dead_channel_keeps_a_moving_variance_of_exactly_momentum():
    fast, _ = _pair(2)
    x = torch.zeros(4, 2, 3, 3)  # no spread at all: batch variance 0, not a rounding below
    fast.train()(x)
    assert torch.all(fast.running_var >= 0.99 - 1e-7)


def test_inference_uses_the_literal_formula_bit_for_bit():
    fast, literal = _pair(3)
    x = torch.randn(2, 3, 4, 4)
    with torch.no_grad():
        fast.running_mean.uniform_(-1, 1)
        literal.running_mean.copy_(fast.running_mean)
    assert torch.equal(fast.eval()(x), literal.eval()(x))


# The improve.yaml batchnorm variant (smaller): the whole model's loss gradients with the
# fast BatchNorm against the literal one, end to end through the fused conv/pool kernels.
BN_VARIANT = {"input_shape": [12, 12, 1], "layers": [
    {"Conv2D": {"filters": 8, "kernel_size": 3, "activation": "relu"}},
    {"BatchNormalization": {}}, {"MaxPooling2D": {}},
    {"Conv2D": {"filters": 16, "kernel_size": 3, "activation": "relu"}},
    {"BatchNormalization": {}}, {"MaxPooling2D": {"padding": "same"}},
    {"Flatten": {}}, {"Dense": {"units": 8, "activation": "relu"}},
    {"BatchNormalization": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]}


def test_batchnorm_variant_gradients_match_the_literal_model():
    torch.manual_seed(2)
    net = build(ModelSpec.from_dict(BN_VARIANT), seed=0)
    literal = copy.deepcopy(net)
    for m in literal.modules():
        if isinstance(m, BatchNorm):
            m.literal = True
    x = torch.rand(16, 12, 12, 1)
    y = torch.randint(0, 3, (16,))
    grads = []
    for model in (net, literal):
        model.train()
        loss = torch.nn.functional.cross_entropy(model(x, logits=True), y)
        loss.backward()
        grads.append([p.grad for p in model.parameters()])
    # Two summation orders of float32: the error is relative to the gradient's scale (an
    # element near zero can differ by 1e-3 of itself), so the bound is on that scale.
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-4 * b.abs().max().item())
