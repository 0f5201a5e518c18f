"""Every registered layer builds, computes the shape it announces, trains, and is NaN-free.

timm's test_models style: one example per entry of `cnnlab.layers.LAYERS`; a layer added
without an example here fails `test_every_layer_has_an_example` (docs/adding-a-layer.md).
"""
import math

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab import layers
from cnnlab.builder import build
from cnnlab.spec import ModelSpec

IMAGE = (7, 6, 3)  # odd and even sizes, a few channels
EXAMPLES = {  # name -> (arguments, input shape without the batch axis)
    "Input": ({"shape": IMAGE}, IMAGE),
    "InputLayer": ({"batch_shape": [None, *IMAGE]}, IMAGE),
    "Conv2D": ({"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same"}, IMAGE),
    "MaxPooling2D": ({"pool_size": 3, "strides": 2, "padding": "same"}, IMAGE),
    "AveragePooling2D": ({"pool_size": 2}, IMAGE),
    "GlobalAveragePooling2D": ({}, IMAGE),
    "GlobalMaxPooling2D": ({}, IMAGE),
    "Flatten": ({}, IMAGE),
    "Dense": ({"units": 5, "activation": "relu"}, (8,)),
    "Dropout": ({"rate": 0.5}, (8,)),
    "BatchNormalization": ({}, IMAGE),
    "Activation": ({"activation": "softmax"}, IMAGE),
    "Reshape": ({"target_shape": [-1, 3]}, IMAGE),
    "Softmax": ({"axis": 1}, IMAGE),
    "ReLU": ({"max_value": 1.0, "negative_slope": 0.1, "threshold": 0.2}, IMAGE),
    "LeakyReLU": ({}, IMAGE),
    "ELU": ({"alpha": 0.5}, (8,)),
    "Rescaling": ({"scale": [1.0, 0.5, 2.0], "offset": 0.5}, IMAGE),
    "ZeroPadding2D": ({"padding": [[1, 0], [0, 2]]}, IMAGE),
    "Cropping2D": ({"cropping": [1, 2]}, IMAGE),
    "UpSampling2D": ({"size": [2, 3], "interpolation": "bilinear"}, IMAGE),
    "SpatialDropout2D": ({"rate": 0.5}, IMAGE),
    "Conv2DTranspose": ({"filters": 4, "kernel_size": 3, "strides": 2, "padding": "same",
                         "output_padding": 1}, IMAGE),
    "DepthwiseConv2D": ({"kernel_size": 3, "strides": 2, "padding": "same",
                         "depth_multiplier": 2}, IMAGE),
    "SeparableConv2D": ({"filters": 4, "kernel_size": 3, "padding": "same",
                         "depth_multiplier": 2, "activation": "relu"}, IMAGE),
    "RandomFlip": ({"mode": "horizontal", "seed": 1}, IMAGE),
    "RandomRotation": ({"factor": 0.2, "fill_mode": "constant", "fill_value": 1.0}, IMAGE),
    "RandomZoom": ({"height_factor": [-0.2, 0.3], "width_factor": 0.1}, IMAGE),
    "RandomTranslation": ({"height_factor": 0.2, "width_factor": [-0.1, 0.3],
                           "fill_mode": "wrap", "interpolation": "nearest"}, IMAGE),
    "RandomContrast": ({"factor": 0.3, "value_range": [-5, 5]}, IMAGE),
    "RandomBrightness": ({"factor": [-0.2, 0.4], "value_range": [-5, 5]}, IMAGE),
    "RandomCrop": ({"height": 5, "width": 4}, IMAGE),
    "Resizing": ({"height": 9, "width": 4, "crop_to_aspect_ratio": True}, IMAGE),
    "CenterCrop": ({"height": 5, "width": 5}, IMAGE),
}
INPUTS = ("Input", "InputLayer")
# multi-input layers and nested models need a graph: tests/test_functional.py covers each of
# them against Keras (graph_specs.yaml and 40 random graphs)
GRAPH_ONLY = {"Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
              "Sequential", "Functional"}


def test_every_layer_has_an_example():
    missing = sorted(set(layers.LAYERS) - set(EXAMPLES) - GRAPH_ONLY)
    assert not missing, f"add an example for {missing} to EXAMPLES (docs/adding-a-layer.md)"


def _model(name):
    kwargs, shape = EXAMPLES[name]
    layer = layers.get(name)(**kwargs)
    if name in INPUTS:  # an input is not a layer of the model: check it sets the input shape
        return layer, ModelSpec.from_layers([layer, layers.Flatten()]), shape
    return layer, ModelSpec.from_layers([layer], input_shape=shape), shape


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_layer_builds_and_computes_its_announced_shape(name):
    layer, spec, shape = _model(name)
    expected = (math.prod(shape),) if name in INPUTS else layer.output_shape(shape)
    assert spec.input_shape == shape
    assert spec.output_shapes[-1] == expected
    net = build(spec, seed=0)
    x = torch.randn(3, *shape)
    for training in (False, True):
        net.train(training)
        y = net(x)
        assert tuple(y.shape) == (3, *expected)
        assert not torch.isnan(y).any()
    # autograd reaches the input and every weight, and the weights round-trip through
    # Keras's layout
    net.train(True)
    x.requires_grad_(True)
    net(x).square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    trainable = sum(p.numel() for p in net.parameters())
    counts = layer.param_counts(shape) if name not in INPUTS else (0, 0)
    assert trainable == counts[0]
    before = net.keras_weights()
    net.set_keras_weights(before)
    for a, b in zip(sum(net.keras_weights(), []), sum(before, [])):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_layer_survives_the_yaml_round_trip(name):
    """What a run saves (spec.yaml) reads back as the same layer, named in Keras 3's spelling."""
    _, spec, _ = _model(name)
    again = ModelSpec.from_yaml(spec.to_yaml())
    assert again == spec and again.output_shapes == spec.output_shapes


NEW = ["Softmax", "ReLU", "LeakyReLU", "ELU", "Rescaling", "ZeroPadding2D", "Cropping2D",
       "UpSampling2D", "SpatialDropout2D", "Conv2DTranspose", "DepthwiseConv2D",
       "SeparableConv2D", "InputLayer", "RandomFlip", "RandomRotation", "RandomZoom",
       "RandomTranslation", "RandomContrast", "RandomBrightness", "RandomCrop", "Resizing",
       "CenterCrop"]


@pytest.mark.parametrize("name", NEW)
def test_fit_takes_steps_through_each_new_layer(name):
    """A 2-step fit on tiny data, the new layer first so that every weight gets a gradient."""
    kwargs, shape = EXAMPLES[name]
    model = cnnlab.models.Sequential()
    if name in INPUTS:
        model.add(layers.get(name)(**kwargs))
    else:
        model.add(layers.Input(shape=shape))
        model.add(layers.get(name)(**kwargs))
    model.add(layers.Flatten())
    model.add(layers.Dense(3, activation="softmax"))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (8, *shape)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])
    after = model.get_weights()
    changed = [not np.array_equal(a, b) for a, b in zip(before, after)]
    assert all(changed), f"weights that did not move: {changed}"
    assert model.predict(x, verbose=0).shape == (8, 3)


def test_cnnlab_summary_of_the_example_model_is_keras_s(capsys):
    """examples/tutorial_layers_model.yaml is spec `tutorial_layers_example` of
    keras_refs/specs_layers.yaml: `cnnlab summary` prints Keras's rows for it."""
    import json
    from pathlib import Path

    import yaml

    from cnnlab.cli import main
    root = Path(__file__).parent.parent
    example = root / "examples" / "tutorial_layers_model.yaml"
    ref = json.loads((root / "tests" / "keras_refs" / "refs_layers.json").read_text())[
        "specs"]["tutorial_layers_example"]
    assert yaml.safe_load(example.read_text()) == ref["spec"]
    def summary(*args):
        with pytest.raises(SystemExit) as done:
            main(["summary", *args, str(example)])
        assert done.value.code == 0
        return capsys.readouterr().out

    j = json.loads(summary("--json"))
    assert [(l["name"], l["type"], l["output_shape"], l["params"]) for l in j["layers"]] == [
        (l["name"], l["type"], l["output_shape"], l["params"]) for l in ref["layers"]]
    assert j["total_params"] == ref["total_params"]
    rows = [line.split() for line in summary().splitlines() if line.startswith(" ") and "(" in line]
    assert [r[:2] for r in rows[1:]] == [[l["name"], f"({l['type']})"] for l in ref["layers"]]


def test_spatial_dropout_drops_whole_channels_and_keeps_the_mean():
    spec = ModelSpec.from_layers([layers.SpatialDropout2D(0.25)], input_shape=(5, 4, 64))
    net = build(spec, seed=0).train()
    torch.manual_seed(0)
    y = net(torch.ones(32, 5, 4, 64))  # (N, H, W, C)
    per_channel = y.permute(0, 3, 1, 2).reshape(32 * 64, -1)  # each row: one channel of one image
    kept = (per_channel != 0).all(dim=1)
    assert ((per_channel == 0).all(dim=1) | kept).all()  # a channel goes whole or not at all
    torch.testing.assert_close(per_channel[kept], torch.full_like(per_channel[kept], 1 / 0.75))
    assert 0.70 < kept.float().mean() < 0.80  # 2048 channels kept with p = 0.75
    assert torch.equal(net.eval()(torch.ones(2, 5, 4, 64)), torch.ones(2, 5, 4, 64))


def test_rescaling_takes_uint8_images():
    spec = ModelSpec.from_layers([layers.Rescaling(1 / 255)], input_shape=(2, 2, 1))
    x = torch.tensor([0, 51, 255, 128], dtype=torch.uint8).reshape(1, 2, 2, 1)
    y = build(spec)(x)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, x.float() * torch.tensor(1 / 255, dtype=torch.float32))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", NEW)
def test_new_layers_compute_the_same_on_the_gpu(name):
    layer, spec, shape = _model(name)
    cpu = build(spec, seed=0).eval()
    gpu = build(spec, seed=0).eval().to("cuda")
    x = torch.randn(3, *shape)
    with torch.backends.cudnn.flags(allow_tf32=False):
        torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x), rtol=1e-4, atol=1e-5)


def test_a_first_rescaling_layer_gets_uint8_pixels_as_keras_feeds_them():
    """Keras feeds uint8 images as 0..255; cnnlab scales them to [0, 1] for a model without
    its own scaling, but not before a first Rescaling layer (it would scale twice)."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (8, 4, 4, 1), dtype=np.uint8)
    y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 8)]

    def model(*first):
        m = cnnlab.models.Sequential([layers.Input((4, 4, 1)), *first, layers.Flatten(),
                                      layers.Dense(3, activation="softmax")])
        m.compile(optimizer="sgd", loss="categorical_crossentropy")
        m.set_weights([np.full((16, 3), 0.01, np.float32) * np.arange(3), np.zeros(3, np.float32)])
        return m

    rescaled, plain = model(layers.Rescaling(1 / 255)), model()
    raw = x.astype(np.float32)  # what Keras gives the Rescaling layer
    np.testing.assert_allclose(rescaled.predict(x, verbose=0), rescaled.predict(raw, verbose=0))
    np.testing.assert_allclose(rescaled.predict(x, verbose=0), plain.predict(raw / 255, verbose=0),
                               rtol=1e-6)
    np.testing.assert_allclose(plain.predict(x, verbose=0), plain.predict(raw / 255, verbose=0),
                               rtol=1e-6)  # unchanged: a plain model still gets [0, 1]
    rescaled.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    plain.fit(raw / 255, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(rescaled.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
