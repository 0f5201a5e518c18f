"""Shapes, parameter counts, names and forward passes against Keras itself.

The references in tests/keras_refs/ were made once with Keras 3 (see its README
and make_refs.py); the suite needs no Keras.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cnnlab.builder import build
from cnnlab.spec import ModelSpec
from cnnlab.summary import rows, summary_json, totals

REFS = Path(__file__).parent / "keras_refs"
# refs.json: the first specs; refs_layers.json: the layers of issue 15 item 4 (each file
# made by its own script, make_refs.py and make_layer_refs.py)
SPECS = {}
for _file in ("refs.json", "refs_layers.json"):
    _specs = json.loads((REFS / _file).read_text())["specs"]
    assert not set(_specs) & set(SPECS), f"{_file} repeats a spec name"
    SPECS.update(_specs)
FORWARD = sorted(name for name, ref in SPECS.items() if ref["forward"])
INPUT_ENTRIES = ("Input", "InputLayer")  # spec entries that are not among Keras's model.layers


@pytest.mark.parametrize("name", sorted(SPECS))
def test_shapes_params_and_names_match_keras(name):
    ref = SPECS[name]
    spec = ModelSpec.from_dict(ref["spec"])
    ours = rows(spec)
    assert [r.name for r in ours] == [l["name"] for l in ref["layers"]]
    assert [r.type for r in ours] == [l["type"] for l in ref["layers"]]
    assert [[None, *r.output_shape] for r in ours] == [l["output_shape"] for l in ref["layers"]]
    assert [(r.trainable, r.non_trainable) for r in ours] == [
        (l["trainable"], l["non_trainable"]) for l in ref["layers"]]
    t = totals(spec)
    assert (t["total_params"], t["trainable_params"], t["non_trainable_params"]) == (
        ref["total_params"], ref["trainable_params"], ref["non_trainable_params"])
    net = build(spec)  # the torch module has exactly the parameters Keras counts
    assert sum(p.numel() for p in net.parameters()) == t["trainable_params"]


def _load_forward(name):
    ref = SPECS[name]
    spec = ModelSpec.from_dict(ref["spec"])
    data = np.load(REFS / ref["forward"]["file"])
    index = {l["spec_index"]: l["index"] for l in ref["layers"]}
    weights = []
    for i in range(len(spec.layers)):
        offset = sum(1 for l in ref["spec"]["layers"][: i + 1] if set(l) & set(INPUT_ENTRIES))
        k = index.get(i + offset, i)
        arrays, j = [], 0
        while f"w{k}_{j}" in data:
            arrays.append(data[f"w{k}_{j}"])
            j += 1
        weights.append(arrays)
    return spec, data, weights


@pytest.mark.parametrize("name", FORWARD)
@pytest.mark.parametrize("fuse", [True, False])
def test_forward_pass_equals_keras(name, fuse):
    spec, data, weights = _load_forward(name)
    net = build(spec, fuse_pooling=fuse).eval()
    net.set_keras_weights(weights)
    with torch.no_grad():
        out = net(torch.from_numpy(data["input"])).numpy()
    # where Keras's torch backend departs from TensorFlow's rule (uneven 'same' average
    # pooling), the fixture also holds the JAX backend's output, which follows TensorFlow
    expected = data["output_jax"] if "output_jax" in data else data["output"]
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", FORWARD)
def test_weights_export_back_to_keras_layout(name):
    spec, data, weights = _load_forward(name)
    net = build(spec)
    net.set_keras_weights(weights)
    for ours, theirs in zip(net.keras_weights(), weights):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a, b)


def test_lecture_summary_numbers():
    spec = ModelSpec.from_dict(SPECS["lecture"]["spec"])
    j = summary_json(spec)
    assert [l["params"] for l in j["layers"]] == [320, 0, 18496, 0, 0, 147520, 650]
    assert j["total_params"] == 166986 and j["non_trainable_params"] == 0


@pytest.mark.parametrize("size", range(2, 14))
@pytest.mark.parametrize("pool,stride", [(2, 2), (3, 2), (2, 1), (3, 3), (3, 1), (4, 2)])
def test_same_max_pooling_shortcut_equals_explicit_padding(size, pool, stride):
    """The ceil_mode shortcut for 'same' max pooling equals TF's -inf padding everywhere."""
    from cnnlab.layers.base import same_pad
    spec = ModelSpec.from_dict({"input_shape": [size, size + 1, 2], "layers": [
        {"MaxPooling2D": {"pool_size": pool, "strides": stride, "padding": "same"}}]})
    x = torch.randn(2, size, size + 1, 2)
    ours = build(spec)(x)
    t, b = same_pad(size, pool, stride)
    l, r = same_pad(size + 1, pool, stride)
    padded = torch.nn.functional.pad(x.permute(0, 3, 1, 2), (l, r, t, b), value=float("-inf"))
    ref = torch.nn.functional.max_pool2d(padded, pool, stride).permute(0, 2, 3, 1)
    assert ours.shape == ref.shape == (2, *spec.output_shapes[-1])
    torch.testing.assert_close(ours, ref)
