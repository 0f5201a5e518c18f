"""The model spec: parsing, defaults, round trips and the error messages users see."""
import pytest

from cnnlab import layers
from cnnlab.config import LECTURE_MODEL
from cnnlab.errors import SpecError
from cnnlab.spec import ModelSpec

LECTURE_YAML = open("examples/lecture_model.yaml").read()


def spec_of(layers_, input_shape=(8, 8, 1)):
    return ModelSpec.from_dict({"input_shape": list(input_shape), "layers": layers_})


def test_lecture_yaml_round_trips_to_the_same_text():
    spec = ModelSpec.from_yaml(LECTURE_YAML)
    assert spec.to_yaml() == LECTURE_YAML
    assert ModelSpec.from_yaml(spec.to_yaml()) == spec
    assert spec == ModelSpec.from_dict(LECTURE_MODEL)


def test_keras_defaults_are_filled_in():
    spec = spec_of([{"Conv2D": {"filters": 4, "kernel_size": 3}},
                    {"MaxPooling2D": {"pool_size": 2}}, {"BatchNormalization": {}},
                    {"Flatten": {}}, {"Dense": {"units": 2}}])
    conv, pool, bn, _, dense = spec.layers
    assert conv.config["kernel_size"] == (3, 3) and conv.config["strides"] == (1, 1)
    assert conv.config["padding"] == "valid" and conv.config["kernel_initializer"] == "glorot_uniform"
    assert pool.config["strides"] == (2, 2)  # defaults to pool_size, as in Keras
    assert bn.config["momentum"] == 0.99 and bn.config["epsilon"] == 0.001
    assert dense.config["activation"] is None and dense.config["use_bias"] is True


@pytest.mark.parametrize("entry", [
    {"layers": [{"Input": {"shape": [28, 28, 1]}}, {"Flatten": {}}]},
    {"layers": [{"Flatten": {"input_shape": [28, 28, 1]}}]},
    {"input_shape": [28, 28, 1], "layers": ["Flatten"]},
])
def test_three_ways_to_give_the_input_shape(entry):
    spec = ModelSpec.from_dict(entry)
    assert spec.input_shape == (28, 28, 1) and spec.output_shapes == ((784,),)


def test_python_api_and_yaml_build_the_same_spec():
    import cnnlab
    model = cnnlab.Sequential()
    model.add(cnnlab.layers.Conv2D(32, (3, 3), input_shape=(28, 28, 1), activation="relu"))
    model.add(cnnlab.layers.MaxPooling2D(pool_size=(2, 2)))
    model.add(cnnlab.layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(cnnlab.layers.MaxPooling2D(pool_size=(2, 2), padding="same"))
    model.add(cnnlab.layers.Flatten())
    model.add(cnnlab.layers.Dense(64, activation="relu"))
    model.add(cnnlab.layers.Dense(10, activation="softmax"))
    assert model.to_spec() == ModelSpec.from_yaml(LECTURE_YAML)
    again = cnnlab.Sequential.from_spec(model.to_spec())
    assert again.to_spec() == model.to_spec()


def test_regularizers_parse_strings_and_factors():
    spec = spec_of([{"Flatten": {}}, {"Dense": {"units": 2, "kernel_regularizer": "l2",
                                                 "bias_regularizer": {"l1": 0.001}}}])
    dense = spec.layers[1]
    assert dense.config["kernel_regularizer"].l2 == 0.01
    assert dense.config["bias_regularizer"].l1 == 0.001
    assert ModelSpec.from_yaml(spec.to_yaml()) == spec


# -- error messages: layer index, name, argument, expected, received ----------------------

@pytest.mark.parametrize("layers_, message", [
    ([{"Conv2D": {"filters": 0, "kernel_size": 3}}],
     "Layer 0 (Conv2D): Invalid value for argument `filters`. Expected a strictly positive "
     "integer. Received filters=0."),
    ([{"Flatten": {}}, {"Dense": {"units": 2, "activation": "relux"}}],
     "Layer 1 (Dense): Unknown activation 'relux'. Expected one of: celu, elu, exponential, "
     "gelu, hard_sigmoid, "),  # the whole sorted list follows
    ([{"Conv2d": {"filters": 2, "kernel_size": 3}}],
     "Layer 0 (Conv2d): Unknown layer 'Conv2d'. Expected one of: Activation, "),  # and the rest
    ([{"Conv2D": {"filters": 2, "kernel_size": 3, "kernel": 3}}],
     "Layer 0 (Conv2D): Unknown argument `kernel` for Conv2D. Expected one of:"),
    ([{"Conv2D": {"filters": 2, "kernel_size": 9}}],
     "Layer 0 (Conv2D): Conv2D: kernel_size (9, 9) is larger than its input (None, 8, 8, 1) "
     "with padding='valid'."),
    ([{"Conv2D": {"filters": 2, "kernel_size": 3, "padding": "causal"}}],
     "Layer 0 (Conv2D): Invalid value for argument `padding`. Expected one of 'valid', 'same'. "
     "Received padding='causal'."),
    ([{"Dropout": {"rate": 1.5}}],
     "Layer 0 (Dropout): Invalid value for argument `rate`. Expected a number in [0, 1]. "
     "Received rate=1.5."),
    ([{"Flatten": {}}, {"Conv2D": {"filters": 2, "kernel_size": 1}}],
     "Layer 1 (Conv2D): Conv2D expects images of shape (height, width, channels) (rank 3 "
     "without the batch axis). Received input shape (None, 64)."),
    ([{"Reshape": {"target_shape": [3, 3]}}],
     "Layer 0 (Reshape): Reshape: total size of the new array must be unchanged"),
    ([{"Conv2D": {"filters": 2}}],
     "Layer 0 (Conv2D): Missing required argument `kernel_size` for Conv2D."),
    ([{"Dense": {"units": 2, "kernel_initializer": "xavier"}}],
     "Layer 0 (Dense): Unknown initializer 'xavier'. Expected one of: glorot_normal, "
     "glorot_uniform, he_normal, he_uniform, lecun_normal, lecun_uniform, ones, zeros."),
])
def test_bad_specs_name_layer_argument_expected_and_received(layers_, message):
    with pytest.raises(SpecError) as err:
        spec_of(layers_)
    assert str(err.value).startswith(message)


def test_missing_input_shape_is_explained():
    with pytest.raises(SpecError, match="Missing input shape. Expected `input_shape"):
        ModelSpec.from_dict({"layers": [{"Dense": {"units": 10}}]})


def test_unknown_model_key_lists_valid_keys():
    with pytest.raises(SpecError, match="Unknown key `layer` in the model spec. Expected keys: "
                                         "input_shape, layers, name."):
        ModelSpec.from_dict({"input_shape": [4], "layer": []})


def test_python_api_rejects_bad_arguments_at_construction():
    with pytest.raises(SpecError, match="Received filters=-1"):
        layers.Conv2D(-1, 3)
    with pytest.raises(SpecError, match="Expected a strictly positive integer or a pair"):
        layers.Conv2D(2, (3, 0))


def test_keras_refuses_what_we_refuse():
    """Every spec Keras itself refused (tests/keras_refs/refs.json 'invalid') fails here too."""
    import json
    refs = json.load(open("tests/keras_refs/refs.json"))
    for name, entry in refs["invalid"].items():
        with pytest.raises(SpecError):
            ModelSpec.from_dict(entry["spec"])
