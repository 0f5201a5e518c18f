"""Crash-safe checkpoints: everything needed to resume a run bit for bit.

One safetensors file holds the model, the optimizer's tensors and the RNG
states; its metadata holds the rest as JSON (position in the data, running
sums, history, optimizer hyperparameters). It is written atomically, so a kill
at any instant leaves the previous checkpoint intact and loadable.

    >>> save_checkpoint(path, trainer)
    >>> restore_checkpoint(path, trainer)   # -> Position to pass to Trainer.fit
"""
from __future__ import annotations

import json
import random

import numpy as np
import torch
from safetensors.torch import save_file

from ..checkpoint_io import load_state, read_tensors
from ..errors import RunError
from ..io import atomic_path
from .callbacks import Callback
from .loop import EpochSums, Position

FORMAT = "cnnlab-checkpoint-1"


def _optimizer_parts(opt: torch.optim.Optimizer):
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optim/{pid}/{key}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{pid}/{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _rng_parts():
    np_state = np.random.get_state()
    py_state = random.getstate()
    tensors = {"rng/torch": torch.get_rng_state(),
               "rng/numpy_keys": torch.from_numpy(np_state[1].astype(np.int64))}
    meta = {"numpy": [np_state[0], int(np_state[2]), int(np_state[3]), float(np_state[4])],
            "python": [py_state[0], list(py_state[1]), py_state[2]]}
    return tensors, meta


def save_checkpoint(path, trainer, extra: dict | None = None) -> None:
    pos: Position = trainer.position
    tensors = {f"model/{k}": v.detach().contiguous().cpu()
               for k, v in trainer.net.state_dict().items()}
    opt_tensors, opt_meta = _optimizer_parts(trainer.optimizer)
    rng_tensors, rng_meta = _rng_parts()
    tensors.update(opt_tensors)
    tensors.update(rng_tensors)
    tensors["sums/loss"] = pos.sums.loss.reshape(1).to(torch.float64).cpu()
    tensors["sums/correct"] = pos.sums.correct.reshape(1).to(torch.float64).cpu()
    meta = {"format": FORMAT,
            "position": {"epoch": pos.epoch, "step": pos.step, "seen": pos.sums.seen,
                         "global_step": pos.global_step},
            "seed": trainer.seed, "epochs": trainer.epochs, "batch_size": trainer.batch_size,
            "history": trainer.history, "optimizer": opt_meta, "rng": rng_meta,
            "extra": extra or {}}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"cnnlab": json.dumps(meta)})


def read_checkpoint(path) -> tuple[dict, dict]:
    from safetensors import safe_open
    tensors = read_tensors(path)
    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get("cnnlab")
    try:
        meta = json.loads(raw)
        assert meta["format"] == FORMAT
    except Exception:
        raise RunError(f"{path} is not a cnnlab checkpoint.") from None
    return tensors, meta


def restore_checkpoint(path, trainer) -> Position:
    tensors, meta = read_checkpoint(path)
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
    trainer.optimizer.load_state_dict({"state": state, "param_groups": opt["param_groups"]})
    torch.set_rng_state(tensors["rng/torch"])
    n = meta["rng"]["numpy"]
    np.random.set_state((n[0], tensors["rng/numpy_keys"].numpy().astype(np.uint32), n[1], n[2], n[3]))
    p = meta["rng"]["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    trainer.history = meta["history"]
    pos = meta["position"]
    sums = EpochSums(tensors["sums/loss"][0].clone(), tensors["sums/correct"][0].clone(), pos["seen"])
    return Position(pos["epoch"], pos["step"], sums, pos["global_step"])


class Checkpointer(Callback):
    """Saves a checkpoint at every epoch end, every `every_steps` steps, and when stopped."""

    def __init__(self, path, every_steps: int = 0, extra=None):
        super().__init__()
        self.path, self.every_steps, self.extra = path, every_steps, extra

    def save(self):
        save_checkpoint(self.path, self.trainer, self.extra)

    def on_train_batch_end(self, batch, logs=None):
        if self.trainer.stop_reason == "nan":
            return  # keep the last good checkpoint
        if self.every_steps and self.trainer.position.global_step % self.every_steps == 0:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        if self.trainer.stop_reason != "nan":
            self.save()

    def on_train_end(self, logs=None):
        if self.trainer.stop_reason in ("SIGINT", "SIGTERM"):
            self.save()
