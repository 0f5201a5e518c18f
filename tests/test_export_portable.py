"""`cnnlab export --format onnx|torchscript`: the file computes what cnnlab computes (1e-5),
for any batch size, in inference mode (Dropout off, BatchNormalization's moving statistics),
for sequential and graph models, and states its preprocessing."""
import json

import numpy as np
import pytest
import torch

import cnnlab
from serve_support import train
from test_cli import run  # the CLI's exit code, stdout and stderr

ort = pytest.importorskip("onnxruntime", reason="ONNX parity needs onnxruntime (requirements.lock)")
onnx = pytest.importorskip("onnx", reason="ONNX export needs onnx (requirements.lock)")

BN_DROPOUT = """\
model:
  input_shape: [12, 12, 1]
  layers:
    - Conv2D: {filters: 4, kernel_size: 3}
    - BatchNormalization: {}
    - Activation: {activation: relu}
    - MaxPooling2D: {pool_size: 2}
    - Flatten: {}
    - Dropout: {rate: 0.5}
    - Dense: {units: 3, activation: softmax}
train: {batch_size: 16, epochs: 2, threads: 1, seed: 0}
"""
GRAPH = """\
model:
  inputs: [{name: image, shape: [12, 12, 1]}]
  layers:
    - Conv2D: {name: stem, filters: 4, kernel_size: 3, padding: same, activation: relu, inbound: image}
    - Conv2D: {name: branch, filters: 4, kernel_size: 3, padding: same}
    - Add: {name: skip, inbound: [stem, branch]}
    - MaxPooling2D: {pool_size: 2}
    - Flatten: {}
    - Dense: {units: 3, activation: softmax}
  outputs: [dense]
train: {batch_size: 16, epochs: 1, threads: 1, seed: 0}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("portable")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 96)
    x = rng.integers(0, 60, (96, 12, 12)).astype(np.uint8)
    for c in range(3):
        x[y == c, 3 * c + 2, 2:10] = 255
    np.savez(root / "d.npz", x_train=x[:64], y_train=y[:64], x_test=x[64:], y_test=y[64:])
    data = {"name": f"npz:{root / 'd.npz'}"}
    train(root, "bn", BN_DROPOUT, **data)
    train(root, "graph", GRAPH, **data)
    return root


@pytest.mark.parametrize("name", ["bn", "graph"])
def test_onnx_predictions_equal_cnnlabs_for_any_batch_size(capsys, runs, name):
    code, out, err = run(capsys, "export", name, "--format", "onnx", "--out", str(runs))
    assert code == 0, err
    path = runs / name / "model.onnx"
    assert out.strip() == f"Wrote {path}"
    model = cnnlab.load(name, runs)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["images"]
    rng = np.random.default_rng(2)
    for n in (1, 7):
        x = rng.random((n, 12, 12, 1), dtype=np.float32)
        got = session.run(None, {"images": x})[0]
        np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5, rtol=0)
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["cnnlab.input_shape"]) == ["N", 12, 12, 1]
    assert float(meta["cnnlab.pixel_scale"]) == pytest.approx(1 / 255)
    assert "prepare_image" in meta["cnnlab.preprocessing"]
    # uint8 images scaled as the metadata says give cnnlab's predictions for the uint8 images
    pixels = rng.integers(0, 256, (3, 12, 12, 1)).astype(np.uint8)
    scaled = pixels.astype(np.float32) * np.float32(float(meta["cnnlab.pixel_scale"]))
    np.testing.assert_allclose(session.run(None, {"images": scaled})[0],
                               model.predict(pixels, verbose=0), atol=1e-5, rtol=0)


def test_the_exported_bn_dropout_model_is_in_inference_mode(runs):
    model = cnnlab.load("bn", runs)
    bn = next(m for m in model.net.layers if hasattr(m, "running_mean"))
    assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))  # it learnt stats
    path = runs / "bn.onnx"
    from cnnlab.saving.export import export_run
    export_run("bn", "onnx", path, runs)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).random((5, 12, 12, 1), dtype=np.float32)
    first, second = (session.run(None, {"images": x})[0] for _ in range(2))
    np.testing.assert_array_equal(first, second)  # no dropout draws
    np.testing.assert_allclose(first, model.predict(x, verbose=0), atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", ["bn", "graph"])
def test_torchscript_predictions_and_metadata(capsys, runs, tmp_path, name):
    path = tmp_path / f"{name}.pt"
    code, _, err = run(capsys, "export", name, "--format", "torchscript", "--out", str(runs),
                       "--output", str(path))
    assert code == 0, err
    extra = {"cnnlab.json": ""}
    scripted = torch.jit.load(str(path), _extra_files=extra)
    meta = json.loads(extra["cnnlab.json"])
    assert meta["input_shape"] == ["N", 12, 12, 1] and meta["class_names"] == ["0", "1", "2"]
    model = cnnlab.load(name, runs)
    for n in (1, 6):
        x = np.random.default_rng(n).random((n, 12, 12, 1), dtype=np.float32)
        with torch.no_grad():
            got = scripted(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5, rtol=0)


def test_export_refuses_a_wrong_suffix(capsys, runs, tmp_path):
    code, _, err = run(capsys, "export", "graph", "--format", "onnx", "--out", str(runs),
                       "--output", str(tmp_path / "m.pt"))
    assert code == 2 and "must end in .onnx. Received" in err
    assert not (tmp_path / "m.pt").exists()
