"""Crash-safe checkpoints: everything needed to resume a run bit for bit.

One safetensors file holds the model, the optimizer's tensors, the RNG states
(torch, NumPy, each augmentation layer's generator; Python's in the metadata) and the
running sums of the epoch;
its metadata holds the rest as JSON: the position in the data (epoch, step;
the order itself is a pure function of (seed, epoch), see `loop.epoch_order`),
the history, the optimizer's hyperparameters and the state of every callback
that has one (EarlyStopping's counter, CSVLogger's file offset, the run's
metrics). It is written atomically, so a kill at any instant leaves the
previous checkpoint intact and loadable; nothing in it is ever unpickled.

    >>> save_checkpoint(path, trainer, callbacks=cbs)
    >>> position = restore_checkpoint(path, trainer, callbacks=cbs)
    >>> model.fit(x, y, callbacks=[RestoreCheckpoint(path, cbs), *cbs])   # resume in fit
"""
from __future__ import annotations

import json
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from ..checkpoint_io import load_state, read_metadata, read_tensors, save_tensors
from ..errors import RunError
from ..layers.augmentation import generator_states, load_generator_states
from .callbacks import Callback
from .loop import EpochSums, Position

FORMAT = "cnnlab-checkpoint-1"
_DAMAGE = (KeyError, ValueError, TypeError, IndexError, RuntimeError, AttributeError)


def _optimizer_parts(opt: torch.optim.Optimizer):
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                # a copy of its own: Adam's step counts are views of one tensor
                # (cnnlab.fast.adam._StepCounter), and older safetensors refuse shared memory
                tensors[f"optim/{pid}/{key}"] = value.detach().cpu().clone(
                    memory_format=torch.contiguous_format)
            else:
                scalars[f"{pid}/{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _rng_parts(device, net):
    np_state = np.random.get_state()
    py_state = random.getstate()
    tensors = {"rng/torch": torch.get_rng_state(),
               "rng/numpy_keys": torch.from_numpy(np_state[1].astype(np.int64))}
    if device.type == "cuda":  # dropout on a GPU draws from the GPU's generator
        tensors["rng/cuda"] = torch.cuda.get_rng_state(device)
    for name, state in generator_states(net).items():  # the augmentation layers' own draws
        tensors[f"rng/augment/{name}"] = state
    meta = {"numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": [py_state[0], list(py_state[1]), py_state[2]]}
    return tensors, meta


def _keys(callbacks) -> list[str]:
    """A stable key per callback: class name and occurrence ("EarlyStopping#0")."""
    seen: Counter = Counter()
    keys = []
    for cb in callbacks:
        name = type(cb).__name__
        keys.append(f"{name}#{seen[name]}")
        seen[name] += 1
    return keys


def _callback_parts(callbacks):
    tensors, meta = {}, {}
    for key, cb in zip(_keys(callbacks), callbacks):
        state = dict(cb.get_state() or {})
        if not state:
            continue
        arrays = state.pop("arrays", [])
        for j, a in enumerate(arrays):
            tensors[f"callbacks/{key}/{j}"] = torch.from_numpy(np.ascontiguousarray(a))
        meta[key] = {"state": state, "arrays": len(arrays)}
    return tensors, meta


def save_checkpoint(path, trainer, extra: dict | None = None, callbacks=()) -> None:
    pos: Position = trainer.position
    tensors = {f"model/{k}": v.detach().contiguous().cpu()
               for k, v in trainer.net.state_dict().items()}
    opt_tensors, opt_meta = _optimizer_parts(trainer.optimizer)
    rng_tensors, rng_meta = _rng_parts(trainer.device, trainer.net)
    cb_tensors, cb_meta = _callback_parts(callbacks)
    tensors.update(opt_tensors)
    tensors.update(rng_tensors)
    tensors.update(cb_tensors)
    tensors["sums/loss"] = pos.sums.loss.reshape(1).to(torch.float64).cpu()
    tensors["sums/correct"] = pos.sums.correct.reshape(1).to(torch.float64).cpu()
    for i, m in enumerate(pos.sums.objects()):  # the compiled metrics' running state
        for j, t in enumerate(m.state()):
            tensors[f"sums/metric/{i}/{j}"] = t.detach().reshape(-1).to(torch.float64).cpu()
    meta = {"format": FORMAT,
            "position": {"epoch": pos.epoch, "step": pos.step, "seen": pos.sums.seen,
                         "global_step": pos.global_step},
            "seed": trainer.seed, "epochs": trainer.epochs, "batch_size": trainer.batch_size,
            "history": trainer.history, "optimizer": opt_meta, "rng": rng_meta,
            "callbacks": cb_meta, "extra": extra or {}}
    save_tensors(path, tensors, {"format": FORMAT, "cnnlab": json.dumps(meta)})


def read_checkpoint_meta(path) -> dict:
    """The checkpoint's JSON metadata (no tensors read); RunError if it is not ours."""
    header = read_metadata(path, "checkpoint")
    if header.get("format") != FORMAT:
        found = header.get("format")
        raise RunError(f"{path} is not a cnnlab checkpoint. Expected format {FORMAT!r}. Received "
                       + (f"format {found!r}." if found else "a file without cnnlab metadata."))
    try:
        meta = json.loads(header["cnnlab"])
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError("bad metadata")
    except (KeyError, ValueError, TypeError):
        raise RunError(f"{path} is a damaged cnnlab checkpoint: its metadata cannot be read.") from None
    return meta


def read_checkpoint(path) -> tuple[dict, dict]:
    meta = read_checkpoint_meta(path)
    return read_tensors(path, "checkpoint"), meta


def restore_checkpoint(path, trainer, callbacks=()) -> Position:
    """Load model, optimizer, RNGs, history and callback states; return where to continue."""
    tensors, meta = read_checkpoint(path)
    try:
        return _restore(path, tensors, meta, trainer, callbacks)
    except RunError:
        raise
    except _DAMAGE as err:
        raise RunError(f"{path} is a damaged cnnlab checkpoint ({type(err).__name__}: {err}). "
                       "It cannot be resumed.") from None


def _restore(path, tensors, meta, trainer, callbacks) -> Position:
    load_state(trainer.net, {k[6:]: v for k, v in tensors.items() if k.startswith("model/")},
               str(path))
    opt = meta["optimizer"]
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, pid, name = key.split("/", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in opt["scalars"].items():
        pid, name = key.split("/", 1)
        state.setdefault(int(pid), {})[name] = value
    _check_optimizer_state(path, trainer.optimizer, state)
    trainer.optimizer.load_state_dict({"state": state, "param_groups": opt["param_groups"]})
    match_param_layouts(trainer.optimizer)
    _restore_callbacks(path, tensors, meta.get("callbacks", {}), callbacks)
    torch.set_rng_state(tensors["rng/torch"])
    load_generator_states(trainer.net, {k[len("rng/augment/"):]: v for k, v in tensors.items()
                                        if k.startswith("rng/augment/")}, str(path))
    if "rng/cuda" in tensors and trainer.device.type == "cuda":
        torch.cuda.set_rng_state(tensors["rng/cuda"], trainer.device)
    n = meta["rng"]["numpy"]
    np.random.set_state((n[0], tensors["rng/numpy_keys"].numpy().astype(np.uint32), n[1], n[2], n[3]))
    p = meta["rng"]["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    trainer.history = {k: list(v) for k, v in meta["history"].items()}
    pos = meta["position"]
    sums = trainer.new_sums()  # with the compiled metrics, to load their states into
    sums.loss, sums.correct = tensors["sums/loss"][0].clone(), tensors["sums/correct"][0].clone()
    sums.seen = pos["seen"]
    for i, m in enumerate(sums.objects()):
        m.load_state([tensors[f"sums/metric/{i}/{j}"].reshape(t.shape)
                      for j, t in enumerate(m.state())])
    return Position(pos["epoch"], pos["step"], sums, pos["global_step"])


def _check_optimizer_state(path, opt: torch.optim.Optimizer, state: dict) -> None:
    """Every per-parameter state tensor (Adam's moments, SGD's momentum) has its parameter's
    shape; a step count is one number. torch's load_state_dict does not check this, and a
    wrong shape would fail (or broadcast) in the middle of a step."""
    params = [p for g in opt.param_groups for p in g["params"]]
    bad = []
    for pid, entries in state.items():
        if not 0 <= pid < len(params):
            bad.append(f"state for parameter {pid}, of {len(params)}")
            continue
        for name, value in entries.items():
            if torch.is_tensor(value) and value.numel() != 1 and value.shape != params[pid].shape:
                bad.append(f"{name} of parameter {pid}: shape {tuple(value.shape)}, expected "
                           f"{tuple(params[pid].shape)}")
    if bad:
        raise RunError(f"{path} does not match the run's optimizer: {'; '.join(bad[:5])}. It "
                       "cannot be resumed.")


def _restore_callbacks(path, tensors, saved: dict, callbacks) -> None:
    keys = _keys(callbacks)
    unknown = sorted(set(saved) - set(keys))
    if unknown:
        raise RunError(f"{path} holds the state of callbacks {', '.join(unknown)}, which this "
                       "run does not have. Resume with the run's own config.")
    for key, cb in zip(keys, callbacks):
        if key in saved:
            state = dict(saved[key]["state"])
            state["arrays"] = [tensors[f"callbacks/{key}/{j}"].numpy()
                               for j in range(saved[key]["arrays"])]
            cb.set_state(state)


def _check_position(path, pos: Position, steps, batch_size) -> None:
    """The restored position must lie inside an epoch of this run: a step beyond the epoch's
    steps would skip the rest of the epoch silently, with a loss of zero. step == steps is a
    checkpoint taken after the epoch's last step, before its end (validation, logs) ran."""
    ok = steps is None or 0 <= pos.step <= steps
    if ok and batch_size:
        ok = 0 <= pos.sums.seen <= pos.step * batch_size
    if not ok:
        raise RunError(f"{path} does not match the run: its position (step {pos.step}, "
                       f"{pos.sums.seen} samples seen) lies outside an epoch of {steps} steps "
                       f"of {batch_size}. It cannot be resumed.")


def match_param_layouts(opt: torch.optim.Optimizer) -> None:
    """Give every per-parameter state tensor (Adam's moments) its parameter's memory layout.

    load_state_dict keeps the checkpoint's plain (contiguous) layout, but a Conv2D weight
    with several input channels is channels-last in memory, and torch's fused Adam pairs
    weights, gradients and moments element by element in memory order: left as loaded,
    each moment would update another weight (CPU) or the step would refuse to run (CUDA)."""
    for param, state in opt.state.items():
        for key, value in state.items():
            if (torch.is_tensor(value) and value.shape == param.shape
                    and value.stride() != param.stride()):
                state[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def where(pos: Position) -> str:
    """Position in words: "epoch 2, step 3" or, between epochs, "the end of epoch 1"."""
    if pos.step == 0 and pos.epoch > 0:
        return f"the end of epoch {pos.epoch}"
    return f"epoch {pos.epoch + 1}, step {pos.step}"


def weights_finite(net: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in net.state_dict().values()
               if t.is_floating_point())


class Checkpointer(Callback):
    """Saves a checkpoint when training starts, every `every_steps` steps, at every epoch
    end and when stopped by a signal; never one with NaN/inf weights or after a NaN loss,
    so the file on disk is always the last good state.

    `callbacks`: the run's other callbacks, whose states go into the checkpoint.
    """

    def __init__(self, path, every_steps: int = 0, extra=None, callbacks=()):
        super().__init__()
        self.path, self.every_steps, self.extra = Path(path), every_steps, extra
        self.callbacks = list(callbacks)
        self.saved = 0
        self._warned = False

    def save(self) -> bool:
        if self.trainer.stop_reason == "nan":
            return False  # keep the last good checkpoint
        if not weights_finite(self.trainer.net):
            if not self._warned:
                self._warned = True
                pos = self.trainer.position
                print(f"cnnlab: warning: the weights are NaN or infinite at {where(pos)}; "
                      f"keeping the last good checkpoint {self.path}.", file=sys.stderr)
            return False
        save_checkpoint(self.path, self.trainer, self.extra, self.callbacks)
        self.saved += 1
        return True

    def on_train_begin(self, logs=None):
        pos = self.trainer.position
        if pos.global_step == 0 and pos.epoch == 0 and not self.path.exists():
            self.save()  # a run killed in its first epoch can still resume

    def on_train_batch_end(self, batch, logs=None):
        if self.every_steps and self.trainer.position.global_step % self.every_steps == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.save()

    def on_train_end(self, logs=None):
        if self.trainer.stop_reason in ("SIGINT", "SIGTERM"):
            self.save()


class RestoreCheckpoint(Callback):
    """The first callback of a resumed `fit`: at train begin, loads the checkpoint (weights,
    optimizer, RNGs, position, history, and the states of `callbacks`, which they take at
    their own train begin), so the loop continues where the checkpoint was taken.

    `history`: the History callback of this fit, which continues the restored history.
    `then()`: runs once the checkpoint has loaded (a run's first write on resume).
    """

    def __init__(self, path, callbacks=(), history=None, then=None):
        super().__init__()
        self.path, self.callbacks, self.history, self.then = Path(path), list(callbacks), history, then

    def on_train_begin(self, logs=None):
        tr = self.trainer
        tr.position = restore_checkpoint(self.path, tr, self.callbacks)
        _check_position(self.path, tr.position, (self.params or {}).get("steps"),
                        getattr(tr, "batch_size", None))
        if self.history is not None:
            self.history.history.update(tr.history)
            tr.history = self.history.history
        if self.then is not None:
            self.then()
