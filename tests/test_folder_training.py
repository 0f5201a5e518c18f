"""A run trained on a folder of pictures is complete: `cnnlab train --data folder:PATH`
(streamed from worker processes, or from the decoded cache, with the same bits), curves,
weights, skipped_files.txt, `cnnlab predict` on new pictures of any size, `cnnlab evaluate`,
`cnnlab data info folder:PATH`, experiment variants, the exit codes of folder mistakes, and
a run killed with SIGKILL mid-epoch that resumes to the same weights bit for bit."""
from __future__ import annotations

import json
import re
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import cnnlab

from cnnlab.errors import ExitStatus
from folder_support import add_broken, add_junk, make_folder, picture
from test_resume_support import keep_threads, run_cli, same_tensors, weights  # noqa: F401

LAYERS = [{"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
          {"MaxPooling2D": {"pool_size": 2}},
          {"Flatten": {}}, {"Dropout": {"rate": 0.2}},
          {"Dense": {"units": 3, "activation": "softmax"}}]


def write_cfg(path, folder, *, cache=False, workers=2, epochs=2, **data) -> Path:
    cfg = {"model": {"input_shape": [12, 12, 3], "layers": LAYERS},
           "data": {"name": "folder", "path": str(folder), "cache": cache, "workers": workers,
                    **data},
           "train": {"epochs": epochs, "batch_size": 8, "threads": 1, "seed": 3}}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture
def pics(tmp_path):
    root = make_folder(tmp_path / "pics", classes=("cat", "dog", "fox"), per_class=16)
    add_junk(root)
    add_broken(root / "dog")
    return root


def test_a_folder_run_is_complete(pics, tmp_path, capsys, monkeypatch, keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    cfg = write_cfg(tmp_path / "c.yaml", pics)
    code, out, err = run_cli(capsys, "train", cfg, "--name", "f", "--quiet")
    assert code == 0, err
    assert "skipped 4 unreadable files of 52" in err
    run = tmp_path / "runs" / "f"
    for name in ("accuracy.png", "loss.png", "weights/final.safetensors", "history.json"):
        assert (run / name).exists(), name
    assert (run / "skipped_files.txt").read_text().count("\n") == 4
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["data"]["class_names"] == ["cat", "dog", "fox"]
    assert metrics["data"]["n_train"] + metrics["data"]["n_test"] == 48
    assert metrics["data"]["n_test"] == 9  # 0.2 of each class of 16, stratified: 3 + 3 + 3

    # predict: a new picture of any size, resized as training resized, named by class
    new = tmp_path / "new_fox.png"
    picture(np.random.default_rng(9), (40, 200, 40), (97, 61)).save(new)
    code, out, err = run_cli(capsys, "predict", "f", str(new), "--json")
    assert code == 0, err
    top = json.loads(out)["predictions"][0]["top"]
    assert {t["class"] for t in top} == {"cat", "dog", "fox"}
    assert abs(sum(t["probability"] for t in top) - 1) < 1e-5
    code, _, err = run_cli(capsys, "predict", "f", str(pics / "dog" / "zz_empty.jpg"))
    assert code == ExitStatus.DATA and "empty file (0 bytes)" in err and "Traceback" not in err

    # evaluate: the run's validation pictures, per class
    code, out, err = run_cli(capsys, "evaluate", "f", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result["per_class"]) == {"cat", "dog", "fox"}
    assert sum(v["count"] for v in result["per_class"].values()) == 9
    assert result["accuracy"] == pytest.approx(metrics["final_val_accuracy"])

    # the cache changes nothing but speed: the same weights, bit for bit
    code, _, err = run_cli(capsys, "train", write_cfg(tmp_path / "c2.yaml", pics, cache=True),
                           "--name", "cached", "--quiet")
    assert code == 0, err
    assert "decoding 48 pictures into the cache" in err
    assert same_tensors(weights(run / "weights/final.safetensors"),
                        weights(tmp_path / "runs/cached/weights/final.safetensors"))


def test_data_info_and_cli_data_flag(pics, tmp_path, capsys, monkeypatch, keep_threads):  # noqa: F811
    code, out, err = run_cli(capsys, "data", "info", f"folder:{pics}")
    assert code == 0, err
    assert f"train ({pics}): 52 picture files, 3 classes" in out
    assert re.search(r"\n +1 dog +20  \(4 unreadable\)\n", out)
    assert "Skipped 4 unreadable files of 52" in out and "dog/zz_empty.jpg: empty file" in out
    monkeypatch.chdir(tmp_path)
    cfg = write_cfg(tmp_path / "c.yaml", tmp_path / "elsewhere", epochs=1)
    code, _, err = run_cli(capsys, "train", cfg, "--data", f"folder:{pics}", "--name", "d",
                           "--quiet")
    assert code == 0, err
    saved = yaml.safe_load((tmp_path / "runs/d/config.yaml").read_text())["data"]
    assert saved["name"] == "folder" and saved["path"] == str(pics)


@pytest.mark.parametrize("setup, data, message", [
    (lambda t: None, {}, "Image folder not found."),
    (lambda t: make_folder(t / "pics", classes=("solo",), per_class=3), {}, "Only one class in"),
    (lambda t: make_folder(t / "pics", per_class=3), {"image_size": [30, 30]},
     "The folder's pictures are resized to 30x30 rgb"),
    (lambda t: make_folder(t / "pics", per_class=3), {"color_mode": "purple"},
     "`color_mode` must be one of"),
])
def test_folder_mistakes_exit_non_zero_without_a_traceback(tmp_path, capsys, monkeypatch,
                                                           setup, data, message):
    monkeypatch.chdir(tmp_path)
    setup(tmp_path)
    code, _, err = run_cli(capsys, "train", write_cfg(tmp_path / "c.yaml", tmp_path / "pics",
                                                      **data), "--quiet")
    assert code in (ExitStatus.DATA, ExitStatus.USAGE) and message in err
    assert "Traceback" not in err and not (tmp_path / "runs").exists()


def test_experiment_variants_on_folder_data(pics, tmp_path, capsys, monkeypatch, keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    write_cfg(tmp_path / "base.yaml", pics, epochs=1)
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({"base": "base.yaml", "seeds": 1, "variants": {
        "wider": {"set": {"conv2d": {"filters": 8}}}}}))
    code, out, err = run_cli(capsys, "experiment", exp, "--out", "runs", "--quiet")
    assert code == 0, err
    runs = [p for p in (tmp_path / "runs").rglob("metrics.json")
            if json.loads(p.read_text()).get("status") == "finished"]
    assert len(runs) == 2


# SIGKILL right after global step `target` (mid-epoch), then resume: as test_resume_kill.py
HOOK = r"""
import os, signal, sys
from cnnlab.train import loop
target, argv = int(sys.argv[1]), sys.argv[2:]
step = loop.Trainer.train_step
def hooked(self, *a):
    out = step(self, *a)
    if self.position.global_step + 1 == target:
        os.kill(os.getpid(), signal.SIGKILL)
    return out
loop.Trainer.train_step = hooked
from cnnlab.cli import main
main(argv)
"""


def test_killed_mid_epoch_and_resumed_equals_an_uninterrupted_run(pics, tmp_path, capsys,
                                                                   monkeypatch, keep_threads):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    cfg = write_cfg(tmp_path / "c.yaml", pics, epochs=3)
    code, _, err = run_cli(capsys, "train", cfg, "--name", "ref", "--quiet")
    assert code == 0, err
    # 39 training pictures, batch 8: 5 steps an epoch; checkpoints every 2 steps
    start = ["train", str(cfg), "--name", "k", "--quiet", "--checkpoint-every", "2"]
    env = {**os.environ, "PYTHONPATH": str(Path(cnnlab.__file__).parents[1])}  # this cnnlab
    for target, argv in ((7, start), (12, ["train", "--resume", "k", "--quiet"])):
        proc = subprocess.run([sys.executable, "-c", HOOK, str(target), *argv], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == -9, proc.stderr
    code, _, err = run_cli(capsys, "train", "--resume", "k", "--quiet")
    assert code == 0, err
    ref, run = tmp_path / "runs/ref", tmp_path / "runs/k"
    assert same_tensors(weights(ref / "weights/final.safetensors"),
                        weights(run / "weights/final.safetensors"))
    assert (ref / "history.json").read_text() == (run / "history.json").read_text()
    time.sleep(0)  # the workers of the killed runs are gone with them (DataLoader's watchdog)


def test_the_cats_vs_dogs_example_trains_on_a_folder_with_its_augmentation(
        tmp_path, capsys, monkeypatch, keep_threads):  # noqa: F811
    # examples/cats_vs_dogs.yaml as shipped (180x180 RGB, RandomFlip + RandomRotation, Rescaling),
    # on a tiny generated PetImages-like folder: only the path and the run's length change
    monkeypatch.chdir(tmp_path)
    root = make_folder(tmp_path / "PetImages", classes=("Cat", "Dog"), per_class=5)
    add_broken(root / "Cat")
    cfg = yaml.safe_load((Path(__file__).parents[1] / "examples/cats_vs_dogs.yaml").read_text())
    assert [next(iter(l)) for l in cfg["model"]["layers"][:3]] == [
        "RandomFlip", "RandomRotation", "Rescaling"]
    cfg["data"].update(path=str(root), cache=False)
    cfg["train"].update(epochs=1, batch_size=4, threads=1)
    path = tmp_path / "cvd.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    code, out, err = run_cli(capsys, "train", path, "--name", "cvd", "--quiet", "--no-report")
    assert code == 0, err
    metrics = json.loads((tmp_path / "runs/cvd/metrics.json").read_text())
    assert metrics["data"]["class_names"] == ["Cat", "Dog"]
    new = tmp_path / "mine.jpg"
    picture(np.random.default_rng(1), (200, 120, 60), (300, 211)).save(new)
    code, out, err = run_cli(capsys, "predict", "cvd", str(new), "--json")
    assert code == 0, err
    top = json.loads(out)["predictions"][0]["top"]
    assert {t["class"] for t in top} == {"Cat", "Dog"}
