"""The Keras-style Python API: the lecture's code, fit/evaluate/predict semantics."""
import os
import runpy

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.errors import ConfigError, DataError, RunError


def tiny_data(n=96, classes=3, side=8, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.integers(0, 60, (n, side, side)).astype(np.uint8)
    for c in range(classes):  # a bright bar whose row encodes the class: learnable
        x[y == c, 2 * c + 1, :] = 250
    return x, y


def small_model(classes=3, side=8, extra=()):
    return cnnlab.Sequential([
        cnnlab.layers.Conv2D(4, 3, input_shape=(side, side, 1), activation="relu"),
        cnnlab.layers.MaxPooling2D(),
        *extra,
        cnnlab.layers.Flatten(),
        cnnlab.layers.Dense(classes, activation="softmax"),
    ])


def test_lecture_code_runs_unchanged(tmp_path, monkeypatch):
    """examples/lecture/lecture_code.py is the lecture's code with tf.keras. -> cnnlab."""
    monkeypatch.setenv("EPOCHS", "1")
    monkeypatch.chdir(tmp_path)
    out = {}
    import matplotlib
    matplotlib.use("Agg")
    out = runpy.run_path(os.path.join(os.path.dirname(__file__), "..", "examples", "lecture",
                                      "lecture_code.py"))
    h = out["history"].history
    assert set(h) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert h["val_accuracy"][0] > 0.8  # real MNIST digits (the bundled sample), one epoch


def test_fit_history_keys_and_lengths():
    x, y = tiny_data()
    model = small_model()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    h = model.fit(x[:64], y[:64], batch_size=16, epochs=3, validation_data=(x[64:], y[64:]),
                  verbose=0, seed=1)
    assert list(h.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert all(len(v) == 3 for v in h.history.values())
    assert h.history["loss"][-1] < h.history["loss"][0]


def test_seeded_fit_is_reproducible_on_cpu():
    x, y = tiny_data()
    results = []
    for _ in range(2):
        torch.manual_seed(123)  # the model's initial weights
        model = small_model(extra=[cnnlab.layers.Dropout(0.3)])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
        h = model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=7)
        results.append((h.history, model.get_weights()))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1], results[1][1]):
        np.testing.assert_array_equal(a, b)


def test_reported_epoch_loss_is_the_sample_weighted_mean_and_includes_l2():
    """Keras reports the epoch loss as the mean over samples, penalties included."""
    x, y = tiny_data(n=40)
    model = cnnlab.Sequential([
        cnnlab.layers.Conv2D(4, 3, input_shape=(8, 8, 1), activation="relu"),
        cnnlab.layers.MaxPooling2D(), cnnlab.layers.Flatten(),
        cnnlab.layers.Dense(3, activation="softmax", kernel_regularizer=cnnlab.regularizers.l2(0.5)),
    ])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=cnnlab.optimizers.SGD(1e-9))
    before = model.evaluate(x, y, verbose=0)
    reg = float(model.net.regularization().detach())
    assert reg > 0
    plain = torch.nn.functional.cross_entropy(
        model.net(torch.from_numpy(x[..., None]).float().to(model.device) / 255, logits=True),
        torch.from_numpy(y).to(model.device)).item()
    assert before == pytest.approx(plain + reg, rel=1e-5)
    h = model.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    assert h.history["loss"][0] == pytest.approx(before, rel=1e-4)  # lr ~ 0: weights unchanged


def test_validation_split_takes_the_last_fraction_like_keras():
    x, y = tiny_data(n=100)
    model = small_model()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x, y, epochs=1, validation_split=0.2, verbose=0)
    val = model._trainer.val_data
    assert len(val) == 20 and len(model._trainer.train_data) == 80
    np.testing.assert_array_equal(val.y_index.numpy(), y[80:])


def test_dropout_and_batchnorm_are_off_in_predict_and_on_in_fit():
    x, y = tiny_data()
    model = small_model(extra=[cnnlab.layers.BatchNormalization(), cnnlab.layers.Dropout(0.5)])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    a, b = model.predict(x[:8]), model.predict(x[:8])
    np.testing.assert_array_equal(a, b)  # deterministic in inference
    bn = model.net.layers[2]
    before = bn.running_mean.clone()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert not torch.equal(before, bn.running_mean)  # moving stats updated during fit
    np.testing.assert_allclose(model.predict(x[:8]).sum(axis=1), 1.0, rtol=1e-5)


def test_keras_momentum_convention_for_batchnorm():
    bn_model = cnnlab.Sequential([cnnlab.layers.BatchNormalization(momentum=0.9, input_shape=(3,))])
    net = bn_model.net.train()
    x = torch.randn(64, 3) * 2 + 5
    net(x)
    bn = net.layers[0]
    expected = 0.9 * torch.zeros(3) + 0.1 * x.mean(0)
    torch.testing.assert_close(bn.running_mean, expected)
    expected_var = 0.9 * torch.ones(3) + 0.1 * x.var(0, unbiased=False)
    torch.testing.assert_close(bn.running_var, expected_var)


def test_categorical_labels_must_match_output_units():
    x, y = tiny_data()
    model = small_model()
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    with pytest.raises(DataError, match=r"Expected training labels with 3 columns to match the "
                                        r"model's 3 output units. Received shape \(96, 5\)"):
        model.fit(x, cnnlab.utils.to_categorical(y, 5), verbose=0)
    with pytest.raises(DataError, match="out of range: expected class indices 0..2"):
        model.fit(x, y + 2, verbose=0)


def test_errors_for_misuse():
    model = small_model()
    with pytest.raises(RunError, match="compile"):
        model.fit(*tiny_data())
    with pytest.raises(ConfigError, match="Unknown optimizer 'adamux'"):
        model.compile(loss="categorical_crossentropy", optimizer="adamux")
    with pytest.raises(ConfigError, match="Unknown loss"):
        model.compile(loss="hinge_loss", optimizer="adam")
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    x, y = tiny_data()
    with pytest.raises(DataError, match=r"Expected training images of shape \(8, 8, 1\) \(64 values\)"):
        model.fit(x[:, :4], y, verbose=0)
    with pytest.raises(ConfigError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)


def test_optimizers_have_keras_defaults():
    assert cnnlab.optimizers.Adam().args["epsilon"] == 1e-7
    assert cnnlab.optimizers.SGD().args == {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}
    assert cnnlab.optimizers.RMSprop().args["rho"] == 0.9
    opt = cnnlab.optimizers.SGD(0.1, momentum=0.9, nesterov=True).build([torch.nn.Parameter(torch.zeros(1))])
    assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.9


def test_learning_rate_is_settable_like_keras():
    model = small_model()
    model.compile(loss="sparse_categorical_crossentropy", optimizer=cnnlab.optimizers.Adam(0.01))
    model.optimizer.learning_rate = 0.002
    assert model._trainer.optimizer.param_groups[0]["lr"] == 0.002


def test_weights_save_and_load_round_trip(tmp_path):
    model = small_model()
    path = tmp_path / "w.safetensors"
    model.save_weights(path)
    other = small_model()
    other.load_weights(path)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_classifier_without_flatten_is_refused_with_a_hint():
    from cnnlab.errors import SpecError
    x, y = tiny_data()
    model = cnnlab.Sequential([cnnlab.layers.Conv2D(4, 3, input_shape=(8, 8, 1)),
                               cnnlab.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    with pytest.raises(SpecError, match=r"The model's output has shape \(None, 6, 6, 3\), but "
                                        r"sparse_categorical_crossentropy needs one vector per "
                                        r"image, \(None, classes\). Is a Flatten"):
        model.fit(x, y, verbose=0)
