"""Keras 2's HDF5 files: full models (`model.save("m.h5")` in tf.keras) and weights files.

    >>> model = load_h5_model("keras2_model.h5")       # model_config attribute + model_weights
    >>> save_h5_model(model, "m.h5")                   # as Keras 3's legacy model.save("m.h5")
    >>> load_weights_file(model, model.to_spec(), "w.h5")
    >>> write_weights_group(h5file, model, spec)       # what tf.keras's save_weights("w.h5") wrote

The layout (tf-keras, keras/src/saving/legacy/hdf5_format.py):

    attrs: model_config (JSON), keras_version, backend[, training_config]
    model_weights/                 attrs: layer_names, keras_version, backend
      <layer name>/                attrs: weight_names, e.g. [b"conv2d/kernel:0", b"conv2d/bias:0"]
        conv2d/kernel:0            one dataset per weight name

A weights file is the `model_weights` group at its root. Weights are matched to
the model's layers in order, counting only layers that have weights (as Keras 2
did). Only numeric datasets and string attributes are read.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

from ..errors import RunError, SpecError
from .graph_config import is_sequential
from .keras_config import vocab
from .keras_format import h5py, model_from_config
from .model_weights import entries, weights_tree

KERAS_VERSION = b"2.15.0"  # the tf.keras whose layout these files follow
WEIGHT_NAMES = {"Conv2D": ("kernel", "bias"), "Dense": ("kernel", "bias"),
                "Conv2DTranspose": ("kernel", "bias"),
                "DepthwiseConv2D": ("depthwise_kernel", "bias"),
                "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel", "bias")}


def _flat(content) -> list:
    """A layer's arrays; a nested model's arrays in its layers' order, as Keras 2 listed them."""
    if isinstance(content, tuple):
        return [a for _, _, x in content[0] for a in _flat(x)]
    return list(content)


def _weight_names(layer, name: str, content) -> list[str]:
    """Keras 2's weight names ("conv2d/kernel:0"); a nested model lists its layers' weights."""
    if isinstance(content, tuple):
        return [w for (_, n, l), (_, _, x) in zip(entries(layer.spec), content[0])
                for w in _weight_names(l, n, x)]
    if layer is None or not content:
        return []
    if layer.keras_name == "BatchNormalization":
        c = layer.config
        names = [w for w, on in (("gamma", c["scale"]), ("beta", c["center"])) if on]
        names += ["moving_mean", "moving_variance"]
    else:
        names = list(WEIGHT_NAMES.get(layer.keras_name, ()))[:len(content)]
    if len(names) != len(content):  # a layer without known names: numbered, still in order
        names = [f"weight_{i}" for i in range(len(content))]
    return [f"{name}/{w}:0" for w in names]


def write_weights_group(group, model, spec) -> None:
    group.attrs["backend"] = b"tensorflow"
    group.attrs["keras_version"] = KERAS_VERSION
    tree = weights_tree(model, spec)
    group.attrs["layer_names"] = np.array([n.encode() for _, n, _ in tree])
    for (_, name, layer), (_, _, content) in zip(entries(spec), tree):
        g = group.create_group(name)
        arrays = _flat(content)
        names = _weight_names(layer, name, content)
        g.attrs["weight_names"] = np.array([w.encode() for w in names], dtype="S")
        for w, a in zip(names, arrays):
            g.create_dataset(w, data=np.asarray(a, dtype=np.float32))


def _strings(attr) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.asarray(attr).ravel()]


def _read_layer(group, name: str, source: str) -> list[np.ndarray]:
    g = group.get(name)
    if g is None:
        raise RunError(f"{source}: no group for layer {name!r} listed in layer_names.")
    out = []
    for w in _strings(g.attrs.get("weight_names", [])):
        d = g.get(w)
        if not isinstance(d, h5py().Dataset) or d.dtype.kind not in "fiu":
            raise RunError(f"{source}: weight {w!r} of layer {name!r} is not a numeric array.")
        out.append(np.asarray(d[()], dtype=np.float32))
    return out


def load_weights_group(group, model, spec, source: str) -> None:
    """Keras 2's load_weights_from_hdf5_group: layers with weights, matched in order."""
    if "layer_names" not in group.attrs:
        raise RunError(f"{source} is not a Keras weights file (no `layer_names` attribute).")
    saved = [(n, _read_layer(group, n, source)) for n in _strings(group.attrs["layer_names"])]
    saved = [(n, a) for n, a in saved if a]
    tree = weights_tree(model, spec)
    ours = [(i, n, _flat(x)) for i, (_, n, x) in enumerate(tree) if _flat(x)]
    if len(saved) != len(ours):
        raise RunError(f"{source} holds weights for {len(saved)} layers; the model has "
                       f"{len(ours)} layers with weights.")
    new = list(tree)
    for (fname, arrays), (i, name, current) in zip(saved, ours):
        got, want = [a.shape for a in arrays], [a.shape for a in current]
        if got != want:
            raise RunError(f"{source}: layer {fname!r} holds weights of shapes {got}; model "
                           f"layer {name!r} expects {want}.")
        new[i] = (tree[i][0], name, _unflat(tree[i][2], arrays))
    from .model_weights import set_tree
    set_tree(model, new, spec)


def _unflat(content, arrays):
    if not isinstance(content, tuple):
        return list(arrays)
    out, k = [], 0
    for c, n, x in content[0]:
        size = len(_flat(x))
        out.append((c, n, _unflat(x, arrays[k:k + size])))
        k += size
    return (out,)


def load_weights_file(model, spec, path) -> None:
    try:
        with h5py().File(path, "r") as f:
            group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
            load_weights_group(group, model, spec, str(path))
    except OSError as err:
        raise RunError(f"Cannot read {path}: not a valid HDF5 file ({err}).") from None


def save_h5_model(model, path) -> None:
    """Keras 3's legacy `model.save("m.h5")`: the Keras 3 config in Keras 2's HDF5 layout."""
    import io

    from ..io import atomic_write
    from .compile_config import compile_to_keras
    from .graph_config import model_to_keras
    warnings.warn("You are saving your model as an HDF5 file via `model.save()`. This file "
                  "format is considered legacy. We recommend using instead the native Keras "
                  "format, e.g. `model.save('my_model.keras')`.", stacklevel=3)
    spec = model.to_spec()
    config = model_to_keras(spec)
    config.pop("compile_config")
    compile_config = compile_to_keras(model)
    buf = io.BytesIO()
    with h5py().File(buf, "w") as f:
        f.attrs["keras_version"] = vocab()["keras_version"]
        f.attrs["backend"] = "torch"
        f.attrs["model_config"] = json.dumps(config)
        if compile_config:
            f.attrs["training_config"] = json.dumps(
                {"loss": compile_config["loss"], "metrics": compile_config["metrics"],
                 "weighted_metrics": None, "loss_weights": None,
                 "optimizer_config": compile_config["optimizer"]})
        write_weights_group(f.create_group("model_weights"), model, spec)
    atomic_write(path, buf.getvalue())


def load_h5_model(path, compile: bool = True):
    """A model saved by Keras 2's (or Keras 3's legacy) `model.save("m.h5")`."""
    path = Path(path)
    if not path.is_file():
        raise RunError(f"File not found: filepath={path}.")
    try:
        with h5py().File(path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None:
                raise RunError(f"{path} holds no model (no `model_config` attribute): it is a "
                               "weights file. Build the model, then call load_weights.")
            config = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
            model, spec = model_from_config(config, legacy=True, source=str(path))
            if "model_weights" not in f:
                raise RunError(f"{path} has no `model_weights` group.")
            load_weights_group(f["model_weights"], model, spec, str(path))
            training = f.attrs.get("training_config")
    except OSError as err:
        raise RunError(f"Cannot read {path}: not a valid HDF5 file ({err}).") from None
    except json.JSONDecodeError as err:
        raise RunError(f"Cannot read {path}: its model_config is not valid JSON ({err}).") from None
    if compile and training is not None:
        from .compile_config import compile_from_keras
        try:
            tc = json.loads(training.decode() if isinstance(training, bytes) else str(training))
        except json.JSONDecodeError:
            tc = None
        if isinstance(tc, dict):
            compile_from_keras(model, {"optimizer": tc.get("optimizer_config"),
                                       "loss": tc.get("loss"), "metrics": tc.get("metrics")})
    return model


__all__ = ["load_h5_model", "save_h5_model", "load_weights_file", "write_weights_group",
           "SpecError"]
