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


# the fast step (cnnlab.fast.plan_step) against autograd, from the same weights and optimizer
# state: the same kernels in the same order, so the same bits
from cnnlab.fast import kernels_status, plan_step  # noqa: E402
from test_equivalence import SPECS  # noqa: E402

def _lecture_like(filters, activation, dense_activation=None, dropout=None, first_dropout=None,
                  **weights):
    """The lecture's shape of model at test size (15x15 input: odd maps, a 'same' pool)."""
    conv = {"kernel_size": 3, "activation": activation, **weights}
    layers = ([{"Dropout": {"rate": first_dropout}}] if first_dropout else []) + [
        {"Conv2D": {"filters": 8, **conv}}, {"MaxPooling2D": {}},
        {"Conv2D": {"filters": filters, **conv}}, {"MaxPooling2D": {"padding": "same"}}]
    if dropout:
        layers.append({"Dropout": {"rate": dropout[0]}})
    layers += [{"Flatten": {}},
               {"Dense": {"units": 12, "activation": dense_activation or activation, **weights}}]
    if dropout:
        layers.append({"Dropout": {"rate": dropout[1]}})
    layers.append({"Dense": {"units": 5, "activation": "softmax"}})
    return {"input_shape": [15, 15, 1], "layers": layers}


FAST_SPECS = {
    **{k: SPECS[k] for k in ("lecture", "same_conv_then_same_pool_odd", "wide_paths",
                             "gray_16_filters_odd_same_pool", "sparse_backward_paths",
                             "winograd_paths")},
    "eight_channel_input_dense_stack": {"input_shape": [10, 9, 8], "layers": [
        {"Conv2D": {"filters": 16, "kernel_size": 3, "activation": "relu"}},
        {"MaxPooling2D": {"padding": "same"}}, {"Flatten": {}},
        {"Dense": {"units": 12, "activation": "relu"}}, {"Dense": {"units": 7}},
        {"Dense": {"units": 4, "activation": "softmax"}}]},
    "vectors": {"input_shape": [20], "layers": [
        {"Dense": {"units": 8, "activation": "relu"}},
        {"Dense": {"units": 3, "activation": "softmax"}}]},
    # improve.yaml's variants off ReLU and with Dropout / penalties, at test size
    "elu_odd_same_pool": _lecture_like(16, "elu"),
    "selu_lecun": _lecture_like(16, "selu", kernel_initializer="lecun_normal"),
    "leaky_relu": _lecture_like(16, "leaky_relu"),
    "tanh_and_hidden_softmax": _lecture_like(16, "tanh", dense_activation="softmax"),
    "dropout_as_mnist_cnn": _lecture_like(16, "relu", dropout=(0.25, 0.5)),
    "dropout_on_the_data_and_elu": _lecture_like(16, "elu", dropout=(0.3, 0.2), first_dropout=0.1),
    "l2_every_kernel": _lecture_like(16, "relu", kernel_regularizer={"l2": 0.01}),
    "l1_kernels_and_biases": _lecture_like(16, "relu", kernel_regularizer={"l1": 0.01},
                                           bias_regularizer={"l1": 0.01}),
}


# Winograd and the sparse backward exist in the AVX-512 binary only
NEEDS_AVX512 = {"lecture", "same_conv_then_same_pool_odd", "wide_paths", "sparse_backward_paths",
                "winograd_paths",
                "eight_channel_input_dense_stack", "elu_odd_same_pool", "selu_lecun", "leaky_relu",
                "tanh_and_hidden_softmax", "dropout_as_mnist_cnn", "dropout_on_the_data_and_elu",
                "l2_every_kernel", "l1_kernels_and_biases"}


def _twin_trainers(spec, loss="categorical_crossentropy", label_smoothing=0.0):
    out = []
    for _ in range(2):
        net = build(spec, seed=0)
        opt = optimizers.get("adam").build(net.parameters())
        out.append(Trainer(net, opt, losses.get(loss), label_smoothing=label_smoothing))
    return out


@pytest.mark.parametrize("name", sorted(FAST_SPECS))
@pytest.mark.parametrize("loss, label_smoothing", [("categorical_crossentropy", 0.0),
                                                   ("categorical_crossentropy", 0.1),
                                                   ("sparse_categorical_crossentropy", 0.0)])
@pytest.mark.requires_kernels
def test_fast_step_equals_autograd_bit_for_bit(name, loss, label_smoothing):
    spec = ModelSpec.from_dict(FAST_SPECS[name])
    auto, fast = _twin_trainers(spec, loss, label_smoothing)
    fast.fast_step = plan_step(fast)
    if name in NEEDS_AVX512 and kernels_status() != "avx512":
        # their convs after the data run on torch's convolution: autograd's, not this step
        assert fast.fast_step is None
        pytest.skip(f"needs the AVX-512 kernels' paths; this CPU runs {kernels_status()}")
    assert fast.fast_step is not None
    for t in (auto, fast):  # as fit sets it for one-hot labels
        t.index_targets = loss == "categorical_crossentropy"
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.random((9, *spec.input_shape), dtype=np.float32))
    yi = torch.from_numpy(rng.integers(0, spec.num_outputs, 9))
    yb = torch.eye(spec.num_outputs)[yi] if loss == "categorical_crossentropy" else yi
    for step in range(3):
        torch.manual_seed(step)  # Dropout's masks: the same seeds for both
        la, ha = auto.train_step(x, yb, yi)
        torch.manual_seed(step)
        lf, hf = fast.train_step(x, yb, yi)
        assert torch.equal(la, lf) and torch.equal(ha, hf)
    for a, f in zip(auto.net.parameters(), fast.net.parameters()):
        assert torch.equal(a, f)
        assert a.stride() == f.stride()


@pytest.mark.parametrize("name", ["mlp_on_vectors", "batchnorm_dropout_free",
                                  "strided_same_even_kernels"])
def test_layers_the_fast_step_does_not_cover_keep_autograd(name):
    auto, _ = _twin_trainers(ModelSpec.from_dict(SPECS[name]))
    assert plan_step(auto) is None


@pytest.mark.requires_kernels
def test_dropout_of_rate_one_keeps_autograd():
    """Rate 1 drops everything (torch's dropout, zeros): left to autograd; rate 0 is no op."""
    layers = [{"Flatten": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]
    for rate, covered in ((1.0, False), (0.0, True), (0.5, True)):
        spec = {"input_shape": [4, 4, 1], "layers": [layers[0], {"Dropout": {"rate": rate}},
                                                     layers[1]]}
        t, _ = _twin_trainers(ModelSpec.from_dict(spec))
        assert (plan_step(t) is not None) == covered


def test_a_conv_on_torchs_own_convolution_keeps_autograd():
    """A fused conv that neither the sparse backward nor Winograd covers runs as torch's
    convolution under autograd (FusedConvPool.path "separate"); the fast step leaves it."""
    spec = ModelSpec.from_dict({"input_shape": [12, 12, 2], "layers": [
        {"Conv2D": {"filters": 8, "kernel_size": 3, "activation": "relu"}},
        {"MaxPooling2D": {}},
        {"Conv2D": {"filters": 8, "kernel_size": 2, "activation": "relu"}},
        {"MaxPooling2D": {}}, {"Flatten": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]})
    auto, _ = _twin_trainers(spec)
    assert [m.path(i > 0) for i, m in enumerate(auto.net.chain[:2])] == ["direct", "separate"]
    assert plan_step(auto) is None
