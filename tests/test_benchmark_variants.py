"""The --variants mode of benchmarks/epoch_time.py: the models it times are improve.yaml's,
the PyTorch-eager port is the same model, and the targets are judged as issue 16 states."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnlab

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "benchmarks" / "workers"))
import variant_model  # noqa: E402
import variants  # noqa: E402

RECIPES = variants.resolve(ROOT / "examples" / "improve.yaml", None)


def test_every_improve_yaml_variant_is_timed_with_its_own_settings():
    raw = cnnlab.spec.read_yaml_file(ROOT / "examples" / "improve.yaml")
    assert list(RECIPES) == ["base", *raw["variants"]]
    assert RECIPES["batch_32"]["batch_size"] == 32
    assert RECIPES["sgd_momentum"]["optimizer"] == {"name": "sgd", "learning_rate": 0.01,
                                                    "momentum": 0.9}
    kinds = [k for k, _ in RECIPES["strided"]["layers"]]
    assert "MaxPooling2D" not in kinds


def test_unknown_variant_lists_the_valid_names():
    with pytest.raises(ValueError, match=r"Unknown variant\(s\) nope. Expected names from base, mlp"):
        variants.resolve(ROOT / "examples" / "improve.yaml", ["nope"])


def _keras_count(model):
    return sum(int(np.prod(a.shape)) for layer in model.net.keras_weights() for a in layer)


@pytest.mark.parametrize("name", list(RECIPES))
def test_torch_eager_port_is_the_same_model(name):
    recipe = RECIPES[name]
    model = variant_model.keras_model(cnnlab, recipe)
    net, regularized = variant_model.torch_model(torch, recipe)
    torch_count = sum(p.numel() for p in net.parameters()) + sum(b.numel() for b in net.buffers()
                                                                 if b.dim() > 0)
    assert torch_count == _keras_count(model)
    shape = recipe["input_shape"]
    x = torch.rand(2, *([shape[2], shape[0], shape[1]] if len(shape) == 3 else shape))
    assert net(x).shape == (2, 10)
    assert bool(regularized) == (name in ("l1", "l2"))


def _run(epochs):
    return {"status": "ok", "epoch_s": epochs}


def test_ratios_targets_and_first_epoch():
    results = {
        "base": {"cnnlab": [_run([1.0, 0.3, 0.2])], "tf-keras": [_run([3.0, 1.0, 1.1])],
                 "torch-eager": [_run([0.5, 0.4, 0.4])]},
        "wider": {"cnnlab": [_run([0.5, 0.4, 0.45]), _run([0.6, 0.5, 0.5])],
                  "tf-keras": [_run([3.0, 0.9, 0.9])], "torch-eager": [_run([0.4, 0.3, 0.3])]},
    }
    rows = variants.summarise(results)
    assert rows["base"]["ratio_to_tf_keras"] == pytest.approx(0.2)
    assert rows["base"]["cnnlab"]["first_over_later"] == pytest.approx(5.0)
    assert rows["wider"]["cnnlab"]["fastest_epoch_s"] == 0.4  # the fastest over both rounds
    verdicts = {(t["variant"], t["target"]): t["verdict"] for t in variants.check_targets(rows)}
    assert verdicts == {("base", "x tf.keras"): "PASS", ("base", "x torch-eager"): "PASS",
                        ("base", "first/later"): "MISS", ("wider", "x tf.keras"): "MISS",
                        ("wider", "x torch-eager"): "MISS", ("wider", "first/later"): "PASS"}
    text = variants.table(rows)
    assert "x tf.keras" in text and "wider" in text


def test_a_system_that_failed_is_not_a_pass():
    rows = variants.summarise({"base": {"cnnlab": [{"status": "failed", "reason": "boom"}],
                                        "tf-keras": [_run([1.0, 1.0])]}})
    assert {t["verdict"] for t in variants.check_targets(rows)} == {"n/a"}
    assert "base / cnnlab: failed: boom" in variants.table(rows)
