"""Weights as safetensors: written atomically, read without unpickling anything.

    >>> save_weights(net, "runs/x/weights/final.safetensors")
    >>> load_weights(net, "runs/x/weights/final.safetensors")   # RunError if they do not fit
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import RunError
from .io import atomic_path


def state_tensors(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}


def save_weights(net, path, metadata: dict[str, str] | None = None) -> None:
    with atomic_path(path) as tmp:
        save_file(state_tensors(net), str(tmp), metadata=metadata)


def read_tensors(path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise RunError(f"Weights file not found: {path}.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise RunError(f"Cannot read weights {path}: not a valid safetensors file ({err}).") from None


def load_state(net: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    own = net.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    if missing or extra or wrong:
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing[:5])}")
        if extra:
            detail.append(f"unexpected {', '.join(extra[:5])}")
        for k in wrong[:5]:
            detail.append(f"{k}: expected shape {tuple(own[k].shape)}, received {tuple(tensors[k].shape)}")
        raise RunError(f"The weights in {source} do not match the model spec: {'; '.join(detail)}.")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(tensors[k])


def load_weights(net, path) -> None:
    load_state(net, read_tensors(path), str(path))
