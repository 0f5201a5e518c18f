"""Keras 3's weights layout in HDF5 (`model.weights.h5`, also the `.weights.h5` files).

    layers/<group>/vars/0, 1, ...          # one layer's weights, in get_weights() order
    layers/<group>/layers/<group>/vars/..  # a nested model's layers
    vars                                    # the model's own (none)

`<group>` is not the layer's name but its class in snake case, numbered in the
model's `layers` order (conv2d, conv2d_1, dense, ...): Keras's saving_lib names
groups that way so two instances of one architecture share a layout.

    >>> write_tree(h5file, tree)      # tree: [(group, name, arrays | subtree), ...]
    >>> read_tree(h5file, skeleton)   # the same shape, arrays read back

h5py is imported by the caller (lazily); only numeric datasets are read here.
"""
from __future__ import annotations

import numpy as np

from ..errors import RunError
from .keras_config import to_snake_case


def group_names(classes: list[str]) -> list[str]:
    """Keras's _get_unique_name over snake-cased class names: dense, dense_1, ..."""
    used: dict[str, int] = {}
    out = []
    for cls in classes:
        name = to_snake_case(cls)
        if name in used:
            used[name] += 1
            out.append(f"{name}_{used[name]}")
        else:
            used[name] = 0
            out.append(name)
    return out


def write_tree(group, tree, model_name: str) -> None:
    """tree: list of (keras_class, layer_name, arrays or subtree-with-name)."""
    layers = group.create_group("layers")
    for gname, (cls, name, content) in zip(group_names([t[0] for t in tree]), tree):
        g = layers.create_group(gname)
        if isinstance(content, tuple):  # a nested model: (its tree)
            write_tree(g, content[0], name)
            continue
        v = g.create_group("vars")
        v.attrs["name"] = name
        for i, a in enumerate(content):
            v.create_dataset(str(i), data=np.asarray(a, dtype=np.float32))
    own = group.create_group("vars")
    own.attrs["name"] = model_name


def read_tree(group, skeleton, source: str, prefix: str = "") -> list:
    """Arrays for each entry of `skeleton` (write_tree's tree with shapes as content).

    `group` is the model's group; `prefix` its path, for messages."""
    out = []
    for gname, (cls, name, expected) in zip(group_names([t[0] for t in skeleton]), skeleton):
        where = f"layers/{gname}"
        if isinstance(expected, tuple):
            sub = _get(group, where, source, name, prefix)
            out.append((cls, name, (read_tree(sub, expected[0], source, f"{prefix}{where}/"),)))
            continue
        arrays = []
        if expected:
            v = _get(group, f"{where}/vars", source, name, prefix)
            if len(v) != len(expected):
                raise RunError(f"The weights file {source} holds {len(v)} arrays for layer "
                               f"{name!r} ({prefix}{where}). Expected {len(expected)}.")
            for i, shape in enumerate(expected):
                arrays.append(_dataset(v, str(i), shape, source, name))
        out.append((cls, name, arrays))
    return out


def _get(group, path, source, name, prefix=""):
    try:
        return group[path]
    except KeyError:
        raise RunError(f"The weights file {source} has no weights for layer {name!r} "
                       f"(expected the group {prefix}{path}). It was saved from a different "
                       "model.") from None


def _dataset(group, key, shape, source, name) -> np.ndarray:
    import h5py
    d = group.get(key)
    if not isinstance(d, h5py.Dataset) or d.dtype.kind not in "fiu":
        raise RunError(f"The weights file {source}: {group.name}/{key} (layer {name!r}) is "
                       "not a numeric array.")
    if tuple(d.shape) != tuple(shape):
        raise RunError(f"The weights file {source}: layer {name!r} weight {key} has shape "
                       f"{tuple(d.shape)}. Expected {tuple(shape)}.")
    return np.asarray(d[()], dtype=np.float32)
