"""Property: whatever config `cnnlab train` is given, its validation (the checks it runs
before the run directory exists) ends in success or a CnnlabError, never another exception.

Configs are generated around a small valid one: random keys in every section, values of
every type (NaN and infinity included), nested structures, huge and negative numbers, in
the train settings, the optimizer, the schedule, the callbacks and the model's layers.
CNNLAB_HYPOTHESIS_EXAMPLES raises the example count for a longer run.
"""
from __future__ import annotations

import copy
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.errors import CnnlabError
from cnnlab.validate import validate_train

EXAMPLES = int(os.environ.get("CNNLAB_HYPOTHESIS_EXAMPLES", "200"))

BASE = {"model": {"input_shape": [8, 8, 1], "layers": [
            {"Conv2D": {"filters": 2, "kernel_size": 3, "activation": "relu"}},
            {"Flatten": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]},
        "data": {"name": "mnist-sample"},
        "train": {"epochs": 1, "batch_size": 8}}

NUMBERS = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0, 1, -1, 0.5, 1.0, 2**31, 2**32, 2**64, 1e-300, 1e308]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=6))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8)
TRAIN_KEYS = ["loss", "optimizer", "metrics", "batch_size", "epochs", "seed", "shuffle",
              "label_smoothing", "lr_schedule", "validation_freq", "callbacks",
              "checkpoint_every_steps", "device", "threads"]
OPT_KEYS = ["name", "learning_rate", "beta_1", "beta_2", "epsilon", "momentum", "nesterov",
            "rho", "weight_decay", "amsgrad", "centered", "initial_accumulator_value", "lr",
            "decay"]
OPT_NAMES = st.sampled_from(["adam", "sgd", "rmsprop", "adagrad", "adamw", "adadelta", "adamax",
                             "nadam", "Adam", "nope"])
CALLBACKS = st.sampled_from(["EarlyStopping", "TerminateOnNaN", "ReduceLROnPlateau",
                             "ModelCheckpoint", "CSVLogger", "Nope"])
LOSSES = st.sampled_from(["categorical_crossentropy", "sparse_categorical_crossentropy",
                          "binary_crossentropy", "mse", "mae", "hinge", "kl_divergence", "x"])


@st.composite
def configs(draw):
    d = copy.deepcopy(BASE)
    t = d["train"]
    for key in draw(st.lists(st.sampled_from(TRAIN_KEYS + ["junk"]), max_size=4)):
        t[key] = draw(VALUES)
    if draw(st.booleans()):
        opt = {"name": draw(OPT_NAMES)}
        for key in draw(st.lists(st.sampled_from(OPT_KEYS), max_size=3)):
            opt[key] = draw(st.one_of(NUMBERS, SCALARS))
        t["optimizer"] = opt
    if draw(st.booleans()):
        t["loss"] = draw(LOSSES)
    if draw(st.integers(0, 3)) == 0:
        t["lr_schedule"] = {"one_cycle": {k: draw(VALUES) for k in draw(st.lists(
            st.sampled_from(["max_learning_rate", "pct_start", "anneal_strategy"]), max_size=3))}}
    if draw(st.integers(0, 3)) == 0:
        t["callbacks"] = [{draw(CALLBACKS): draw(st.dictionaries(
            st.sampled_from(["patience", "monitor", "factor", "min_delta", "filename", "mode",
                             "min_lr", "x"]), st.one_of(NUMBERS, SCALARS), max_size=2))}]
    if draw(st.integers(0, 3)) == 0:
        d["data"][draw(st.sampled_from(["name", "validation", "fallback", "data_dir", "x"]))] = \
            draw(VALUES)
    if draw(st.integers(0, 3)) == 0:
        layer = draw(st.integers(0, 2))
        name = next(iter(d["model"]["layers"][layer]))
        d["model"]["layers"][layer][name][draw(st.sampled_from(
            ["filters", "kernel_size", "units", "activation", "strides", "x"]))] = draw(VALUES)
    if draw(st.integers(0, 5)) == 0:
        d[draw(st.sampled_from(["model", "data", "train", "extra"]))] = draw(VALUES)
    return d


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(configs())
def test_train_validation_refuses_with_a_cnnlab_error_or_accepts(d):
    import warnings

    from cnnlab import deprecation
    noticed = set(deprecation._NOTICED)  # Keras 2 notices are once per process: keep them
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            cfg = validate_train(d)
    except CnnlabError as err:
        assert str(err)  # a message, never an empty one
        return
    finally:
        deprecation._NOTICED.clear()
        deprecation._NOTICED.update(noticed)
    # accepted: what training will read is in its domain
    t = cfg.train
    assert isinstance(t["epochs"], int) and t["epochs"] >= 1
    assert t["threads"] is None or 1 <= t["threads"] <= 512
    assert cfg.to_yaml()  # and it can be written to the run directory
