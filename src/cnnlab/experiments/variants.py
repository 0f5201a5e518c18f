"""Variants: small, readable changes to a base config, as pure functions on dicts.

A variant is a mapping of operations. Layers are addressed by their Keras name
in the model the variant starts from (`conv2d`, `max_pooling2d`, `conv2d_1`,
..., as `cnnlab summary` prints them) or by their index there (0 = first
layer, -1 = last), so operations never depend on each other's renumbering.

    >>> base = RunConfig.from_dict({}).to_dict()           # the lecture's config
    >>> cfg = apply_variant(base, {"insert": {"after": "flatten",
    ...                                       "layer": {"Dropout": {"rate": 0.25}}}})
    >>> describe({"set": {"dense": {"units": 128}}})
    'dense: units=128'

Operations, applied in this order whatever order the YAML gives them:

    model:            a whole new model spec (the variant starts from it)
    set:              {LAYER: {arg: value, ...}, ...}
    set_all:          {arg: value}: every layer that takes `arg`;
                      {arg: {from: A, to: B}}: only layers where arg == A
    replace:          {LAYER: NEW_LAYER, ...}
    pool_to_stride:   true (every pooling layer) or [LAYER, ...]: remove the pooling
                      layer and give the Conv2D before it the pooling's strides
    remove:           LAYER or [LAYER, ...]
    insert:           {after: LAYER, layer: NEW_LAYER} (or before:, layers: [...]), or a list
    batchnorm_after:  LAYER or [LAYER, ...]: a BatchNormalization right after each
    train:            train settings to change; an optimizer without `name` changes
                      only the given arguments of the base's optimizer
    data:             data settings to change
    description:      plain words for the report (default: generated from the operations)
"""
from __future__ import annotations

import copy
import re

from ..errors import ConfigError, SpecError
from ..spec import ModelSpec, parse_layer

LAYER_OPS = ("model", "set", "set_all", "replace", "pool_to_stride", "remove", "insert",
             "batchnorm_after")
VARIANT_KEYS = (*LAYER_OPS, "train", "data", "description")
POOLING = ("MaxPooling2D", "AveragePooling2D")
# layers that keep the spatial shape, allowed between a Conv2D and the pooling it absorbs
_SHAPE_KEEPING = ("BatchNormalization", "Activation", "Dropout")


class _Slot:
    """One layer of the starting model, and what the variant puts around it."""

    def __init__(self, name: str, kind: str, args: dict):
        self.name, self.kind, self.args = name, kind, args
        self.removed = False
        self.before: list[dict] = []
        self.after: list[dict] = []

    def entry(self) -> dict:
        return {self.kind: self.args}


def _slots(model: dict) -> list[_Slot]:
    spec = ModelSpec.from_dict(model)
    out = []
    for name, entry in zip(spec.layer_names, spec.to_dict()["layers"]):
        (kind, args), = entry.items()
        out.append(_Slot(name, kind, dict(args)))
    return out


def _find(slots: list[_Slot], ref, op: str) -> _Slot:
    if isinstance(ref, int) and not isinstance(ref, bool):
        if not -len(slots) <= ref < len(slots):
            raise ConfigError(f"`{op}`: layer index {ref} is out of range. Expected an index "
                              f"from 0 to {len(slots) - 1} (or negative, from the end).")
        slot = slots[ref]
    elif isinstance(ref, str):
        match = [s for s in slots if s.name == ref]
        if not match:
            raise ConfigError(f"`{op}`: unknown layer {ref!r}. Expected one of: "
                              f"{', '.join(s.name for s in slots)}.")
        slot = match[0]
    else:
        raise ConfigError(f"`{op}`: expected a layer name or index. Received {ref!r}.")
    if slot.removed:
        raise ConfigError(f"`{op}`: layer {slot.name!r} is removed by this variant.")
    return slot


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _layer_entry(value, op: str) -> dict:
    """A new layer as YAML gives it, checked (`{Dropout: {rate: 0.25}}`, `Flatten`)."""
    try:
        layer = parse_layer(value, 0)
    except SpecError as err:
        message = re.sub(r"^Layer 0 \((\w+)\): ", r"\1: ", str(err))
        raise ConfigError(f"`{op}`: {message}") from None
    return {layer.keras_name: layer.get_config()}


def _mapping(value, op: str, expected: str) -> dict:
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"`{op}`: expected {expected}. Received {value!r}.")
    return value


# -- the operations ------------------------------------------------------------------

def _set(slots, value):
    for ref, args in _mapping(value, "set", "a mapping {LAYER: {argument: value}}").items():
        slot = _find(slots, ref, "set")
        slot.args.update(_mapping(args, f"set.{ref}", "a mapping {argument: value}"))


def _takes(kind: str, arg: str) -> bool:
    from .. import layers
    return arg in layers.get(kind).ARGS


def _set_all(slots, value):
    for arg, v in _mapping(value, "set_all", "a mapping {argument: value}").items():
        live = [s for s in slots if not s.removed and _takes(s.kind, arg)]
        if isinstance(v, dict) and set(v) == {"from", "to"}:
            default = _default(live, arg)
            live = [s for s in live if s.args.get(arg, default.get(s.kind)) == v["from"]]
            v = v["to"]
        if not live:
            raise ConfigError(f"`set_all.{arg}`: no layer of the model matches.")
        for s in live:
            s.args[arg] = copy.deepcopy(v)


def _default(slots, arg) -> dict:
    from .. import layers
    return {s.kind: layers.get(s.kind).ARGS[arg] for s in slots}


def _replace(slots, value):
    for ref, layer in _mapping(value, "replace", "a mapping {LAYER: NEW_LAYER}").items():
        slot = _find(slots, ref, "replace")
        (slot.kind, slot.args), = _layer_entry(layer, f"replace.{ref}").items()


def _pool_to_stride(slots, value):
    if value is True:
        targets = [s for s in slots if s.kind in POOLING and not s.removed]
        if not targets:
            raise ConfigError("`pool_to_stride`: the model has no pooling layer.")
    elif value is False or value is None:
        return
    else:
        targets = [_find(slots, ref, "pool_to_stride") for ref in _as_list(value)]
    for pool in targets:
        if pool.kind not in POOLING:
            raise ConfigError(f"`pool_to_stride`: layer {pool.name!r} is a {pool.kind}. "
                              f"Expected a pooling layer ({', '.join(POOLING)}).")
        i = slots.index(pool) - 1
        while i >= 0 and (slots[i].removed or slots[i].kind in _SHAPE_KEEPING):
            i -= 1
        if i < 0 or slots[i].kind != "Conv2D":
            raise ConfigError(f"`pool_to_stride`: no Conv2D before {pool.name!r} to take its "
                              "strides.")
        conv = slots[i]
        if conv.args.get("strides", [1, 1]) not in (1, [1, 1], (1, 1)):
            raise ConfigError(f"`pool_to_stride`: {conv.name!r} already has strides "
                              f"{conv.args['strides']}. Expected strides 1.")
        pool_size = pool.args.get("pool_size", [2, 2])
        conv.args["strides"] = pool.args.get("strides") or pool_size
        pool.removed = True


def _remove(slots, value):
    for ref in _as_list(value):
        _find(slots, ref, "remove").removed = True


def _insert(slots, value):
    for item in _as_list(value):
        item = _mapping(item, "insert", "{after: LAYER, layer: NEW_LAYER} or {before: ...}")
        where = [k for k in ("after", "before") if k in item]
        new = [k for k in ("layer", "layers") if k in item]
        extra = sorted(set(item) - {"after", "before", "layer", "layers"})
        if len(where) != 1 or len(new) != 1 or extra:
            raise ConfigError("`insert`: expected {after: LAYER, layer: NEW_LAYER} (or before:, "
                              f"layers: [...]). Received {item!r}.")
        slot = _find(slots, item[where[0]], "insert")
        entries = [_layer_entry(x, "insert") for x in _as_list(item[new[0]])]
        getattr(slot, where[0]).extend(entries)


def _batchnorm_after(slots, value):
    for ref in _as_list(value):
        slot = _find(slots, ref, "batchnorm_after")
        slot.after.insert(0, {"BatchNormalization": {}})


_OPS = {"set": _set, "set_all": _set_all, "replace": _replace, "pool_to_stride": _pool_to_stride,
        "remove": _remove, "insert": _insert, "batchnorm_after": _batchnorm_after}


def apply_layer_ops(model: dict, ops: dict) -> dict:
    """The model spec dict after the variant's layer operations."""
    slots = _slots(model)
    for key in LAYER_OPS[1:]:
        if key in ops:
            _OPS[key](slots, ops[key])
    layers = []
    for s in slots:
        layers += s.before + ([] if s.removed else [s.entry()]) + s.after
    out = {"input_shape": model.get("input_shape") or list(ModelSpec.from_dict(model).input_shape),
           "layers": layers}
    if model.get("name"):
        out["name"] = model["name"]
    return out


def _merge_train(base: dict, change: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in change.items():
        if key == "optimizer" and isinstance(value, dict) and "name" not in value:
            current = out.get("optimizer", "adam")
            current = {"name": current} if isinstance(current, str) else dict(current)
            out["optimizer"] = {**current, **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_variant(ops) -> dict:
    if ops is None:
        return {}
    if not isinstance(ops, dict):
        raise ConfigError("Expected a mapping of changes such as {set: {dense: {units: 128}}}. "
                          f"Received {ops!r}.")
    unknown = sorted(set(ops) - set(VARIANT_KEYS))
    if unknown:
        raise ConfigError(f"Unknown change `{unknown[0]}`. Expected one of: "
                          f"{', '.join(VARIANT_KEYS)}.")
    for key in ("train", "data"):
        if key in ops and not isinstance(ops[key], dict):
            raise ConfigError(f"`{key}`: expected a mapping. Received {ops[key]!r}.")
    return ops


def apply_variant(base: dict, ops) -> dict:
    """The config dict (model/data/train) of a variant of `base` (a RunConfig dict)."""
    ops = check_variant(ops)
    model = copy.deepcopy(ops.get("model") or base["model"])
    if any(k in ops for k in LAYER_OPS[1:]):
        try:
            model = apply_layer_ops(model, ops)
        except SpecError as err:
            raise ConfigError(f"The model to change is invalid: {err}") from None
    return {"model": model,
            "data": {**base.get("data", {}), **ops.get("data", {})},
            "train": _merge_train(base.get("train", {}), ops.get("train", {}))}


# -- plain words ------------------------------------------------------------------------

def _args_text(args: dict) -> str:
    return ", ".join(f"{k}={_value_text(v)}" for k, v in args.items())


def _value_text(v) -> str:
    if isinstance(v, dict) and len(v) == 1:
        (k, inner), = v.items()
        inner_text = _args_text(inner) if isinstance(inner, dict) else _value_text(inner)
        return f"{k}({inner_text})"
    if isinstance(v, dict):
        return "{" + _args_text(v) + "}"
    if isinstance(v, (list, tuple)):
        return "x".join(str(x) for x in v) if all(isinstance(x, int) for x in v) else str(list(v))
    return str(v)


def _layer_text(entry) -> str:
    if isinstance(entry, str):
        return entry
    (kind, args), = entry.items()
    return f"{kind}({_args_text(args or {})})" if args else kind


def _optimizer_text(v) -> str:
    if isinstance(v, dict) and v.get("name"):
        args = {a: x for a, x in v.items() if a != "name"}
        return f"optimizer {v['name']}" + (f"({_args_text(args)})" if args else "")
    return f"optimizer {_args_text(v)}" if isinstance(v, dict) else f"optimizer {v}"


def describe(ops) -> str:
    """Generated plain words for a variant's changes (its `description` wins)."""
    ops = ops or {}
    if ops.get("description"):
        return str(ops["description"])
    parts = []
    if ops.get("model"):
        kinds = [_layer_text(e).split("(")[0] for e in ops["model"].get("layers", [])]
        parts.append(f"model replaced: {' > '.join(kinds)}")
    for ref, args in (ops.get("set") or {}).items():
        parts.append(f"{ref}: {_args_text(args)}")
    for arg, v in (ops.get("set_all") or {}).items():
        if isinstance(v, dict) and set(v) == {"from", "to"}:
            parts.append(f"{arg} {v['from']} -> {v['to']}")
        else:
            parts.append(f"{arg}={_value_text(v)} on every layer")
    for ref, layer in (ops.get("replace") or {}).items():
        parts.append(f"{ref} -> {_layer_text(layer)}")
    pts = ops.get("pool_to_stride")
    if pts:
        which = "every pooling layer" if pts is True else ", ".join(map(str, _as_list(pts)))
        parts.append(f"strided Conv2D instead of {which}")
    if ops.get("remove") is not None:
        parts.append("removed " + ", ".join(map(str, _as_list(ops["remove"]))))
    for item in _as_list(ops.get("insert") or []):
        if isinstance(item, dict):
            where = "after" if "after" in item else "before"
            new = ", ".join(_layer_text(x) for x in _as_list(item.get("layer", item.get("layers"))))
            parts.append(f"{new} {where} {item.get(where)}")
    if ops.get("batchnorm_after") is not None:
        names = ", ".join(map(str, _as_list(ops["batchnorm_after"])))
        parts.append(f"BatchNormalization after {names}")
    for section in ("train", "data"):
        for k, v in (ops.get(section) or {}).items():
            parts.append(_optimizer_text(v) if k == "optimizer" else f"{k}={_value_text(v)}")
    return "; ".join(parts) or "no change"
