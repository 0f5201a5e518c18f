"""`cnnlab train` as a library call: config in, run directory out.

    >>> result = train_run(RunConfig.load("examples/lecture.yaml"), out="runs", name="lecture")
    >>> result.run_dir, result.metrics["final_val_accuracy"]

It loads and checks the data, creates the run directory only once everything
is valid, trains with the shared loop (`Sequential.fit`'s), and writes the
run's files as it goes: a crash leaves a resumable checkpoint, never a
half-written file.
"""
from __future__ import annotations

import os
import platform
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .config import RunConfig
from .errors import CnnlabError, DataError, ExitStatus, RunError
from .io import atomic_write
from .models import Sequential
from .plots import plot_history
from .runs import create_run_dir, find_run, read_json, write_history, write_json
from .summary import summary_text
from .train import callbacks as cbs
from .train.checkpoint import Checkpointer, restore_checkpoint
from .train.data import to_arrays
from .train.loop import Position, seed_everything
from .train.schedules import OneCycle

RESUMABLE_CHANGES = {("train", "epochs")}  # what --resume may change


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict
    history: dict
    exit_code: int = ExitStatus.OK
    message: str = ""


class Interrupted(CnnlabError):
    def __init__(self, message, code):
        super().__init__(message)
        self.exit_code = code


# -- data ----------------------------------------------------------------------

def load_data(cfg: RunConfig, progress: bool = True):
    """(dataset, train Arrays, val Arrays) for the config's model and loss."""
    from .data import load_dataset
    from .data.preprocess import prepare_images
    from .losses import get as get_loss
    d = cfg.data
    ds = load_dataset(d["name"], data_dir=d["data_dir"], fallback=d["fallback"], progress=progress)
    spec, loss = cfg.spec, get_loss(cfg.train["loss"])
    x_train = prepare_images(ds.x_train, spec.input_shape)
    x_test = prepare_images(ds.x_test, spec.input_shape)
    y_train, y_test = ds.y_train, ds.y_test
    if len(ds.class_names) > spec.num_outputs and loss.target != "binary":
        raise DataError(f"Dataset {ds.name!r} has {len(ds.class_names)} classes, but the model's "
                        f"last layer has {spec.num_outputs} units. Expected units >= "
                        f"{len(ds.class_names)}.")
    if d["validation"] != "test":
        split = int(len(x_train) * (1 - d["validation"]))
        x_test, y_test = x_train[split:], y_train[split:]
        x_train, y_train = x_train[:split], y_train[:split]
    train = to_arrays(x_train, y_train, spec.input_shape, loss, spec.num_outputs, "training")
    val = to_arrays(x_test, y_test, spec.input_shape, loss, spec.num_outputs, "validation")
    return ds, train, val


# -- callbacks that write the run directory -------------------------------------

class EpochTimer(cbs.Callback):
    def __init__(self, times: list):
        super().__init__()
        self.times = times

    def on_epoch_begin(self, epoch, logs=None):
        self.t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.t0)


class RunWriter(cbs.Callback):
    """history.csv/json, metrics.json and best weights at every epoch end."""

    def __init__(self, run_dir: Path, metrics: dict, times: list):
        super().__init__()
        self.run_dir, self.metrics, self.times = run_dir, metrics, times

    def on_epoch_end(self, epoch, logs=None):
        h = self.trainer.history
        write_history(self.run_dir, h)
        val = h.get("val_loss") or []
        if val and logs and "val_loss" in logs and logs["val_loss"] <= min(val):
            self.model.save_weights(self.run_dir / "weights" / "best.safetensors")
            self.metrics["best_epoch"] = epoch + 1
        update_metrics(self.metrics, h, self.times)
        self.metrics["epochs_done"] = epoch + 1
        write_json(self.run_dir / "metrics.json", self.metrics)


def update_metrics(m: dict, h: dict, times: list) -> None:
    if h.get("val_accuracy"):
        m["final_val_accuracy"] = h["val_accuracy"][-1]
        m["best_val_accuracy"] = max(h["val_accuracy"])
    if h.get("val_loss"):
        m["final_val_loss"] = h["val_loss"][-1]
    if h.get("accuracy"):
        m["final_accuracy"] = h["accuracy"][-1]
        m["final_loss"] = h["loss"][-1]
    m["epoch_seconds"] = [round(t, 3) for t in times]
    m["train_seconds"] = round(sum(times), 3)


def environment(device, threads) -> dict:
    return {"cnnlab": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "numpy": np.__version__, "platform": platform.platform(), "device": str(device),
            "threads": threads, "cpu_count": os.cpu_count()}


# -- signals ----------------------------------------------------------------------

class SignalStop:
    """Ctrl-C / SIGTERM: finish the current step, checkpoint, exit 130 / 143."""

    def __init__(self, trainer):
        self.trainer, self.old = trainer, {}

    def _handler(self, signum, frame):
        name = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
        self.trainer.stop_reason = name
        self.trainer.stop_training = True

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread
                pass
        return self

    def __exit__(self, *exc):
        for sig, old in self.old.items():
            signal.signal(sig, old)


# -- resume ---------------------------------------------------------------------------

def config_differences(old: RunConfig, new: RunConfig) -> list[tuple[str, str, object, object]]:
    a, b = old.to_dict(), new.to_dict()
    diffs = []
    for section in ("model", "data", "train"):
        keys = sorted(set(a[section]) | set(b[section]))
        for k in keys:
            if a[section].get(k) != b[section].get(k):
                diffs.append((section, k, a[section].get(k), b[section].get(k)))
    return diffs


def resolve_resume(run_ref, root, new_cfg: RunConfig | None, overrides: dict) -> tuple[Path, RunConfig]:
    run_dir = find_run(run_ref, root)
    old = RunConfig.load(run_dir / "config.yaml")
    cfg = new_cfg if new_cfg is not None else old
    cfg = cfg.with_overrides(train=overrides.get("train"), data=overrides.get("data"))
    diffs = [d for d in config_differences(old, cfg) if (d[0], d[1]) not in RESUMABLE_CHANGES]
    if diffs:
        lines = "\n".join(f"  {s}.{k}: run has {o!r}, now {n!r}" for s, k, o, n in diffs)
        raise RunError(f"Cannot resume {run_dir} with a different config. Differences:\n{lines}\n"
                       "Only --epochs may change on resume.")
    if not (run_dir / "checkpoint.safetensors").is_file():
        raise RunError(f"Run {run_dir} has no checkpoint to resume from (it stopped before its "
                       "first checkpoint). Start a new run instead.")
    m = read_json(run_dir / "metrics.json", {}) or {}
    if m.get("status") == "finished" and m.get("epochs_done", 0) >= cfg.train["epochs"]:
        raise RunError(f"Run {run_dir} already finished its {m.get('epochs_done')} epochs. "
                       "Pass --epochs N with a larger N to train it further.")
    return run_dir, cfg


# -- the run ---------------------------------------------------------------------------

def train_run(cfg: RunConfig, *, out="runs", name: str | None = None, quiet: bool = False,
              resume=None, stream=None, handle_signals: bool = False, prefix: str = "run",
              overrides: dict | None = None) -> RunResult:
    stream = stream or sys.stdout
    if resume is not None:
        run_dir, cfg = resolve_resume(resume, out, cfg, overrides or {})
    t = cfg.train
    if t["threads"]:
        torch.set_num_threads(t["threads"])
    ds, train, val = load_data(cfg, progress=not quiet)
    model = Sequential.from_spec(cfg.spec)
    model.compile(loss=t["loss"], optimizer=t["optimizer"], metrics=t["metrics"],
                  label_smoothing=t["label_smoothing"], device=t["device"])
    user_callbacks = cbs.from_config(t["callbacks"])  # validated before any file is written
    trainer = model._trainer

    if resume is None:
        run_dir = create_run_dir(out, name, prefix)
        atomic_write(run_dir / "config.yaml", cfg.to_yaml())
        atomic_write(run_dir / "summary.txt", summary_text(cfg.spec) + "\n")
        seed_everything(t["seed"])
        model._net = None  # rebuild with the seeded initializers
        model.compile(loss=t["loss"], optimizer=t["optimizer"], metrics=t["metrics"],
                      label_smoothing=t["label_smoothing"], device=t["device"])
        trainer = model._trainer
        position = Position()
        metrics = {"status": "running", "name": run_dir.name}
        times: list = []
    else:
        position = restore_checkpoint(run_dir / "checkpoint.safetensors", trainer)
        metrics = read_json(run_dir / "metrics.json", {}) or {}
        old_sha = (metrics.get("data") or {}).get("sha256")
        if old_sha and old_sha != ds.sha256:
            raise RunError(f"Cannot resume {run_dir}: its data had SHA-256 {old_sha[:12]}..., "
                           f"the data found now ({ds.source}) has {ds.sha256[:12]}....")
        metrics["status"] = "running"
        times = list(metrics.get("epoch_seconds", []))
        trainer.history = {k: list(v) for k, v in trainer.history.items()}

    metrics.update({"data": {**ds.record(), "class_names": list(ds.class_names)}, "seed": t["seed"], "epochs": t["epochs"],
                    "batch_size": t["batch_size"], "steps_per_epoch": -(-len(train) // t["batch_size"]),
                    "params": sum(p.numel() for p in model.net.parameters()),
                    "environment": environment(model.device, torch.get_num_threads())})
    history = cbs.History(trainer.history if resume is not None else None)
    callbacks = list(user_callbacks)
    if t["lr_schedule"]:
        callbacks.insert(0, OneCycle(**(t["lr_schedule"]["one_cycle"] or {})))
    callbacks += [EpochTimer(times)]
    if not quiet:
        callbacks.append(cbs.ProgressBar(stream=stream))
    callbacks += [history, RunWriter(run_dir, metrics, times),
                  Checkpointer(run_dir / "checkpoint.safetensors", t["checkpoint_every_steps"])]
    if resume is None and not quiet:
        stream.write(f"Data: {ds.source}\n")
    guard = SignalStop(trainer) if handle_signals else None
    try:
        if guard:
            guard.__enter__()
        trainer.fit(train, val, epochs=t["epochs"], batch_size=t["batch_size"],
                    callbacks=callbacks, seed=t["seed"],
                    shuffle=t["shuffle"], position=position, validation_freq=t["validation_freq"])
    finally:
        if guard:
            guard.__exit__()
    return _finish(run_dir, model, trainer, metrics, times)


def _finish(run_dir, model, trainer, metrics, times) -> RunResult:
    h = trainer.history
    update_metrics(metrics, h, times)
    reason = trainer.stop_reason
    code, message = ExitStatus.OK, ""
    if reason in ("SIGINT", "SIGTERM"):
        metrics["status"] = "interrupted"
        code = ExitStatus.INTERRUPTED if reason == "SIGINT" else ExitStatus.TERMINATED
        message = (f"Interrupted by {reason}: checkpoint saved at epoch "
                   f"{trainer.position.epoch + 1}, step {trainer.position.step}. "
                   f"Resume with: cnnlab train --resume {run_dir}")
    elif reason == "nan":
        metrics["status"] = "nan"
        code = ExitStatus.NAN
        message = (getattr(trainer, "nan_message", "Loss became NaN.") +
                   f" The last good checkpoint is {run_dir / 'checkpoint.safetensors'}.")
    else:
        metrics["status"] = "finished"
        model.save_weights(run_dir / "weights" / "final.safetensors")
    write_json(run_dir / "metrics.json", metrics)
    if h.get("loss"):
        plot_history(h, run_dir)
    return RunResult(run_dir, metrics, h, code, message)
