"""Reference values from real Keras 3 for cnnlab's losses, metrics, optimizers and
learning-rate schedules (tests/test_vocab_parity.py reads them; Keras is not needed
at test time).

    KERAS_BACKEND=torch /work/refenv/bin/python tests/keras_refs/make_vocab_refs.py

Writes vocab_refs.json beside this file. The inputs are generated here from fixed seeds
and stored in the JSON with the results, so the tests feed cnnlab the very same numbers.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import numpy as np  # noqa: E402

OUT = Path(__file__).with_name("vocab_refs.json")
rng = np.random.default_rng(1234)


def arr(a):
    return np.asarray(a, dtype=np.float64).tolist()


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np32(x):
    return keras.ops.convert_to_numpy(x).astype(np.float64)


# -- inputs ----------------------------------------------------------------------------
N, C = 8, 5
logits = rng.normal(0, 2, (N, C)).astype(np.float32)
probs = softmax(logits).astype(np.float32)
sparse = rng.integers(0, C, N)
onehot = np.eye(C, dtype=np.float32)[sparse]
soft_targets = softmax(rng.normal(0, 1, (N, C))).astype(np.float32)
bin_true = rng.integers(0, 2, (N, 1)).astype(np.float32)
bin_logits = rng.normal(0, 2, (N, 1)).astype(np.float32)
bin_probs = (1 / (1 + np.exp(-bin_logits))).astype(np.float32)
values_true = rng.normal(0, 1, (N, 3)).astype(np.float32)
values_pred = rng.normal(0, 1, (N, 3)).astype(np.float32)
hinge_true = rng.choice([-1.0, 1.0], (N, 3)).astype(np.float32)
weights = rng.uniform(0, 2, N).astype(np.float32)
inputs = {"logits": logits, "probs": probs, "sparse": sparse, "onehot": onehot,
          "soft_targets": soft_targets, "bin_true": bin_true, "bin_logits": bin_logits,
          "bin_probs": bin_probs, "values_true": values_true, "values_pred": values_pred,
          "hinge_true": hinge_true, "hinge_01": (hinge_true > 0).astype(np.float32),
          "weights": weights}

# -- losses: (function name, kwargs, y_true key, y_pred key) ----------------------------
L = keras.losses
LOSS_CASES = [
    ("categorical_crossentropy", {}, "onehot", "probs"),
    ("categorical_crossentropy", {"from_logits": True}, "onehot", "logits"),
    ("categorical_crossentropy", {"label_smoothing": 0.1}, "onehot", "probs"),
    ("categorical_crossentropy", {"from_logits": True, "label_smoothing": 0.2}, "soft_targets",
     "logits"),
    ("categorical_crossentropy", {}, "soft_targets", "values_pred_pos"),
    ("sparse_categorical_crossentropy", {}, "sparse", "probs"),
    ("sparse_categorical_crossentropy", {"from_logits": True}, "sparse", "logits"),
    ("binary_crossentropy", {}, "bin_true", "bin_probs"),
    ("binary_crossentropy", {"from_logits": True}, "bin_true", "bin_logits"),
    ("binary_crossentropy", {"label_smoothing": 0.1}, "bin_true", "bin_probs"),
    ("binary_crossentropy", {"from_logits": True, "label_smoothing": 0.3}, "onehot", "logits"),
    ("mean_squared_error", {}, "values_true", "values_pred"),
    ("mean_absolute_error", {}, "values_true", "values_pred"),
    ("hinge", {}, "hinge_true", "values_pred"),
    ("hinge", {}, "hinge_01", "values_pred"),
    ("kl_divergence", {}, "soft_targets", "probs"),
]
CLASS_OF = {"categorical_crossentropy": "CategoricalCrossentropy",
            "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
            "binary_crossentropy": "BinaryCrossentropy", "mean_squared_error": "MeanSquaredError",
            "mean_absolute_error": "MeanAbsoluteError", "hinge": "Hinge",
            "kl_divergence": "KLDivergence"}
inputs["values_pred_pos"] = np.abs(values_pred[:, :1] * np.ones((1, C))) + rng.uniform(
    0.1, 1, (N, C)).astype(np.float32)  # positive rows that do not sum to 1


def losses():
    out = []
    for fn, kwargs, yt, yp in LOSS_CASES:
        y_true, y_pred = inputs[yt], inputs[yp]
        per = np32(getattr(L, fn)(y_true, y_pred, **kwargs))
        obj = getattr(L, CLASS_OF[fn])(**kwargs)
        out.append({"function": fn, "class": CLASS_OF[fn], "kwargs": kwargs, "y_true": yt,
                    "y_pred": yp, "per_sample": arr(per),
                    "object": float(np32(obj(y_true, y_pred))),
                    "object_weighted": float(np32(obj(y_true, y_pred, sample_weight=weights)))})
    return out


# -- metrics: (constructor, y_true, y_pred) over two batches -----------------------------
M = keras.metrics
MULTI_PROBS = softmax(rng.normal(0, 1.5, (2 * N, C))).astype(np.float32)
MULTI_SPARSE = rng.integers(0, C, 2 * N)
MULTI_ONEHOT = np.eye(C, dtype=np.float32)[MULTI_SPARSE]
BIN_TRUE = rng.integers(0, 2, (2 * N, 1)).astype(np.float32)
BIN_PROBS = rng.uniform(0, 1, (2 * N, 1)).astype(np.float32)
inputs.update({"multi_probs": MULTI_PROBS, "multi_sparse": MULTI_SPARSE,
               "multi_onehot": MULTI_ONEHOT, "bin_true_2": BIN_TRUE, "bin_probs_2": BIN_PROBS,
               "bin_logits_2": np.log(BIN_PROBS / (1 - BIN_PROBS)).astype(np.float32)})
# per-sample weights for the weighted results (a fixed pattern: no draw from rng, so the
# other inputs stay as they were)
METRIC_WEIGHTS = np.linspace(0.0, 2.0, 2 * N).astype(np.float32)
inputs["metric_weights"] = METRIC_WEIGHTS
METRIC_CASES = [
    ("CategoricalAccuracy", {}, "multi_onehot", "multi_probs"),
    ("SparseCategoricalAccuracy", {}, "multi_sparse", "multi_probs"),
    ("BinaryAccuracy", {}, "bin_true_2", "bin_probs_2"),
    ("TopKCategoricalAccuracy", {}, "multi_onehot", "multi_probs"),
    ("TopKCategoricalAccuracy", {"k": 2}, "multi_onehot", "multi_probs"),
    ("SparseTopKCategoricalAccuracy", {}, "multi_sparse", "multi_probs"),
    ("SparseTopKCategoricalAccuracy", {"k": 3}, "multi_sparse", "multi_probs"),
    ("Precision", {}, "bin_true_2", "bin_probs_2"),
    ("Recall", {}, "bin_true_2", "bin_probs_2"),
    ("Precision", {}, "multi_onehot", "multi_probs"),
    ("Recall", {"thresholds": 0.3}, "multi_onehot", "multi_probs"),
    ("AUC", {}, "bin_true_2", "bin_probs_2"),
    ("AUC", {}, "multi_onehot", "multi_probs"),
    ("AUC", {"num_thresholds": 17}, "bin_true_2", "bin_probs_2"),
    ("AUC", {"from_logits": True}, "bin_true_2", "bin_logits_2"),
    ("AUC", {"curve": "PR"}, "bin_true_2", "bin_probs_2"),
    ("AUC", {"curve": "PR", "num_thresholds": 33}, "multi_onehot", "multi_probs"),
    ("AUC", {"curve": "PR", "summation_method": "majoring"}, "bin_true_2", "bin_probs_2"),
    ("AUC", {"summation_method": "minoring"}, "multi_onehot", "multi_probs"),
    ("Precision", {"class_id": 2}, "multi_onehot", "multi_probs"),
    ("Recall", {"class_id": 1, "thresholds": 0.2}, "multi_onehot", "multi_probs"),
    ("BinaryAccuracy", {"threshold": 0.7}, "bin_true_2", "bin_probs_2"),
    ("MeanSquaredError", {}, "multi_onehot", "multi_probs"),
    ("MeanAbsoluteError", {}, "multi_onehot", "multi_probs"),
]


def metrics():
    out = []
    for cls, kwargs, yt, yp in METRIC_CASES:
        m = getattr(M, cls)(**kwargs)
        y_true, y_pred = inputs[yt], inputs[yp]
        m.update_state(y_true[:N], y_pred[:N])
        first = float(np32(m.result()))
        m.update_state(y_true[N:], y_pred[N:])
        weighted = getattr(M, cls)(**kwargs)
        weighted.update_state(y_true, y_pred, sample_weight=METRIC_WEIGHTS)
        out.append({"class": cls, "kwargs": kwargs, "y_true": yt, "y_pred": yp,
                    "name": m.name, "after_first_batch": first,
                    "result": float(np32(m.result())),
                    "weighted": float(np32(weighted.result()))})
    return out


# -- optimizers: a fixed quadratic, gradients a * w + b, applied by apply_gradients ------
W0 = rng.normal(0, 1, (3, 2)).astype(np.float32)
A = rng.uniform(0.5, 2, (3, 2)).astype(np.float32)
B = rng.normal(0, 1, (3, 2)).astype(np.float32)
STEPS = 6
OPT_CASES = [
    ("Adadelta", {}), ("Adadelta", {"learning_rate": 1.0, "rho": 0.9}),
    ("Adamax", {}), ("Adamax", {"learning_rate": 0.05, "beta_1": 0.8}),
    ("Nadam", {}), ("Nadam", {"learning_rate": 0.05, "beta_2": 0.99}),
    ("SGD", {"learning_rate": ("ExponentialDecay", {"initial_learning_rate": 0.1,
                                                     "decay_steps": 2, "decay_rate": 0.5})}),
    ("Adam", {"learning_rate": ("PiecewiseConstantDecay", {"boundaries": [1, 3],
                                                           "values": [0.1, 0.05, 0.01]})}),
]


def optimizers():
    out = []
    for cls, kwargs in OPT_CASES:
        kw = dict(kwargs)
        if isinstance(kw.get("learning_rate"), tuple):
            sname, sargs = kw["learning_rate"]
            kw["learning_rate"] = getattr(keras.optimizers.schedules, sname)(**sargs)
        opt = getattr(keras.optimizers, cls)(**kw)
        var = keras.Variable(W0.copy())
        trace = []
        for _ in range(STEPS):
            grad = A * np32(var).astype(np.float32) + B
            opt.apply_gradients([(keras.ops.convert_to_tensor(grad), var)])
            trace.append(arr(np32(var)))
        defaults = {k: v for k, v in opt.get_config().items()
                    if k in ("learning_rate", "rho", "beta_1", "beta_2", "epsilon")}
        out.append({"class": cls, "kwargs": kwargs, "trace": trace,
                    "config": {k: (v if not isinstance(v, dict) else None)
                               for k, v in defaults.items()}})
    return out


# -- schedules --------------------------------------------------------------------------
SCHED_CASES = [
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.9}),
    ("ExponentialDecay", {"initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5,
                          "staircase": True}),
    ("PiecewiseConstantDecay", {"boundaries": [5, 20], "values": [1.0, 0.5, 0.1]}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 30}),
    ("CosineDecay", {"initial_learning_rate": 0.1, "decay_steps": 30, "alpha": 0.1}),
    ("CosineDecay", {"initial_learning_rate": 0.0, "decay_steps": 30, "warmup_target": 0.2,
                     "warmup_steps": 10}),
    ("InverseTimeDecay", {"initial_learning_rate": 0.1, "decay_steps": 1, "decay_rate": 0.5}),
]
SCHED_STEPS = [0, 1, 2, 4, 5, 6, 9, 10, 11, 15, 20, 21, 30, 35, 40, 100]


def schedules():
    out = []
    for cls, kwargs in SCHED_CASES:
        s = getattr(keras.optimizers.schedules, cls)(**kwargs)
        out.append({"class": cls, "kwargs": kwargs,
                    "values": [float(np32(s(step))) for step in SCHED_STEPS]})
    return out


def main():
    refs = {"keras_version": keras.__version__, "backend": keras.backend.backend(),
            "losses": losses(), "metrics": metrics(), "optimizers": optimizers(),
            "schedules": schedules(), "schedule_steps": SCHED_STEPS,
            "optimizer_problem": {"w0": arr(W0), "a": arr(A), "b": arr(B), "steps": STEPS},
            "inputs": {k: arr(v) for k, v in inputs.items()},
            "backend_module": {"image_data_format": keras.backend.image_data_format(),
                               "epsilon": keras.backend.epsilon(),
                               "floatx": keras.backend.floatx()}}
    OUT.write_text(json.dumps(refs, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
