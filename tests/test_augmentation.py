"""Preprocessing and augmentation layers against Keras 3 (fixtures made once by
tests/keras_refs/make_augment_refs.py), and their seeding, argument checks and configs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab import layers
from cnnlab.builder import build
from cnnlab.errors import SpecError
from cnnlab.layers.augmentation import generator_states, load_generator_states
from cnnlab.layers.image_ops import rotation_matrix, translation_matrix, zoom_matrix
from cnnlab.spec import ModelSpec

REFS = Path(__file__).parent / "keras_refs"
R = np.load(REFS / "augment_refs.npz")
META = json.loads((REFS / "augment_refs.json").read_text())
SHAPE = tuple(R["x"].shape[1:])  # (H, W, C)


def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2)


def nhwc(t):
    return t.permute(0, 2, 3, 1).detach().numpy()


def module(layer, shape=SHAPE):
    m = layer.build(shape)
    m.train()
    return m


X = nchw(R["x"])
N, _, H, W = X.shape
FILLS = ("reflect", "wrap", "constant", "nearest")


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("interp", ("bilinear", "nearest"))
def test_affine_layers_at_a_fixed_parameter_equal_keras(fill, interp):
    kw = {"fill_mode": fill, "interpolation": interp, "fill_value": 7.0}
    rot = module(layers.RandomRotation(0.5, **kw))
    zoom = module(layers.RandomZoom(0.5, 0.5, **kw))
    tr = module(layers.RandomTranslation(0.5, 0.5, **kw))
    angles = torch.from_numpy(R["angles"])
    shifts = torch.from_numpy(R["shifts"])
    got = {
        "rotation": rot.apply(X, rotation_matrix(angles, H, W)),
        "zoom": zoom.apply(X, zoom_matrix(torch.from_numpy(R["zooms_w"]),
                                          torch.from_numpy(R["zooms_h"]), H, W)),
        "translation": tr.apply(X, translation_matrix(shifts[:, 0], shifts[:, 1])),
    }
    for key, out in got.items():
        # 0..255 pixels. A bilinear rotation runs through grid_sample, whose normalized
        # coordinates round off ~1e-6 pixel; the other paths compute Keras's coordinates
        atol = 1e-2 if (key, interp) == ("rotation", "bilinear") else 1e-4
        np.testing.assert_allclose(nhwc(out), R[f"{key}_{fill}_{interp}"], atol=atol,
                                   err_msg=key)


@pytest.mark.parametrize("mode", ("horizontal", "vertical", "horizontal_and_vertical"))
def test_flip_equals_keras(mode):
    out = module(layers.RandomFlip(mode)).apply(X, torch.from_numpy(R["flips"]))
    np.testing.assert_array_equal(nhwc(out), R[f"flip_{mode}"])


def test_contrast_and_brightness_equal_keras():
    c = module(layers.RandomContrast(0.9)).apply(X, torch.from_numpy(R["contrast"]))
    np.testing.assert_allclose(nhwc(c), R["contrast_out"], atol=1e-3)
    b = module(layers.RandomBrightness(0.5)).apply(X, torch.from_numpy(R["brightness"]))
    np.testing.assert_allclose(nhwc(b), R["brightness_out"], atol=1e-4)


# the whole-call cases the reference script ran in Keras, from the same file
CASES = json.loads((Path(__file__).parent / "keras_refs" / "augment_calls.json").read_text())


def built(cases: dict) -> dict:
    """{key: cnnlab.layers.<Class>(*args, **kwargs)} for the file's [Class, args, kwargs]."""
    return {key: getattr(layers, kind)(*args, **kwargs)
            for key, (kind, args, kwargs) in cases.items()}


CALLS = built(CASES["calls"])


@pytest.mark.parametrize("key", sorted(CALLS))
def test_deterministic_layers_equal_keras(key):
    layer = CALLS[key]
    for training in (True, False):  # Resizing and CenterCrop do the same at inference
        if key.startswith("random_crop") and not training:
            continue
        m = module(layer)
        m.train(training)
        out = m(X)
        assert tuple(out.shape[1:]) == (layer.output_shape(SHAPE)[2], *layer.output_shape(SHAPE)[:2])
        np.testing.assert_allclose(nhwc(out), R[key], atol=1e-3, err_msg=key)


INFERENCE = built(CASES["inference"])


@pytest.mark.parametrize("key", sorted(INFERENCE))
def test_random_layers_are_the_identity_at_inference_as_in_keras(key):
    m = INFERENCE[key].build(SHAPE)
    m.eval()
    np.testing.assert_allclose(nhwc(m(X)), R[f"inference_{key}"], atol=1e-4)
    np.testing.assert_array_equal(R[f"inference_{key}"], R["x"])


def test_random_crop_at_inference_takes_the_centred_window_of_the_target_aspect_ratio():
    """Keras 3.15 returns the input unchanged (its declared shape broken); cnnlab follows
    Keras's documentation: the largest centred window of the aspect ratio, resized."""
    x = torch.arange(2 * 1 * 10 * 14, dtype=torch.float32).view(2, 1, 10, 14)
    m = layers.RandomCrop(5, 5).build((10, 14, 1)).eval()
    expected = torch.nn.functional.interpolate(x[:, :, :, 2:12], size=(5, 5), mode="bilinear")
    torch.testing.assert_close(m(x), expected)


def test_training_draws_differ_per_sample_and_follow_the_seed():
    x = torch.rand(16, 3, 12, 12)
    outs = []
    for seed in (3, 3, 4):
        m = module(layers.RandomRotation(0.5, seed=seed), (12, 12, 3))
        outs.append(m(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert not torch.equal(outs[0], outs[2])
    m = module(layers.RandomFlip("horizontal", seed=0), (12, 12, 3))
    flipped = [torch.equal(a, b.flip(2)) for a, b in zip(m(x), x)]
    assert 0 < sum(flipped) < 16  # each image its own draw


def test_unseeded_layers_follow_set_random_seed():
    spec = ModelSpec.from_layers([layers.RandomZoom(0.3), layers.RandomContrast(0.4)],
                                 input_shape=(8, 8, 3))
    x = torch.rand(4, 8, 8, 3)
    outs = []
    for _ in range(2):
        cnnlab.utils.set_random_seed(11)
        net = build(spec)
        net.train()
        outs.append(net(x))
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_generator_states_round_trip():
    spec = ModelSpec.from_layers([layers.RandomFlip(seed=1), layers.RandomTranslation(0.2, 0.2)],
                                 input_shape=(8, 8, 1))
    net = build(spec, seed=0).train()
    x = torch.rand(6, 8, 8, 1)
    net(x)
    saved = {k: v.clone() for k, v in generator_states(net).items()}
    first = net(x)
    load_generator_states(net, saved, "test")
    torch.testing.assert_close(net(x), first, rtol=0, atol=0)
    with pytest.raises(cnnlab.errors.RunError, match="augmentation states"):
        load_generator_states(net, {}, "ckpt")


def test_summary_rows_and_params_equal_keras():
    rows = META["rows"]
    spec = ModelSpec.from_layers([
        layers.RandomFlip("horizontal"), layers.RandomRotation(0.1), layers.RandomZoom(0.1, 0.2),
        layers.RandomTranslation(0.1, 0.1), layers.RandomContrast(0.2),
        layers.RandomBrightness(0.2), layers.RandomCrop(30, 30, seed=5), layers.Resizing(28, 28),
        layers.CenterCrop(24, 24), layers.Rescaling(1 / 255), layers.Conv2D(8, 3),
        layers.Flatten(), layers.Dense(10)], input_shape=(32, 32, 3))
    from cnnlab.summary import summary_json
    got = summary_json(spec)
    assert [(r["name"], r["output_shape"], r["params"]) for r in got["layers"]] == [
        (r["name"], [None, *r["output_shape"]], r["params"]) for r in rows]
    assert [r["type"] for r in got["layers"]] == [r["class"] for r in rows]
    assert got["total_params"] == META["total_params"]


def test_keras_configs_are_written_as_keras_writes_them(tmp_path):
    from cnnlab.saving.keras_config import layer_from_keras, layer_to_keras
    made = {"RandomFlip": layers.RandomFlip("horizontal"),
            "RandomRotation": layers.RandomRotation(0.1),
            "RandomZoom": layers.RandomZoom(0.1, 0.2),
            "RandomTranslation": layers.RandomTranslation(0.1, 0.1),
            "RandomContrast": layers.RandomContrast(0.2),
            "RandomBrightness": layers.RandomBrightness(0.2),
            "RandomCrop": layers.RandomCrop(30, 30, seed=5), "Resizing": layers.Resizing(28, 28),
            "CenterCrop": layers.CenterCrop(24, 24)}
    for name, layer in made.items():
        entry = layer_to_keras(layer, "x", (32, 32, 3))
        config = {k: v for k, v in entry["config"].items() if k not in ("name", "dtype")}
        want = META["configs"][name]
        assert json.loads(json.dumps(config)) == want, name
        again = layer_from_keras(json.loads(json.dumps(entry)))
        assert type(again) is type(layer) and again.config == layer.config, name


def test_a_keras_file_with_augmentation_round_trips(tmp_path):
    model = cnnlab.models.Sequential([
        layers.Input((16, 16, 3)), layers.RandomFlip("horizontal"), layers.RandomRotation(0.1),
        layers.Rescaling(1 / 255), layers.Conv2D(4, 3), layers.Flatten(), layers.Dense(2)])
    path = tmp_path / "m.keras"
    model.save(path)
    again = cnnlab.models.load_model(path)
    x = np.random.default_rng(0).uniform(0, 255, (3, 16, 16, 3)).astype(np.float32)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0),
                               rtol=1e-6)
    assert [type(l).__name__ for l in again.layers][:2] == ["RandomFlip", "RandomRotation"]


@pytest.mark.parametrize("make, message", [
    (lambda: layers.RandomFlip("diagonal"), "Invalid value for argument `mode`. Expected one of "
     "'horizontal_and_vertical', 'horizontal', 'vertical'. Received mode='diagonal'."),
    (lambda: layers.RandomRotation(1.5), "Invalid value for argument `factor`. Expected a number "
     "(or a list of two numbers) in the range [-1, 1]. Received factor=1.5."),
    (lambda: layers.RandomRotation(0.1, fill_mode="mirror"), "Invalid value for argument "
     "`fill_mode`. Expected one of 'reflect', 'wrap', 'constant', 'nearest'. Received "
     "fill_mode='mirror'."),
    (lambda: layers.RandomZoom(-1.0), "Invalid value for argument `height_factor`. Expected a "
     "number (or a list of two numbers) in the range (-1.0, 1.0]. Received height_factor=-1.0."),
    (lambda: layers.RandomTranslation(0.1, [0.1, 0.2, 0.3]), "Invalid value for argument "
     "`width_factor`. Expected a number (or a list of two numbers) in the range [-1.0, 1.0]. "
     "Received width_factor=[0.1, 0.2, 0.3]."),
    (lambda: layers.RandomContrast(-0.5), "Invalid value for argument `factor`. Expected a "
     "number (or a list of two numbers) in the range [0, 1]. Received factor=-0.5."),
    (lambda: layers.RandomBrightness(0.2, value_range=255), "Invalid value for argument "
     "`value_range`. Expected a list of two numbers. Received value_range=255."),
    (lambda: layers.RandomCrop(0, 4), "Invalid value for argument `height`. Expected a strictly "
     "positive integer. Received height=0."),
    (lambda: layers.RandomFlip(seed=-1), "Invalid value for argument `seed`. Expected None or a "
     "non-negative integer. Received seed=-1."),
    (lambda: layers.Resizing(4, 4, interpolation="lanczos3"), "Invalid value for argument "
     "`interpolation`. Expected one of 'bilinear', 'nearest', 'bicubic'. Received "
     "interpolation='lanczos3'."),
    (lambda: layers.Resizing(4, 4, crop_to_aspect_ratio=True, pad_to_aspect_ratio=True),
     "Invalid value for argument `pad_to_aspect_ratio`."),
    (lambda: layers.CenterCrop(4), "Missing required argument `width` for CenterCrop."),
])
def test_bad_arguments_say_what_was_expected(make, message):
    with pytest.raises(SpecError) as err:
        make()
    assert message in str(err.value)


def test_augmentation_needs_images():
    with pytest.raises(SpecError, match=r"RandomFlip expects images"):
        ModelSpec.from_layers([layers.RandomFlip()], input_shape=(10,))


def test_yaml_spec_takes_augmentation_and_raw_pixels_reach_rescaling():
    from cnnlab.layers.reshaping import takes_raw_pixels
    spec = ModelSpec.from_yaml("""
input_shape: [32, 32, 3]
layers:
  - RandomFlip: {mode: horizontal}
  - RandomTranslation: {height_factor: 0.1, width_factor: 0.1}
  - Rescaling: {scale: 0.00392156862745098}
  - Conv2D: {filters: 4, kernel_size: 3}
  - Flatten: {}
  - Dense: {units: 10, activation: softmax}
""")
    assert [type(l).__name__ for l in spec.layers][:2] == ["RandomFlip", "RandomTranslation"]
    assert takes_raw_pixels(spec)


def test_functional_api_takes_augmentation():
    inputs = layers.Input((12, 12, 3))
    x = layers.RandomFlip("horizontal")(inputs)
    x = layers.RandomZoom(0.2)(x)
    x = layers.Conv2D(4, 3)(x)
    outputs = layers.Dense(2)(layers.Flatten()(x))
    model = cnnlab.models.Model(inputs, outputs)
    x = np.random.default_rng(0).uniform(0, 1, (2, 12, 12, 3)).astype(np.float32)
    assert model.predict(x, verbose=0).shape == (2, 2)
    assert model.count_params() == 4 * 27 + 4 + 400 * 2 + 2


ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(META["examples"]))
def test_cifar_examples_summaries_are_keras_numbers(name):
    from cnnlab.config import RunConfig
    from cnnlab.summary import summary_json
    got = summary_json(RunConfig.load(ROOT / "examples" / name).spec)
    want = META["examples"][name]
    assert [[r["name"], r["output_shape"][1:], r["params"]] for r in got["layers"]] == want["rows"]
    assert got["total_params"] == want["total_params"]


def test_cifar_experiment_adds_augmentation_as_a_variant():
    from cnnlab.experiments.plan import load_experiment
    exp = load_experiment(ROOT / "examples" / "cifar10_experiment.yaml")
    v = {x.name: x.cfg for x in exp.variants}
    kinds = {n: [type(l).__name__ for l in c.spec.layers] for n, c in v.items()}
    assert kinds["augment"][:4] == ["RandomFlip", "RandomTranslation", "RandomRotation", "Conv2D"]
    assert "Dropout" in kinds["augment_dropout"] and "RandomFlip" in kinds["augment_dropout"]
    base_shapes = list(v["base"].spec.output_shapes)
    assert list(v["augment"].spec.output_shapes) == [(32, 32, 3)] * 3 + base_shapes
    from cnnlab.summary import summary_json
    convnet = summary_json(v["tf_convnet"].spec)["total_params"]
    assert convnet == META["examples"]["cifar10_convnet.yaml"]["total_params"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_draws_are_the_same_on_the_gpu():
    """The parameters are drawn on the CPU generator, so a GPU run augments as a CPU run."""
    spec = ModelSpec.from_layers([
        layers.RandomFlip(), layers.RandomRotation(0.2, fill_mode="constant", fill_value=0.5),
        layers.RandomZoom(0.2, 0.1), layers.RandomTranslation(0.1, 0.2, fill_mode="wrap"),
        layers.RandomContrast(0.3, value_range=(0, 1)), layers.RandomBrightness(0.1, (0, 1)),
        layers.RandomCrop(14, 12)], input_shape=(16, 16, 3))
    cpu = build(spec, seed=0).train()
    gpu = build(spec, seed=0).train().to("cuda")
    x = torch.rand(8, 16, 16, 3)
    for _ in range(2):
        torch.testing.assert_close(gpu(x.cuda()).cpu(), cpu(x), rtol=1e-5, atol=1e-5)


def test_tensorflow_tutorial_nested_augmentation_then_rescaling_gets_raw_pixels():
    """TensorFlow's flowers tutorial: Sequential([data_augmentation, Rescaling(1/255), ...])
    with data_augmentation a Sequential of random layers; uint8 pixels must reach the
    Rescaling as 0..255 (else they are scaled twice)."""
    from cnnlab.layers.reshaping import takes_raw_pixels
    augment = cnnlab.models.Sequential([layers.RandomFlip("horizontal", input_shape=(8, 8, 3)),
                                        layers.RandomRotation(0.1)])
    model = cnnlab.models.Sequential([augment, layers.Rescaling(1 / 255), layers.Flatten(),
                                      layers.Dense(2)])
    assert takes_raw_pixels(model.to_spec())
    plain = cnnlab.models.Sequential([layers.Input((8, 8, 3)), augment, layers.Flatten(),
                                      layers.Dense(2)])
    assert not takes_raw_pixels(plain.to_spec())
    x = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3)).astype(np.uint8)
    w = model.get_weights()
    twin = cnnlab.models.Sequential([layers.Input((8, 8, 3)), layers.Flatten(), layers.Dense(2)])
    twin.set_weights(w)
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               twin.predict(x.astype(np.float32) / 255, verbose=0), rtol=1e-5,
                               atol=1e-6)


def test_called_on_data_the_layers_augment_unless_training_is_false():
    """Keras's examples call `data_augmentation(images)` on batches: that augments."""
    x = np.random.default_rng(0).uniform(0, 255, (8, 10, 10, 3)).astype(np.float32)
    flip = layers.RandomFlip("horizontal", seed=2)
    out = flip(x).numpy()
    flipped = [np.array_equal(o, a[:, ::-1]) for o, a in zip(out, x)]
    assert any(flipped) and not all(flipped)
    np.testing.assert_array_equal(flip(x, training=False).numpy(), x)
    np.testing.assert_array_equal(layers.Dropout(0.5)(x).numpy(), x)  # Dropout: Keras's False
