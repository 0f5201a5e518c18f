"""`cnnlab train` as a library call: config in, run directory out.

    >>> result = train_run(RunConfig.load("examples/lecture.yaml"), out="runs", name="lecture")
    >>> result.run_dir, result.metrics["final_val_accuracy"]

It loads and checks the data, creates the run directory only once everything
is valid, builds and compiles the model from the config, and calls the public
`model.fit` like any Keras program would; what a run adds is callbacks: the run
directory's writer, checkpoints, signal handling, the progress bar and, for a
resumed run, the restore of the checkpoint. A crash leaves a resumable
checkpoint, never a half-written file.

Resuming (`train_run(cfg, resume="lecture")`, `cnnlab train --resume lecture`):
the checkpoint is the single source of truth. It holds the weights, optimizer,
RNGs, position, history and every callback's state, including the run's
metrics, so a run killed at any instant and resumed ends with the same
weights, bit for bit (CPU, same thread count), and the same history as one
that never stopped. Files written after the last checkpoint (history.json,
metrics.json, best weights) are rewritten with the same contents as the
resumed run redoes that work.
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

from . import __version__, fast, validate
from .resume_guard import check_checkpoint
from .tolerant import check_metrics, run_file
from .guard import DirLock, check_derived_name, remove_new_run
from .config import RunConfig, compile_kwargs, fit_kwargs, schedule_callbacks
from .errors import CnnlabError, DataError, DiskError, ExitStatus, RunError, SpecError
from .io import atomic_write
from .models import Sequential
from .plots import plot_history
from .runs import check_name, create_run_dir, find_run, write_history, write_json
from .summary import summary_text
from .train import callbacks as cbs
from .train.progress import ProgressBar
from .train.live import LiveProgress
from .train.checkpoint import Checkpointer, RestoreCheckpoint, read_checkpoint_meta, where
from .train.data import to_arrays
from .train.loop import Position
from .utils import set_random_seed

# What --resume may change: the length of the run, and where the data and the CPU
# threads come from (the data's SHA-256 is checked against the run's; a different
# thread count may change the last bits of the results).
RESUMABLE_CHANGES = {("train", "epochs"), ("train", "threads"), ("train", "checkpoint_every_steps"),
                     ("data", "data_dir"), ("data", "fallback"),
                     ("data", "cache"), ("data", "workers")}  # a folder's: the same bytes either way
CHECKPOINT = "checkpoint.safetensors"
RUN_FORMAT = "cnnlab-run-1"   # in metrics.json: marks a directory cnnlab created


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
    """(dataset, train Arrays, val Arrays or None) for the config's model and loss, checked
    before the run directory exists. None: `data.validation` is a fraction, which `fit`
    splits off the training data (its `validation_split`)."""
    from .data import load_dataset
    from .data.preprocess import prepare_images
    from .losses import get as get_loss
    d = cfg.data
    if d["name"] == "folder":
        return load_folder_data(cfg)
    ds = load_dataset(d["name"], data_dir=d["data_dir"], fallback=d["fallback"], progress=progress)
    spec, loss = cfg.spec, get_loss(cfg.train["loss"])
    x_train = prepare_images(ds.x_train, spec.input_shape)
    x_test = prepare_images(ds.x_test, spec.input_shape)
    y_train, y_test = ds.y_train, ds.y_test
    if len(ds.x_train) == 0:
        raise DataError(f"Dataset {ds.name!r} has no training images. Expected at least one.")
    if len(ds.class_names) > spec.num_outputs and loss.target != "binary":
        n = len(ds.class_names)
        raise DataError(f"Dataset {ds.name!r} has {n} classes (labels 0 to {n - 1}), but the "
                        f"model's last layer has {spec.num_outputs} units. Expected units >= {n}.")
    train = to_arrays(x_train, y_train, spec, loss, "training")
    if d["validation"] != "test":
        return ds, train, None
    return ds, train, to_arrays(x_test, y_test, spec, loss, "validation")


def load_folder_data(cfg: RunConfig):
    """(folder data, train, val or None) of a `data: {name: folder}` config: listed, checked
    file by file, decoded into the cache when `data.cache` (see data/folder_data.py)."""
    from .data.folder_data import check_class_count, load_folder
    from .losses import get as get_loss
    from .train.streamed import folder_arrays
    spec, loss = cfg.spec, get_loss(cfg.train["loss"])
    fd = load_folder(cfg.data, spec.input_shape, cfg.train["seed"])
    check_class_count(fd.class_names, spec, loss.target == "binary")
    if cfg.data["cache"]:
        fd.store.use_cache()
    train, val = folder_arrays(fd, spec, loss)
    return fd, train, val


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
    """history.csv/json, metrics.json and best weights at every epoch end; at the end of
    training, why it stopped (for the run's status and exit code).

    `run_info`: this invocation's facts (data, epochs, environment), put into the metrics
    at train begin, over what a resumed run's checkpoint restored."""

    def __init__(self, run_dir: Path, metrics: dict, times: list, run_info: dict):
        super().__init__()
        self.run_dir, self.metrics, self.times, self.run_info = run_dir, metrics, times, run_info
        self.history: dict = {}
        self.stop_reason, self.nan_message, self.position = None, None, Position()

    def on_train_begin(self, logs=None):
        self.metrics.update(self.run_info)
        self.metrics["status"] = "running"
        self.metrics["steps_per_epoch"] = self.params["steps"]
        self.history = self.trainer.history

    def on_train_end(self, logs=None):
        t = self.trainer
        self.stop_reason, self.position = t.stop_reason, t.position
        self.nan_message = getattr(t, "nan_message", None)

    def get_state(self) -> dict:  # metrics and epoch times travel in the checkpoint
        return {"metrics": self.metrics, "times": self.times}

    def set_state(self, state: dict) -> None:  # in place: EpochTimer and _finish share them
        self.metrics.clear()
        self.metrics.update(state["metrics"])
        self.times[:] = state["times"]

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
            "threads": threads, "cpu_count": os.cpu_count(),
            "kernels": fast.kernels_status()}  # the instruction set, or why none: bits depend on it


# -- signals ----------------------------------------------------------------------

class SignalStop(cbs.Callback):
    """Ctrl-C / SIGTERM: finish the current step, checkpoint, exit 130 / 143.

    A second signal stops at once without saving (the last checkpoint is intact).
    Used as a context manager around `fit` (installs and restores the handlers)
    and as one of its callbacks: a signal that arrives before the loop starts
    still stops it (`fit` clears `stop_training` when it begins).
    """

    def __init__(self, run_dir: Path):
        super().__init__()
        self.run_dir, self.old, self.reason = run_dir, {}, None

    def on_train_begin(self, logs=None):
        if self.reason:
            self._stop()

    def _stop(self):
        self.trainer.stop_reason = self.reason  # read by the Checkpointer and the RunWriter
        self.model.stop_training = True

    def _handler(self, signum, frame):
        name = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
        code = ExitStatus.INTERRUPTED if signum == signal.SIGINT else ExitStatus.TERMINATED
        if self.reason:
            self.__exit__()
            raise Interrupted(f"Interrupted again by {name}: stopped without saving. The last "
                              f"checkpoint is intact; resume with: cnnlab train --resume "
                              f"{self.run_dir}", code)
        self.reason = name
        if self.trainer is not None:  # else on_train_begin stops it
            self._stop()

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
        self.old = {}


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


def run_config(run_ref, root) -> tuple[Path, RunConfig]:
    """The run directory and the config it was started with; RunError if it is not a run."""
    run_dir = find_run(run_ref, root)
    try:
        return run_dir, RunConfig.load(run_dir / "config.yaml")
    except CnnlabError as err:
        raise RunError(f"{run_dir} is not a cnnlab run: its config.yaml does not load "
                       f"({err})") from None


def resolve_resume(run_ref, root, new_cfg: RunConfig | None,
                   overrides: dict | None = None) -> tuple[Path, RunConfig, dict]:
    """(run dir, config, checkpoint metadata) of a run that may be resumed; RunError if not.

    Reads only: a refused resume changes nothing on disk.
    """
    run_dir, old = run_config(run_ref, root)
    overrides = overrides or {}
    cfg = new_cfg if new_cfg is not None else old
    cfg = cfg.with_overrides(train=overrides.get("train"), data=overrides.get("data"))
    diffs = [d for d in config_differences(old, cfg) if (d[0], d[1]) not in RESUMABLE_CHANGES]
    if diffs:
        lines = "\n".join(f"  {s}.{k}: run has {o!r}, now {n!r}" for s, k, o, n in diffs)
        raise RunError(f"Cannot resume {run_dir} with a different config. Differences:\n{lines}\n"
                       "Only --epochs, --threads, --checkpoint-every, --data-dir and "
                       "--no-fallback may change on resume; start a new run to change anything "
                       "else.")
    ckpt = run_dir / CHECKPOINT
    if not ckpt.exists():
        raise RunError(f"Run {run_dir} has no checkpoint to resume from (it stopped before its "
                       f"first checkpoint was written). Start a new run instead (delete {run_dir} "
                       "or choose another --name).")
    meta = read_checkpoint_meta(ckpt)
    check_checkpoint(ckpt, meta, cfg, RESUMABLE_CHANGES)
    metrics = run_file(run_dir / "metrics.json", check_metrics, {})[0] or {}  # damaged: a warning
    done = meta.get("position", {}).get("epoch", 0)
    if metrics.get("status") == "finished" and cfg.train["epochs"] <= old.train["epochs"]:
        raise RunError(f"Run {run_dir} already finished ({done} epochs). Pass --epochs N with "
                       f"N > {old.train['epochs']} to train it further, or start a new run.")
    mid_epoch = meta.get("position", {}).get("step", 0) > 0
    if cfg.train["epochs"] < done + mid_epoch:
        raise RunError(f"Cannot resume {run_dir} with --epochs {cfg.train['epochs']}: it has "
                       f"already started epoch {done + mid_epoch}. Expected --epochs >= "
                       f"{done + mid_epoch}.")
    return run_dir, cfg, meta


def prepare_resumed_dir(run_dir: Path, cfg: RunConfig) -> None:
    """Record a changed --epochs (etc.) in config.yaml; drop temp files a kill left behind."""
    text = cfg.to_yaml()
    if (run_dir / "config.yaml").read_text(encoding="utf-8") != text:
        atomic_write(run_dir / "config.yaml", text)
    for folder in (run_dir, run_dir / "weights"):
        for tmp in folder.glob(".*.tmp"):  # atomic_path's temporary files: ours
            tmp.unlink(missing_ok=True)


def check_data_matches(run_dir: Path, meta: dict, ds) -> None:
    old_sha = (meta.get("extra") or {}).get("data_sha256")
    if old_sha and old_sha != ds.sha256:
        raise RunError(f"Cannot resume {run_dir}: its data had SHA-256 {old_sha[:12]}..., "
                       f"the data found now ({ds.source}) has {ds.sha256[:12]}....")


def check_new_run(root, name: str | None, prefix: str = "run") -> None:
    """Fail fast, before the data is loaded, when --name (or the name the run would get
    from `prefix`) is invalid, or --name is taken."""
    if name is None:
        check_derived_name(prefix, prefix)
        return
    path = Path(root) / check_name(name)
    if path.exists():
        raise RunError(f"A run named {name!r} already exists in {root}. Choose another "
                       f"--name, or resume it with --resume {path}.")


# -- the run ---------------------------------------------------------------------------

# float32 copies per parameter while training: weights, gradients, two optimizer moments
TRAINING_COPIES = 4


def check_model_fits(spec, device: str = "cpu") -> None:
    """SpecError, before anything is allocated, for a model larger than the memory it would
    train in: the GPU's when `device` resolves to CUDA, else this machine's."""
    from .models import resolve_device
    from .summary import totals
    params = totals(spec)["total_params"]
    need = params * 4 * TRAINING_COPIES
    where = "this machine's"
    try:
        if resolve_device(device).type == "cuda":
            have, where = torch.cuda.get_device_properties(0).total_memory, "the GPU's"
        else:
            have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError, RuntimeError):
        return
    if need > have:
        raise SpecError(f"The model has {params:,} parameters: training it needs about "
                        f"{need / 2**30:.1f} GiB (weights, gradients and optimizer state), more "
                        f"than {where} {have / 2**30:.1f} GiB of memory. Expected a smaller "
                        "model (fewer units or filters, or pooling before Flatten).")


def build_model(cfg: RunConfig, seed: int | None) -> Sequential:
    """The compiled model; seeded initial weights for a new run (`seed`), any for a resume."""
    if seed is not None:
        set_random_seed(seed)
    model = Sequential.from_spec(cfg.spec)
    model.compile(**compile_kwargs(cfg.train))
    return model


def start_run_dir(cfg: RunConfig, out, name, prefix, lock: DirLock | None = None) -> Path:
    """Create the run directory (locked by `lock`) with its config; remove it again if that
    fails."""
    run_dir = create_run_dir(out, name, prefix)
    try:
        if lock is not None:
            lock.acquire(run_dir)
        atomic_write(run_dir / "config.yaml", cfg.to_yaml())
        atomic_write(run_dir / "summary.txt", summary_text(cfg.spec) + "\n")
        write_json(run_dir / "metrics.json", {"format": RUN_FORMAT, "status": "running",
                                              "name": run_dir.name})
    except BaseException:
        if lock is not None:
            lock.release()
        remove_new_run(run_dir)
        raise
    return run_dir


def run_callbacks(t: dict, user_callbacks, times: list, quiet: bool, stream) -> list:
    """The schedule, the user's callbacks, the epoch timer and the progress bar, in order.

    The run's own writers (History, RunWriter, Checkpointer) come after these, so that
    what they record includes what the user's callbacks added to the logs.
    """
    out = [*schedule_callbacks(t), *user_callbacks, EpochTimer(times)]
    if not quiet:
        out.append(ProgressBar(stream=stream))
    return out


def train_run(cfg: RunConfig, *, out="runs", name: str | None = None, quiet: bool = False,
              resume=None, stream=None, handle_signals: bool = False, prefix: str = "run",
              overrides: dict | None = None, callbacks=()) -> RunResult:
    """Train a new run, or resume one; the run directory is locked (flock) meanwhile, so a
    second process refuses to train in it. `callbacks`: more callbacks for `fit`, after the
    config's (a search's pruning hook)."""
    with DirLock() as lock:
        if resume is not None:
            lock.acquire(find_run(resume, out))
        return _train_run(cfg, out=out, name=name, quiet=quiet, resume=resume, stream=stream,
                          handle_signals=handle_signals, prefix=prefix, overrides=overrides,
                          lock=lock, callbacks=callbacks)


def _train_run(cfg: RunConfig, *, out, name, quiet, resume, stream, handle_signals, prefix,
               overrides, lock: DirLock, callbacks=()) -> RunResult:
    stream = stream or sys.stdout
    if resume is not None:
        run_dir, cfg, meta = resolve_resume(resume, out, cfg, overrides)
    else:
        check_new_run(out, name, prefix)
    validate.check_run(cfg)  # loss against output, callbacks, memory: before any file
    t = cfg.train
    if t["threads"]:
        torch.set_num_threads(t["threads"])
    ds, train, val = load_data(cfg, progress=not quiet)
    if resume is not None:
        check_data_matches(run_dir, meta, ds)
    model = build_model(cfg, t["seed"] if resume is None else None)
    if resume is None:
        run_dir = start_run_dir(cfg, out, name, prefix, lock)
    if getattr(ds, "skipped", None):  # a folder's unreadable files, all of them
        from .data.folders import skipped_text
        atomic_write(run_dir / "skipped_files.txt", skipped_text(ds.skipped))

    user_callbacks = [*cbs.from_config(t["callbacks"], run_dir), *callbacks]
    metrics: dict = ((run_file(run_dir / "metrics.json", check_metrics, {})[0] or {})
                     if resume is not None else {})
    if resume is None:
        metrics.update({"format": RUN_FORMAT, "status": "running", "name": run_dir.name})
    times: list = []
    writer = RunWriter(run_dir, metrics, times, run_info={
        "data": {**ds.record(), "class_names": list(ds.class_names)}, "seed": t["seed"],
        "epochs": t["epochs"], "batch_size": t["batch_size"], "params": model.count_params(),
        "environment": environment(model.device, torch.get_num_threads())})
    history = cbs.History()
    guard = SignalStop(run_dir) if handle_signals else None
    checkpointer = Checkpointer(run_dir / CHECKPOINT, t["checkpoint_every_steps"],
                                extra={"data_sha256": ds.sha256, "run": run_dir.name,
                                       "config": cfg.to_yaml()},  # checked on resume
                                callbacks=[*user_callbacks, writer])
    restore = [] if resume is None else [RestoreCheckpoint(
        run_dir / CHECKPOINT, [*user_callbacks, writer], history,
        then=lambda: prepare_resumed_dir(run_dir, cfg))]  # the first write: all checks passed
    callbacks = [*restore, *([guard] if guard else []),
                 *run_callbacks(t, user_callbacks, times, quiet, stream),
                 history, writer, checkpointer,
                 LiveProgress(run_dir)]  # progress.json, for the dashboard's live view
    if not quiet:
        p = meta.get("position", {}) if resume is not None else {}
        stream.write(f"Data: {ds.source}\n" if resume is None else
                     f"Resuming {run_dir} at {where(Position(p.get('epoch', 0), p.get('step', 0)))}\n")
    split = 0.0 if val is not None or cfg.data["name"] == "folder" else cfg.data["validation"]
    try:
        if guard:
            guard.__enter__()
        from .train.precision import policy_scope
        with policy_scope(t["precision"]):  # mixed precision: train/precision.py
            model.fit(train, validation_data=val, validation_split=split, verbose=0,
                      callbacks=callbacks, **fit_kwargs(t))
    except Exception as err:  # (a kill, simulated or real, leaves the run as it is)
        if resume is None and not (run_dir / CHECKPOINT).exists():
            # nothing to resume from: a run is resumable or absent, never a dead `running`
            lock.release()
            remove_new_run(run_dir)
            if isinstance(err, DiskError):
                raise DiskError(f"{err} Training stopped before its first checkpoint; the run "
                                f"directory {run_dir} was removed.") from None
            raise
        if isinstance(err, DiskError):
            raise DiskError(f"{err} Training stopped; free some space, then resume with: "
                            f"cnnlab train --resume {run_dir}") from None
        raise
    finally:
        if guard:
            guard.__exit__()
    return _finish(run_dir, model, writer, metrics, times)


def _finish(run_dir, model, writer: RunWriter, metrics, times) -> RunResult:
    h = writer.history
    update_metrics(metrics, h, times)
    reason = writer.stop_reason
    code, message = ExitStatus.OK, ""
    if reason in ("SIGINT", "SIGTERM"):
        metrics["status"] = "interrupted"
        code = ExitStatus.INTERRUPTED if reason == "SIGINT" else ExitStatus.TERMINATED
        message = (f"Interrupted by {reason}: checkpoint saved at {where(writer.position)}. "
                   f"Resume with: cnnlab train --resume {run_dir}")
    elif reason == "nan":
        metrics["status"] = "nan"
        code = ExitStatus.NAN
        message = ((writer.nan_message or "Loss became NaN.") +
                   f" The last good checkpoint is {run_dir / CHECKPOINT}.")
    elif h.get("loss") and not np.isfinite(h["loss"][-1]):
        # diverged without TerminateOnNaN: not a finished run with NaN weights and exit 0
        metrics["status"] = "nan"
        code = ExitStatus.NAN
        message = (f"Loss is {h['loss'][-1]} at the end of training: the run diverged (a "
                   "learning rate too high?). No final weights were written; the last good "
                   f"checkpoint is {run_dir / CHECKPOINT}.")
    else:
        metrics["status"] = "finished"
        model.save_weights(run_dir / "weights" / "final.safetensors")
    write_json(run_dir / "metrics.json", metrics)
    if h.get("loss"):
        plot_history(h, run_dir)
    return RunResult(run_dir, metrics, h, code, message)
