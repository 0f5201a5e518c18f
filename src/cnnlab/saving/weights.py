"""`save_weights` / `load_weights` by file name, never one format under another's name.

    >>> save_weights(model, "m.weights.h5")     # Keras 3's layout (keras: model.load_weights)
    >>> save_weights(model, "m.h5")             # Keras 2's layout (layer_names, weight_names)
    >>> save_weights(model, "m.safetensors")    # cnnlab's own (the run checkpoints' format)
    >>> load_weights(model, "m.keras")          # the weights inside a .keras file

Any other suffix is refused with Keras's message, so a name never lies about
what the file holds.
"""
from __future__ import annotations

import io
from pathlib import Path

from ..errors import RunError
from ..io import atomic_write

SUFFIXES = (".weights.h5", ".h5", ".hdf5", ".safetensors", ".keras")


def kind(path, saving: bool) -> str:
    name = str(path)
    if name.endswith(".weights.h5"):
        return "keras3"
    if name.endswith((".h5", ".hdf5")):
        return "keras2"
    if name.endswith(".safetensors"):
        return "safetensors"
    if name.endswith(".keras") and not saving:
        return "keras"
    if saving:
        raise RunError("The filename must end in `.weights.h5` (Keras 3's weights file), "
                       "`.h5` (Keras 2's) or `.safetensors` (cnnlab's). "
                       f"Received: filepath={path}")
    raise RunError(f"File format not supported: filepath={path}. cnnlab loads weights from "
                   "`.weights.h5`, legacy `.h5`, `.keras` and `.safetensors` files.")


def _refuse_existing(path, overwrite: bool) -> None:
    if not overwrite and Path(path).exists():
        raise RunError(f"{path} already exists and overwrite=False. Pass overwrite=True to "
                       "replace it.")


def save_weights(model, path, overwrite: bool = True) -> None:
    how = kind(path, saving=True)
    _refuse_existing(path, overwrite)
    if how == "safetensors":
        from ..checkpoint_io import save_weights as save_st
        save_st(model.net, path)
        return
    from .keras_format import h5py, weights_h5_bytes
    spec = model.to_spec()
    if how == "keras3":
        atomic_write(path, weights_h5_bytes(model, spec))
        return
    from .h5_legacy import write_weights_group
    buf = io.BytesIO()
    with h5py().File(buf, "w") as f:
        write_weights_group(f, model, spec)
    atomic_write(path, buf.getvalue())


def load_weights(model, path) -> None:
    how = kind(path, saving=False)
    if how == "safetensors":
        from ..checkpoint_io import load_weights as load_st
        load_st(model.net, path)
        return
    path = Path(path)
    if not path.is_file():
        raise RunError(f"Weights file not found: {path}.")
    from .keras_format import load_weights_h5_bytes, read_keras
    spec = model.to_spec()
    if how == "keras":
        load_weights_h5_bytes(model, spec, read_keras(path)[2], str(path))
    elif how == "keras3":
        load_weights_h5_bytes(model, spec, path.read_bytes(), str(path))
    else:
        from .h5_legacy import load_weights_file
        load_weights_file(model, spec, path)
