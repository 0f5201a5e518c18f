"""Keras-style model summary, as text (the lecture's layout) and as JSON.

    >>> print(summary_text(spec))
    Model: "sequential"
    ...
    Total params: 166,986
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


def rows(spec: ModelSpec) -> list[Row]:
    out = []
    for layer, name, shape_in, shape_out in zip(spec.layers, spec.layer_names,
                                                spec.input_shapes(), spec.output_shapes):
        trainable, frozen = layer.param_counts(shape_in)
        out.append(Row(name, layer.keras_name, shape_out, trainable + frozen, trainable, frozen))
    return out


def totals(spec: ModelSpec) -> dict[str, int]:
    rs = rows(spec)
    t, n = sum(r.trainable for r in rs), sum(r.non_trainable for r in rs)
    return {"total_params": t + n, "trainable_params": t, "non_trainable_params": n}


def summary_json(spec: ModelSpec) -> dict:
    return {"name": spec.name,
            "layers": [{"name": r.name, "type": r.type, "output_shape": [None, *r.output_shape],
                        "params": r.params} for r in rows(spec)],
            **totals(spec)}


def summary_text(spec: ModelSpec) -> str:
    """Keras 2's print_summary layout, widened so that no name wraps."""
    table = [(f"{r.name} ({r.type})", shape_str(r.output_shape), str(r.params)) for r in rows(spec)]
    header = ("Layer (type)", "Output Shape", "Param #")
    w0 = max(29, *(len(t[0]) + 3 for t in table))
    w1 = max(26, *(len(t[1]) + 3 for t in table))
    width = max(65, w0 + w1 + 10)

    def line(cells):
        return (" " + cells[0]).ljust(w0 + 1) + cells[1].ljust(w1) + cells[2]

    out = [f'Model: "{spec.name}"', "_" * width, line(header), "=" * width]
    for i, cells in enumerate(table):
        out.append(line(cells))
        out.append("=" * width if i == len(table) - 1 else " " * width)
    t = totals(spec)
    out += [f"Total params: {t['total_params']:,}",
            f"Trainable params: {t['trainable_params']:,}",
            f"Non-trainable params: {t['non_trainable_params']:,}",
            "_" * width]
    return "\n".join(line.rstrip() for line in out)
