"""A run with augmentation layers, SIGKILLed mid-epoch and resumed, ends with the same weights
bit for bit as an uninterrupted one: each layer's generator state is in the checkpoint."""
from __future__ import annotations

import sys

import yaml

from test_resume_kill import HOOK  # the in-process SIGKILL hook
from test_resume_support import (keep_threads, run_cli, same_tensors, tiny_npz,  # noqa: F401
                                 weights, write_config)

AUGMENTED = [{"RandomFlip": {"mode": "horizontal"}},
             {"RandomRotation": {"factor": 0.1}},
             {"RandomZoom": {"height_factor": 0.1}},
             {"RandomTranslation": {"height_factor": 0.1, "width_factor": 0.1,
                                    "fill_mode": "constant"}},
             {"RandomContrast": {"factor": 0.2, "value_range": [0, 1]}},
             {"Conv2D": {"filters": 4, "kernel_size": 3, "activation": "relu"}},
             {"Flatten": {}}, {"Dense": {"units": 3, "activation": "softmax"}}]


def cli(tmp, *argv, hook=None):
    import subprocess
    cmd = ([sys.executable, "-c", HOOK, *hook, *argv] if hook
           else [sys.executable, "-m", "cnnlab", *argv])
    return subprocess.run([str(c) for c in cmd], cwd=tmp, capture_output=True, text=True,
                          timeout=300)


def test_killed_and_resumed_augmented_run_equals_an_uninterrupted_one(
        tmp_path, capsys, monkeypatch, keep_threads):  # noqa: F811
    data = tiny_npz(tmp_path / "tiny.npz")
    cfg = write_config(tmp_path / "cfg.yaml", data, layers=AUGMENTED)
    start = ["train", cfg, "--name", "a", "--out", "runs", "--checkpoint-every", "3", "--quiet"]
    # killed right after step 8 (epoch 2, mid-epoch; last checkpoint at step 6), then resumed
    killed = cli(tmp_path, *start, hook=("step", "8"))
    assert killed.returncode == -9, killed.stderr
    resumed = cli(tmp_path, "train", "--resume", "a", "--out", "runs", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "train", cfg, "--name", "ref", "--out", "runs", "--quiet")
    assert code == 0, err
    runs = tmp_path / "runs"
    ref = weights(runs / "ref/weights/final.safetensors")
    assert same_tensors(ref, weights(runs / "a/weights/final.safetensors"))
    # and the augmentation mattered: another flip seed trains to other weights
    other = yaml.safe_load(cfg.read_text())
    other["model"]["layers"][0]["RandomFlip"]["seed"] = 123
    cfg2 = tmp_path / "cfg2.yaml"
    cfg2.write_text(yaml.safe_dump(other, sort_keys=False))
    code, _, err = run_cli(capsys, "train", cfg2, "--name", "other", "--out", "runs", "--quiet")
    assert code == 0, err
    assert not same_tensors(ref, weights(runs / "other/weights/final.safetensors"))
