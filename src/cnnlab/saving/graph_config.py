"""A cnnlab ModelSpec as Keras 3's model config (Sequential or Functional), and back.

    >>> config = model_to_keras(spec)                 # the dict Keras writes as config.json
    >>> spec_dict = spec_dict_from_keras(config)      # cnnlab's YAML form -> ModelSpec.from_dict

`keras_layer_order(spec)` is Keras's own `model.layers` order for a graph (the
spec's `keras_order`, Keras's map_graph); the weights file names each layer's
group by its place in that order.
"""
from __future__ import annotations

from ..errors import SpecError
from .keras_config import (batch_shape, check_safe, input_layer_to_keras, layer_from_keras,
                           layer_to_keras, vocab)

NESTED = ("Sequential", "Functional")


def is_sequential(spec) -> bool:
    return getattr(spec, "is_sequential", True)


def is_model_layer(layer) -> bool:
    return getattr(layer, "keras_name", None) in NESTED and hasattr(layer, "spec")


# -- graph helpers (GRAPH.md's interface) ------------------------------------------

def _node_ref(layer_name: str, call_index: int) -> str:
    return layer_name if call_index == 0 else f"{layer_name}@{call_index}"


def _history(ref: str) -> list:
    name, _, k = ref.partition("@")
    return [name, int(k) if k else 0, 0]


def keras_layer_order(spec) -> list:
    """Keras's `model.layers` of a functional spec: ("input", name, shape) or ("layer", name,
    layer) entries. The spec holds Keras's order (its map_graph); the weights file names each
    layer's group by its place in it, so the two must agree."""
    names = {id(layer): n for layer, n in zip(spec.layers, spec.layer_names)}
    out = []
    for kind, x in spec.keras_order:
        if kind == "input":
            out.append(("input", spec.input_names[x], tuple(spec.inputs[x].shape)))
        else:
            out.append(("layer", names[id(x)], x))
    return out


def _ref_shapes(spec) -> dict:
    shapes = {n: tuple(i.shape) for n, i in zip(spec.input_names, spec.inputs)}
    shapes.update({n.ref: tuple(n.output_shape) for n in spec.nodes})
    return shapes


# -- cnnlab -> Keras -----------------------------------------------------------------

def _layer_entry(layer, name, input_shape) -> dict:
    if is_model_layer(layer):
        entry = model_to_keras(layer.spec, name=name, nested=True)
        return entry
    return layer_to_keras(layer, name, input_shape)


def model_to_keras(spec, name: str | None = None, nested: bool = False) -> dict:
    """The config.json dict of a model (or of a model used as a layer, when `nested`)."""
    name = name or spec.name
    if is_sequential(spec):
        names = spec.layer_names
        layers = [input_layer_to_keras("input_layer", spec.input_shape)]
        layers += [_layer_entry(l, n, s) for l, n, s in zip(spec.layers, names, spec.input_shapes())]
        config = {"name": name, "trainable": True, "dtype": vocab()["dtype_policy"],
                  "layers": layers, "build_input_shape": batch_shape(spec.input_shape)}
        entry = {"module": "keras", "class_name": "Sequential", "config": config,
                 "registered_name": None,
                 "build_config": {"input_shape": batch_shape(spec.input_shape)}}
    else:
        config = {"name": name, "trainable": True, "layers": _functional_layers(spec),
                  "input_layers": _endpoints([_history(n) for n in spec.input_names]),
                  "output_layers": _endpoints([_history(r) for r in spec.outputs])}
        entry = {"module": "keras.src.models.functional", "class_name": "Functional",
                 "config": config, "registered_name": "Functional",
                 "build_config": {"input_shape": None}}
    entry["compile_config"] = {}
    return entry


def _endpoints(histories: list) -> list:
    return histories[0] if len(histories) == 1 else histories  # Keras writes one flat


def _functional_layers(spec) -> list:
    shapes = _ref_shapes(spec)
    calls: dict[str, list] = {}
    for node in spec.nodes:
        calls.setdefault(node.layer_name, []).append(node)

    def tensor(ref):
        return {"class_name": "__keras_tensor__",
                "config": {"shape": batch_shape(shapes[ref]), "dtype": "float32",
                           "keras_history": _history(ref)}}

    out = []
    for kind, name, item in keras_layer_order(spec):
        if kind == "input":
            entry = input_layer_to_keras(name, item)
            entry.update(name=name, inbound_nodes=[])
            out.append(entry)
            continue
        nodes = sorted(calls[name], key=lambda n: n.call_index)
        multi = getattr(item, "multi_input", False)
        in_shape = list(nodes[0].input_shapes) if multi else nodes[0].input_shapes[0]
        entry = _layer_entry(item, name, in_shape)
        kwargs = {"mask": None} if is_model_layer(item) else {}
        entry["name"] = name
        entry["inbound_nodes"] = [
            {"args": [[tensor(r) for r in n.inbound]] if multi else [tensor(n.inbound[0])],
             "kwargs": dict(kwargs)} for n in nodes]
        out.append(entry)
    return out


# -- Keras -> cnnlab (the YAML form of GRAPH.md) -------------------------------------

def spec_dict_from_keras(entry: dict, legacy: bool = False) -> dict:
    """cnnlab's spec dict (`input_shape`/`layers`, or `inputs`/`layers`/`outputs`)."""
    check_safe(entry, "The model")
    cls = entry.get("class_name")
    config = entry.get("config")
    if cls not in ("Sequential", "Functional", "Model") or not isinstance(config, dict):
        raise SpecError(f"Expected a Sequential or Functional model config. Received class "
                        f"{cls!r}. cnnlab cannot load subclassed models (their call() is code).")
    if cls == "Sequential":
        return _sequential_from_keras(config, legacy)
    return _functional_from_keras(config, legacy)


def _input_shape(layer_config: dict, where: str) -> list:
    shape = layer_config.get("batch_shape") or layer_config.get("batch_input_shape")
    if not isinstance(shape, list) or len(shape) < 2 or any(s is None for s in shape[1:]):
        raise SpecError(f"{where}: cnnlab needs a fully known input shape (besides the batch "
                        f"axis). Received {shape!r}.")
    return list(shape[1:])


def _layer_item(entry: dict, legacy: bool) -> tuple[str, dict]:
    """(class, args) of one layer entry, nested models included, as cnnlab's YAML holds it."""
    if isinstance(entry, dict) and entry.get("class_name") in ("Sequential", "Functional", "Model"):
        check_safe(entry, f"Layer {entry.get('config', {}).get('name')!r}")
        d = spec_dict_from_keras(entry, legacy)
        kind = "Sequential" if entry["class_name"] == "Sequential" else "Functional"
        return kind, d
    layer = layer_from_keras(entry, legacy)
    args = dict(layer.get_config())
    return layer.keras_name, args


def _sequential_from_keras(config: dict, legacy: bool) -> dict:
    entries = config.get("layers")
    if not isinstance(entries, list):
        raise SpecError("The Sequential config has no `layers` list.")
    out = {"name": config.get("name") or "sequential", "layers": []}
    shape = config.get("build_input_shape")
    for i, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("class_name") == "InputLayer":
            shape = [None, *_input_shape(entry.get("config") or {}, "InputLayer")]
            continue
        if i == 0 and legacy and "batch_input_shape" in (entry.get("config") or {}):
            shape = entry["config"]["batch_input_shape"]
        kind, args = _layer_item(entry, legacy)
        out["layers"].append({kind: args})
    if not isinstance(shape, list) or any(s is None for s in shape[1:]):
        raise SpecError("The Sequential model has no known input shape. cnnlab needs one.")
    out["input_shape"] = list(shape[1:])
    return out


def _history_ref(value, where: str) -> str:
    if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
        value = value["config"]["keras_history"]
    if not (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)):
        raise SpecError(f"{where}: cannot read the tensor reference {value!r}.")
    if value[2] != 0:
        raise SpecError(f"{where}: layers with several outputs are not supported.")
    return _node_ref(value[0], int(value[1]))


def _node_inbound(node, where: str) -> list[str]:
    if isinstance(node, list):  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        return [_history_ref(list(t[:3]), where) for t in node]
    args = node.get("args") if isinstance(node, dict) else None
    if not isinstance(args, list) or not args:
        raise SpecError(f"{where}: cannot read an inbound node.")
    first = args[0]
    tensors = first if isinstance(first, list) else [first]
    return [_history_ref(t, where) for t in tensors]


def _functional_from_keras(config: dict, legacy: bool) -> dict:
    entries = config.get("layers") or []
    inputs, items, calls = [], {}, []
    for entry in entries:
        name = entry.get("name") or (entry.get("config") or {}).get("name")
        where = f"Layer {name!r} ({entry.get('class_name')})"
        if entry.get("class_name") == "InputLayer":
            inputs.append({"name": name, "shape": _input_shape(entry.get("config") or {}, where)})
            continue
        kind, args = _layer_item(entry, legacy)
        args["name"] = name
        items[name] = (kind, args)
        for k, node in enumerate(entry.get("inbound_nodes") or []):
            calls.append((name, k, _node_inbound(node, where)))
    layers, ready = [], {i["name"] for i in inputs}
    pending = list(calls)
    while pending:  # emit each call once its inputs exist: cnnlab's YAML is in graph order
        progressed = False
        for call in list(pending):
            name, k, inbound = call
            if all(r in ready for r in inbound):
                ref_in = inbound[0] if len(inbound) == 1 else inbound
                if k == 0:
                    kind, args = items[name]
                    layers.append({kind: {**args, "inbound": ref_in}})
                else:
                    layers.append({"Call": {"layer": name, "inbound": ref_in}})
                ready.add(_node_ref(name, k))
                pending.remove(call)
                progressed = True
        if not progressed:
            raise SpecError(f"The functional graph is disconnected: cannot place "
                            f"{', '.join(c[0] for c in pending)}.")

    def endpoints(value):
        if value and isinstance(value[0], str):
            value = [value]
        return [_history_ref(v, "The model") for v in value or []]

    # the model's inputs in its own order (`input_layers`), not the layers list's
    order = endpoints(config.get("input_layers"))
    by_name = {i["name"]: i for i in inputs}
    if sorted(order) != sorted(by_name):
        raise SpecError(f"The model's input_layers {order} do not match its InputLayers "
                        f"{sorted(by_name)}.")
    return {"name": config.get("name") or "functional", "inputs": [by_name[n] for n in order],
            "layers": layers, "outputs": endpoints(config.get("output_layers"))}
