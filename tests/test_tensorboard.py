"""callbacks.TensorBoard: event files read back with TensorBoard's own reader."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import cnnlab
from cnnlab.callbacks import TensorBoard
from cnnlab.cli import program
from cnnlab.errors import ConfigError


def read(folder):
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0})
    acc.Reload()
    return acc


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def tiny_model():
    cnnlab.utils.set_random_seed(0)
    model = cnnlab.Sequential([cnnlab.Input((6, 6, 1)), cnnlab.layers.Conv2D(2, 3, activation="relu"),
                               cnnlab.layers.Flatten(), cnnlab.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def tiny_data(n, seed):
    rng = np.random.default_rng(seed)
    return rng.random((n, 6, 6, 1)).astype("float32"), rng.integers(0, 3, n)


def test_epoch_scalars_in_train_and_validation_hold_the_history_as_keras_names_them(tmp_path):
    model = tiny_model()
    (x, y), (xv, yv) = tiny_data(40, 0), tiny_data(16, 1)
    h = model.fit(x, y, batch_size=8, epochs=3, validation_data=(xv, yv), verbose=0,
                  callbacks=[TensorBoard(log_dir=tmp_path / "logs", histogram_freq=1,
                                         update_freq=2)]).history
    train, val = read(tmp_path / "logs" / "train"), read(tmp_path / "logs" / "validation")
    for key in ("loss", "accuracy"):
        assert scalars(train, f"epoch_{key}") == [(i, pytest.approx(v, rel=1e-6))
                                                  for i, v in enumerate(h[key])]
        assert scalars(val, f"epoch_{key}") == [(i, pytest.approx(v, rel=1e-6))
                                                for i, v in enumerate(h[f"val_{key}"])]
    assert [v for _, v in scalars(train, "epoch_learning_rate")] == pytest.approx([0.001] * 3)
    # 5 batches an epoch, 15 in all: every second global batch (2, 4, ..., 14)
    assert [s for s, _ in scalars(train, "batch_loss")] == list(range(2, 15, 2))
    assert "val_loss" not in " ".join(val.Tags()["scalars"])
    hist = train.Tags()["histograms"]
    assert "conv2d/kernel/histogram" in hist and "dense/bias/histogram" in hist
    kernel = train.Histograms("dense/kernel/histogram")
    assert [e.step for e in kernel] == [0, 1, 2]
    assert kernel[-1].histogram_value.num == model.layers[-1].get_weights()[0].size


def test_cnnlab_train_tensorboard_writes_event_files_into_the_run_directory(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 48).astype(np.uint8)
    x = (rng.random((48, 8, 8)) * 255).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:16], y_test=y[:16])
    cfg = {"model": {"input_shape": [8, 8, 1], "layers": [
        {"Conv2D": {"filters": 2, "kernel_size": 3, "activation": "relu"}}, "Flatten",
        {"Dense": {"units": 10, "activation": "softmax"}}]},
        "data": {"name": f"npz:{tmp_path / 'd.npz'}"}, "train": {"epochs": 2, "batch_size": 16}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code = program(["train", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "runs"),
                    "--name", "tb", "--tensorboard", "--quiet"], out=io.StringIO())
    assert code == 0
    run = tmp_path / "runs" / "tb"
    h = json.loads((run / "history.json").read_text())
    assert [v for _, v in scalars(read(run / "tensorboard" / "train"), "epoch_loss")] == \
        pytest.approx(h["loss"], rel=1e-6)
    assert [v for _, v in scalars(read(run / "tensorboard" / "validation"), "epoch_accuracy")] == \
        pytest.approx(h["val_accuracy"], rel=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"update_freq": 0}, "Expected 'epoch', 'batch' or a positive integer. Received update_freq=0."),
    ({"histogram_freq": -1}, "Expected an integer >= 0. Received histogram_freq=-1."),
    ({"log_dir": ""}, "Expected a folder path."),
    ({"profile_batch": 3}, "Invalid value for argument `profile_batch`."),
])
def test_bad_arguments_say_what_was_expected(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace(".", r"\.")):
        TensorBoard(**kwargs)
