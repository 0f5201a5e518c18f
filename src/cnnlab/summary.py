"""Keras-style model summary, as text (the lecture's layout) and as JSON.

    >>> print(summary_text(spec))
    Model: "sequential"
    ...
    Total params: 166,986

A graph (functional) model prints its inputs as InputLayer rows and a
`Connected to` column, as Keras does: `conv2d[0][0]` is the first output of
conv2d's first call.
"""
from __future__ import annotations

from dataclasses import dataclass

from .layers.base import shape_str
from .spec import ModelSpec


@dataclass(frozen=True)
class Row:
    name: str
    type: str
    output_shape: tuple
    params: int
    trainable: int
    non_trainable: int
    connected_to: tuple[str, ...] = ()


def _keras_ref(ref: str) -> str:
    """Our tensor ref (`dense`, `dense@1`) in Keras's summary notation (`dense[1][0]`)."""
    name, _, call = ref.partition("@")
    return f"{name}[{call or 0}][0]"


def rows(spec: ModelSpec) -> list[Row]:
    out = []
    names = dict(zip(map(id, spec.layers), spec.layer_names))
    for kind, layer in spec.keras_order:  # a graph's inputs are rows too, in Keras's order
        if kind == "input":
            out.append(Row(spec.input_names[layer], "InputLayer", spec.inputs[layer].shape, 0, 0, 0))
            continue
        name = names[id(layer)]
        nodes = [n for n in spec.nodes if n.layer is layer]
        trainable, frozen = layer.param_counts(nodes[0].input_shape)
        if not layer.trainable:
            trainable, frozen = 0, trainable + frozen
        links = tuple(_keras_ref(r) for n in nodes for r in n.inbound)
        out.append(Row(name, layer.keras_name, nodes[0].output_shape, trainable + frozen,
                       trainable, frozen, () if spec.is_sequential else links))
    return out


def totals(spec: ModelSpec) -> dict[str, int]:
    rs = rows(spec)
    t, n = sum(r.trainable for r in rs), sum(r.non_trainable for r in rs)
    return {"total_params": t + n, "trainable_params": t, "non_trainable_params": n}


def summary_json(spec: ModelSpec) -> dict:
    def layer(r):
        d = {"name": r.name, "type": r.type, "output_shape": [None, *r.output_shape],
             "params": r.params}
        if not spec.is_sequential:
            d["connected_to"] = list(r.connected_to)
        return d
    return {"name": spec.name, "layers": [layer(r) for r in rows(spec)], **totals(spec)}


def summary_text(spec: ModelSpec, line_length: int | None = None) -> str:
    """Keras 2's print_summary layout, widened so that no name wraps."""
    graph = not spec.is_sequential
    table = [[f"{r.name} ({r.type})", shape_str(r.output_shape), str(r.params),
              *([list(r.connected_to) or ["-"]] if graph else [])] for r in rows(spec)]
    header = ["Layer (type)", "Output Shape", "Param #", *(["Connected to"] if graph else [])]
    w0 = max(29, *(len(t[0]) + 3 for t in table))
    w1 = max(26, *(len(t[1]) + 3 for t in table))
    w2 = max(10, *(len(t[2]) + 3 for t in table)) if graph else 10
    w3 = max([len("Connected to")] + [len(c) for t in table if graph for c in t[3]])
    width = max(line_length or 0, 65, w0 + w1 + w2 + (w3 if graph else 0))

    def line(cells, link=""):
        text = (" " + cells[0]).ljust(w0 + 1) + cells[1].ljust(w1)
        return text + (cells[2].ljust(w2) + link if graph else cells[2])

    out = [f'Model: "{spec.name}"', "_" * width, line(header, header[-1]), "=" * width]
    for i, cells in enumerate(table):
        links = cells[3] if graph else [""]
        out.append(line(cells, links[0]))
        out += [" " * (w0 + 1 + w1 + w2) + extra for extra in links[1:]]
        out.append("=" * width if i == len(table) - 1 else " " * width)
    t = totals(spec)
    out += [f"Total params: {t['total_params']:,}",
            f"Trainable params: {t['trainable_params']:,}",
            f"Non-trainable params: {t['non_trainable_params']:,}",
            "_" * width]
    return "\n".join(line.rstrip() for line in out)
