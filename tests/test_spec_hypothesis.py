"""Property-based tests of the spec parser and validator, and of the run config.

A random spec (mostly plausible layers and arguments, sometimes wrong ones:
bad types, out-of-range values, unknown names and keys, junk entries) either

- builds: then the torch module's output shape after every layer equals the
  summary's, its parameter counts equal the summary's, its output is finite,
  and the spec survives a YAML round trip unchanged; or
- fails with a SpecError/ConfigError with a message, never another exception.

The example count is bounded for the normal suite; CNNLAB_HYPOTHESIS_EXAMPLES
raises it for a longer run (e.g. 2000).
"""
from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cnnlab import builder
from cnnlab.config import RunConfig
from cnnlab.errors import ConfigError, SpecError
from cnnlab.spec import ModelSpec, load_yaml
from cnnlab.summary import rows, summary_text, totals

EXAMPLES = int(os.environ.get("CNNLAB_HYPOTHESIS_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- values: mostly valid, sometimes not ---------------------------------------------

JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                 st.text(max_size=4), st.lists(st.integers(-1, 3), max_size=3),
                 st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def weighted(*choices):
    """One of the strategies, with the given weights: weighted((9, good), (1, bad))."""
    total = sum(w for w, _ in choices)

    def pick(r):
        for w, strategy in choices:
            if r < w:
                return strategy
            r -= w
    return st.integers(0, total - 1).flatmap(pick)


def sometimes_bad(good, odds: int = 15):
    """`good` values, and one time in `odds` a junk value."""
    return weighted((odds - 1, good), (1, JUNK))


small = st.integers(1, 4)
pair = st.one_of(small, st.lists(small, min_size=2, max_size=2))
ACTIVATIONS = st.sampled_from([None, "relu", "softmax", "sigmoid", "tanh", "linear", "elu",
                               "gelu", "swish", "leaky_relu", "selu"])
INITS = st.sampled_from(["glorot_uniform", "he_normal", "zeros", "ones", "lecun_normal"])
REGS = st.one_of(st.none(), st.sampled_from(["l1", "l2", "l1_l2"]),
                 st.fixed_dictionaries({"l2": st.floats(0, 0.1)}))
PADDING = st.sampled_from(["valid", "same"])


def args(**fields):
    """A random subset of optional arguments, each maybe bad, plus maybe an unknown one."""
    required = {k[1:]: v for k, v in fields.items() if k.startswith("_")}
    optional = {k: v for k, v in fields.items() if not k.startswith("_")}
    base = st.fixed_dictionaries({k: sometimes_bad(v) for k, v in required.items()},
                                 optional={k: sometimes_bad(v) for k, v in optional.items()})
    extra = st.dictionaries(st.sampled_from(["bogus", "name", "input_shape"]), JUNK, max_size=1)
    return st.tuples(base, weighted((14, st.just({})), (1, extra))).map(lambda t: {**t[0], **t[1]})


LAYER_ARGS = {
    "Conv2D": args(_filters=small, _kernel_size=pair, strides=pair, padding=PADDING,
                   activation=ACTIVATIONS, use_bias=st.booleans(), kernel_initializer=INITS,
                   bias_initializer=INITS, kernel_regularizer=REGS),
    "MaxPooling2D": args(pool_size=pair, strides=pair, padding=PADDING),
    "AveragePooling2D": args(pool_size=pair, strides=pair, padding=PADDING),
    "GlobalAveragePooling2D": args(),
    "GlobalMaxPooling2D": args(),
    "Flatten": args(),
    "Dense": args(_units=st.integers(1, 6), activation=ACTIVATIONS, use_bias=st.booleans(),
                  kernel_initializer=INITS, bias_regularizer=REGS),
    "Dropout": args(_rate=st.floats(0, 1)),
    "Activation": args(_activation=ACTIVATIONS),
    "BatchNormalization": args(momentum=st.floats(0, 0.999), epsilon=st.floats(1e-5, 0.1),
                               center=st.booleans(), scale=st.booleans()),
    "Reshape": args(_target_shape=st.lists(st.sampled_from([-1, 1, 2, 3, 4]), min_size=1,
                                           max_size=3)),
    "Input": args(_shape=st.lists(st.integers(1, 6), min_size=1, max_size=3)),
    # the tutorial layers (layers/activation_layers.py, reshaping.py, conv_variants.py, ...)
    "Softmax": args(axis=st.one_of(st.integers(-4, 3), st.lists(st.integers(-3, 3), min_size=1,
                                                                  max_size=2))),
    "ReLU": args(max_value=st.one_of(st.none(), st.floats(0, 6)), negative_slope=st.floats(0, 1),
                 threshold=st.floats(0, 1)),
    "LeakyReLU": args(negative_slope=st.floats(0, 1)),
    "ELU": args(alpha=st.floats(-2, 2)),
    "Rescaling": args(_scale=st.one_of(st.floats(-2, 2), st.lists(st.floats(-2, 2), min_size=1,
                                                                    max_size=3)),
                      offset=st.floats(-1, 1)),
    "ZeroPadding2D": args(padding=st.one_of(st.integers(0, 2), st.lists(st.integers(0, 2),
                                                                         min_size=2, max_size=2),
                                            st.lists(st.lists(st.integers(0, 2), min_size=2,
                                                              max_size=2), min_size=2, max_size=2))),
    "Cropping2D": args(cropping=st.one_of(st.integers(0, 2), st.lists(st.integers(0, 2),
                                                                       min_size=2, max_size=2))),
    "UpSampling2D": args(size=pair, interpolation=st.sampled_from(["nearest", "bilinear"])),
    "SpatialDropout2D": args(_rate=st.floats(0, 1)),
    "Conv2DTranspose": args(_filters=small, _kernel_size=pair, strides=pair, padding=PADDING,
                            output_padding=st.one_of(st.none(), st.integers(0, 1)),
                            activation=ACTIVATIONS, use_bias=st.booleans(),
                            kernel_regularizer=REGS),
    "DepthwiseConv2D": args(_kernel_size=pair, strides=pair, padding=PADDING,
                            depth_multiplier=small, use_bias=st.booleans(),
                            depthwise_initializer=INITS, depthwise_regularizer=REGS),
    "SeparableConv2D": args(_filters=small, _kernel_size=pair, strides=pair, padding=PADDING,
                            depth_multiplier=small, activation=ACTIVATIONS,
                            pointwise_regularizer=REGS),
}


# image layers come more often than those that end the image part (Flatten, Dense, ...),
# so that a good share of random specs is valid
IMAGE_LAYERS = ["Conv2D", "Conv2D", "MaxPooling2D", "AveragePooling2D", "BatchNormalization",
                "Dropout", "Activation", "Softmax", "ReLU", "LeakyReLU", "ELU", "Rescaling",
                "ZeroPadding2D", "Cropping2D", "UpSampling2D", "SpatialDropout2D",
                "Conv2DTranspose", "DepthwiseConv2D", "SeparableConv2D"]
OTHER_LAYERS = ["Flatten", "Dense", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Reshape",
                "Input"]


def layer_entry():
    named = st.sampled_from(IMAGE_LAYERS * 3 + OTHER_LAYERS).flatmap(
        lambda name: weighted((8, LAYER_ARGS[name].map(lambda a: {name: a})),
                              (1, st.just(name)), (1, st.just({name: None}))))
    junk = st.one_of(st.text(max_size=6), st.just({"Dense": {}, "Flatten": {}}),
                     st.just({"Dense": [3]}), st.just({1: {}}), st.integers(), st.none())
    return weighted((19, named), (1, junk))


input_shapes = sometimes_bad(st.one_of(
    st.lists(st.integers(1, 10), min_size=3, max_size=3),
    st.lists(st.integers(1, 10), min_size=1, max_size=2)))
head = st.one_of(st.just([]), st.just(["Flatten", {"Dense": {"units": 3}}]),
                 st.just(["GlobalMaxPooling2D"]))
layer_lists = st.tuples(st.lists(layer_entry(), min_size=1, max_size=4), head).map(
    lambda t: t[0] + t[1])
model_dicts = weighted(
    (8, st.fixed_dictionaries({"input_shape": input_shapes, "layers": layer_lists})),
    (2, st.fixed_dictionaries({"layers": sometimes_bad(layer_lists, 3)},
                          optional={"input_shape": input_shapes,
                                    "name": sometimes_bad(st.text(min_size=1, max_size=5), 3),
                                    "bogus": JUNK})))


# -- properties ---------------------------------------------------------------------

def keras_shape(t: torch.Tensor) -> tuple:
    """The Keras shape (no batch axis) of an internal tensor: images are (N, C, H, W)."""
    if t.dim() == 4:
        return (t.shape[2], t.shape[3], t.shape[1])
    return tuple(t.shape[1:])


def check_builds_as_summarized(spec: ModelSpec) -> None:
    torch.manual_seed(0)
    net = builder.build(spec)
    table = rows(spec)
    x = torch.rand(2, *spec.input_shape)
    h = x.permute(0, 3, 1, 2) if len(spec.input_shape) == 3 else x
    net.train()  # batch statistics and dropout: the shapes must not depend on the mode
    for layer, module, row in zip(spec.layers, net.layers, table):
        h = module(h)  # each layer's own module, as the spec says (the rewrites run net.chain)
        assert keras_shape(h) == tuple(row.output_shape), (layer, keras_shape(h), row)
    net.eval()
    with torch.no_grad():
        out = net(x)
    assert tuple(out.shape) == (2, *spec.output_shapes[-1])
    assert torch.isfinite(out).all()
    t = totals(spec)
    assert sum(p.numel() for p in net.parameters()) == t["trainable_params"]
    assert sum(v.numel() for v in net.state_dict().values()) == t["total_params"]
    assert summary_text(spec).startswith(f'Model: "{spec.name}"')


@SETTINGS
@given(model_dicts)
def test_random_specs_build_as_summarized_or_fail_clearly(d):
    try:
        spec = ModelSpec.from_dict(d)
    except (SpecError, ConfigError) as err:
        assert str(err) and "Traceback" not in str(err)
        event("refused with a SpecError/ConfigError")
        return
    event("built")
    check_builds_as_summarized(spec)
    assert ModelSpec.from_yaml(spec.to_yaml()) == spec
    assert ModelSpec.from_dict(spec.to_dict()).to_yaml() == spec.to_yaml()


# valid specs only (for coverage of the building side): chains that always fit
valid_layers = st.lists(st.one_of(
    st.builds(lambda f, k, p, a: {"Conv2D": {"filters": f, "kernel_size": k, "padding": "same",
                                             "activation": a}}, small, pair, PADDING, ACTIVATIONS),
    st.builds(lambda p, s: {"MaxPooling2D": {"pool_size": p, "strides": s, "padding": "same"}},
              pair, pair),
    st.builds(lambda p: {"AveragePooling2D": {"pool_size": p, "padding": "same"}}, pair),
    st.just({"BatchNormalization": {}}), st.just({"Dropout": {"rate": 0.5}}),
    st.builds(lambda a: {"Activation": {"activation": a}}, ACTIVATIONS.filter(bool)),
), max_size=5)


@SETTINGS
@given(st.lists(st.integers(1, 10), min_size=3, max_size=3), valid_layers,
       st.sampled_from(["Flatten", "GlobalAveragePooling2D", "GlobalMaxPooling2D"]),
       st.integers(1, 6))
def test_valid_image_models_always_build_as_summarized(shape, layers, head, units):
    spec = ModelSpec.from_dict({"input_shape": shape,
                                "layers": [*layers, head, {"Dense": {"units": units,
                                                                     "activation": "softmax"}}]})
    check_builds_as_summarized(spec)


# -- the run config around the spec ---------------------------------------------------

TRAIN_VALUES = {
    "loss": st.sampled_from(["categorical_crossentropy", "sparse_categorical_crossentropy",
                             "mse", "nope"]),
    "optimizer": st.one_of(st.sampled_from(["adam", "sgd", "rmsprop", "lion"]),
                           st.fixed_dictionaries({"name": st.sampled_from(["adam", "sgd"])},
                                                 optional={"learning_rate": st.floats(-1, 1),
                                                           "momentum": st.floats(0, 1),
                                                           "bogus": st.integers()})),
    "batch_size": st.integers(-2, 300), "epochs": st.integers(-2, 30), "seed": st.integers(-2, 10),
    "shuffle": st.booleans(), "label_smoothing": st.floats(-0.5, 1.5),
    "lr_schedule": st.one_of(st.none(), st.just({"one_cycle": {"max_learning_rate": 0.01}}),
                             st.just({"one_cycle": {"bogus": 1}})),
    "validation_freq": st.integers(-1, 4), "checkpoint_every_steps": st.integers(-1, 10),
    "device": st.sampled_from(["auto", "cpu", "cuda", "tpu"]),
    "threads": st.one_of(st.none(), st.integers(-1, 4)),
    "metrics": st.sampled_from([["accuracy"], [], ["auc"]]),
    "callbacks": st.lists(st.sampled_from(["TerminateOnNaN", "Bogus", {"EarlyStopping": {}}]),
                          max_size=2),
}
configs = st.fixed_dictionaries(
    {}, optional={"train": st.fixed_dictionaries(
        {}, optional={k: sometimes_bad(v) for k, v in TRAIN_VALUES.items()}),
        "data": st.fixed_dictionaries({}, optional={
            "name": sometimes_bad(st.sampled_from(["mnist", "npz:x.npz", "idx:", "fashion-mnist"])),
            "validation": sometimes_bad(st.one_of(st.just("test"), st.floats(0, 1))),
            "fallback": st.booleans()}),
        "model": st.one_of(model_dicts, st.just({"input_shape": [8, 8, 1],
                                                 "layers": ["Flatten", {"Dense": {"units": 3}}]})),
        "bogus": JUNK})


@SETTINGS
@given(configs)
def test_random_run_configs_load_or_fail_clearly(d):
    try:
        cfg = RunConfig.from_dict(d)
    except (SpecError, ConfigError) as err:
        assert str(err)
        return
    again = RunConfig.from_dict(load_yaml(cfg.to_yaml()))
    assert again.to_dict() == cfg.to_dict()
    t = cfg.train
    assert t["batch_size"] > 0 and t["epochs"] > 0 and 0 <= t["label_smoothing"] < 1


@SETTINGS
@given(st.text(max_size=200))
def test_random_yaml_text_loads_or_fails_with_line_and_column(text):
    try:
        value = load_yaml(text, "c.yaml")
    except ConfigError as err:
        assert str(err).startswith("Invalid YAML in c.yaml")
        return
    try:
        RunConfig.from_dict(value, "c.yaml")
    except (SpecError, ConfigError) as err:
        assert str(err)


@pytest.mark.parametrize("text,where", [
    ("model:\n  layers: [\n    - Dense\n", "line 3, column 5"),
    ("a: b: c\n", "line 1, column 5"),
    ("train: {epochs: 3\n", "line 2, column 1"),
    ("'unclosed\n", "line 2, column 1"),
])
def test_yaml_errors_name_line_and_column(text, where):
    with pytest.raises(ConfigError, match=f"Invalid YAML in c.yaml at {where}: "):
        load_yaml(text, "c.yaml")


def test_the_hypothesis_budget_is_bounded():
    assert EXAMPLES >= 100 and math.isfinite(EXAMPLES)
