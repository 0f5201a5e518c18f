"""Experiments that train: tiny data (8x8 images), tiny models, 1 epoch."""
from __future__ import annotations

import csv
import io
import json
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from cnnlab.cli import program
from cnnlab.errors import ConfigError, RunError
from cnnlab.experiments import compare_runs, run_experiment, stats
from cnnlab.experiments.execute import plan_steps, threads_per_job
from cnnlab.experiments.plan import load_experiment
from cnnlab.runs import read_json


def tiny_npz(path: Path, n: int = 64) -> Path:
    rng = np.random.default_rng(0)

    def split(k):
        y = rng.integers(0, 10, k).astype(np.uint8)
        x = (rng.random((k, 8, 8)) * 60).astype(np.uint8)
        x[np.arange(k), y % 8, :] += 150          # a row that gives the class away (almost)
        return x, y
    (xt, yt), (xv, yv) = split(n), split(32)
    np.savez(path, x_train=xt, y_train=yt, x_test=xv, y_test=yv)
    return path


def experiment_file(folder: Path, data: Path, variants: dict, seeds=2, model=None,
                    epochs=1) -> Path:
    model = model or {"input_shape": [8, 8, 1], "layers": [
        {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
        {"MaxPooling2D": {"pool_size": 2}},
        {"Flatten": {}},
        {"Dense": {"units": 10, "activation": "softmax"}}]}
    d = {"title": "tiny", "seeds": seeds, "variants": variants,
         "base": {"model": model, "data": {"name": f"npz:{data}"},
                  "train": {"epochs": epochs, "batch_size": 16}}}
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    return path


VARIANTS = {"dropout": {"insert": {"after": "flatten", "layer": {"Dropout": {"rate": 0.25}}}},
            "sgd": {"train": {"optimizer": {"name": "sgd", "learning_rate": 0.05}}}}


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    """One experiment made in-process: base, dropout, sgd x 2 seeds, 1 epoch."""
    root = tmp_path_factory.mktemp("exp")
    file = experiment_file(root, tiny_npz(root / "tiny.npz"), VARIANTS)
    out = io.StringIO()
    report = run_experiment(file, out=root / "runs", stream=out)
    return root, file, report, out.getvalue()


def csv_rows(folder: Path) -> dict:
    with open(folder / "report.csv", newline="") as f:
        return {r["variant"]: r for r in csv.DictReader(f)}


def test_every_variant_seed_is_a_run_directory_and_the_report_is_written(done):
    root, _, report, text = done
    folder = root / "runs" / "tiny"
    assert report == folder / "report.html"
    names = ["base-s0", "dropout-s0", "sgd-s0", "base-s1", "dropout-s1", "sgd-s1"]
    for name in names:
        assert read_json(folder / name / "metrics.json")["status"] == "finished"
    assert json.loads((folder / "experiment.json").read_text())["variants"][1]["runs"] == \
        ["dropout-s0", "dropout-s1"]
    for f in ("report.md", "report.csv", "val_accuracy.png", "val_loss.png", "effects.png"):
        assert (folder / f).stat().st_size > 0
    assert "6 runs, 0 already done, 6 to make" in text


def test_report_numbers_equal_the_runs_metrics(done):
    root, *_ = done
    folder = root / "runs" / "tiny"
    rows = csv_rows(folder)

    def metric(variant, key):
        return [read_json(folder / f"{variant}-s{s}" / "metrics.json")[key] for s in (0, 1)]
    for v in ("base", "dropout", "sgd"):
        r = rows[v]
        assert float(r["final_val_accuracy_mean"]) == stats.mean(metric(v, "final_val_accuracy"))
        assert float(r["final_val_accuracy_std"]) == stats.std(metric(v, "final_val_accuracy"))
        assert float(r["best_val_accuracy_mean"]) == stats.mean(metric(v, "best_val_accuracy"))
        gaps = [a - b for a, b in zip(metric(v, "final_accuracy"), metric(v, "final_val_accuracy"))]
        assert float(r["train_val_gap_mean"]) == pytest.approx(stats.mean(gaps), abs=1e-15)
        assert int(r["params"]) == metric(v, "params")[0]
        assert float(r["best_val_loss_epoch_mean"]) == stats.mean(metric(v, "best_epoch"))
        secs = [s for run in metric(v, "epoch_seconds") for s in run]
        assert float(r["seconds_per_epoch_fastest"]) == min(secs)
        assert float(r["seconds_per_epoch_mean"]) == pytest.approx(stats.mean(secs))
    d = stats.welch(metric("base", "final_val_accuracy"), metric("dropout", "final_val_accuracy"))
    assert float(rows["dropout"]["delta_final_val_accuracy"]) == pytest.approx(d.diff, abs=1e-15)
    if d.tested:
        assert float(rows["dropout"]["delta_p_value"]) == pytest.approx(d.p)
    # the Markdown shows the same numbers in points
    md = (folder / "report.md").read_text()
    mean = stats.mean(metric("sgd", "final_val_accuracy")) * 100
    assert f"{mean:.2f} ± " in md
    assert "Welch's two-sided t-test" in md and "dropout (Dropout(rate=0.25) after flatten)" in md


def test_html_is_self_contained_with_every_plot(done):
    root, *_ = done
    page = (root / "runs" / "tiny" / "report.html").read_text()
    assert page.count("src='data:image/png;base64,") == 3
    assert "src='val_" not in page and "<table>" in page


def test_a_second_run_skips_finished_runs(done):
    root, file, *_ = done
    folder = root / "runs" / "tiny"
    before = {p: p.stat().st_mtime_ns for p in folder.glob("*/metrics.json")}
    out = io.StringIO()
    run_experiment(file, out=root / "runs", stream=out)
    assert "6 runs, 6 already done, 0 to make" in out.getvalue()
    assert {p: p.stat().st_mtime_ns for p in folder.glob("*/metrics.json")} == before


def test_an_interrupted_experiment_continues_where_it_stopped(done, tmp_path):
    root, file, *_ = done
    shutil.copytree(root / "runs" / "tiny", tmp_path / "tiny")
    folder = tmp_path / "tiny"
    # sgd-s1 died before its first checkpoint, base-s1 never started
    shutil.rmtree(folder / "base-s1")
    (folder / "sgd-s1" / "checkpoint.safetensors").unlink()
    m = read_json(folder / "sgd-s1" / "metrics.json")
    (folder / "sgd-s1" / "metrics.json").write_text(json.dumps({**m, "status": "running"}))
    exp = load_experiment(file)
    actions = {s.job.run_name: s.action for s in plan_steps(exp.jobs(), folder)}
    assert actions == {"base-s0": "skip", "dropout-s0": "skip", "sgd-s0": "skip",
                       "base-s1": "new", "dropout-s1": "skip", "sgd-s1": "restart"}
    out = io.StringIO()
    run_experiment(file, out=tmp_path, stream=out)
    assert "6 runs, 4 already done, 2 to make" in out.getvalue()
    assert read_json(folder / "sgd-s1" / "metrics.json")["status"] == "finished"
    assert read_json(folder / "base-s1" / "metrics.json")["status"] == "finished"


def test_more_epochs_resume_the_finished_runs_from_their_checkpoints(done, tmp_path):
    root, file, *_ = done
    shutil.copytree(root / "runs" / "tiny", tmp_path / "tiny")
    out = io.StringIO()
    run_experiment(file, out=tmp_path, epochs=2, only=["sgd"], seeds=1, stream=out)
    assert "base-s0: resume (1 of 2 epochs done)" in out.getvalue()
    m = read_json(tmp_path / "tiny" / "sgd-s0" / "metrics.json")
    assert (m["status"], m["epochs_done"], len(m["epoch_seconds"])) == ("finished", 2, 2)


def test_a_run_from_another_config_is_refused_before_training(done, tmp_path):
    root, file, *_ = done
    shutil.copytree(root / "runs" / "tiny", tmp_path / "tiny")
    changed = yaml.safe_load(file.read_text())
    changed["variants"]["dropout"]["insert"]["layer"]["Dropout"]["rate"] = 0.5
    file2 = tmp_path / "tiny.yaml"
    file2.write_text(yaml.safe_dump(changed))
    before = read_json(tmp_path / "tiny" / "base-s0" / "metrics.json")
    with pytest.raises(RunError, match="dropout-s0 was made from a different config"):
        run_experiment(file2, out=tmp_path, stream=io.StringIO())
    assert read_json(tmp_path / "tiny" / "base-s0" / "metrics.json") == before


def test_invalid_variants_are_refused_before_anything_trains(tmp_path):
    data = tiny_npz(tmp_path / "d.npz")
    file = experiment_file(tmp_path, data, {"ok": {}, "typo": {"set": {"dense_9": {"units": 3}}},
                                            "big": {"set": {"conv2d": {"kernel_size": 9}}}})
    with pytest.raises(ConfigError) as err:
        run_experiment(file, out=tmp_path / "runs", stream=io.StringIO())
    assert "  typo: `set`: unknown layer 'dense_9'" in str(err.value)
    assert "  big: " in str(err.value) and "larger than its input" in str(err.value)
    assert not (tmp_path / "runs").exists()


def test_a_variant_that_does_not_fit_the_data_is_refused_before_training(tmp_path):
    data = tiny_npz(tmp_path / "d.npz")
    mlp = {"input_shape": [784], "layers": [{"Dense": {"units": 10, "activation": "softmax"}}]}
    file = experiment_file(tmp_path, data, {"mlp": {"model": mlp}})
    with pytest.raises(ConfigError, match=r"(?s)do not fit their data.*  mlp: .*\(784,\)"):
        run_experiment(file, out=tmp_path / "runs", stream=io.StringIO())
    assert not (tmp_path / "runs").exists()


def test_jobs_run_in_parallel_processes_with_cores_divided(tmp_path):
    file = experiment_file(tmp_path, tiny_npz(tmp_path / "d.npz"), {}, seeds=2)
    out = io.StringIO()
    code = program(["experiment", str(file), "--out", str(tmp_path / "runs"), "--jobs", "2"], out)
    assert code == 0 and "2 at a time" in out.getvalue()
    folder = tmp_path / "runs" / "tiny"
    for s in (0, 1):
        m = read_json(folder / f"base-s{s}" / "metrics.json")
        assert m["status"] == "finished" and m["environment"]["threads"] == threads_per_job(2)
        assert (folder / "logs" / f"base-s{s}.log").is_file()
    assert f"Report: {folder / 'report.html'}" in out.getvalue()


def test_ctrl_c_with_jobs_checkpoints_the_running_runs(tmp_path):
    """SIGINT to `cnnlab experiment --jobs 2`: forwarded once to each worker, which saves a
    checkpoint; the next call resumes them."""
    file = experiment_file(tmp_path, tiny_npz(tmp_path / "d.npz"), {}, seeds=2, epochs=100000)
    folder = tmp_path / "runs" / "tiny"
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "experiment", str(file), "--out",
                             str(tmp_path / "runs"), "--jobs", "2", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ckpts = [folder / f"base-s{s}" / "checkpoint.safetensors" for s in (0, 1)]
        deadline = time.monotonic() + 240
        while not all(c.is_file() for c in ckpts):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out
    assert "Run the same command again to continue" in out
    for s in (0, 1):
        m = read_json(folder / f"base-s{s}" / "metrics.json")
        assert m["status"] == "interrupted" and m["environment"]["threads"] == threads_per_job(2)
    steps = plan_steps(load_experiment(file).jobs(), folder)
    assert [s.action for s in steps] == ["resume", "resume"]
    assert (folder / "report.html").is_file() and not (folder / ".cnnlab.lock").exists()


def test_compare_pools_seeds_and_reports_any_runs(done, tmp_path):
    root, *_ = done
    folder = root / "runs" / "tiny"
    refs = [str(folder / "base-s0"), str(folder / "base-s1"), str(folder / "sgd-s0")]
    report = compare_runs(refs, root=root / "runs", report_dir=tmp_path / "cmp")
    rows = csv_rows(tmp_path / "cmp")
    assert list(rows) == ["base", "sgd"]
    assert rows["base"]["runs_finished"] == "2" and rows["sgd"]["runs_finished"] == "1"
    assert rows["sgd"]["change"].startswith("optimizer: ")
    assert "no noise estimate: 1 seed" in rows["sgd"]["finding"]
    final = read_json(folder / "sgd-s0" / "metrics.json")["final_val_accuracy"]
    assert float(rows["sgd"]["final_val_accuracy_mean"]) == final
    assert report.read_text().count("data:image/png;base64,") == 3


def test_compare_cli_two_separate_runs(done, tmp_path):
    root, *_ = done
    folder = root / "runs" / "tiny"
    out = io.StringIO()
    code = program(["compare", "dropout-s0", "base-s1", "--out", str(folder),
                    "--report", str(tmp_path / "r")], out)
    assert code == 0 and (tmp_path / "r" / "report.md").is_file()
    rows = csv_rows(tmp_path / "r")
    assert list(rows) == ["dropout", "base"]
    assert math.isclose(float(rows["base"]["delta_final_val_accuracy"]),
                        read_json(folder / "base-s1" / "metrics.json")["final_val_accuracy"]
                        - read_json(folder / "dropout-s0" / "metrics.json")["final_val_accuracy"],
                        abs_tol=1e-15)
