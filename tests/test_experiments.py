"""Experiments without training: variant operations, validation, statistics, improve.yaml."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.config import RunConfig
from cnnlab.errors import ConfigError
from cnnlab.experiments import stats
from cnnlab.experiments.plan import load_experiment, parse_experiment
from cnnlab.experiments.variants import apply_variant, describe

ROOT = Path(__file__).resolve().parents[1]
BASE = RunConfig.from_dict({}).to_dict()   # the lecture's config


def variant(ops) -> RunConfig:
    return RunConfig.from_dict(apply_variant(BASE, ops))


def layers(cfg: RunConfig) -> list[tuple[str, dict]]:
    return [next(iter(e.items())) for e in cfg.spec.to_dict()["layers"]]


def kinds(cfg: RunConfig) -> list[str]:
    return [k for k, _ in layers(cfg)]


LECTURE_KINDS = ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]


# -- each kind of change produces the intended spec ----------------------------------

def test_no_change_is_the_base():
    assert variant({}).to_dict() == RunConfig.from_dict(BASE).to_dict()


def test_set_changes_filters_units_kernel_size_and_strides():
    cfg = variant({"set": {"conv2d": {"filters": 64, "kernel_size": 5},
                           "conv2d_1": {"strides": 2, "padding": "same"},
                           "dense": {"units": 128}}})
    (_, c0), _, (_, c1), _, _, (_, d0), _ = layers(cfg)
    assert (c0["filters"], c0["kernel_size"]) == (64, [5, 5])
    assert (c1["strides"], c1["padding"]) == ([2, 2], "same")
    assert d0["units"] == 128
    assert cfg.spec.output_shapes[0] == (24, 24, 64)


def test_set_changes_a_dropout_rate_an_initializer_and_a_regularizer():
    base = apply_variant(BASE, {"insert": {"after": "dense", "layer": {"Dropout": {"rate": 0.5}}}})
    cfg = RunConfig.from_dict(apply_variant(base, {"set": {
        "dropout": {"rate": 0.2},
        "dense": {"kernel_initializer": "he_normal", "kernel_regularizer": {"l1": 0.001}}}}))
    assert layers(cfg)[6] == ("Dropout", {"rate": 0.2})
    assert layers(cfg)[5][1]["kernel_initializer"] == "he_normal"
    assert layers(cfg)[5][1]["kernel_regularizer"] == {"l1": 0.001}


def test_layers_are_addressed_by_index_too_and_negative_from_the_end():
    cfg = variant({"set": {0: {"filters": 8}, -2: {"units": 16}}})
    assert layers(cfg)[0][1]["filters"] == 8 and layers(cfg)[5][1]["units"] == 16


def test_set_all_from_to_changes_only_matching_layers():
    cfg = variant({"set_all": {"activation": {"from": "relu", "to": "elu"}}})
    acts = [a.get("activation") for k, a in layers(cfg) if k in ("Conv2D", "Dense")]
    assert acts == ["elu", "elu", "elu", "softmax"]


def test_set_all_plain_value_goes_to_every_layer_that_takes_it():
    cfg = variant({"set_all": {"kernel_regularizer": {"l2": 0.001},
                               "kernel_initializer": "lecun_normal"}})
    for kind, args in layers(cfg):
        if kind in ("Conv2D", "Dense"):
            assert args["kernel_regularizer"] == {"l2": 0.001}
            assert args["kernel_initializer"] == "lecun_normal"
        else:
            assert "kernel_regularizer" not in args


def test_insert_after_and_before_by_name_keeps_order():
    cfg = variant({"insert": [{"after": "flatten", "layer": {"Dropout": {"rate": 0.25}}},
                              {"after": "flatten", "layer": {"Dropout": {"rate": 0.1}}},
                              {"before": "dense_1", "layers": ["Flatten"]}]})
    assert kinds(cfg) == LECTURE_KINDS[:5] + ["Dropout", "Dropout", "Dense", "Flatten", "Dense"]
    assert [a["rate"] for k, a in layers(cfg) if k == "Dropout"] == [0.25, 0.1]


def test_insert_a_conv_layer():
    cfg = variant({"insert": {"after": "conv2d_1", "layer": {"Conv2D": {
        "filters": 64, "kernel_size": 3, "activation": "relu", "padding": "same"}}}})
    assert kinds(cfg) == ["Conv2D", "MaxPooling2D", "Conv2D", "Conv2D", *LECTURE_KINDS[3:]]
    assert cfg.spec.output_shapes[3] == (11, 11, 64)


def test_remove_by_name_and_index():
    cfg = variant({"remove": ["max_pooling2d_1", 1]})
    assert kinds(cfg) == ["Conv2D", "Conv2D", "Flatten", "Dense", "Dense"]


def test_replace_a_layer():
    cfg = variant({"replace": {"max_pooling2d": {"AveragePooling2D": {"pool_size": 2}}}})
    assert kinds(cfg)[1] == "AveragePooling2D"


def test_pool_to_stride_folds_each_pooling_into_the_conv_before_it():
    cfg = variant({"pool_to_stride": True})
    assert kinds(cfg) == ["Conv2D", "Conv2D", "Flatten", "Dense", "Dense"]
    assert [a.get("strides") for k, a in layers(cfg) if k == "Conv2D"] == [[2, 2], [2, 2]]
    # the same shapes reach Flatten, with the same parameters as the lecture's model
    assert cfg.spec.output_shapes[1] == (6, 6, 64)
    assert cfg.spec.output_shapes[-1] == (10,)


def test_pool_to_stride_of_one_named_pooling():
    cfg = variant({"pool_to_stride": ["max_pooling2d"]})
    assert kinds(cfg) == ["Conv2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]


def test_batchnorm_after_named_layers():
    cfg = variant({"batchnorm_after": ["conv2d", "dense"],
                   "insert": {"after": "dense", "layer": {"Dropout": {"rate": 0.5}}}})
    assert kinds(cfg) == ["Conv2D", "BatchNormalization", "MaxPooling2D", "Conv2D",
                          "MaxPooling2D", "Flatten", "Dense", "BatchNormalization", "Dropout",
                          "Dense"]


def test_train_changes_optimizer_learning_rate_batch_size_epochs():
    cfg = variant({"train": {"optimizer": {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9},
                             "batch_size": 32, "epochs": 3}})
    assert cfg.train["optimizer"] == {"name": "sgd", "learning_rate": 0.01, "momentum": 0.9}
    assert (cfg.train["batch_size"], cfg.train["epochs"]) == (32, 3)


def test_optimizer_without_name_changes_only_the_given_arguments():
    cfg = variant({"train": {"optimizer": {"learning_rate": 0.01}}})
    assert cfg.train["optimizer"] == {"name": "adam", "learning_rate": 0.01}


def test_a_whole_model():
    mlp = {"input_shape": [784], "layers": [{"Dense": {"units": 32, "activation": "relu"}},
                                            {"Dense": {"units": 10, "activation": "softmax"}}]}
    cfg = variant({"model": mlp, "set": {"dense": {"units": 16}}})
    assert cfg.spec.input_shape == (784,) and cfg.spec.output_shapes[0] == (16,)


def test_descriptions_are_plain_words():
    assert describe({"set": {"dense": {"units": 128}}}) == "dense: units=128"
    assert describe({"set_all": {"activation": {"from": "relu", "to": "elu"}}}) == \
        "activation relu -> elu"
    assert describe({"insert": {"after": "flatten", "layer": {"Dropout": {"rate": 0.25}}}}) == \
        "Dropout(rate=0.25) after flatten"
    assert describe({"train": {"optimizer": {"name": "sgd", "learning_rate": 0.01}}}) == \
        "optimizer sgd(learning_rate=0.01)"
    assert describe({"pool_to_stride": True}) == "strided Conv2D instead of every pooling layer"
    assert describe({"description": "mine", "train": {"batch_size": 32}}) == "mine"


# -- invalid variants are refused, by name, with the reason -------------------------------

@pytest.mark.parametrize("ops, reason", [
    ({"set": {"conv9": {"filters": 3}}}, "unknown layer 'conv9'. Expected one of: conv2d, "
                                         "max_pooling2d, conv2d_1"),
    ({"set": {"conv2d": {"filters": 0}}}, "Expected a strictly positive integer. Received "
                                          "filters=0."),
    ({"remove": 7}, "layer index 7 is out of range"),
    ({"remove": "flatten", "insert": {"after": "flatten", "layer": "Dropout"}},
     "layer 'flatten' is removed by this variant"),
    ({"insert": {"after": "flatten", "layer": {"Dropout": {"rate": 2}}}}, "rate=2"),
    ({"insert": {"after": "flatten"}}, "expected {after: LAYER, layer: NEW_LAYER}"),
    ({"pool_to_stride": ["conv2d"]}, "is a Conv2D. Expected a pooling layer"),
    ({"remove": "flatten"}, "Expected a vector of class scores"),  # Dense keeps rank 3
    ({"set": {"conv2d": {"kernel_size": 30}}}, "larger than its input"),
    ({"dropout": 0.5}, "Unknown change `dropout`. Expected one of: model, set, set_all"),
    ({"train": {"optimizer": {"name": "adamux"}}}, "Unknown optimizer 'adamux'"),
    ({"train": {"batch_size": 0}}, "batch_size=0"),
])
def test_invalid_variant_is_refused_with_its_name_and_reason(ops, reason):
    d = {"base": BASE, "variants": {"good": {}, "bad": ops}}
    with pytest.raises(ConfigError) as err:
        parse_experiment(d, "exp.yaml")
    text = str(err.value)
    assert "nothing was trained" in text and "  bad: " in text and "good" not in text
    assert reason in text


def test_every_invalid_variant_is_listed_at_once():
    d = {"variants": {"a": {"set": {"x": {}}}, "b": {"remove": 99}, "c": {}}}
    with pytest.raises(ConfigError, match=r"2 invalid variant\(s\)") as err:
        parse_experiment(d, "exp.yaml")
    assert "  a: " in str(err.value) and "  b: " in str(err.value)


@pytest.mark.parametrize("d, message", [
    ({"variants": {"base": {}}}, "reserved"),
    ({"variants": {"bad name": {}}}, "Invalid variant name 'bad name'"),
    ({"seeds": 0}, "Received seeds=0"),
    ({"variant": {}}, "Unknown key `variant`"),
    ({"variants": [1, 2]}, "Expected a mapping from variant names"),
    ({"base": {"train": {"epochs": -1}}}, "Invalid base config"),
])
def test_invalid_experiment_files(d, message):
    with pytest.raises(ConfigError, match=message):
        parse_experiment(d, "exp.yaml")


def test_global_overrides_apply_to_every_variant():
    d = {"seeds": 3, "variants": {"e5": {"train": {"epochs": 5}}, "b": {"train": {"batch_size": 32}}}}
    exp = parse_experiment(d, "exp.yaml", epochs=2, seeds=2, data={"name": "mnist-sample"})
    assert exp.seeds == 2
    assert {v.cfg.train["epochs"] for v in exp.variants} == {2}
    assert {v.cfg.data["name"] for v in exp.variants} == {"mnist-sample"}
    jobs = exp.jobs()
    assert [j.run_name for j in jobs] == ["base-s0", "e5-s0", "b-s0", "base-s1", "e5-s1", "b-s1"]
    assert [j.cfg.train["seed"] for j in jobs] == [0, 0, 0, 1, 1, 1]


def test_only_selects_variants_and_keeps_the_base():
    exp = parse_experiment({"variants": {"a": {}, "b": {}}}, "x.yaml", only=["b"])
    assert [v.name for v in exp.variants] == ["base", "b"]
    with pytest.raises(ConfigError, match="Unknown variant 'c' in --only"):
        parse_experiment({"variants": {"a": {}}}, "x.yaml", only=["c"])


def test_base_from_a_file_relative_to_the_experiment(tmp_path):
    (tmp_path / "model.yaml").write_text((ROOT / "examples" / "lecture_model.yaml").read_text())
    (tmp_path / "exp.yaml").write_text("base: model.yaml\nvariants: {wide: {set: {dense: {units: 8}}}}\n")
    exp = load_experiment(tmp_path / "exp.yaml")
    assert exp.name == "exp" and exp.variants[1].cfg.spec.output_shapes[5] == (8,)


# -- examples/improve.yaml covers every bullet of "Improving your model" --------------------

def test_improve_yaml_covers_the_lecture_slides():
    exp = load_experiment(ROOT / "examples" / "improve.yaml")
    v = {x.name: x.cfg for x in exp.variants}
    base = v["base"]
    assert base.spec == RunConfig.from_dict({}).spec              # the lecture's model
    assert v["mlp"].spec.input_shape == (784,)                    # vector input, no conv
    assert not any(k == "Conv2D" for k in kinds(v["mlp"]))
    assert kinds(v["add_conv"]).count("Conv2D") == 3              # add layers
    assert v["wider"].spec.output_shapes[0][-1] > base.spec.output_shapes[0][-1]
    assert "MaxPooling2D" not in kinds(v["strided"])              # strides instead of pooling
    acts = {n: {a.get("activation") for k, a in layers(v[n]) if k != "Flatten"} for n in ("elu", "selu")}
    assert "elu" in acts["elu"] and "selu" in acts["selu"]
    assert {a.get("kernel_initializer") for k, a in layers(v["selu"]) if k == "Conv2D"} == {"lecun_normal"}
    assert "l1" in layers(v["l1"])[0][1]["kernel_regularizer"]
    assert "l2" in layers(v["l2"])[0][1]["kernel_regularizer"]
    assert "Dropout" in kinds(v["dropout"])
    opts = {n: v[n].train["optimizer"] for n in ("base", "sgd", "sgd_momentum")}
    assert opts["base"]["name"] == "adam" and opts["sgd"]["name"] == "sgd"
    assert opts["sgd_momentum"]["momentum"] > 0 and opts["sgd"].get("momentum", 0) == 0
    lrs = {c.train["optimizer"]["learning_rate"] for n, c in v.items() if c.train["optimizer"]["name"] == "adam"}
    assert len(lrs) >= 3
    assert {c.train["batch_size"] for c in v.values()} >= {32, 128, 512}
    assert "BatchNormalization" in kinds(v["batchnorm"])
    assert exp.seeds >= 2


# -- statistics -------------------------------------------------------------------------

def test_t_distribution_matches_closed_forms():
    # df = 2: P(|T| >= t) = 1 - t / sqrt(2 + t^2); df = 1 (Cauchy): 1 - 2 atan(t) / pi
    for t in (0.1, 1.0, 2.0, 4.3, 20.0):
        assert stats.t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)
        assert stats.t_two_sided_p(t, 1) == pytest.approx(1 - 2 * math.atan(t) / math.pi, rel=1e-9)
    assert stats.t_two_sided_p(2.228138852, 10) == pytest.approx(0.05, abs=1e-6)  # table value
    assert stats.t_two_sided_p(1.959963985, 1e7) == pytest.approx(0.05, abs=1e-5)  # normal limit
    assert stats.t_two_sided_p(0.0, 3) == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(st.floats(0, 50), st.floats(0, 50), st.floats(0.5, 200))
def test_p_is_a_probability_decreasing_in_t(t1, t2, df):
    p1, p2 = stats.t_two_sided_p(t1, df), stats.t_two_sided_p(t2, df)
    assert 0.0 <= p1 <= 1.0
    assert stats.t_two_sided_p(-t1, df) == pytest.approx(p1)
    if t1 < t2:
        assert p1 >= p2 - 1e-12


def test_welch_by_hand():
    a, b = [0.90, 0.92, 0.91], [0.93, 0.95, 0.96]
    d = stats.welch(a, b)
    va, vb = 0.0001 / 3, (0.0002333333333) / 3
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    assert d.diff == pytest.approx(0.0366666667)
    assert d.se == pytest.approx(se, rel=1e-6) and d.df == pytest.approx(df, rel=1e-6)
    assert d.p == pytest.approx(stats.t_two_sided_p(d.diff / se, df))
    assert d.significant and 0.01 < d.p < 0.05


def test_critical_t_and_the_verdicts():
    assert stats.t_critical(1) == pytest.approx(12.7062, abs=1e-3)
    assert stats.t_critical(2) == pytest.approx(4.3027, abs=1e-3)
    assert stats.t_critical(10) == pytest.approx(2.2281, abs=1e-3)
    big = stats.welch([0.80, 0.86], [0.70, 0.78])          # 9 pt, noise 5 pt: ~1.8x
    assert big.verdict == "within the noise"
    far = stats.welch([0.80, 0.81], [0.70, 0.75])          # 8 pt, noise 2.5 pt: 3.1x
    assert far.inconclusive and far.verdict.startswith("inconclusive: 3.1x the noise, but p < 0.05 would need 10.7x")
    clear = stats.welch([0.80, 0.801, 0.799], [0.70, 0.701, 0.699])
    assert clear.verdict == "beyond the noise" and not clear.inconclusive


def test_welch_without_a_noise_estimate():
    d = stats.welch([0.9], [0.95, 0.96])
    assert not d.tested and not d.significant and d.note == "no noise estimate: 1 seed"
    assert d.diff == pytest.approx(0.055)
    assert stats.welch([0.9, 0.9], [0.91, 0.91]).note.startswith("no noise estimate: every seed")
    assert not stats.welch([0.9, 0.91], [0.9, 0.91]).significant
    assert stats.welch([], [0.9]).note == "no finished runs"


def test_mean_and_sample_std():
    assert stats.mean([1, 2, 3]) == 2 and stats.std([1, 2, 3]) == 1.0
    assert math.isnan(stats.std([1.0]))
