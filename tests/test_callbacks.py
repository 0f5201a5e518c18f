"""Keras's callbacks: names, arguments and semantics (tf.keras 2), from Python and YAML;
TerminateOnNaN end to end (message, exit code 8, last good checkpoint loads)."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.config import RunConfig
from cnnlab.errors import ConfigError, ExitStatus
from cnnlab.runner import train_run
from cnnlab.train import callbacks as cbs
from cnnlab.train import loop
from cnnlab.train.checkpoint import read_checkpoint, weights_finite
from cnnlab.train.loop import Position
from test_resume_support import keep_threads, run_cli, tiny_npz, tree, write_config  # noqa: F401


class FakeOptimizer:
    def __init__(self, lr):
        self.learning_rate = lr


class FakeModel:
    """What a callback sees as `self.model`: weights are one number per 'epoch'."""

    def __init__(self, lr=0.1):
        self.stop_training = False
        self.optimizer = FakeOptimizer(lr)
        self.weights = [np.zeros(1)]
        self.saved = []

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, w):
        self.weights = [x.copy() for x in w]

    def save_weights(self, path):
        self.saved.append(path)


class FakeTrainer:
    def __init__(self):
        self.position = Position()
        self.last_loss = None
        self.stop_reason = None


def drive(cb, values, key="val_loss", model=None):
    """Feed one monitored value per epoch; returns (epochs run, model). The fake model's
    weight records the epoch it was set at, to see which epoch's weights were restored."""
    model = model or FakeModel()
    cb.set_model(model)
    cb.trainer = FakeTrainer()
    cb.on_train_begin()
    for epoch, value in enumerate(values):
        cb.on_epoch_begin(epoch)
        model.weights = [np.full(1, float(epoch))]
        cb.on_epoch_end(epoch, {key: value})
        if model.stop_training:
            return epoch + 1, model
    cb.on_train_end()
    return len(values), model


# -- EarlyStopping ------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,values,epochs", [
    ({"patience": 2}, [1.0, 0.9, 0.95, 0.96, 0.97, 0.5], 4),   # 2 epochs without improvement
    ({"patience": 0}, [1.0, 1.1, 0.5], 2),                      # patience 0: the first bad epoch
    ({"patience": 0}, [1.0, 0.9, 0.8], 3),                      # always improving
    ({"patience": 1, "min_delta": 0.2}, [1.0, 0.9, 0.85], 2),   # 0.1 < min_delta: no improvement
    ({"patience": 1, "min_delta": -0.2}, [1.0, 0.9, 0.85], 2),  # min_delta's sign is ignored
    # improvements that miss the baseline do not reset the wait (stopping is only
    # checked in epochs without improvement):
    ({"patience": 3, "baseline": 0.5}, [1.0, 0.9, 0.95, 0.96], 3),
    ({"patience": 3}, [1.0, 0.9, 0.95, 0.96], 4),
    ({"patience": 1, "start_from_epoch": 2}, [1.0, 2.0, 3.0, 4.0, 5.0], 4),
    ({"patience": 0, "mode": "max"}, [1.0, 0.9], 2),
])
def test_early_stopping_stops_when_keras_does(kwargs, values, epochs):
    assert drive(cbs.EarlyStopping(**kwargs), values)[0] == epochs


def test_early_stopping_auto_mode_maximizes_accuracy():
    assert cbs.EarlyStopping(monitor="val_accuracy").mode == "max"
    assert cbs.EarlyStopping(monitor="val_loss").mode == "min"
    assert drive(cbs.EarlyStopping(monitor="val_accuracy", patience=0), [0.5, 0.6, 0.55, 0.9],
                 key="val_accuracy")[0] == 3


def test_early_stopping_restores_the_best_epochs_weights_when_it_stops():
    es = cbs.EarlyStopping(patience=2, restore_best_weights=True)
    epochs, model = drive(es, [1.0, 0.5, 0.7, 0.8, 0.9])
    assert epochs == 4 and es.stopped_epoch == 3 and es.best_epoch == 1
    assert model.weights[0][0] == 1.0   # epoch 1's weights, not epoch 3's


def test_early_stopping_without_the_monitored_value_warns_and_never_stops(capsys):
    epochs, _ = drive(cbs.EarlyStopping(monitor="val_los", patience=0), [1.0, 2.0, 3.0])
    assert epochs == 3
    err = capsys.readouterr().err
    assert err.count("EarlyStopping is conditioned on `val_los`, which is not in the logs. "
                     "Available: val_loss.") == 1


def test_early_stopping_state_round_trips_through_a_checkpoint():
    es = cbs.EarlyStopping(patience=3, restore_best_weights=True)
    drive(es, [1.0, 0.5, 0.7])
    state = es.get_state()
    again = cbs.EarlyStopping(patience=3, restore_best_weights=True)
    again.set_state(json.loads(json.dumps({k: v for k, v in state.items() if k != "arrays"}))
                    | {"arrays": state["arrays"]})
    again.set_model(FakeModel())
    again.on_train_begin()
    assert (again.wait, again.best, again.best_epoch) == (1, 0.5, 1)
    assert again.best_weights[0][0] == 1.0
    again.on_train_begin()  # a second fit() starts afresh, as in Keras
    assert (again.wait, again.best, again.best_weights) == (0, math.inf, None)


# -- ReduceLROnPlateau --------------------------------------------------------------

def lrs(cb, values):
    model = FakeModel(lr=1.0)
    cb.set_model(model)
    cb.on_train_begin()
    out = []
    for epoch, v in enumerate(values):
        logs = {"val_loss": v}
        cb.on_epoch_end(epoch, logs)
        out.append(logs["learning_rate"])
    return out


def test_reduce_lr_on_plateau_waits_patience_then_cools_down_and_stops_at_min_lr():
    cb = cbs.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=1, min_lr=0.2)
    # Keras counts the cooldown epoch itself towards the next wait (the counter is
    # decremented before the wait is checked): with cooldown=1 a reduction every 2 epochs
    assert lrs(cb, [1.0] * 10) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2, 0.2]
    cb = cbs.ReduceLROnPlateau(factor=0.5, patience=2, cooldown=2)
    assert lrs(cb, [1.0] * 8) == [1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]


def test_reduce_lr_on_plateau_resets_on_improvement_beyond_min_delta():
    cb = cbs.ReduceLROnPlateau(factor=0.1, patience=1, min_delta=0.05)
    assert lrs(cb, [1.0, 0.9, 0.89, 0.5]) == [1.0, 1.0, pytest.approx(0.1), pytest.approx(0.1)]


@pytest.mark.parametrize("kwargs,message", [
    ({"factor": 1.0}, "Invalid value for argument `factor`. Expected a number below 1. Received factor=1.0."),
    ({"factor": -1}, "Invalid value for argument `factor`. Expected a finite number >= 0. Received factor=-1."),
    ({"patience": 1.5}, "Invalid value for argument `patience`. Expected an integer >= 0. Received patience=1.5."),
    ({"min_lr": "0"}, "Invalid value for argument `min_lr`. Expected a finite number >= 0. Received min_lr='0'."),
    ({"mode": "up"}, "Invalid value for argument `mode`. Expected one of 'auto', 'min', 'max'. Received mode='up'."),
])
def test_reduce_lr_on_plateau_checks_its_arguments(kwargs, message):
    with pytest.raises(ConfigError) as exc:
        cbs.ReduceLROnPlateau(**kwargs)
    assert str(exc.value) == message


# -- ModelCheckpoint, CSVLogger, LearningRateScheduler ------------------------------

def test_model_checkpoint_save_best_only_saves_on_improvement_only():
    cb = cbs.ModelCheckpoint("w-{epoch:02d}-{val_loss:.1f}.safetensors", save_best_only=True)
    _, model = drive(cb, [1.0, 0.5, 0.7, 0.4])
    assert model.saved == ["w-01-1.0.safetensors", "w-02-0.5.safetensors", "w-04-0.4.safetensors"]
    cb = cbs.ModelCheckpoint("w-{epoch}.safetensors")
    _, model = drive(cb, [1.0, 2.0])
    assert model.saved == ["w-1.safetensors", "w-2.safetensors"]


@pytest.mark.parametrize("kwargs,message", [
    ({"filepath": "w-{epch}.st"}, "Expected a path whose {fields} are among epoch, loss, "
     "accuracy, val_loss, val_accuracy, learning_rate (KeyError: 'epch')"),
    ({"filepath": "w.st", "save_weights_only": False}, "Expected a path ending in `.keras` "
     "(Keras's model file) when save_weights_only=False. Received filepath='w.st'."),
    ({"filepath": "w.st"}, "Expected a path ending in `.weights.h5`, `.h5` or `.safetensors` "
     "when save_weights_only=True. Received filepath='w.st'."),
    ({"filepath": ""}, "Invalid value for argument `filepath`. Expected a non-empty string."),
])
def test_model_checkpoint_checks_its_arguments(kwargs, message):
    with pytest.raises(ConfigError, match=None) as exc:
        cbs.ModelCheckpoint(**kwargs)
    assert message in str(exc.value)


def test_csv_logger_writes_keras_columns(tmp_path):
    path = tmp_path / "log.csv"
    cb = cbs.CSVLogger(path)
    cb.set_model(FakeModel())
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 1.5, "accuracy": 0.5})
    cb.on_epoch_end(1, {"loss": 1.0, "accuracy": 0.75})
    cb.on_train_end()
    assert list(csv.reader(path.open())) == [["epoch", "accuracy", "loss"], ["0", "0.5", "1.5"],
                                             ["1", "0.75", "1.0"]]
    cb = cbs.CSVLogger(path, append=True, separator=";")
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 0.5, "accuracy": 1.0})
    cb.on_train_end()
    assert path.read_text().splitlines()[-1] == "0;1.0;0.5"
    assert len(path.read_text().splitlines()) == 4  # no second header when appending


def test_csv_logger_into_a_missing_folder_is_a_disk_error(tmp_path):
    from cnnlab.errors import DiskError
    cb = cbs.CSVLogger(tmp_path / "nope" / "log.csv")
    with pytest.raises(DiskError, match="Could not write .*log.csv: No such file or directory"):
        cb.on_train_begin()


def test_learning_rate_scheduler_from_a_yaml_table_and_from_a_function():
    table = cbs.from_config([{"LearningRateScheduler": {"schedule": {0: 0.01, 2: 0.001}}}])[0]
    model = FakeModel(lr=0.5)
    table.set_model(model)
    table.trainer = FakeTrainer()
    seen = []
    for epoch in range(4):
        table.on_epoch_begin(epoch)
        seen.append(model.optimizer.learning_rate)
    assert seen == [0.01, 0.01, 0.001, 0.001]
    halve = cbs.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    halve.set_model(model)
    halve.trainer = FakeTrainer()
    halve.on_epoch_begin(0)
    assert model.optimizer.learning_rate == 0.0005


def test_learning_rate_scheduler_is_not_applied_twice_to_a_resumed_epoch():
    halve = cbs.LearningRateScheduler(lambda epoch, lr: lr * 0.5)
    model = FakeModel(lr=1.0)
    halve.set_model(model)
    halve.trainer = FakeTrainer()
    halve.trainer.position = Position(epoch=3, step=2)  # resumed mid-epoch: lr is already set
    halve.on_epoch_begin(3)
    assert model.optimizer.learning_rate == 1.0


@pytest.mark.parametrize("returned", [0.0, -1.0, float("nan"), "0.1", None])
def test_learning_rate_scheduler_refuses_a_bad_rate(returned):
    cb = cbs.LearningRateScheduler(lambda epoch, lr: returned)
    cb.set_model(FakeModel())
    cb.trainer = FakeTrainer()
    with pytest.raises(ConfigError, match="The learning-rate schedule returned .* at epoch 1. "
                                          "Expected a strictly positive number."):
        cb.on_epoch_begin(0)


# -- from YAML -----------------------------------------------------------------------

@pytest.mark.parametrize("entries,message", [
    ([{"EarlyStoping": {}}], "train.callbacks[0]: Unknown callback 'EarlyStoping'. Expected one of: "
     "CSVLogger, EarlyStopping, LearningRateScheduler, ModelCheckpoint, ReduceLROnPlateau, TensorBoard, TerminateOnNaN."),
    ([{"EarlyStopping": {"patiense": 2}}], "train.callbacks[0] (EarlyStopping): EarlyStopping.__init__() "
     "got an unexpected keyword argument 'patiense'. Expected arguments: monitor, min_delta, patience, "
     "verbose, mode, baseline, restore_best_weights, start_from_epoch."),
    (["TerminateOnNaN", {"EarlyStopping": {"patience": "2"}}], "train.callbacks[1] (EarlyStopping): "
     "Invalid value for argument `patience`. Expected an integer >= 0. Received patience='2'."),
    ([{"EarlyStopping": [1]}], "train.callbacks[0] (EarlyStopping): expected a mapping of arguments. "
     "Received [1]."),
    ([{"EarlyStopping": {}, "CSVLogger": {}}], "train.callbacks[0]: expected a one-key mapping"),
    ([{"LearningRateScheduler": {"schedule": {0: 0}}}], "Invalid value for argument `schedule[0]`. "
     "Expected a strictly positive learning rate. Received schedule[0]=0."),
    ([{"LearningRateScheduler": {"schedule": "cosine"}}], "Invalid value for argument `schedule`."),
    ([{"CSVLogger": {"filename": "a.csv", "separator": ", "}}], "Expected a single character."),
])
def test_yaml_callbacks_are_checked_with_clear_messages(entries, message):
    with pytest.raises(ConfigError) as exc:
        cbs.from_config(entries)
    assert message in str(exc.value)


def test_yaml_callbacks_write_their_files_into_the_run(tmp_path, keep_threads, monkeypatch):  # noqa: F811
    monkeypatch.chdir(tmp_path)
    data = tiny_npz(tmp_path / "tiny.npz")
    cfg = write_config(tmp_path / "cfg.yaml", data, epochs=2, callbacks=[  # in order, as Keras:
        {"ModelCheckpoint": {"filepath": "ep{epoch}.safetensors"}},   # the logger after the
        {"LearningRateScheduler": {"schedule": {0: 0.01, 1: 0.002}}},  # scheduler sees its rate
        {"CSVLogger": {"filename": "log.csv"}}])
    r = train_run(RunConfig.load(cfg), out="runs", name="x", quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cfg.yaml", "runs", "tiny.npz"]
    assert (r.run_dir / "ep1.safetensors").is_file() and (r.run_dir / "ep2.safetensors").is_file()
    rows = list(csv.DictReader((r.run_dir / "log.csv").open()))
    assert [float(row["learning_rate"]) for row in rows] == [0.01, 0.002]
    assert r.history["learning_rate"] == [0.01, 0.002]


def test_early_stopping_in_python_fit_stops_the_loop():
    x = np.random.default_rng(0).integers(0, 255, (64, 8, 8, 1), dtype=np.uint8)
    y = np.arange(64) % 3
    model = cnnlab.Sequential([cnnlab.layers.Flatten(input_shape=(8, 8, 1)),
                               cnnlab.layers.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"],
                  device="cpu")
    es = cbs.EarlyStopping(monitor="loss", min_delta=10.0, patience=0)
    h = model.fit(x, y, epochs=5, verbose=0, callbacks=[es], seed=0)
    assert len(h.history["loss"]) == 2 and es.stopped_epoch == 1


# -- TerminateOnNaN, end to end ------------------------------------------------------

def test_terminate_on_nan_names_epoch_and_step_and_keeps_the_last_good_checkpoint(
        tmp_path, keep_threads, monkeypatch, capsys):  # noqa: F811
    data = tiny_npz(tmp_path / "tiny.npz")
    cfg = write_config(tmp_path / "cfg.yaml", data, callbacks=["TerminateOnNaN"])
    original = loop.Trainer.train_step

    def nan_at_step_9(self, *args):  # epoch 2, step 3: poison the loss and the weights
        loss, hits = original(self, *args)
        if self.position.global_step + 1 == 9:
            with torch.no_grad():
                next(self.net.parameters()).fill_(float("nan"))
            return loss * float("nan"), hits
        return loss, hits
    monkeypatch.setattr(loop.Trainer, "train_step", nan_at_step_9)
    runs = tmp_path / "runs"
    code, out, err = run_cli(capsys, "train", cfg, "--name", "x", "--out", runs,
                             "--checkpoint-every", "4", "--quiet")
    ckpt = runs / "x" / "checkpoint.safetensors"
    assert code == ExitStatus.NAN == 8
    assert err == (f"Loss became nan at epoch 2, step 3: training stopped (TerminateOnNaN). "
                   f"The last good checkpoint is {ckpt}.\n")
    tensors, meta = read_checkpoint(ckpt)
    assert meta["position"] == {"epoch": 1, "step": 2, "seen": 32, "global_step": 8}
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if k.startswith("model/"))
    metrics = json.loads((runs / "x" / "metrics.json").read_text())
    assert metrics["status"] == "nan" and metrics["epochs_done"] == 1
    assert not (runs / "x" / "weights" / "final.safetensors").exists()
    monkeypatch.undo()
    # the last good checkpoint loads: resuming from it finishes the run
    code, out, err = run_cli(capsys, "train", "--resume", "x", "--out", runs, "--quiet")
    assert code == 0, err
    model = cnnlab.load(runs / "x")
    assert weights_finite(model.net)


def test_nan_weights_are_never_checkpointed(tmp_path, keep_threads, capsys):  # noqa: F811
    """Without TerminateOnNaN a diverged run goes on, but the checkpoint stays the last good one."""
    data = tiny_npz(tmp_path / "tiny.npz")
    cfg = write_config(tmp_path / "cfg.yaml", data, epochs=2,
                       optimizer={"name": "sgd", "learning_rate": 1e30})
    r = train_run(RunConfig.load(cfg), out=tmp_path / "runs", name="x", quiet=True)
    tensors, meta = read_checkpoint(r.run_dir / "checkpoint.safetensors")
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if k.startswith("model/"))
    err = capsys.readouterr().err
    assert err.count("cnnlab: warning: the weights are NaN or infinite at ") == 1
    assert f"; keeping the last good checkpoint {r.run_dir / 'checkpoint.safetensors'}." in err
