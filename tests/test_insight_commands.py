"""`cnnlab explain`, `cnnlab report` and the report made by `cnnlab train`, end to end on a
tiny model trained for one epoch on the bundled MNIST sample."""
import json
import re

import numpy as np
import pytest

from cnnlab.cli import main
from cnnlab.images import render_digit_png
from cnnlab.insight import scores

TINY = """\
model:
  input_shape: [28, 28, 1]
  layers:
    - Conv2D: {filters: 4, kernel_size: 3, activation: relu}
    - MaxPooling2D: {pool_size: 2}
    - Flatten: {}
    - Dense: {units: 10, activation: softmax}
data:
  name: mnist-sample
train:
  batch_size: 128
  epochs: 1
  threads: 1
"""


def run(capsys, *argv):
    with pytest.raises(SystemExit) as exit_:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_.value.code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from cnnlab.config import RunConfig
    from cnnlab.runner import train_run
    root = tmp_path_factory.mktemp("runs")
    cfg_path = root.parent / "tiny.yaml"
    cfg_path.write_text(TINY)
    res = train_run(RunConfig.load(cfg_path), out=root, name="tiny", quiet=True)
    return root, res.run_dir


@pytest.fixture
def digit(tmp_path):
    path = tmp_path / "seven.png"
    path.write_bytes(render_digit_png(7))
    return path


def self_contained(html: str) -> bool:
    sources = re.findall(r"src=['\"]([^'\"]*)", html)
    return (not re.search(r"https?://|href=", html) and bool(sources)
            and all(s.startswith("data:image/png;base64,") for s in sources))


def test_explain_writes_a_png_per_image_and_a_page_with_predicts_probabilities(
        capsys, trained, digit, tmp_path):
    root, run_dir = trained
    out_dir = tmp_path / "explained"
    code, out, err = run(capsys, "explain", "tiny", str(digit), str(digit), "--json",
                         "--out", str(root), "--output", str(out_dir))
    assert code == 0, err
    r = json.loads(out)
    assert r["html"] == str(out_dir / "explain.html")
    assert [i["png"] for i in r["images"]] == [str(out_dir / "01-seven.png"),
                                               str(out_dir / "02-seven.png")]
    assert all((out_dir / n).read_bytes()[:4] == b"\x89PNG" for n in ("01-seven.png", "02-seven.png"))
    assert self_contained((out_dir / "explain.html").read_text())
    assert [(l["name"], l["type"], l["output_shape"]) for l in r["layers"]] == [
        ("conv2d", "Conv2D", [None, 26, 26, 4]), ("max_pooling2d", "MaxPooling2D", [None, 13, 13, 4]),
        ("flatten", "Flatten", [None, 676]), ("dense", "Dense", [None, 10])]
    assert r["images"][0]["grad_cam_layer"] == "conv2d"
    code, out, _ = run(capsys, "predict", "tiny", str(digit), str(digit), "--json",
                       "--out", str(root))
    assert [i["top"] for i in r["images"]] == [p["top"] for p in json.loads(out)["predictions"]]


def test_report_numbers_equal_a_direct_computation(capsys, trained, tmp_path):
    root, run_dir = trained
    out_dir = tmp_path / "rep"
    code, out, err = run(capsys, "report", str(run_dir), "--json", "--output", str(out_dir))
    assert code == 0, err
    r = json.loads(out)
    numbers = json.loads((out_dir / "report.json").read_text())
    assert self_contained((out_dir / "report.html").read_text())
    md = (out_dir / "report.md").read_text()
    for name in re.findall(r"\]\(([^)]+\.png)\)", md):
        assert (out_dir / name).is_file()
    for png in ("confusion.png", "curves.png", "filters.png", "reliability.png",
                "misclassified.png", "top_losses.png", "class_feature_maps.png"):
        assert (out_dir / png).is_file(), png
    # the confusion matrix and ECE against the model's own predictions on the whole test set
    from cnnlab.data import load_dataset
    from cnnlab.runs import load
    ds = load_dataset("mnist-sample")
    probs = load(run_dir).predict(ds.x_test[..., None], batch_size=1000, verbose=0)
    cm = np.zeros((10, 10), int)
    for t, p in zip(ds.y_test, probs.argmax(1)):
        cm[t, p] += 1
    assert numbers["confusion_matrix"] == cm.tolist() and numbers["images"] == 2000
    assert numbers["ece"] == pytest.approx(scores.calibration(probs, ds.y_test)["ece"])
    code, out, _ = run(capsys, "evaluate", str(run_dir), "--json")
    evaluated = json.loads(out)["accuracy"]
    assert np.trace(cm) == round(evaluated * 2000) and r["accuracy"] == pytest.approx(evaluated)
    assert set(numbers["per_class"]) == {str(i) for i in range(10)}
    assert numbers["findings"] == r["findings"]


def test_train_makes_the_report_unless_told_not_to(capsys, tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (60, 12, 12)).astype(np.uint8)
    y = (np.arange(60) % 3).astype(np.uint8)
    np.savez(tmp_path / "toy.npz", x_train=x[:40], y_train=y[:40], x_test=x[40:], y_test=y[40:])
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY.replace("[28, 28, 1]", "[12, 12, 1]").replace("units: 10", "units: 3")
                   .replace("name: mnist-sample", f"name: npz:{tmp_path / 'toy.npz'}"))
    code, out, err = run(capsys, "train", str(cfg), "--out", str(tmp_path / "runs"),
                         "--name", "a", "--no-report")
    assert code == 0, err
    assert not (tmp_path / "runs" / "a" / "report").exists() and "Report:" not in out
    code, out, err = run(capsys, "train", str(cfg), "--out", str(tmp_path / "runs"), "--name", "b")
    assert code == 0, err
    report = tmp_path / "runs" / "b" / "report" / "report.html"
    assert report.is_file() and f"Report: {report}" in out
    # a report that fails leaves the finished training's exit code, and says how to retry
    import cnnlab.insight.report as rep

    def broken(*a, **k):
        raise ValueError("boom")
    monkeypatch.setattr(rep, "write_run_report", broken)
    code, out, err = run(capsys, "train", str(cfg), "--out", str(tmp_path / "runs"), "--name", "c")
    assert code == 0 and "no run report (ValueError: boom)" in err
    assert f"cnnlab report {tmp_path / 'runs' / 'c'}" in err and "Traceback" not in err


def test_bad_inputs_give_clear_errors_and_write_nothing(capsys, trained, digit, tmp_path):
    root, run_dir = trained
    code, _, err = run(capsys, "explain", "nope", str(digit), "--out", str(root))
    assert code == 5 and "No run found at 'nope'" in err and "Traceback" not in err
    code, _, err = run(capsys, "report", "nope", "--out", str(root))
    assert code == 5 and "No run found" in err
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    out_dir = tmp_path / "never"
    code, _, err = run(capsys, "explain", str(run_dir), str(digit), str(text),
                       "--output", str(out_dir))
    assert code == 4 and "notes.png" in err and "Expected PNG or JPEG" in err
    assert not out_dir.exists()
    # a run without weights: copy the run, drop its final weights
    import shutil
    broken = tmp_path / "runs" / "broken"
    shutil.copytree(run_dir, broken)
    (broken / "weights" / "final.safetensors").unlink()
    shutil.rmtree(broken / "report", ignore_errors=True)
    code, _, err = run(capsys, "report", str(broken))
    assert code == 5 and "has no final weights" in err
    code, _, err = run(capsys, "explain", str(broken), str(digit))
    assert code == 5 and "has no final weights" in err
    assert not (broken / "report").exists() and not (broken / "explain").exists()


def test_the_report_says_when_the_data_found_now_is_not_the_runs(capsys, trained, tmp_path):
    import shutil
    root, run_dir = trained
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    metrics["data"]["sha256"] = "0" * 64
    (copy / "metrics.json").write_text(json.dumps(metrics))
    code, out, err = run(capsys, "report", str(copy), "--output", str(tmp_path / "r"))
    assert code == 0, err
    assert "is not the data the run used (SHA-256 000000000000...)" in \
        (tmp_path / "r" / "report.md").read_text()
