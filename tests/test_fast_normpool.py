"""FusedConvNormPool (Conv2D > BatchNormalization > 2x2 max pooling as one module) equals the
three layers run literally: training outputs, every gradient and Keras's moving statistics;
inference is the literal path itself.

The fused op sums the batch statistics in double and batch norm's backward sums over the
pooling's winners only, against var_mean and autograd's op-by-op differentiation: the same
maths in other summation orders, so within float32 rounding (the bounds are stated below
relative to each tensor's scale).
"""
import copy

import pytest
import torch

from cnnlab import fast
from cnnlab.builder import build
from cnnlab.layers.modules import BatchNorm
from cnnlab.spec import ModelSpec


def _spec(h, w, cin, filters, act, pool_padding="valid", center=True, scale=True):
    return ModelSpec.from_dict({"input_shape": [h, w, cin], "layers": [
        {"Conv2D": {"filters": filters, "kernel_size": 3, "activation": act}},
        {"BatchNormalization": {"center": center, "scale": scale}},
        {"MaxPooling2D": {"padding": pool_padding}},
        {"Flatten": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]})


def _literal(net):
    lit = copy.deepcopy(net)
    for m in lit.modules():
        if isinstance(m, BatchNorm):
            m.literal = True
    return lit


def _close(a, b, scale_tol, floor=1e-6):
    """a == b within scale_tol of b's scale (or of `floor`, the scale of the values b sits
    among, for a tensor that is ~0 in exact arithmetic: a conv bias before BatchNorm)."""
    torch.testing.assert_close(a, b, rtol=0, atol=scale_tol * max(b.abs().max().item(), floor))


CASES = [  # (H, W, Cin, filters, activation, pooling padding, center, scale)
    (10, 10, 1, 32, "relu", "valid", True, True),     # vector widths, even map
    (13, 12, 3, 16, "relu", "same", True, True),      # odd map: 'same' keeps a partial window
    (11, 11, 2, 5, "linear", "valid", True, True),    # no activation; 'valid' drops a row
    (9, 12, 2, 7, "relu", "same", False, True),       # no beta
    (12, 9, 1, 16, "relu", "valid", True, False),     # no gamma
]


def test_the_chain_is_one_fused_module():
    net = build(_spec(10, 10, 1, 8, "relu"))
    assert isinstance(net.chain[0], fast.FusedConvNormPool)
    assert [net.chain[0].conv, net.chain[0].norm, net.chain[0].pool] == list(net.layers[:3])
    # another activation between the conv and the norm is not fused (max(f(bn)) needs f)
    assert not isinstance(build(_spec(10, 10, 1, 8, "elu")).chain[0], fast.FusedConvNormPool)


@pytest.mark.requires_kernels
@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}x{c[1]}x{c[2]}-{c[3]}-{c[4]}-{c[5]}"
                                             f"{'' if c[6] else '-nobeta'}{'' if c[7] else '-nogamma'}"
                                             for c in CASES])
def test_fused_training_step_matches_the_literal_layers(case):
    h, w, cin, filters, act, padding, center, scale = case
    torch.manual_seed(3)
    net = build(_spec(h, w, cin, filters, act, padding, center, scale), seed=0)
    with torch.no_grad():  # not the initial 1/0, so that a mixed-up gamma/beta shows
        for p in net.layers[1].parameters():
            p.uniform_(0.5, 1.5)
    lit = _literal(net)
    x = torch.randn(16, h, w, cin)
    y = torch.randint(0, 3, (16,))
    outs, grads = [], []
    for model in (net, lit):
        model.train()
        out = model(x, logits=True)
        torch.nn.functional.cross_entropy(out, y).backward()
        outs.append(out)
        grads.append([p.grad for p in model.parameters()])
    assert net.chain[0].fused(x.permute(0, 3, 1, 2))
    _close(outs[0], outs[1], 1e-5)
    scale = max(g.abs().max().item() for g in grads[1])
    for a, b in zip(*grads, strict=True):
        _close(a, b, 1e-4, floor=1e-3 * scale)
    for name in ("running_mean", "running_var"):
        _close(getattr(net.layers[1], name), getattr(lit.layers[1], name), 1e-6)
    # inference: the moving statistics, through the literal modules
    net.eval(), lit.eval()
    assert torch.equal(net(x), lit(x))


@pytest.mark.requires_kernels
def test_the_fused_op_matches_batch_norm_and_pooling_directly():
    """ops.norm_pool against F.batch_norm + relu + max_pool2d on a map with NaN-free
    negative and positive values, and its (mean, biased variance)."""
    from cnnlab.fast import ops
    torch.manual_seed(0)
    c = torch.randn(4, 7, 9, 32)
    gamma, beta = torch.rand(32) + 0.5, torch.randn(32)
    out, mean, var = ops.norm_pool(c, gamma, beta, 1e-3, (3, 4), relu=True)
    r = torch.relu(c).permute(0, 3, 1, 2)
    ref_var, ref_mean = torch.var_mean(r, dim=(0, 2, 3), unbiased=False)
    ref = torch.nn.functional.max_pool2d(
        torch.nn.functional.batch_norm(r, None, None, gamma, beta, True, 0.0, 1e-3), 2)
    _close(mean, ref_mean, 1e-6)
    _close(var, ref_var, 1e-6)
    _close(out.permute(0, 3, 1, 2), ref, 1e-5)
