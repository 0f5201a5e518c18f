"""fit's sample and class weights, verbose=2 and model(x) against real Keras 3 (torch backend).

The numbers come from tests/keras_refs/fit/fit_refs.json, made once by make_fit_refs.py
beside it: a Dense(3, softmax) with fixed weights trained by SGD(0.1) on 10 samples in
batches of 4, 4 and 2, unshuffled, so every step and the final weights can be compared.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab import layers
from cnnlab.errors import DataError

REFS = json.loads((Path(__file__).parent / "keras_refs" / "fit" / "fit_refs.json").read_text())
X = np.array(REFS["x"], np.float32)
Y = np.array(REFS["y"])
W = np.array(REFS["w"], np.float32)


def model(loss="sparse_categorical_crossentropy"):
    m = cnnlab.models.Sequential([layers.Dense(3, activation="softmax", input_shape=(4,))])
    m.compile(optimizer=cnnlab.optimizers.SGD(0.1), loss=loss, metrics=["accuracy"],
              device="cpu")
    m.set_weights([np.array(REFS["kernel"], np.float32), np.array(REFS["bias"], np.float32)])
    return m


def check(history, m, ref):
    np.testing.assert_allclose(history.history["loss"], ref["loss"], rtol=1e-5)
    np.testing.assert_allclose(history.history["accuracy"], ref["accuracy"], rtol=1e-6)
    kernel, bias = m.get_weights()
    np.testing.assert_allclose(kernel, ref["kernel"], atol=1e-5)
    np.testing.assert_allclose(bias, ref["bias"], atol=1e-5)


def test_sample_weight_is_keras_weighted_mean():
    m = model()
    check(m.fit(X, Y, sample_weight=W, batch_size=4, epochs=2, shuffle=False, verbose=0), m,
          REFS["sample_weight"])


def test_class_weight_missing_class_weighs_one():
    m = model()
    h = m.fit(X, Y, class_weight={0: 1.0, 1: 2.0}, batch_size=4, epochs=2, shuffle=False,
              verbose=0)
    check(h, m, REFS["class_weight"])


def test_sample_weight_with_one_hot_labels():
    m = model("categorical_crossentropy")
    h = m.fit(X, np.eye(3, dtype=np.float32)[Y], sample_weight=W, batch_size=4, epochs=2,
              shuffle=False, verbose=0)
    check(h, m, REFS["onehot_sample_weight"])


def test_generator_of_weighted_batches():
    def batches():
        for i in range(0, 10, 4):
            yield X[i:i + 4], Y[i:i + 4], W[i:i + 4]
    h = model().fit(batches(), epochs=1, verbose=0)
    np.testing.assert_allclose(h.history["loss"], REFS["generator_weights"]["loss"], rtol=1e-5)
    assert h.params["steps"] == REFS["generator_weights"]["params_steps"]  # None, as Keras


def test_evaluate_with_sample_weight():
    loss, acc = model().evaluate(X, Y, sample_weight=W, verbose=0)
    np.testing.assert_allclose([loss, acc], REFS["evaluate_sample_weight"], rtol=1e-5)


def test_verbose_2_prints_keras_lines(capsys):
    model().fit(X, Y, batch_size=4, epochs=2, verbose=2, shuffle=False)
    out = re.sub(r"\d+[mu]?s", "<t>", capsys.readouterr().out)
    ours = [line for line in out.splitlines() if line]
    keras_lines = [line for line in REFS["verbose2"].splitlines() if line]
    assert len(ours) == len(keras_lines)
    for a, b in zip(ours, keras_lines):
        # the same lines up to the order of the logs (Keras 3 sorts them by name)
        assert a.split(" - ")[:3] == b.split(" - ")[:3]
        assert sorted(a.split(" - ")[3:]) == sorted(b.split(" - ")[3:])


def test_model_call_returns_torch_tensor_whose_numpy_works():
    m = model()
    out = m(X[:2])
    assert REFS["call"]["type"] == "torch.Tensor" and isinstance(out, torch.Tensor)
    assert out.requires_grad == REFS["call"]["requires_grad"]
    # Keras's .numpy() raises here (REFS["call"]["numpy"]); cnnlab's works, so the
    # TensorFlow tutorials' `model(x).numpy()` runs
    assert REFS["call"]["numpy"]["type"] == "RuntimeError"
    np.testing.assert_allclose(out.numpy(), m.predict(X[:2], verbose=0), rtol=1e-6)


@pytest.mark.parametrize("case, call", [
    ("class_weight_and_sample_weight",
     lambda m: m.fit(X, Y, class_weight={0: 1.0}, sample_weight=W, verbose=0)),
    ("class_weight_generator",
     lambda m: m.fit(((X[:4], Y[:4]) for _ in range(2)), class_weight={0: 1.0}, verbose=0)),
])
def test_keras_error_messages_kept(case, call):
    with pytest.raises(DataError) as err:
        call(model())
    keras_msg = REFS["errors"][case]["message"]
    assert str(err.value).split(" Received")[0] == keras_msg.split(" Received")[0]


def test_refused_like_keras():
    """Keras refuses these too (its messages are in the refs), with messages of its own."""
    for case in ("validation_split_generator", "mismatched_lengths", "empty"):
        assert REFS["errors"][case]["type"] == "ValueError"
