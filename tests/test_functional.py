"""The model as a graph: the functional API, merge layers, nested and shared layers, layer
objects; checked against Keras 3 itself (tests/keras_refs/make_graph_refs.py made the refs)."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import cnnlab
from cnnlab import layers
from cnnlab.errors import SpecError
from cnnlab.spec import ModelSpec
from cnnlab.summary import rows, summary_text, totals

REFS = Path(__file__).parent / "keras_refs"
GRAPHS = {**yaml.safe_load((REFS / "graph_specs.yaml").read_text()),
          **yaml.safe_load((REFS / "graph_specs_random.yaml").read_text())}
KERAS = json.loads((REFS / "graph_refs.json").read_text())["models"]
ARRAYS = np.load(REFS / "graph_arrays.npz")


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_summary_equals_keras(name):
    spec = ModelSpec.from_dict(GRAPHS[name])
    ref = KERAS[name]
    got = [{"name": r.name, "type": r.type, "output_shape": list(r.output_shape),
            "params": r.params, "connected_to": list(r.connected_to)} for r in rows(spec)]
    assert got == ref["rows"]
    assert totals(spec) == {k: ref[k] for k in ("total_params", "trainable_params",
                                                "non_trainable_params")}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_forward_equals_keras_with_weights_from_set_weights(name):
    model = cnnlab.Model.from_spec(ModelSpec.from_dict(GRAPHS[name]))
    for layer in model.layers:
        ws = [ARRAYS[f"{name}/w:{layer.name}:{i}"] for i in range(len(layer.get_weights()))]
        if ws:
            layer.set_weights(ws)
    xs = [ARRAYS[f"{name}/x:{k}"] for k in range(len(GRAPHS[name]["inputs"]))]
    out = model.predict(xs if len(xs) > 1 else xs[0])
    np.testing.assert_allclose(np.asarray(out), ARRAYS[f"{name}/y"], atol=1e-5, rtol=0)
    # the same weights in one list, in Keras's model order, give the same model
    again = cnnlab.Model.from_spec(model.to_spec())
    again.set_weights([ARRAYS[f"{name}/w:{l.name}:{i}"] for l in model.layers
                       for i in range(len(l.get_weights()))])
    np.testing.assert_allclose(np.asarray(again.predict(xs if len(xs) > 1 else xs[0])),
                               ARRAYS[f"{name}/y"], atol=1e-5, rtol=0)
    # Keras's weight order: the model's list equals the layers' lists in model.layers order
    flat = [w for layer in model.layers for w in layer.get_weights()]
    assert [w.shape for w in model.get_weights()] == [w.shape for w in flat]


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_yaml_round_trip(name):
    spec = ModelSpec.from_dict(GRAPHS[name])
    again = ModelSpec.from_yaml(spec.to_yaml())
    assert again == spec
    assert summary_text(again) == summary_text(spec)


def residual_by_api():
    inputs = cnnlab.Input(shape=(10, 10, 1), name="image")
    c1 = layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inputs)
    c2 = layers.Conv2D(4, 3, padding="same", name="c2")(c1)
    x = layers.Add(name="skip")([c1, c2])
    x = layers.Activation("relu")(x)
    x = layers.MaxPooling2D()(x)
    outputs = layers.Dense(3, activation="softmax")(layers.Flatten()(x))
    return cnnlab.Model(inputs, outputs, name="residual")


def test_functional_api_builds_the_spec_the_yaml_describes():
    model = residual_by_api()
    assert model.to_spec() == ModelSpec.from_dict(GRAPHS["residual"])
    assert [l.name for l in model.layers] == [r["name"] for r in KERAS["residual"]["rows"]]
    assert model.input_shape == (None, 10, 10, 1) and model.output_shape == (None, 3)
    assert model.layers[0].keras_name == "Input" or type(model.layers[0]).__name__ == "Input"
    text = []
    model.summary(print_fn=text.append)
    assert "Connected to" in text[0] and "c1[0][0]" in text[0] and "Total params: 491" in text[0]


def test_symbolic_tensors_carry_keras_shapes_and_errors_name_the_layer():
    x = cnnlab.Input(shape=(28, 28, 1))
    assert x.shape == (None, 28, 28, 1)
    y = layers.Conv2D(8, 3)(x)
    assert y.shape == (None, 26, 26, 8)
    with pytest.raises(SpecError, match=r"Inputs of a `Add` layer must have the same shape. "
                                        r"Received shapes \[\(None, 28, 28, 1\), \(None, 26, 26, 8\)\]"):
        layers.Add()([x, y])
    with pytest.raises(SpecError, match="A merge layer should be called on a list of inputs"):
        layers.Add()(x)
    with pytest.raises(SpecError, match="Concatenate` layer requires inputs with matching shapes"):
        layers.Concatenate()([x, y])
    with pytest.raises(SpecError, match="expects one input tensor. Received 2"):
        layers.Flatten()([x, y])


def test_model_errors_are_clear():
    x = cnnlab.Input(shape=(4,))
    y = layers.Dense(2)(x)
    with pytest.raises(SpecError, match="Model needs `inputs` and `outputs`"):
        cnnlab.Model()
    with pytest.raises(SpecError, match="expects KerasTensors"):
        cnnlab.Model(np.zeros(4), y)
    other = cnnlab.Input(shape=(4,))
    with pytest.raises(SpecError, match="depend on an Input that is not in the model's `inputs`"):
        cnnlab.Model(other, y)

    class Sub(cnnlab.Model):
        def __init__(self):
            super().__init__()

        def call(self, x):
            return x
    with pytest.raises(SpecError, match="subclassed models are not supported"):
        Sub()


def test_graph_yaml_errors_name_what_is_wrong():
    base = {"name": "g", "inputs": [{"name": "image", "shape": [4]}], "outputs": ["d"]}
    with pytest.raises(SpecError, match="`inbound` names 'nope', which is not an input or an "
                                        "earlier layer. Expected one of: image"):
        ModelSpec.from_dict({**base, "layers": [{"Dense": {"name": "d", "units": 2,
                                                           "inbound": "nope"}}]})
    with pytest.raises(SpecError, match="`outputs` names 'x', which is not a layer"):
        ModelSpec.from_dict({**base, "outputs": ["x"], "layers": [{"Dense": {"units": 2}}]})
    with pytest.raises(SpecError, match="The output of 'a' is not used"):
        ModelSpec.from_dict({**base, "layers": [{"Dense": {"name": "a", "units": 2}},
                                                 {"Dense": {"name": "d", "units": 2,
                                                            "inbound": "image"}}]})
    with pytest.raises(SpecError, match="a shared layer must be called on inputs of the shape"):
        ModelSpec.from_dict({**base, "layers": [{"Dense": {"name": "a", "units": 3}},
                                                 {"Call": {"layer": "a", "inbound": "a"}},
                                                 {"Dense": {"name": "d", "units": 2}}]})


def test_a_shared_layer_is_one_set_of_weights():
    model = cnnlab.Model.from_spec(ModelSpec.from_dict(GRAPHS["shared"]))
    shared = model.get_layer("shared")
    assert len(model.net.layers) == len(model.to_spec().layers) == 5
    before = shared.get_weights()[0].copy()
    shared.set_weights([np.ones_like(before), np.zeros(8, np.float32)])
    assert np.all(model.get_layer(name="shared").kernel.numpy() == 1)


def test_nested_live_model_shares_its_weights_and_trains_with_the_outer():
    # the TensorFlow quickstart: a probability model around a trained logits model
    base = cnnlab.Sequential([layers.Input(shape=(4,)), layers.Dense(3)])
    probs = cnnlab.Sequential([base, layers.Activation("softmax")])
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    logits = base.predict(x)
    np.testing.assert_allclose(probs.predict(x), torch.softmax(torch.tensor(logits), -1).numpy(),
                               atol=1e-6)
    probs.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    probs.fit(x, np.array([0, 1, 2, 0, 1]), epochs=1, verbose=0)
    assert not np.allclose(base.predict(x), logits)  # training the outer trained the inner
    assert [l.name for l in probs.layers] == ["sequential", "activation"]
    assert probs.layers[0] is base
    assert probs.count_params() == 15


def test_trainable_false_freezes_weights_and_counts_as_non_trainable():
    inputs = cnnlab.Input(shape=(6,))
    frozen = layers.Dense(4, name="frozen")
    outputs = layers.Dense(2, activation="softmax")(frozen(inputs))
    model = cnnlab.Model(inputs, outputs)
    frozen.trainable = False
    t = totals(model.to_spec())
    assert (t["trainable_params"], t["non_trainable_params"]) == (10, 28)
    before = frozen.get_weights()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
    x = np.random.default_rng(1).normal(size=(16, 6)).astype("float32")
    model.fit(x, np.arange(16) % 2, epochs=2, batch_size=4, verbose=0)
    for a, b in zip(before, frozen.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [v.path for v in model.trainable_weights] == ["dense/kernel", "dense/bias"]
    assert len(model.non_trainable_weights) == 2


def test_layer_objects_answer_as_keras_layers_do():
    model = cnnlab.Sequential([layers.Conv2D(8, 3, input_shape=(10, 10, 2)),
                               layers.Flatten(), layers.Dense(4, use_bias=False)])
    conv = model.layers[0]
    assert [l.name for l in model.layers] == ["conv2d", "flatten", "dense"]
    assert conv.kernel.shape == (3, 3, 2, 8) and conv.bias.shape == (8,)
    assert conv.count_params() == 152 and model.layers[2].bias is None
    assert [v.path for v in model.weights] == ["conv2d/kernel", "conv2d/bias", "dense/kernel"]
    w = conv.get_weights()
    w[0][:] = 0.5
    conv.set_weights(w)
    assert float(model.net.layers[0].weight.detach().mean()) == 0.5
    assert model.get_layer(index=1) is model.layers[1]
    with pytest.raises(SpecError, match=r"No such layer: nope. Existing layers are: "
                                        r"\['conv2d', 'flatten', 'dense'\]"):
        model.get_layer("nope")
    with pytest.raises(SpecError, match="expects 2 weight arrays. Received 1"):
        conv.set_weights(w[:1])
    with pytest.raises(SpecError, match="isn't built"):
        layers.Dense(3).count_params()


def test_a_layer_called_on_data_builds_once_and_returns_a_tensor():
    dense = layers.Dense(2, kernel_initializer="ones")
    y = dense(np.ones((3, 4), "float32"))
    assert isinstance(y, torch.Tensor) and y.shape == (3, 2) and float(y[0, 0].detach()) == 4.0
    assert dense.kernel.shape == (4, 2)


def test_a_functional_model_trains_and_round_trips_its_config():
    model = residual_by_api()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(32, 10, 10, 1)).astype("float32")
    y = (x.mean(axis=(1, 2, 3)) > 0.5).astype(int)
    hist = model.fit(x, y, epochs=2, batch_size=8, verbose=0, validation_split=0.25)
    assert set(hist.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    again = cnnlab.Model.from_config(model.get_config())
    again.set_weights(model.get_weights())
    np.testing.assert_allclose(again.predict(x), model.predict(x), atol=1e-6)


def test_a_sequential_model_is_built_from_a_list_with_an_input_tensor():
    model = cnnlab.Sequential([cnnlab.Input(shape=(28, 28, 1)), layers.Conv2D(32, (3, 3),
                               activation="relu"), layers.Flatten(), layers.Dense(10)])
    assert model.output_shape == (None, 10) and model.count_params() == 320 + 21632 * 10 + 10
    with pytest.raises(SpecError, match="is already in this Sequential"):
        d = layers.Dense(2)
        cnnlab.Sequential([cnnlab.Input(shape=(2,)), d, d])


def test_a_nested_model_from_yaml_is_a_model_object_with_its_layers():
    model = cnnlab.Model.from_spec(ModelSpec.from_dict(GRAPHS["nested"]))
    features = model.get_layer("features")
    assert isinstance(features, cnnlab.Sequential)
    assert [l.name for l in features.layers] == ["conv2d", "max_pooling2d", "flatten"]
    features.layers[0].set_weights([np.zeros((3, 3, 1, 4), "float32"), np.ones(4, "float32")])
    nested = next(m for m in model.net.layers if hasattr(m, "net"))  # what the outer model runs
    conv = nested.net.layers[0]
    assert float(conv.bias.detach().sum()) == 4.0


def test_a_frozen_batch_normalization_runs_in_inference_mode_as_in_keras_3():
    bn = layers.BatchNormalization()
    model = cnnlab.Sequential([layers.Input(shape=(4,)), bn, layers.Dense(2, activation="softmax")])
    bn.trainable = False
    moving = [w.copy() for w in bn.get_weights()]
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(16, 4)).astype("float32")
    model.fit(x, np.arange(16) % 2, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(moving, bn.get_weights()):  # gamma, beta and the moving statistics
        np.testing.assert_array_equal(a, b)
    t = totals(model.to_spec())  # gamma, beta and both moving statistics are frozen
    assert (t["trainable_params"], t["non_trainable_params"]) == (10, 16)
