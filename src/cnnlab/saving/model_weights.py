"""A cnnlab model's weights as Keras's per-layer tree, and back.

    >>> tree = weights_tree(model)   # [(keras_class, layer_name, arrays | (subtree,)), ...]
    >>> set_tree(model, tree)

The tree follows Keras's `model.layers` order (a functional model's InputLayers
included, in Keras's graph order), which is what names the groups of a Keras
weights file. The arrays are read from and written to the built torch module:
`model.net.layers` lines up with `spec.layers`, and a nested model's module holds
its own net (`.net`), lined up with the nested spec.
"""
from __future__ import annotations

from .graph_config import is_model_layer, is_sequential, keras_layer_order


def entries(spec):
    """(keras_class, name, layer-or-None) in Keras's `layers` order."""
    if is_sequential(spec):
        return [(l.keras_name, n, l) for l, n in zip(spec.layers, spec.layer_names)]
    return [("InputLayer", name, None) if kind == "input" else (item.keras_name, name, item)
            for kind, name, item in keras_layer_order(spec)]


def _modules(spec, net) -> dict:
    return dict(zip(spec.layer_names, net.layers))


def _tree(spec, net) -> list:
    modules = _modules(spec, net)
    tree = []
    for cls, name, layer in entries(spec):
        if layer is None:
            tree.append((cls, name, []))
        elif is_model_layer(layer):
            tree.append((cls, name, (_tree(layer.spec, modules[name].net),)))
        else:
            m = modules[name]
            arrays = m.keras_weights() if hasattr(m, "keras_weights") else []
            tree.append((cls, name, [a.copy() for a in arrays]))
    return tree


def weights_tree(model, spec=None) -> list:
    spec = spec or model.to_spec()
    return _tree(spec, model.net)


def shapes_tree(tree) -> list:
    return [(c, n, (shapes_tree(x[0]),) if isinstance(x, tuple) else [a.shape for a in x])
            for c, n, x in tree]


def _set(spec, net, tree) -> None:
    modules = _modules(spec, net)
    by_name = {n: x for _, n, x in tree}
    for _, name, layer in entries(spec):
        if layer is None:
            continue
        content = by_name[name]
        if isinstance(content, tuple):
            _set(layer.spec, modules[name].net, content[0])
        elif content:
            modules[name].set_keras_weights(content)


def set_tree(model, tree, spec=None) -> None:
    """Copy a tree read from a file (same shapes as `weights_tree(model)`) into the model."""
    _set(spec or model.to_spec(), model.net, tree)
