"""The optimized model equals a plain reference implementation of the same spec.

The builder runs images in channels-last memory, applies monotone activations
after max pooling, uses ceil_mode for end-padded 'same' pooling and folds the
final softmax into the loss. The reference below does none of that: NHWC in,
each Keras layer computed literally in NCHW, in order. Outputs, losses and
every weight gradient must agree.
"""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cnnlab import activations
from cnnlab.builder import build
from cnnlab.config import LECTURE_MODEL
from cnnlab.layers.base import same_pad
from cnnlab.spec import ModelSpec

SPECS = {
    "lecture": LECTURE_MODEL,
    "strided_same_even_kernels": {"input_shape": [15, 14, 3], "layers": [
        {"Conv2D": {"filters": 6, "kernel_size": 4, "strides": 2, "padding": "same", "activation": "elu"}},
        {"MaxPooling2D": {"pool_size": 3, "strides": 2, "padding": "same"}},
        {"Conv2D": {"filters": 5, "kernel_size": [2, 3], "padding": "same", "activation": "tanh"}},
        {"AveragePooling2D": {"pool_size": 2, "padding": "same"}},
        {"Flatten": {}}, {"Dense": {"units": 7, "activation": "selu"}},
        {"Dense": {"units": 4, "activation": "softmax"}}]},
    "batchnorm_dropout_free": {"input_shape": [10, 10, 2], "layers": [
        {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
        {"BatchNormalization": {}}, {"MaxPooling2D": {}},
        {"GlobalAveragePooling2D": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]},
    "same_conv_then_same_pool_odd": {"input_shape": [15, 15, 2], "layers": [
        {"Conv2D": {"filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPooling2D": {"pool_size": 2, "padding": "same"}},
        {"Conv2D": {"filters": 16, "kernel_size": 3, "activation": "relu"}},
        {"MaxPooling2D": {}}, {"Flatten": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]},
    # the C++ kernels' vector paths (channels a multiple of 16) next to their edge cases:
    # partial 'same' windows, a 'valid' pool dropping an odd last row, ReLU and ELU after
    "wide_first_conv_odd_pools": {"input_shape": [15, 13, 3], "layers": [
        {"Conv2D": {"filters": 48, "kernel_size": 3, "activation": "relu"}},
        {"MaxPooling2D": {"pool_size": 2, "padding": "same"}},
        {"Conv2D": {"filters": 16, "kernel_size": 3, "padding": "same", "activation": "elu"}},
        {"MaxPooling2D": {}},
        {"Conv2D": {"filters": 80, "kernel_size": 1, "activation": "relu"}},
        {"MaxPooling2D": {"padding": "same"}},
        {"Flatten": {}}, {"Dense": {"units": 5, "activation": "softmax"}}]},
    "gray_16_filters_odd_same_pool": {"input_shape": [9, 9, 1], "layers": [
        {"Conv2D": {"filters": 16, "kernel_size": 3, "activation": "relu"}},
        {"MaxPooling2D": {"padding": "same"}},
        {"Flatten": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]},
    # conv_then_pool's sparse backward (16 and 32 input channels) with 'same' convolutions,
    # ELU, and 'same' pooling of odd sizes
    "sparse_backward_paths": {"input_shape": [12, 11, 2], "layers": [
        {"Conv2D": {"filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPooling2D": {"padding": "same"}},
        {"Conv2D": {"filters": 32, "kernel_size": 3, "padding": "same", "activation": "elu"}},
        {"MaxPooling2D": {}},
        {"Conv2D": {"filters": 8, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPooling2D": {"padding": "same"}},
        {"Flatten": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]},
    # Winograd F(4x4, 3x3) forward with the pooling fused: with the dense backward (48 input
    # channels) and the sparse one (32), odd sizes (partial tiles read zeros), 'valid'
    # pooling that drops the last row, ELU after pooling
    "winograd_paths": {"input_shape": [14, 13, 3], "layers": [
        {"Conv2D": {"filters": 48, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPooling2D": {"padding": "same"}},
        {"Conv2D": {"filters": 32, "kernel_size": 3, "padding": "same", "activation": "elu"}},
        {"MaxPooling2D": {}},
        {"Conv2D": {"filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPooling2D": {"padding": "same"}},
        {"Flatten": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]},
    # the Winograd forward's fast path for 64 input channels, and the sparse backward with
    # 80 output channels: its winners are found 64 channels to a word, the last word partial
    "wide_paths": {"input_shape": [18, 17, 2], "layers": [
        {"Conv2D": {"filters": 64, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPooling2D": {"padding": "same"}},
        {"Conv2D": {"filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPooling2D": {"padding": "same"}},
        {"Conv2D": {"filters": 80, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPooling2D": {"padding": "same"}},
        {"Flatten": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]},
    # the sparse backward on inputs wider than 32 channels, done in slices of 32 and 16:
    # 64 (two slices; the wider and add_conv variants' second conv) and 48 (32 + 16)
    "sparse_backward_wide_inputs": {"input_shape": [14, 13, 2], "layers": [
        {"Conv2D": {"filters": 64, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPooling2D": {"padding": "same"}},
        {"Conv2D": {"filters": 48, "kernel_size": 3, "padding": "same", "activation": "relu"}},
        {"MaxPooling2D": {"padding": "same"}},
        {"Conv2D": {"filters": 16, "kernel_size": 3, "padding": "same", "activation": "elu"}},
        {"MaxPooling2D": {"padding": "same"}},
        {"Flatten": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]},
    "mlp_on_vectors": {"input_shape": [64], "layers": [
        {"Reshape": {"target_shape": [8, 8, 1]}},
        {"Conv2D": {"filters": 3, "kernel_size": 3, "activation": "leaky_relu"}},
        {"MaxPooling2D": {}}, {"Flatten": {}}, {"Dense": {"units": 5, "activation": "softmax"}}]},
}


def reference_forward(spec, weights, x):
    """Keras's semantics, layer by layer, in the plainest torch there is."""
    image = len(spec.input_shape) == 3
    h = x.permute(0, 3, 1, 2) if image else x  # NCHW, contiguous semantics
    for layer, shape_in, w in zip(spec.layers, spec.input_shapes(), weights):
        c, kind = layer.config, layer.keras_name
        if kind == "Conv2D":
            kh, kw = c["kernel_size"]
            if c["padding"] == "same":
                t, b = same_pad(shape_in[0], kh, c["strides"][0])
                l, r = same_pad(shape_in[1], kw, c["strides"][1])
                h = F.pad(h, (l, r, t, b))
            h = F.conv2d(h, w[0].permute(3, 2, 0, 1), w[1] if len(w) > 1 else None, c["strides"])
            h = activations.get(c["activation"]).apply(h, 1)
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            ph, pw = c["pool_size"]
            if c["padding"] == "same":
                t, b = same_pad(shape_in[0], ph, c["strides"][0])
                l, r = same_pad(shape_in[1], pw, c["strides"][1])
            else:
                t = b = l = r = 0
            if kind == "MaxPooling2D":
                h = F.max_pool2d(F.pad(h, (l, r, t, b), value=-math.inf), (ph, pw), c["strides"])
            else:  # TF averages over the real pixels only
                s = F.avg_pool2d(F.pad(h, (l, r, t, b)), (ph, pw), c["strides"], divisor_override=1)
                n = F.avg_pool2d(F.pad(torch.ones_like(h[:1, :1]), (l, r, t, b)), (ph, pw),
                                 c["strides"], divisor_override=1)
                h = s / n
        elif kind == "BatchNormalization":
            mean = h.mean(dim=(0, 2, 3), keepdim=True)
            var = h.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
            h = (h - mean) / torch.sqrt(var + c["epsilon"]) * w[0].view(1, -1, 1, 1) + w[1].view(1, -1, 1, 1)
        elif kind == "GlobalAveragePooling2D":
            h = h.mean(dim=(2, 3))
        elif kind == "Flatten":
            h = (h.permute(0, 2, 3, 1) if h.dim() == 4 else h).reshape(h.shape[0], -1)
        elif kind == "Reshape":
            h = h.reshape(h.shape[0], *c["target_shape"])
            if h.dim() == 4:
                h = h.permute(0, 3, 1, 2)
        elif kind == "Dense":
            h = activations.get(c["activation"]).apply(F.linear(h, w[0].t(), w[1]), -1)
        else:
            raise AssertionError(kind)
    return h


@pytest.mark.parametrize("name", sorted(SPECS))
def test_optimized_model_matches_plain_reference(name):
    spec = ModelSpec.from_dict(SPECS[name])
    torch.manual_seed(0)
    net = build(spec).train()
    weights = [[torch.tensor(a, requires_grad=True) for a in ws] for ws in net.keras_weights()]
    x = torch.rand(6, *spec.input_shape)
    target = torch.randint(0, spec.num_outputs, (6,))

    out = net(x)
    ref = reference_forward(spec, weights, x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)

    # the training loss from logits (softmax folded in) equals the literal one
    loss = F.cross_entropy(net(x, logits=True), target)
    ref_loss = F.nll_loss(torch.log(ref), target)
    torch.testing.assert_close(loss, ref_loss, atol=1e-5, rtol=1e-5)

    loss.backward()
    ref_loss.backward()
    grads = [[g for g in _keras_grads(m)] for m in net.layers]
    for layer_grads, layer_weights in zip(grads, weights):
        for g, w in zip(layer_grads, layer_weights):
            if w.grad is None:  # BN's moving statistics: not trained
                continue
            np.testing.assert_allclose(g, w.grad.numpy(), atol=2e-5, rtol=1e-4)


def _keras_grads(module):
    """A module's parameter gradients in Keras's weight layout and order."""
    if not hasattr(module, "keras_weights"):
        return []
    saved = [p.detach().clone() for p in module.parameters()]
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.grad)
    out = [np.array(a) for a in module.keras_weights()]  # copies: keras_weights are views
    with torch.no_grad():
        for p, s in zip(module.parameters(), saved):
            p.copy_(s)
    return out


def test_conv_and_pool_run_fused_where_they_can():
    """Each Conv2D + 2x2 max pooling of these specs runs as one FusedConvPool on one kernel
    holding the original modules."""
    from cnnlab.fast import FusedConvPool
    for name in ("lecture", "same_conv_then_same_pool_odd", "sparse_backward_paths",
                 "winograd_paths", "wide_paths", "sparse_backward_wide_inputs"):
        spec = ModelSpec.from_dict(SPECS[name])
        net = build(spec)
        convs = [i for i, layer in enumerate(spec.layers) if layer.keras_name == "Conv2D"]
        fused = [m for m in net.chain if isinstance(m, FusedConvPool)]
        assert [m.conv for m in fused] == [net.layers[i] for i in convs]
        assert [m.pool for m in fused] == [net.layers[i + 1] for i in convs]
        assert all(m.one_kernel for m in fused)
        assert [m.out_hw for m in fused] == [spec.output_shapes[i + 1][:2] for i in convs]
    unfused = build(ModelSpec.from_dict(SPECS["lecture"]), fuse_pooling=False)
    assert list(unfused.chain) == list(unfused.layers)


@pytest.mark.requires_kernels
def test_the_kernels_paths_are_those_the_build_has():
    """With AVX-512 conv2's forward runs by Winograd and its backward on the winners only."""
    from cnnlab.fast import kernels, ops
    if kernels.EXT.ISA == "avx512":
        assert ops.winograd_fits(32, (3, 3), 64) and ops.sparse_fits(32, (3, 3), (6, 6))
        assert ops.sparse_fits(64, (3, 3), (6, 6)) and ops.sparse_fits(48, (3, 3), (4, 4))
        assert not ops.sparse_fits(40, (3, 3), (6, 6))  # not a multiple of 16: dense
    else:
        assert not ops.winograd_fits(32, (3, 3), 64) and not ops.sparse_fits(32, (3, 3), (6, 6))
