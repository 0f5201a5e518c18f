"""`cnnlab export RUN --format keras`: a trained run's model as a .keras file."""
import json
import zipfile

import numpy as np
import pytest

import cnnlab
from test_cli import run  # the CLI's exit code, stdout and stderr
from cnnlab.models import load_model


@pytest.fixture
def trained_run(tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 10, 10)).astype(np.uint8)
    y = rng.integers(0, 3, 40).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x[:32], y_train=y[:32], x_test=x[32:], y_test=y[32:])
    (tmp_path / "c.yaml").write_text("""\
model:
  input_shape: [10, 10, 1]
  layers:
    - Conv2D: {filters: 2, kernel_size: 3, activation: relu}
    - MaxPooling2D: {}
    - Flatten: {}
    - Dense: {units: 3, activation: softmax}
train: {batch_size: 16, epochs: 1, threads: 1}
""")
    code, _, err = run(capsys, "train", str(tmp_path / "c.yaml"), "--data",
                       f"npz:{tmp_path / 'd.npz'}", "--out", str(tmp_path / "runs"),
                       "--name", "r", "--quiet")
    assert code == 0, err
    return tmp_path / "runs"


def test_export_writes_a_keras_file_with_the_runs_model(capsys, trained_run, tmp_path):
    code, out, err = run(capsys, "export", "r", "--format", "keras", "--out", str(trained_run))
    assert code == 0, err
    path = trained_run / "r" / "model.keras"
    assert out.strip() == f"Wrote {path}"
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    assert [l["class_name"] for l in config["config"]["layers"]] == [
        "InputLayer", "Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    assert config["compile_config"]["loss"] == "categorical_crossentropy"
    x = np.random.default_rng(1).random((4, 10, 10, 1), dtype=np.float32)
    original = cnnlab.load("r", trained_run)
    np.testing.assert_allclose(load_model(path).predict(x, verbose=0),
                               original.predict(x, verbose=0), atol=1e-6)


def test_export_to_a_chosen_file_and_its_errors(capsys, trained_run, tmp_path):
    code, _, err = run(capsys, "export", "r", "--out", str(trained_run), "--output",
                       str(tmp_path / "m.keras"), "--weights", "best")
    assert code == 0, err
    assert (tmp_path / "m.keras").is_file()
    code, _, err = run(capsys, "export", "r", "--out", str(trained_run), "--output",
                       str(tmp_path / "m.zip"))
    assert code == 2 and "must end in .keras. Received" in err
    code, _, err = run(capsys, "export", "nope", "--out", str(trained_run))
    assert code == 5 and "Traceback" not in err
