"""Keras 3's `.keras` file: a zip of config.json, metadata.json and model.weights.h5.

    >>> save_keras(model, "m.keras")      # opens in keras.models.load_model
    >>> model = load_keras("m.keras")     # a file saved by Keras 3 (or by cnnlab)

Reading is data only: zip members are read with size bounds, the config is
JSON mapped onto cnnlab's own layer vocabulary (keras_config.py refuses Lambda
layers and custom objects), and the weights are numeric HDF5 datasets.
"""
from __future__ import annotations

import datetime
import io
import json
import zipfile
from pathlib import Path

from ..errors import RunError, SpecError
from ..io import atomic_write
from .compile_config import compile_to_keras
from .graph_config import model_to_keras, spec_dict_from_keras
from .keras_config import vocab
from .model_weights import set_tree, shapes_tree, weights_tree
from .weights_h5 import read_tree, write_tree

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
MAX_JSON_BYTES = 64 << 20      # a config larger than 64 MiB is not a CNN config
MAX_WEIGHTS_BYTES = 8 << 30    # 8 GiB: far beyond any model cnnlab builds


def h5py():
    try:
        import h5py as module
    except ImportError:  # pragma: no cover - h5py is a dependency
        raise RunError("Reading and writing .keras and .h5 files needs the h5py package "
                       "(pip install h5py).") from None
    return module


def weights_h5_bytes(model, spec) -> bytes:
    buf = io.BytesIO()
    with h5py().File(buf, "w") as f:
        write_tree(f, weights_tree(model, spec), spec.name)
    return buf.getvalue()


def save_keras(model, path) -> None:
    spec = model.to_spec()
    config = model_to_keras(spec)
    config["compile_config"] = compile_to_keras(model)  # Keras compiles the model it loads
    metadata = {"keras_version": vocab()["keras_version"],
                "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:  # Keras stores the members uncompressed too
        z.writestr(METADATA, json.dumps(metadata))
        z.writestr(CONFIG, json.dumps(config))
        z.writestr(WEIGHTS, weights_h5_bytes(model, spec))
    atomic_write(path, buf.getvalue())


def _member(z: zipfile.ZipFile, name: str, limit: int, path) -> bytes:
    try:
        info = z.getinfo(name)
    except KeyError:
        raise RunError(f"Cannot read {path}: not a valid .keras file (the zip has no "
                       f"{name}).") from None
    if info.file_size > limit:
        raise RunError(f"Cannot read {path}: {name} is {info.file_size} bytes, more than the "
                       f"{limit} allowed.")
    with z.open(info) as f:
        data = f.read(limit + 1)  # the header's size may lie; the read may not
    if len(data) > limit:
        raise RunError(f"Cannot read {path}: {name} is larger than the {limit} bytes allowed.")
    return data


def _json(data: bytes, name: str, path):
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"Cannot read {path}: {name} is not valid JSON ({err}).") from None


def read_keras(path) -> tuple[dict, dict, bytes]:
    """(config, metadata, weights bytes) of a .keras file, each checked."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"File not found: filepath={path}. Please ensure the file is an "
                       "accessible `.keras` zip file.")
    try:
        with zipfile.ZipFile(path) as z:
            config = _json(_member(z, CONFIG, MAX_JSON_BYTES, path), CONFIG, path)
            metadata = _json(_member(z, METADATA, MAX_JSON_BYTES, path), METADATA, path)
            weights = _member(z, WEIGHTS, MAX_WEIGHTS_BYTES, path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as err:
        raise RunError(f"Cannot read {path}: not a valid .keras file (a zip archive): "
                       f"{err}.") from None
    if not isinstance(config, dict):
        raise RunError(f"Cannot read {path}: {CONFIG} must hold a JSON object.")
    return config, metadata, weights


def model_from_spec(spec):
    from ..models import Model
    return Model.from_spec(spec)  # a Sequential for a sequential spec


def model_from_config(config: dict, legacy: bool = False, source: str = "the file"):
    from ..spec import ModelSpec
    try:
        spec = ModelSpec.from_dict(spec_dict_from_keras(config, legacy))
    except SpecError as err:
        raise SpecError(f"Cannot load the model in {source}: {err}") from None
    model = model_from_spec(spec)
    return model, model.to_spec()


def load_weights_h5_bytes(model, spec, data, source: str) -> None:
    try:
        with h5py().File(io.BytesIO(data), "r") as f:
            tree = read_tree(f, shapes_tree(weights_tree(model, spec)), source)
    except OSError as err:
        raise RunError(f"Cannot read the weights in {source}: not a valid HDF5 file "
                       f"({err}).") from None
    set_tree(model, tree, spec)


def load_keras(path, compile: bool = True):
    config, _metadata, weights = read_keras(path)
    model, spec = model_from_config(config, source=str(path))
    load_weights_h5_bytes(model, spec, weights, str(path))
    if compile:
        from .compile_config import compile_from_keras
        compile_from_keras(model, config.get("compile_config"))
    return model
