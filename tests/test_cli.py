"""The `cnnlab` command end to end: summary, train, runs, evaluate, predict, plot, errors."""
import json
import subprocess
import sys

import numpy as np
import torch
import pytest

from cnnlab.cli import main

LECTURE_ROWS = ["conv2d (Conv2D)", "max_pooling2d (MaxPooling2D)", "conv2d_1 (Conv2D)",
                "max_pooling2d_1 (MaxPooling2D)", "flatten (Flatten)", "dense (Dense)",
                "dense_1 (Dense)"]


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


@pytest.fixture
def tiny_npz(tmp_path):
    rng = np.random.default_rng(0)
    def make(n):
        y = rng.integers(0, 3, n)
        x = rng.integers(0, 40, (n, 12, 12)).astype(np.uint8)
        for c in range(3):
            x[y == c, 3 * c + 2, 2:10] = 255
        return x, y.astype(np.uint8)
    (xt, yt), (xv, yv) = make(96), make(48)
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=xt, y_train=yt, x_test=xv, y_test=yv)
    return path


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text("""\
model:
  input_shape: [12, 12, 1]
  layers:
    - Conv2D: {filters: 4, kernel_size: 3, activation: relu}
    - MaxPooling2D: {pool_size: 2}
    - Flatten: {}
    - Dense: {units: 3, activation: softmax}
train:
  batch_size: 16
  epochs: 2
  threads: 1
""")
    return path


def test_summary_prints_the_lecture_numbers(capsys):
    code, out, _ = run(capsys, "summary")
    assert code == 0
    assert out.startswith('Model: "sequential"\n')
    for row, params in zip(LECTURE_ROWS, ["320", "0", "18496", "0", "0", "147520", "650"]):
        line = next(l for l in out.splitlines() if l.strip().startswith(row))
        assert line.split()[-1] == params
    assert "(None, 6, 6, 64)" in out and "(None, 2304)" in out
    assert "Total params: 166,986\nTrainable params: 166,986\nNon-trainable params: 0\n" in out


def test_summary_json_and_files(capsys, tmp_path):
    code, out, _ = run(capsys, "summary", "--json")
    j = json.loads(out)
    assert [l["params"] for l in j["layers"]] == [320, 0, 18496, 0, 0, 147520, 650]
    assert j["layers"][0] == {"name": "conv2d", "type": "Conv2D",
                              "output_shape": [None, 26, 26, 32], "params": 320}
    assert (j["total_params"], j["trainable_params"], j["non_trainable_params"]) == (166986, 166986, 0)
    code, out2, _ = run(capsys, "summary", "examples/lecture.yaml")
    code, out3, _ = run(capsys, "summary", "examples/lecture_model.yaml")
    code, out4, _ = run(capsys, "summary")
    assert out2 == out3 == out4
    bn = tmp_path / "bn.yaml"
    bn.write_text("input_shape: [8, 8, 1]\nlayers: [{Conv2D: {filters: 4, kernel_size: 3}}, "
                  "BatchNormalization, Flatten, {Dense: {units: 2}}]\n")
    code, out, _ = run(capsys, "summary", str(bn))
    assert "Trainable params: 338\nNon-trainable params: 8\n" in out


def test_train_writes_a_complete_run_directory(capsys, tmp_path, tiny_npz, tiny_config):
    out_dir = tmp_path / "runs"
    code, out, err = run(capsys, "train", str(tiny_config), "--data", f"npz:{tiny_npz}",
                         "--out", str(out_dir), "--name", "t1")
    assert code == 0, err
    lines = out.splitlines()
    epochs = [l for l in lines if l.startswith("Epoch ")]
    assert len(epochs) == 2  # not a terminal: exactly one line per epoch
    assert epochs[0].startswith("Epoch 1/2 6/6 [==============================] - ")
    assert " - loss: " in epochs[0] and " - val_accuracy: " in epochs[0]
    run_dir = out_dir / "t1"
    for name in ["config.yaml", "summary.txt", "history.csv", "history.json", "metrics.json",
                 "weights/final.safetensors", "weights/best.safetensors", "accuracy.png",
                 "loss.png", "checkpoint.safetensors"]:
        assert (run_dir / name).is_file(), name
    h = json.loads((run_dir / "history.json").read_text())
    assert list(h) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "finished" and m["final_val_accuracy"] == h["val_accuracy"][-1]
    assert m["data"]["source"].startswith("npz file") or "tiny.npz" in m["data"]["source"]
    assert len(m["data"]["sha256"]) == 64 and m["data"]["n_train"] == 96
    assert m["environment"]["torch"] and len(m["epoch_seconds"]) == 2
    from cnnlab import fast  # which kernels ran: bit-for-bit results depend on them
    assert m["environment"]["kernels"] == fast.kernels_status()
    csv_lines = (run_dir / "history.csv").read_text().splitlines()
    assert csv_lines[0] == "epoch,loss,accuracy,val_loss,val_accuracy" and len(csv_lines) == 3

    # the same name again is refused, and the existing run is untouched
    before = (run_dir / "metrics.json").read_bytes()
    code, out, err = run(capsys, "train", str(tiny_config), "--data", f"npz:{tiny_npz}",
                         "--out", str(out_dir), "--name", "t1")
    assert code == 5 and "already exists" in err and "Traceback" not in err
    assert (run_dir / "metrics.json").read_bytes() == before

    code, out, _ = run(capsys, "runs", "--out", str(out_dir))
    assert "t1" in out and "finished" in out

    code, out, _ = run(capsys, "evaluate", "t1", "--out", str(out_dir), "--data",
                       f"npz:{tiny_npz}", "--json")
    ev = json.loads(out)
    assert ev["accuracy"] == pytest.approx(m["final_val_accuracy"])
    assert sum(v["count"] for v in ev["per_class"].values()) == 48

    (run_dir / "accuracy.png").unlink()
    code, out, _ = run(capsys, "plot", str(run_dir))
    assert code == 0 and (run_dir / "accuracy.png").is_file()


def test_flags_override_the_config(capsys, tmp_path, tiny_npz, tiny_config):
    code, out, err = run(capsys, "train", str(tiny_config), "--data", f"npz:{tiny_npz}",
                         "--out", str(tmp_path), "--name", "o", "--epochs", "1",
                         "--batch-size", "32", "--optimizer", "sgd", "--lr", "0.05",
                         "--seed", "3", "--quiet")
    assert code == 0, err
    assert "Epoch" not in out and out.startswith("Run: ")
    import yaml
    cfg = yaml.safe_load((tmp_path / "o" / "config.yaml").read_text())
    assert cfg["train"]["epochs"] == 1 and cfg["train"]["batch_size"] == 32
    assert cfg["train"]["optimizer"] == {"name": "sgd", "learning_rate": 0.05}
    assert cfg["train"]["seed"] == 3


@pytest.mark.parametrize("argv, code, message", [
    (["train", "--epochs", "0"], 2, "expected a positive integer"),
    (["train", "--optimizer", "adamux", "--data", "mnist-sample"], 2, "Unknown optimizer 'adamux'"),
    (["train", "--data", "imagenet"], 2, "Unknown dataset"),
    (["summary", "no-such-run"], 5, "No run found"),
    (["train", "--recipe", "slow"], 2, "Unknown recipe 'slow'. Expected one of: lecture, fast."),
])
def test_user_mistakes_exit_with_a_message_and_no_traceback(capsys, tmp_path, argv, code, message):
    got, out, err = run(capsys, *argv, *([] if argv[0] != "train" else ["--out", str(tmp_path)]))
    assert got == code
    assert message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_bad_config_file_errors(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  layers: [\n")
    code, _, err = run(capsys, "train", str(bad), "--out", str(tmp_path / "r"))
    assert code == 2 and "Invalid YAML in" in err and "line 3, column 1" in err
    bad.write_text("train:\n  epoch: 3\n")
    code, _, err = run(capsys, "train", str(bad), "--out", str(tmp_path / "r"))
    assert code == 2 and "Unknown key `epoch` in `train`. Expected keys: loss, optimizer" in err
    bad.write_text("model:\n  input_shape: [8, 8, 1]\n  layers: [{Conv2D: {filters: 0, kernel_size: 3}}]\n")
    code, _, err = run(capsys, "train", str(bad), "--out", str(tmp_path / "r"))
    assert code == 3 and "Layer 0 (Conv2D): Invalid value for argument `filters`" in err
    assert not (tmp_path / "r").exists()


def test_module_entry_point_runs():
    proc = subprocess.run([sys.executable, "-m", "cnnlab", "summary", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["total_params"] == 166986


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 5.96 GiB."),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory"),
])
def test_out_of_memory_is_a_clear_error_not_a_traceback(capsys, monkeypatch, error):
    import cnnlab.cli as cli_module

    def program(argv, out=None):
        raise error
    monkeypatch.setattr(cli_module, "program", program)
    code, out, err = run(capsys, "train")
    assert code == 3
    assert err.startswith("cnnlab: error: out of memory: ") and "Traceback" not in err
    assert "Expected a smaller model or --batch-size, or another --device." in err


def test_other_runtime_errors_are_not_called_out_of_memory(monkeypatch):
    import cnnlab.cli as cli_module

    def program(argv, out=None):
        raise RuntimeError("something else")
    monkeypatch.setattr(cli_module, "program", program)
    with pytest.raises(RuntimeError, match="something else"):
        main(["train"])
