"""One layer's config in Keras's spelling, both ways: cnnlab Layer <-> Keras `get_config()` dict.

    >>> entry = layer_to_keras(Conv2D(8, 3), "conv2d", input_shape=(28, 28, 1))
    >>> entry["config"]["kernel_initializer"]["class_name"]     # 'GlorotUniform'
    >>> layer_from_keras(entry, legacy=False)                    # -> Conv2D(filters=8, ...)

Keras writes every argument with its default; `keras_vocab.json` (made once from
real Keras by scripts/make_keras_vocab.py) holds those defaults, so the writer
starts from Keras's own config and the reader accepts a key cnnlab has no
argument for only when it holds Keras's default. Anything else (a Lambda, a
custom object, an unsupported layer or setting) is refused by name: a loaded file
never makes cnnlab run code it does not already have.
"""
from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path

from ..errors import SpecError

_VOCAB_FILE = Path(__file__).with_name("keras_vocab.json")
# Keras's safe_mode message, reworded for cnnlab (which never deserializes code)
_UNSAFE = ("Requested the deserialization of a {what}, which is arbitrary code that cnnlab "
           "will not run (Keras refuses it too in safe_mode). Rebuild the layer from built-in "
           "layers, or load the weights alone with load_weights.")


@functools.lru_cache(maxsize=1)
def vocab() -> dict:
    return json.loads(_VOCAB_FILE.read_text(encoding="utf-8"))


def to_snake_case(name: str) -> str:
    """Keras's naming.to_snake_case: the h5 group name of a layer of class `name`."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def batch_shape(shape) -> list:
    return [None, *shape]


# -- cnnlab -> Keras ------------------------------------------------------------

def _plain(v):
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v


def _regularizer_to_keras(reg) -> dict | None:
    if reg is None:
        return None
    kind = "l1_l2" if reg.l1 and reg.l2 else ("l1" if reg.l1 else "l2")
    entry = copy.deepcopy(vocab()["regularizers"][kind])
    entry["config"] = {k: getattr(reg, k) for k in entry["config"]}
    return entry


def value_to_keras(key: str, value):
    if key.endswith("_initializer") and isinstance(value, str):
        return copy.deepcopy(vocab()["initializers"][value])
    if key.endswith("_regularizer"):
        return _regularizer_to_keras(value)
    if key == "activation" and value is None:
        return "linear"
    return _plain(value)


def layer_to_keras(layer, name: str, input_shape) -> dict:
    """The `{"module", "class_name", "config", ...}` entry Keras writes for this layer.

    `input_shape` is the Keras shape without batch axis, or a list of them (merge layers).
    """
    defaults = vocab()["layers"].get(layer.keras_name)
    if defaults is None:
        raise SpecError(f"Layer {name!r} ({layer.keras_name}) cannot be written as a .keras "
                        f"file: Keras 3 has no layer called {layer.keras_name!r}.")
    config = {"name": name, **copy.deepcopy(defaults)}
    if "trainable" in config:  # not every Keras layer writes it (SpatialDropout2D does not)
        config["trainable"] = bool(getattr(layer, "trainable", True))
    for key, value in layer.config.items():
        config[key] = value_to_keras(key, value)
    entry = {"module": "keras.layers", "class_name": layer.keras_name, "config": config,
             "registered_name": None}
    if layer.keras_name in vocab()["build_config_layers"]:
        multi = input_shape and isinstance(input_shape[0], (tuple, list))
        shape = [batch_shape(s) for s in input_shape] if multi else batch_shape(input_shape)
        entry["build_config"] = {"input_shape": shape}
    return entry


def input_layer_to_keras(name: str, shape) -> dict:
    return {"module": "keras.layers", "class_name": "InputLayer",
            "config": {"batch_shape": batch_shape(shape), "dtype": "float32", "sparse": False,
                       "ragged": False, "name": name, "optional": False},
            "registered_name": None}


# -- Keras -> cnnlab ------------------------------------------------------------

def check_safe(entry, where: str) -> None:
    """Refuse Lambda layers and any object outside Keras's built-in vocabulary."""
    if not isinstance(entry, dict):
        return
    cls = entry.get("class_name")
    if cls in ("Lambda", "TFOpLambda", "SlicingOpLambda"):
        raise SpecError(f"{where}: " + _UNSAFE.format(what="`Lambda` layer"))
    if cls in ("__lambda__", "function"):
        raise SpecError(f"{where}: " + _UNSAFE.format(what="Python function"))
    module = entry.get("module")
    registered = entry.get("registered_name")
    custom = (registered not in (None, cls, "Functional")
              or (module is not None and not str(module).startswith("keras")))
    if custom:
        raise SpecError(f"{where}: the file uses the custom object {registered or cls!r} "
                        f"(module {module!r}), which is not part of Keras's built-in "
                        "vocabulary. cnnlab loads built-in Keras layers only; custom objects "
                        "are code, and a loaded file never runs code.")


def _initializer_from_keras(value, where: str, key: str) -> str:
    if isinstance(value, str):
        value = {"class_name": value, "config": {}}
    check_safe(value, where)
    cls = value.get("class_name") if isinstance(value, dict) else None
    for name, known in vocab()["initializers"].items():
        if known["class_name"] == cls or name == cls:
            extra = {k: v for k, v in (value.get("config") or {}).items()
                     if k != "seed" and known["config"].get(k) != v}
            if not extra:  # the seed only matters for a fresh init; the file's weights win
                return name
    raise SpecError(f"{where}: unsupported `{key}` {_short(value)}. cnnlab supports the "
                    f"initializers {', '.join(vocab()['initializers'])} with default settings.")


def _regularizer_from_keras(value, where: str, key: str):
    if value is None:
        return None
    check_safe(value, where)
    cls = value.get("class_name") if isinstance(value, dict) else value
    cfg = value.get("config") or {} if isinstance(value, dict) else {}
    if cls in ("L1", "L2", "L1L2", "l1", "l2", "l1_l2") and set(cfg) <= {"l1", "l2"}:
        factors = {k: float(v) for k, v in cfg.items() if v}
        return factors or None
    raise SpecError(f"{where}: unsupported `{key}` {_short(value)}. cnnlab supports the L1, "
                    "L2 and L1L2 regularizers.")


def value_from_keras(key: str, value, where: str):
    if key.endswith("_initializer"):
        return _initializer_from_keras(value, where, key)
    if key.endswith("_regularizer"):
        return _regularizer_from_keras(value, where, key)
    if key == "activation":
        if not isinstance(value, str):
            check_safe(value, where)
            raise SpecError(f"{where}: unsupported activation {_short(value)}. Expected the "
                            "name of a built-in activation.")
        return None if value == "linear" else value
    return value


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 120 else text[:117] + "..."


# Keys Keras 2 wrote that carry no setting cnnlab could honour or must refuse.
_LEGACY_IGNORED = {"batch_input_shape", "dtype", "trainable", "name"}


def _legacy_bn_axis(value):
    """Keras 2 saved BatchNormalization's built axis ([3] for channels-last images, [1] for
    flat features): both are the last axis, cnnlab's -1. Other axes stay, and are refused."""
    axis = value[0] if isinstance(value, list) and len(value) == 1 else value
    return -1 if axis in (1, 3) else value


def _check_dtype(value, where: str) -> None:
    name = value
    if isinstance(value, dict):
        check_safe(value, where)
        name = (value.get("config") or {}).get("name")
    if name not in (None, "float32"):
        raise SpecError(f"{where}: unsupported dtype policy {name!r}. cnnlab computes in "
                        "float32 only.")


def layer_from_keras(entry: dict, legacy: bool = False):
    """A cnnlab Layer from one Keras layer entry (Keras 3, or Keras 2 when `legacy`)."""
    from .. import layers as registry
    if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
        raise SpecError(f"Invalid layer entry in the model config: {_short(entry)}.")
    cls_name = entry.get("class_name")
    config = entry["config"]
    name = config.get("name")
    where = f"Layer {name!r} ({cls_name})"
    check_safe(entry, where)
    if cls_name not in registry.LAYERS or cls_name == "Input":
        supported = ", ".join(sorted(set(registry.LAYERS) - {"Input"}))
        raise SpecError(f"{where} is not supported by cnnlab. Supported layers: {supported}.")
    cls = registry.LAYERS[cls_name]
    defaults = vocab()["layers"].get(cls_name, {})
    _check_dtype(config.get("dtype"), where)
    args = {}
    for key, value in config.items():
        if key in ("name", "trainable", "dtype"):
            continue
        if legacy and key == "axis" and cls_name == "BatchNormalization":
            value = _legacy_bn_axis(value)
        if key in cls.ARGS:
            args[key] = value_from_keras(key, value, where)
        elif legacy and (key in _LEGACY_IGNORED or value is None):
            continue
        elif key not in defaults or not _is_default(key, value, defaults[key], where):
            hint = f" (only Keras's default {json.dumps(defaults[key])})" if key in defaults else ""
            raise SpecError(f"{where}: cnnlab does not support `{key}={json.dumps(value)}`{hint}.")
    layer = _minimal_layer(cls, args, name, where)
    if config.get("trainable") is False:
        layer.trainable = False
    return layer


def _is_default(key: str, value, default, where: str) -> bool:
    """Keras's default, also when spelled the Keras 2 way ({"class_name": "Zeros"} alone)."""
    if key.endswith("_initializer") and value is not None and default is not None:
        return _initializer_from_keras(value, where, key) == _initializer_from_keras(
            default, where, key)
    return _plain(value) == default


def _minimal_layer(cls, args: dict, name, where: str):
    """The layer with only the arguments that differ from cnnlab's defaults (a short spec)."""
    from ..layers.base import REQUIRED
    try:
        full = cls(**args)
        required = {k: args[k] for k, d in cls.ARGS.items() if d is REQUIRED}
        base = cls(**required)
        given = {k: v for k, v in args.items() if k in required or full.config[k] != base.config[k]}
        return cls(**given, name=name)
    except SpecError as err:
        raise SpecError(f"{where}: {err}") from None
