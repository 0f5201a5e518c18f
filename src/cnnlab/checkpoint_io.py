"""Weights as safetensors: written atomically, read without unpickling anything.

    >>> save_weights(net, "runs/x/weights/final.safetensors")
    >>> load_weights(net, "runs/x/weights/final.safetensors")   # RunError if they do not fit

A weights file is data only: safetensors holds tensors and a string-to-string
header, nothing executable, so reading a user's file can run no code of theirs
(`torch.load` and pickle are never used). The bytes are serialized in memory
and written with `atomic_write`, so a full disk is a `DiskError` and the
previous file stays intact.
"""
from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from .errors import RunError
from .io import atomic_write


def state_tensors(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu() for k, v in net.state_dict().items()}


def save_tensors(path, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None) -> None:
    atomic_write(path, save(tensors, metadata=metadata))


def save_weights(net, path, metadata: dict[str, str] | None = None) -> None:
    save_tensors(path, state_tensors(net), metadata)


def _unreadable(path, what: str, err) -> RunError:
    return RunError(f"Cannot read {what} {path}: not a valid safetensors file ({err}).")


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise RunError(f"{what.capitalize()} file not found: {path}.")
    if not path.is_file():
        raise RunError(f"Cannot read {what} {path}: not a file.")


def read_tensors(path, what: str = "weights") -> dict[str, torch.Tensor]:
    path = Path(path)
    _check_file(path, what)
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as err:
        raise _unreadable(path, what, err) from None


def read_metadata(path, what: str = "weights") -> dict[str, str]:
    """The safetensors header's metadata (strings), without reading the tensors."""
    path = Path(path)
    _check_file(path, what)
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError) as err:
        raise _unreadable(path, what, err) from None


def load_state(net: torch.nn.Module, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy `tensors` into `net`; RunError listing every mismatch, before anything is copied."""
    own = net.state_dict()
    missing = sorted(set(own) - set(tensors))
    extra = sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors) if own[k].shape != tensors[k].shape)
    dtypes = sorted(k for k in set(own) & set(tensors)
                    if k not in wrong and own[k].dtype != tensors[k].dtype)
    if missing or extra or wrong or dtypes:
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing[:5])}")
        if extra:
            detail.append(f"unexpected {', '.join(extra[:5])}")
        for k in wrong[:5]:
            detail.append(f"{k}: expected shape {tuple(own[k].shape)}, received {tuple(tensors[k].shape)}")
        for k in dtypes[:5]:
            detail.append(f"{k}: expected dtype {str(own[k].dtype)[6:]}, received "
                          f"{str(tensors[k].dtype)[6:]}")
        raise RunError(f"The weights in {source} do not match the model spec: {'; '.join(detail)}.")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(tensors[k])


def load_weights(net, path) -> None:
    load_state(net, read_tensors(path), str(path))
