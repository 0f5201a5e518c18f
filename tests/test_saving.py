"""Keras's files: .keras both ways against real Keras, legacy Keras 2 .h5, weights by suffix.

The references under tests/keras_refs/saving/ were made once by real Keras 3.15.1
(make_keras_refs.py; make_cnnlab_files.py for the files cnnlab wrote and Keras opened).
"""
import io
import json
from contextlib import nullcontext
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab import layers as L
from cnnlab.errors import CnnlabError, RunError, SpecError
from cnnlab.models import load_model

REFS = Path(__file__).parent / "keras_refs" / "saving"


def small_model(seed=0):
    model = cnnlab.models.Sequential([
        L.Conv2D(3, 3, input_shape=(6, 6, 1), activation="relu"), L.MaxPooling2D(),
        L.BatchNormalization(), L.Flatten(), L.Dense(4, activation="softmax")])
    rng = np.random.default_rng(seed)
    model.set_weights([(np.abs(rng.normal(size=w.shape)) + 0.5 if i == 5 else
                        rng.normal(size=w.shape)).astype("float32")
                       for i, w in enumerate(model.get_weights())])
    return model


def batch(shape, seed=1):
    return np.random.default_rng(seed).normal(size=(5, *shape)).astype("float32")


# -- files written by Keras, read by cnnlab --------------------------------------------

@pytest.mark.parametrize("name", ["seq_all_layers", "seq_gap", "seq_new_layers"])
def test_keras_saved_sequential_loads_with_equal_predictions(name):
    ref = np.load(REFS / "keras_saved" / f"{name}.npz")
    model = load_model(REFS / "keras_saved" / f"{name}.keras")
    np.testing.assert_allclose(model.predict(ref["x"], verbose=0), ref["y"], atol=1e-5)


def test_keras_saved_names_and_settings_survive():
    model = load_model(REFS / "keras_saved" / "seq_all_layers.keras")
    spec = model.to_spec()
    assert spec.name == "keras_seq"
    assert spec.layer_names[-1] == "probs"
    assert spec.layers[0].config["kernel_regularizer"].l2 == pytest.approx(1e-3)
    assert spec.layers[2].config["momentum"] == pytest.approx(0.9)


def test_keras_saved_functional_graph_loads_with_equal_predictions():
    ref = np.load(REFS / "keras_saved" / "functional_graph.npz")
    model = load_model(REFS / "keras_saved" / "functional_graph.keras")
    np.testing.assert_allclose(model.predict(ref["x"], verbose=0), ref["y"], atol=1e-5)
    assert [l.name for l in model.layers] == ["image", "a", "b", "add", "shared", "cat", "head",
                                              "out"]
    # the nested layers keep the names Keras gave them (numbered per Keras session)
    config = json.loads(zipfile.ZipFile(REFS / "keras_saved" / "functional_graph.keras")
                        .read("config.json"))
    head = [l for l in config["config"]["layers"] if l["name"] == "head"][0]
    assert [l.name for l in model.get_layer("head").layers] == [
        l["config"]["name"] for l in head["config"]["layers"][1:]]


def test_functional_config_as_keras_writes_it(tmp_path):
    model = load_model(REFS / "cnnlab_written" / "functional_graph.keras")
    model.save(tmp_path / "f.keras")
    z = zipfile.ZipFile(tmp_path / "f.keras")
    config = json.loads(z.read("config.json"))
    assert config["class_name"] == "Functional" and config["registered_name"] == "Functional"
    assert config["config"]["input_layers"] == ["image", 0, 0]
    assert config["config"]["output_layers"] == ["out", 0, 0]
    by_name = {l["name"]: l for l in config["config"]["layers"]}
    assert [n["args"][0]["config"]["keras_history"] for n in by_name["shared"]["inbound_nodes"]] \
        == [["add", 0, 0], ["a", 0, 0]]
    assert [t["config"]["keras_history"] for t in by_name["cat"]["inbound_nodes"][0]["args"][0]] \
        == [["shared", 0, 0], ["shared", 1, 0]]
    assert by_name["head"]["class_name"] == "Sequential"
    assert by_name["head"]["inbound_nodes"][0]["kwargs"] == {"mask": None}
    import h5py
    with h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
        assert sorted(f["layers"]) == ["activation", "add", "concatenate", "conv2d", "conv2d_1",
                                       "conv2d_2", "input_layer", "sequential"]
        assert f["layers/conv2d_2/vars"].attrs["name"] == "shared"
        assert f["layers/sequential/layers/dense/vars/0"].shape == (8, 5)


def test_functional_round_trip_through_every_format(tmp_path):
    model = load_model(REFS / "cnnlab_written" / "functional_graph.keras")
    x = np.load(REFS / "cnnlab_written" / "functional_graph.input.npy")
    expected = model.predict(x, verbose=0)
    for name in ("f.keras", "f.h5"):
        with pytest.warns(UserWarning, match="legacy") if name.endswith(".h5") else nullcontext():
            model.save(tmp_path / name)
        np.testing.assert_array_equal(load_model(tmp_path / name).predict(x, verbose=0), expected)
    fresh = cnnlab.Model.from_spec(model.to_spec())
    for name in ("w.weights.h5", "w.h5", "w.safetensors"):
        model.save_weights(tmp_path / name)
        fresh.load_weights(tmp_path / name)
        np.testing.assert_array_equal(fresh.predict(x, verbose=0), expected)


# -- files written by cnnlab, opened by Keras (its predictions are in the refs) ----------

WRITTEN = ["seq_all_layers", "seq_gap", "seq_new_layers", "functional_graph",
           "nested_in_sequential"]


@pytest.mark.parametrize("name", WRITTEN)
def test_cnnlab_written_file_predicts_as_keras_did(name):
    d = REFS / "cnnlab_written"
    model = load_model(d / f"{name}.keras")
    keras_pred = np.load(d / f"{name}.keras_pred.npy")
    np.testing.assert_allclose(model.predict(np.load(d / f"{name}.input.npy"), verbose=0),
                               keras_pred, atol=1e-5)


@pytest.mark.parametrize("name", WRITTEN)
def test_cnnlab_still_writes_the_config_keras_opened(name, tmp_path):
    # The committed file was opened by Keras; today's writer must produce the same config.
    committed = REFS / "cnnlab_written" / f"{name}.keras"
    model = load_model(committed)
    model.save(tmp_path / "again.keras")
    read = lambda p: json.loads(zipfile.ZipFile(p).read("config.json"))  # noqa: E731
    assert read(tmp_path / "again.keras") == read(committed)


def test_saved_file_has_keras_members_and_configs(tmp_path):
    small_model().save(tmp_path / "m.keras")
    z = zipfile.ZipFile(tmp_path / "m.keras")
    assert z.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
    assert json.loads(z.read("metadata.json"))["keras_version"].startswith("3.")
    config = json.loads(z.read("config.json"))
    assert config["class_name"] == "Sequential" and config["module"] == "keras"
    layers = config["config"]["layers"]
    assert [l["class_name"] for l in layers] == ["InputLayer", "Conv2D", "MaxPooling2D",
                                                 "BatchNormalization", "Flatten", "Dense"]
    conv = layers[1]
    assert conv["config"]["dtype"]["class_name"] == "DTypePolicy"
    assert conv["config"]["kernel_initializer"] == {
        "module": "keras.initializers", "class_name": "GlorotUniform",
        "config": {"seed": None, "input_axes": None, "output_axes": None}, "registered_name": None}
    assert conv["build_config"] == {"input_shape": [None, 6, 6, 1]}
    assert conv["config"]["dilation_rate"] == [1, 1]  # Keras's defaults are written out
    import h5py
    with h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
        assert sorted(f["layers"]) == ["batch_normalization", "conv2d", "dense", "flatten",
                                       "max_pooling2d"]
        assert f["layers/conv2d/vars/0"].shape == (3, 3, 1, 3)
        assert len(f["layers/batch_normalization/vars"]) == 4


def test_round_trip_keeps_predictions_and_spec(tmp_path):
    model = small_model()
    model.save(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    x = batch((6, 6, 1))
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert [type(l) for l in again.to_spec().layers] == [type(l) for l in model.to_spec().layers]


def test_compiled_model_round_trip_compiles_again(tmp_path):
    model = small_model()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.save(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    x, y = batch((6, 6, 1)), cnnlab.utils.to_categorical(np.arange(5) % 4, 4)
    assert again.evaluate(x, y, verbose=0) == pytest.approx(model.evaluate(x, y, verbose=0))
    assert load_model(tmp_path / "m.keras", compile=False).loss is None


# -- Keras 2 .h5 files --------------------------------------------------------------------

def test_keras2_sequential_h5_loads_with_equal_predictions():
    ref = np.load(REFS / "keras2" / "sequential.npz")
    model = load_model(REFS / "keras2" / "sequential.h5")
    np.testing.assert_allclose(model.predict(ref["x"], verbose=0), ref["y"], atol=1e-5)
    assert model.optimizer.learning_rate == pytest.approx(0.002)  # from training_config


def test_keras2_functional_h5_loads_with_equal_predictions():
    ref = np.load(REFS / "keras2" / "functional.npz")
    model = load_model(REFS / "keras2" / "functional.h5")
    np.testing.assert_allclose(model.predict(ref["x"], verbose=0), ref["y"], atol=1e-5)


def test_keras2_first_layer_batch_input_shape_is_the_input():
    from cnnlab.saving.graph_config import spec_dict_from_keras
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"class_name": "Dense", "config": {"name": "d", "units": 2, "activation": "relu",
                                           "batch_input_shape": [None, 7], "dtype": "float32"}}]}}
    d = spec_dict_from_keras(config, legacy=True)
    assert d["input_shape"] == [7]
    assert d["layers"] == [{"Dense": {"units": 2, "activation": "relu", "name": "d"}}]


# -- weights files chosen by name ---------------------------------------------------------

def _magic(path) -> bytes:
    return Path(path).read_bytes()[:8]


@pytest.mark.parametrize("name", ["w.weights.h5", "w.h5", "w.safetensors"])
def test_weights_round_trip_by_suffix(name, tmp_path):
    model, other = small_model(0), small_model(1)
    model.save_weights(tmp_path / name)
    other.load_weights(tmp_path / name)
    x = batch((6, 6, 1))
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))
    is_hdf5 = _magic(tmp_path / name) == b"\x89HDF\r\n\x1a\n"
    assert is_hdf5 == name.endswith(".h5")  # never one format under another's name


def test_h5_weights_file_has_keras2_layout(tmp_path):
    import h5py
    small_model().save_weights(tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5") as f:
        assert [n.decode() for n in f.attrs["layer_names"]] == [
            "conv2d", "max_pooling2d", "batch_normalization", "flatten", "dense"]
        assert [n.decode() for n in f["conv2d"].attrs["weight_names"]] == [
            "conv2d/kernel:0", "conv2d/bias:0"]
        assert f["dense/dense/kernel:0"].shape == (12, 4)


def test_weights_from_a_keras_file(tmp_path):
    model, other = small_model(0), small_model(1)
    model.save(tmp_path / "m.keras")
    other.load_weights(tmp_path / "m.keras")
    x = batch((6, 6, 1))
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))


def test_save_weights_wrong_suffix_is_refused(tmp_path):
    with pytest.raises(RunError, match=r"The filename must end in `.weights.h5` .*"
                                       r"Received: filepath=.*w\.pt"):
        small_model().save_weights(tmp_path / "w.pt")
    assert not (tmp_path / "w.pt").exists()


def test_overwrite_false_keeps_the_file(tmp_path):
    path = tmp_path / "w.weights.h5"
    path.write_bytes(b"old")
    with pytest.raises(RunError, match="already exists and overwrite=False"):
        small_model().save_weights(path, overwrite=False)
    assert path.read_bytes() == b"old"
    small_model().save_weights(path, overwrite=True)
    assert _magic(path) == b"\x89HDF\r\n\x1a\n"


def test_weights_of_another_model_are_refused(tmp_path):
    small_model().save_weights(tmp_path / "w.weights.h5")
    other = cnnlab.models.Sequential([L.Dense(2, input_shape=(3,))])
    with pytest.raises(RunError, match=r"w.weights.h5: layer 'dense' weight 0 has shape \(12, 4\). "
                                       r"Expected \(3, 2\)"):
        other.load_weights(tmp_path / "w.weights.h5")


# -- refusals -------------------------------------------------------------------------------

def test_lambda_layer_is_refused_as_keras_safe_mode_does():
    with pytest.raises(SpecError, match=r"Layer 'double' \(Lambda\): Requested the "
                                        r"deserialization of a `Lambda` layer, which is "
                                        r"arbitrary code that cnnlab will not run"):
        load_model(REFS / "refused" / "lambda.keras")


def test_unsupported_layer_is_named():
    with pytest.raises(SpecError, match=r"Layer 'norm' \(LayerNormalization\) is not "
                                        r"supported by cnnlab. Supported layers: .*Conv2D"):
        load_model(REFS / "refused" / "unsupported_layer.keras")


def test_unsupported_setting_is_named():
    with pytest.raises(SpecError, match=r"Layer 'dil' \(Conv2D\): cnnlab does not support "
                                        r"`dilation_rate=\[2, 2\]` \(only Keras's default "
                                        r"\[1, 1\]\)"):
        load_model(REFS / "refused" / "unsupported_setting.keras")


def _rezip(src, dst, drop=None, replace=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name != drop:
                zout.writestr(name, (replace or {}).get(name, zin.read(name)))


def test_custom_object_is_refused(tmp_path):
    src = REFS / "keras_saved" / "seq_gap.keras"
    config = json.loads(zipfile.ZipFile(src).read("config.json"))
    config["config"]["layers"][1].update(module="my_project.layers", registered_name="MyConv")
    _rezip(src, tmp_path / "c.keras", replace={"config.json": json.dumps(config)})
    with pytest.raises(SpecError, match=r"custom object 'MyConv' \(module 'my_project.layers'\)"):
        load_model(tmp_path / "c.keras")


def test_corrupt_zip_is_a_clear_error(tmp_path):
    (tmp_path / "bad.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(RunError, match=r"not a valid .keras file \(a zip archive\)"):
        load_model(tmp_path / "bad.keras")


def test_missing_member_is_named(tmp_path):
    _rezip(REFS / "keras_saved" / "seq_gap.keras", tmp_path / "m.keras", drop="model.weights.h5")
    with pytest.raises(RunError, match=r"not a valid .keras file \(the zip has no "
                                       r"model.weights.h5\)"):
        load_model(tmp_path / "m.keras")


def test_oversized_member_is_refused(tmp_path, monkeypatch):
    from cnnlab.saving import keras_format
    monkeypatch.setattr(keras_format, "MAX_JSON_BYTES", 100)
    with pytest.raises(RunError, match="config.json is .* bytes, more than the 100 allowed"):
        load_model(REFS / "keras_saved" / "seq_gap.keras")


def test_load_model_suffixes_and_options(tmp_path):
    with pytest.raises(RunError, match=r"File format not supported: filepath=.*m\.pt"):
        load_model(tmp_path / "m.pt")
    with pytest.raises(RunError, match=r"File not found: filepath=.*missing\.keras"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(RunError, match="custom_objects are not supported"):
        load_model(REFS / "keras_saved" / "seq_gap.keras", custom_objects={"X": object})
    with pytest.raises(RunError, match="safe_mode=False is not supported"):
        load_model(REFS / "keras_saved" / "seq_gap.keras", safe_mode=False)
    small_model().save_weights(tmp_path / "w.h5")
    with pytest.raises(RunError, match="no `model_config` attribute\\): it is a weights file"):
        load_model(tmp_path / "w.h5")


def test_model_save_suffixes(tmp_path):
    with pytest.raises(RunError, match=r"Invalid filepath extension for saving. Please add "
                                       r"either a `.keras` extension .* or a `.h5` extension. "
                                       r"Received: filepath=.*m\.model"):
        small_model().save(tmp_path / "m.model")
    with pytest.raises(RunError, match=r"The following argument\(s\) are not supported: "
                                       r"\['save_format'\]"):
        small_model().save(tmp_path / "m.keras", save_format="tf")


def test_legacy_h5_model_written_by_cnnlab_predicts_as_keras_did():
    d = REFS / "cnnlab_written"
    model = load_model(d / "seq_gap_legacy.h5")
    np.testing.assert_allclose(model.predict(np.load(d / "seq_gap.input.npy"), verbose=0),
                               np.load(d / "seq_gap_legacy.keras_pred.npy"), atol=1e-5)
    assert model.optimizer.learning_rate == pytest.approx(0.003)


def test_legacy_h5_round_trip_warns_as_keras(tmp_path):
    model = small_model()
    with pytest.warns(UserWarning, match="You are saving your model as an HDF5 file via "
                                         r"`model.save\(\)`. This file format is considered "
                                         "legacy"):
        model.save(tmp_path / "m.h5")
    x = batch((6, 6, 1))
    np.testing.assert_array_equal(load_model(tmp_path / "m.h5").predict(x, verbose=0),
                                  model.predict(x, verbose=0))


def test_errors_are_cnnlab_errors():
    assert issubclass(RunError, CnnlabError) and issubclass(SpecError, CnnlabError)


def test_import_cnnlab_does_not_import_h5py():
    code = ("import sys, cnnlab, cnnlab.models; m = cnnlab.models.Sequential(); "
            "print('h5py' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_model_checkpoint_writes_a_keras_model_file(tmp_path):
    model = small_model()
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    x, y = batch((6, 6, 1)), cnnlab.utils.to_categorical(np.arange(5) % 4, 4)
    path = tmp_path / "best.keras"
    model.fit(x, y, epochs=1, batch_size=5, verbose=0,
              callbacks=[cnnlab.callbacks.ModelCheckpoint(str(path))])
    again = load_model(path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))


def test_h5_weight_names_as_keras2_wrote_them(tmp_path):
    import h5py
    inner = cnnlab.models.Sequential([L.Dense(3, input_shape=(4,), use_bias=False)], name="enc")
    model = cnnlab.models.Sequential([inner, L.BatchNormalization(center=False, name="bn")])
    model.save_weights(tmp_path / "w.h5")
    with h5py.File(tmp_path / "w.h5") as f:
        names = {n.decode(): [w.decode() for w in f[n.decode()].attrs["weight_names"]]
                 for n in f.attrs["layer_names"]}
    assert names == {"enc": ["dense/kernel:0"],
                     "bn": ["bn/gamma:0", "bn/moving_mean:0", "bn/moving_variance:0"]}
    other = cnnlab.models.Sequential([cnnlab.models.Sequential(
        [L.Dense(3, input_shape=(4,), use_bias=False)]), L.BatchNormalization(center=False)])
    other.load_weights(tmp_path / "w.h5")  # matched by order, as Keras 2 did
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
