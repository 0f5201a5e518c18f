"""Keras 3's fit semantics that cnnlab's fit follows, recorded once from real Keras.

NOT run by the test suite (tests/test_fit_keras_refs.py reads fit_refs.json). Made with
Keras 3.15.1 on the torch backend (torch 2.13.0+cpu):

    KERAS_BACKEND=torch /work/refenv/bin/python tests/keras_refs/fit/make_fit_refs.py

What it records, for a Dense(3, softmax) on 10 samples of 4 features with fixed weights,
SGD(0.1), shuffle=False, batch_size 4 (batches of 4, 4, 2), 2 epochs:
* `sample_weight`: the epoch losses and final weights (Keras: each batch's loss is the mean
  of weight * loss over the batch's samples, the epoch's the mean over all samples; the
  accuracy is not weighted);
* `class_weight` {0: 1, 1: 2} (class 2 missing: weight 1 in Keras), the same;
* `onehot_sample_weight`: categorical cross-entropy on one-hot labels with weights;
* `generator_weights`: a generator yielding (x, y, sample_weight) batches;
* `evaluate_sample_weight`: evaluate's weighted loss;
* `verbose2`: fit(verbose=2)'s output, timings replaced by <t>;
* `call`: what model(x) returns on the torch backend, and what `.numpy()` on it does;
* `errors`: Keras's messages for mistakes cnnlab also refuses.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
import numpy as np  # noqa: E402
import keras  # noqa: E402

HERE = Path(__file__).resolve().parent
rng = np.random.default_rng(0)
X = rng.random((10, 4)).astype("float32")
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
W = np.linspace(0.5, 2.0, 10).astype("float32")
KERNEL = rng.normal(0, 0.5, (4, 3)).astype("float32")
BIAS = rng.normal(0, 0.1, (3,)).astype("float32")


def model(loss="sparse_categorical_crossentropy"):
    keras.backend.clear_session()
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    m.set_weights([KERNEL, BIAS])
    m.compile(optimizer=keras.optimizers.SGD(0.1), loss=loss, metrics=["accuracy"])
    return m


def run(m, *args, **kw):
    h = m.fit(*args, batch_size=4, epochs=2, shuffle=False, verbose=0, **kw)
    k, b = m.get_weights()
    return {"loss": h.history["loss"], "accuracy": h.history["accuracy"],
            "kernel": k.tolist(), "bias": b.tolist()}


def batches():
    for i in range(0, 10, 4):
        yield X[i:i + 4], Y[i:i + 4], W[i:i + 4]


def error(fn) -> dict:
    try:
        fn()
    except Exception as err:  # noqa: BLE001 - recording whatever Keras raises
        return {"type": type(err).__name__, "message": str(err)}
    return {"type": None, "message": None}


def main():
    refs = {"x": X.tolist(), "y": Y.tolist(), "w": W.tolist(), "kernel": KERNEL.tolist(),
            "bias": BIAS.tolist(), "keras": keras.__version__}
    refs["sample_weight"] = run(model(), X, Y, sample_weight=W)
    refs["class_weight"] = run(model(), X, Y, class_weight={0: 1.0, 1: 2.0})
    refs["onehot_sample_weight"] = run(model("categorical_crossentropy"), X, np.eye(3)[Y],
                                       sample_weight=W)
    m = model()
    h = m.fit(batches(), epochs=1, verbose=0)
    refs["generator_weights"] = {"loss": h.history["loss"], "params_steps": h.params["steps"]}
    refs["evaluate_sample_weight"] = model().evaluate(X, Y, sample_weight=W, verbose=0)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        model().fit(X, Y, batch_size=4, epochs=2, verbose=2, shuffle=False)
    refs["verbose2"] = re.sub(r"\d+m?s", "<t>", out.getvalue())
    y_call = model()(X[:2])
    refs["call"] = {"type": f"{type(y_call).__module__}.{type(y_call).__name__}",
                    "requires_grad": bool(y_call.requires_grad),
                    "numpy": error(lambda: y_call.numpy())}
    refs["errors"] = {
        "validation_split_generator": error(lambda: model().fit(batches(), validation_split=0.2)),
        "class_weight_and_sample_weight": error(lambda: model().fit(
            X, Y, class_weight={0: 1.0}, sample_weight=W, verbose=0)),
        "class_weight_generator": error(lambda: model().fit(batches(), class_weight={0: 1.0},
                                                            verbose=0)),
        "mismatched_lengths": error(lambda: model().fit(X, Y[:7], verbose=0)),
        "empty": error(lambda: model().fit(X[:0], Y[:0], verbose=0)),
    }
    (HERE / "fit_refs.json").write_text(json.dumps(refs, indent=1) + "\n")


if __name__ == "__main__":
    main()
