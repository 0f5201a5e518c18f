"""A cnnlab model's weights as Keras's per-layer tree, and back.

    >>> tree = weights_tree(model)   # [(keras_class, layer_name, arrays | (subtree,)), ...]
    >>> set_tree(model, tree)

The tree follows Keras's `model.layers` order (a functional model's InputLayers
first, by Keras's graph order), which is what names the groups of a Keras
weights file. Arrays come from each layer object's `get_weights()` when the
model has layer objects, else from the torch module's per-layer Keras weights.
"""
from __future__ import annotations

from ..errors import SpecError
from .graph_config import is_model_layer, is_sequential, keras_layer_order


def _entries(spec):
    """(keras_class, name, layer-or-None) in Keras's `layers` order."""
    if is_sequential(spec):
        return [(l.keras_name, n, l) for l, n in zip(spec.layers, spec.layer_names)]
    names = {id(n.layer): n.layer_name for n in spec.nodes}
    out = []
    for item in keras_layer_order(spec):
        if id(item) in names:
            out.append((item.keras_name, names[id(item)], item))
        else:  # an InputSpec
            out.append(("InputLayer", item.name, None))
    return out


def _objects(model) -> dict:
    layers = getattr(model, "layers", None) or []
    if layers and all(hasattr(l, "get_weights") and getattr(l, "name", None) for l in layers):
        return {l.name: l for l in layers}
    return {}


def _fallback_arrays(model) -> dict:
    """Today's Sequential: layer objects are specs; the torch module holds the weights."""
    spec = model.to_spec()
    return dict(zip(spec.layer_names, model.net.keras_weights()))


def weights_tree(model, spec=None) -> list:
    spec = spec or model.to_spec()
    objects = _objects(model)
    fallback = None if objects else _fallback_arrays(model)
    tree = []
    for cls, name, layer in _entries(spec):
        if layer is not None and is_model_layer(layer):
            inner = objects.get(name) or layer
            tree.append((cls, name, (weights_tree(inner, layer.spec),)))
        elif layer is None:
            tree.append((cls, name, []))
        else:
            arrays = objects[name].get_weights() if objects else fallback[name]
            tree.append((cls, name, [a.copy() for a in arrays]))
    return tree


def shapes_tree(tree) -> list:
    return [(c, n, (shapes_tree(x[0]),) if isinstance(x, tuple) else [a.shape for a in x])
            for c, n, x in tree]


def set_tree(model, tree, spec=None) -> None:
    spec = spec or model.to_spec()
    objects = _objects(model)
    by_name = {n: x for _, n, x in tree}
    if objects:
        for cls, name, layer in _entries(spec):
            if layer is None:
                continue
            content = by_name[name]
            if isinstance(content, tuple):
                set_tree(objects[name], content[0], layer.spec)
            else:
                objects[name].set_weights(content)
        return
    if not is_sequential(spec):
        raise SpecError("This model has no layer objects to set weights on.")
    model.net.set_keras_weights([by_name[n] for n in spec.layer_names])
