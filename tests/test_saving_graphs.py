"""Every graph spec of tests/keras_refs (7 named, 40 random) as a .keras file that Keras opened.

make_keras_refs.py loaded each file cnnlab wrote with keras.models.load_model and stored
Keras's predictions and the sha256 of the config.json it read. Here cnnlab writes the same
model again (weights and inputs seeded by the graph's name): its config must be the one
Keras read, cnnlab's predictions must equal Keras's, and cnnlab must read its file back.
"""
import hashlib
import importlib.util
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnnlab.models import load_model

REFS = Path(__file__).parent / "keras_refs" / "saving"
_spec = importlib.util.spec_from_file_location("make_cnnlab_files", REFS / "make_cnnlab_files.py")
maker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(maker)
SHAS = json.loads((REFS / "cnnlab_written" / "graphs_config_sha.json").read_text())
KERAS_PRED = np.load(REFS / "cnnlab_written" / "graphs_keras_pred.npz")
SPECS = maker.graph_specs()


def test_every_graph_was_checked_by_keras():
    assert sorted(SHAS) == sorted(SPECS) and len(SPECS) == 47


@pytest.mark.parametrize("name", sorted(SPECS))
def test_graph_file_is_the_one_keras_opened_and_predicts_alike(name, tmp_path):
    model, xs = maker.graph_model(name, SPECS[name])
    path = tmp_path / f"{name}.keras"
    model.save(path)
    config = zipfile.ZipFile(path).read("config.json")
    assert hashlib.sha256(config).hexdigest() == SHAS[name]
    x = xs if len(xs) > 1 else xs[0]
    ours = model.predict(x, verbose=0)
    ours = ours if isinstance(ours, list) else [ours]
    keras = [KERAS_PRED[f"{name}/y{i}"] for i in range(len(ours))]
    assert f"{name}/y{len(ours)}" not in KERAS_PRED.files
    for a, b in zip(ours, keras):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)
    again = load_model(path).predict(x, verbose=0)
    for a, b in zip(again if isinstance(again, list) else [again], ours):
        np.testing.assert_array_equal(a, b)


KERAS_GRAPHS = sorted(p.stem for p in (REFS / "keras_saved" / "graphs").glob("*.keras"))


@pytest.mark.parametrize("name", KERAS_GRAPHS)
def test_graph_saved_by_keras_loads_with_equal_predictions(name):
    d = np.load(REFS / "keras_saved" / "graphs" / f"{name}.npz")
    xs = [d[k] for k in sorted(k for k in d.files if k.startswith("arr_"))]
    ys = [d[f"y{i}"] for i in range(sum(k.startswith("y") for k in d.files))]
    model = load_model(REFS / "keras_saved" / "graphs" / f"{name}.keras")
    out = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
    for a, b in zip(out if isinstance(out, list) else [out], ys, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def test_keras_graph_files_cover_the_named_graphs():
    assert len(KERAS_GRAPHS) == 7


def _comparable(config: dict) -> dict:
    """A config without what differs by Keras session, not by model: compile settings, the
    dtype policy's object id, the auto-numbered names of a nested Sequential's InputLayer,
    and whether one input was given to Model() alone or in a list."""
    def clean(d):
        if isinstance(d, dict):
            d = {k: clean(v) for k, v in d.items() if k not in ("shared_object_id",
                                                                  "compile_config")}
            if d.get("class_name") == "InputLayer" and "inbound_nodes" not in d:
                d["config"]["name"] = "input_layer"
            for key in ("input_layers", "output_layers"):
                if key in d and len(d[key]) == 1 and isinstance(d[key][0], list):
                    d[key] = d[key][0]
            return d
        return [clean(v) for v in d] if isinstance(d, list) else d
    return clean(config)


@pytest.mark.parametrize("path", sorted((REFS / "keras_saved").rglob("*.keras")),
                         ids=lambda p: p.stem)
def test_cnnlab_writes_the_config_keras_wrote(path, tmp_path):
    # Keras's file, loaded by cnnlab and saved again: every layer config, default and
    # initializer dict, build_config and inbound node as Keras wrote them.
    load_model(path).save(tmp_path / "again.keras")
    read = lambda p: json.loads(zipfile.ZipFile(p).read("config.json"))  # noqa: E731
    assert _comparable(read(tmp_path / "again.keras")) == _comparable(read(path))
