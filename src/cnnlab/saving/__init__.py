"""Model and weights files that Keras itself reads and writes.

    >>> cnnlab.saving.save_model(model, "m.keras")      # = model.save("m.keras")
    >>> model = cnnlab.saving.load_model("m.keras")     # Keras 3's .keras, Keras 2's .h5
    >>> model.save_weights("m.weights.h5")              # by suffix: see weights.py

- keras_format.py: the .keras zip (config.json, metadata.json, model.weights.h5)
- graph_config.py, keras_config.py: the model and layer configs in Keras's spelling
- weights_h5.py: Keras 3's HDF5 weights layout; h5_legacy.py: Keras 2's
- weights.py: save_weights/load_weights chosen by file name

No file is ever unpickled: configs are JSON mapped onto cnnlab's own layers, and
weights are numeric arrays. h5py is imported only when an HDF5 file is touched.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import RunError
from .weights import load_weights, save_weights

__all__ = ["save_model", "load_model", "save_weights", "load_weights"]


def save_model(model, filepath, overwrite: bool = True, **kwargs) -> None:
    """Keras's `model.save`: a `.keras` file (Keras 3's format), or legacy `.h5` with a warning."""
    kwargs.pop("include_optimizer", None)  # Keras accepts it; cnnlab stores no optimizer state
    if kwargs:
        raise RunError(f"The following argument(s) are not supported: {list(kwargs)}")
    name = str(filepath)
    if not overwrite and Path(name).exists():
        raise RunError(f"{name} already exists and overwrite=False. Pass overwrite=True to "
                       "replace it.")
    if name.endswith((".h5", ".hdf5")):
        from .h5_legacy import save_h5_model
        save_h5_model(model, filepath)
        return
    if not name.endswith(".keras"):
        raise RunError("Invalid filepath extension for saving. Please add either a `.keras` "
                       "extension for the native Keras format (recommended) or a `.h5` "
                       f"extension. Received: filepath={name}.")
    from .keras_format import save_keras
    save_keras(model, filepath)


def load_model(filepath, custom_objects=None, compile: bool = True, safe_mode: bool = True):
    """Keras's `load_model`: a `.keras` file, or a legacy Keras 2 `.h5` model file.

    `custom_objects` must be empty and `safe_mode` cannot be turned off: cnnlab
    builds only its own layers and never runs code from a file.
    """
    if custom_objects:
        raise RunError("custom_objects are not supported: cnnlab loads built-in Keras layers "
                       f"only. Received custom_objects with keys {sorted(custom_objects)}.")
    if safe_mode is False:
        raise RunError("safe_mode=False is not supported: cnnlab never deserializes code "
                       "(Lambda layers, custom objects) from a file.")
    name = str(filepath)
    if name.endswith(".keras"):
        from .keras_format import load_keras
        return load_keras(filepath, compile=compile)
    if name.endswith((".h5", ".hdf5")):
        from .h5_legacy import load_h5_model
        return load_h5_model(filepath, compile=compile)
    raise RunError(f"File format not supported: filepath={name}. cnnlab loads `.keras` files "
                   "(Keras 3) and legacy H5 files (`.h5` extension). For a cnnlab run "
                   "directory use cnnlab.load(RUN).")
