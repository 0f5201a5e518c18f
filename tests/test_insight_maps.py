"""The numbers behind the pictures: layer outputs, saliency, Grad-CAM, filters, scores.

Untrained models (seeded): the maths does not depend on training."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import cnnlab
from cnnlab.errors import DataError
from cnnlab.insight import maps, scores
from cnnlab.insight.explain import explain_model
from cnnlab.insight.report import build_report
from cnnlab.utils import set_random_seed


def lecture():
    set_random_seed(0)
    L = cnnlab.layers
    m = cnnlab.Sequential([L.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
                           L.MaxPooling2D((2, 2)), L.Conv2D(64, (3, 3), activation="relu"),
                           L.MaxPooling2D((2, 2), padding="same"), L.Flatten(),
                           L.Dense(64, activation="relu"), L.Dense(10, activation="softmax")])
    m.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return m


def residual_rgb():
    """A graph (skip connection) on colour images."""
    set_random_seed(1)
    L = cnnlab.layers
    inp = cnnlab.Input(shape=(8, 8, 3))
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="stem")(inp)
    b = L.Conv2D(4, 3, padding="same", name="branch")(a)
    x = L.Activation("relu")(L.Add(name="skip")([a, b]))
    x = L.Flatten()(L.MaxPooling2D(2)(x))
    out = L.Dense(3, activation="softmax")(x)
    m = cnnlab.Model(inp, out)
    m.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return m


def digits(n=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28, 1)).astype(np.uint8)


def test_layer_outputs_have_keras_names_shapes_and_equal_the_model():
    m = lecture()
    x = digits()
    outs = maps.layer_outputs(m, x)
    assert [(o.name, o.type, o.shape) for o in outs] == [
        ("conv2d", "Conv2D", (None, 26, 26, 32)), ("max_pooling2d", "MaxPooling2D", (None, 13, 13, 32)),
        ("conv2d_1", "Conv2D", (None, 11, 11, 64)), ("max_pooling2d_1", "MaxPooling2D", (None, 6, 6, 64)),
        ("flatten", "Flatten", (None, 2304)), ("dense", "Dense", (None, 64)),
        ("dense_1", "Dense", (None, 10))]
    assert all(o.array.shape == (6, *o.shape[1:]) for o in outs)
    # predict runs the fast path (with the kernels, Winograd's F(4x4, 3x3)): float rounding
    np.testing.assert_allclose(outs[-1].array, m.predict(x, verbose=0), atol=1e-5)
    # the first feature maps by hand: Keras's kernel on the scaled input, then ReLU
    kernel, bias = m.layers[0].get_weights()
    xt = torch.from_numpy(x.astype(np.float32) / 255).permute(0, 3, 1, 2)
    w = torch.from_numpy(kernel).permute(3, 2, 0, 1)
    ref = F.relu(F.conv2d(xt, w, torch.from_numpy(bias))).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(outs[0].array, ref, atol=1e-5)
    np.testing.assert_array_equal(outs[4].array, outs[3].array.reshape(6, -1))  # Keras's order


def test_saliency_is_autograds_input_gradient_of_the_predicted_logit():
    m = lecture()
    x = digits(3)
    s = maps.saliency(m, x)
    xb = torch.from_numpy(x.astype(np.float32) / 255).requires_grad_(True)
    logits = m.net(xb, logits=True)
    pred = logits.argmax(1)
    logits.gather(1, pred[:, None]).sum().backward()
    np.testing.assert_array_equal(s["classes"], pred.numpy())
    # the model's own forward and backward may be the fused kernels': equal up to rounding
    tol = 1e-4 * float(np.abs(xb.grad.numpy()).max())
    np.testing.assert_allclose(s["gradient"], xb.grad.numpy(), rtol=1e-3, atol=tol)
    np.testing.assert_allclose(s["map"], np.abs(xb.grad.numpy()).max(-1), rtol=1e-3, atol=tol)


def test_grad_cam_weights_the_last_convolution_by_its_mean_gradient():
    m = lecture()
    x = digits(2)
    cam = maps.grad_cam(m, x, classes=[3, 5])
    assert cam["layer"] == "conv2d_1" and cam["map"].shape == (2, 28, 28)
    assert cam["map"].min() >= 0 and cam["map"].max() <= 1
    # by hand: conv2d_1's output as a leaf, the rest of the model on top of it
    a = torch.from_numpy(maps.layer_outputs(m, x)[2].array).requires_grad_(True)
    L = m.layers
    h = F.max_pool2d(a.permute(0, 3, 1, 2), 2, 2, ceil_mode=True).permute(0, 2, 3, 1).reshape(2, -1)
    w1, b1 = map(torch.from_numpy, L[5].get_weights())
    w2, b2 = map(torch.from_numpy, L[6].get_weights())
    logits = F.relu(h @ w1 + b1) @ w2 + b2
    (logits[0, 3] + logits[1, 5]).backward()
    weights = a.grad.mean(dim=(1, 2), keepdim=True)
    coarse = F.relu((weights * a).sum(-1)).detach().numpy()
    np.testing.assert_allclose(cam["coarse"], coarse, rtol=1e-4, atol=1e-6)


def test_filters_are_the_first_conv_kernels_filter_first():
    m = lecture()
    name, k = maps.first_layer_filters(m)
    assert name == "conv2d" and k.shape == (32, 3, 3, 1)
    np.testing.assert_array_equal(k[5], m.layers[0].get_weights()[0][..., 5])


def test_a_graph_model_on_colour_images_is_explained_and_reported():
    m = residual_rgb()
    x = np.random.default_rng(2).integers(0, 256, (12, 8, 8, 3)).astype(np.uint8)
    outs = maps.layer_outputs(m, x)
    assert [o.name for o in outs] == ["stem", "branch", "skip", "activation", "max_pooling2d",
                                      "flatten", "dense"]
    np.testing.assert_allclose(outs[2].array, outs[0].array + outs[1].array, atol=1e-6)
    np.testing.assert_allclose(outs[-1].array, m.predict(x, verbose=0), atol=1e-5)
    assert maps.grad_cam(m, x)["layer"] == "branch"
    res = explain_model(m, x[:2], ["r", "g", "b"], ["a.png", "b.png"])
    assert [r["png"][:8] for r in res] == [b"\x89PNG\r\n\x1a\n"] * 2
    truth = np.arange(12) % 3
    history = {"loss": [0.9, 0.3], "accuracy": [0.7, 0.9], "val_loss": [1.5, 1.6],
               "val_accuracy": [0.33, 0.34]}
    doc, numbers = build_report(m, history, {"name": "rgb", "steps_per_epoch": 10,
                                             "data": {"num_classes": 3}},
                                {"model": {"layers": [{"BatchNormalization": {}}]}}, "",
                                ["r", "g", "b"], x, truth, truth)
    assert numbers["findings"][0]["kind"] == "batchnorm_warmup"
    assert numbers["findings"][0]["evidence"]["steps"] == 20
    assert "BatchNormalization not warmed up" in doc.html()
    pred = m.predict(x, verbose=0).argmax(1)
    assert numbers["confusion_matrix"] == [[int(((truth == t) & (pred == p)).sum())
                                            for p in range(3)] for t in range(3)]
    assert "filters.png" in doc.images and "class_feature_maps.png" in doc.images


def test_bad_images_are_refused_with_the_expected_shape():
    with pytest.raises(DataError, match="Expected"):
        maps.layer_outputs(lecture(), np.zeros((2, 5, 5, 1), np.uint8))


def test_confusion_matrix_per_class_and_pairs_against_a_hand_count():
    truth = [0, 0, 0, 1, 1, 2, 2, 2, 2]
    pred = [0, 1, 1, 1, 1, 2, 0, 2, 1]
    cm = scores.confusion_matrix(truth, pred, 3)
    assert cm.tolist() == [[1, 2, 0], [0, 2, 0], [1, 1, 2]]
    pc = scores.per_class(cm)
    np.testing.assert_allclose(pc["precision"], [1 / 2, 2 / 5, 2 / 2])
    np.testing.assert_allclose(pc["recall"], [1 / 3, 2 / 2, 2 / 4])
    np.testing.assert_allclose(pc["f1"][1], 2 * 0.4 * 1 / 1.4)
    assert scores.most_confused(cm, 2) == [(0, 1, 2), (2, 0, 1)]
    np.testing.assert_allclose(scores.row_normalized(cm)[2], [0.25, 0.25, 0.5])
    with pytest.raises(DataError, match="Expected labels from 0 to 2"):
        scores.confusion_matrix([3], [0], 3)


def test_ece_against_a_hand_computation():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.35, 0.65], [0.4, 0.6], [0.5, 0.5]])
    truth = np.array([0, 1, 1, 0, 0])
    cal = scores.calibration(probs, truth, bins=10)
    # bins: 0.95 -> 9, 0.9 -> 9, 0.65 -> 6, 0.6 -> 6, 0.5 -> 5 (argmax 0: correct)
    assert cal["count"].tolist() == [0, 0, 0, 0, 0, 1, 2, 0, 0, 2]
    ece = (2 / 5) * abs(0.5 - 0.925) + (2 / 5) * abs(0.5 - 0.625) + (1 / 5) * abs(1 - 0.5)
    assert cal["ece"] == pytest.approx(ece)
    assert scores.calibration(np.eye(3), [0, 1, 2])["ece"] == 0.0


def test_dead_relu_units_are_counted_on_the_images():
    from cnnlab.insight import diagnose
    from cnnlab.insight.report import _ever_active
    m = lecture()
    w, b = m.layers[5].get_weights()
    b[:40] = -1e4  # 40 of the 64 dense units can never fire
    m.layers[5].set_weights([w, b])
    x = digits(20)
    ever = _ever_active(m, x, maps.relu_layers(m))
    assert sorted(ever) == ["conv2d", "conv2d_1", "dense"]
    assert ever["dense"].shape == (64,) and ever["conv2d"].shape == (32,)
    assert not ever["dense"][:40].any()
    f = diagnose.dead_relu(ever, len(x))
    assert f.evidence["layers"]["dense"]["dead"] == 64 - int(ever["dense"][40:].sum()) >= 40
