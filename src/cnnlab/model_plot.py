"""Keras's `plot_model` without Graphviz: the model's graph drawn with matplotlib as a PNG.

    >>> cnnlab.utils.plot_model(model, to_file="model.png", show_shapes=True)

One box per layer (an InputLayer box per input), an arrow per connection.
Boxes are placed in rows by their depth (the longest path from an input), so
parallel branches stand side by side; a shared layer is one box with several
incoming arrows, as in Keras's plot.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError


@dataclass
class Box:
    name: str
    cls: str
    input_shapes: list = field(default_factory=list)
    output_shape: tuple | None = None
    activation: str | None = None
    trainable: bool = True


def _shape_text(shape) -> str:
    return "(None, " + ", ".join(str(s) for s in shape) + ")" if shape else "?"


def _activation(layer):
    act = getattr(layer, "config", {}).get("activation")
    return act if isinstance(act, str) else None


def graph_of(spec) -> tuple[list[Box], list[tuple[str, str]]]:
    """The boxes (by layer name) and arrows (producer, consumer) of a model spec."""
    if getattr(spec, "is_sequential", True):
        boxes = [Box("input_layer", "InputLayer", [], spec.input_shape)]
        for layer, name, shape_in, shape_out in zip(spec.layers, spec.layer_names,
                                                    spec.input_shapes(), spec.output_shapes):
            boxes.append(Box(name, layer.keras_name, [shape_in], shape_out, _activation(layer),
                             bool(getattr(layer, "trainable", True))))
        return boxes, [(a.name, b.name) for a, b in zip(boxes, boxes[1:])]
    names = spec.input_names
    boxes = {n: Box(n, "InputLayer", [], tuple(i.shape)) for n, i in zip(names, spec.inputs)}
    producer = {n: n for n in names}
    edges = []
    for node in spec.nodes:
        if node.layer_name not in boxes:
            boxes[node.layer_name] = Box(node.layer_name, node.layer.keras_name,
                                         list(node.input_shapes), node.output_shape,
                                         _activation(node.layer),
                                         bool(getattr(node.layer, "trainable", True)))
        producer[node.ref] = node.layer_name
        for ref in node.inbound:
            edge = (producer[ref], node.layer_name)
            if edge not in edges:
                edges.append(edge)
    return list(boxes.values()), edges


def layout(boxes, edges) -> dict[str, tuple[int, int]]:
    """(row, column) per box: row = longest path from an input, columns in first-seen order."""
    depth = {b.name: 0 for b in boxes}
    for _ in boxes:  # relax: a DAG settles in at most len(boxes) passes
        changed = False
        for a, b in edges:
            if depth[b] < depth[a] + 1:
                depth[b], changed = depth[a] + 1, True
        if not changed:
            break
    rows: dict[int, list[str]] = {}
    for b in boxes:
        rows.setdefault(depth[b.name], []).append(b.name)
    return {name: (row, col) for row, names in rows.items() for col, name in enumerate(names)}


def _label(box: Box, show_shapes, show_layer_names, show_layer_activations, show_trainable,
           show_dtype) -> tuple[str, list[str]]:
    title = f"{box.name} ({box.cls})" if show_layer_names else box.cls
    lines = []
    if show_layer_activations and box.activation:
        lines.append(f"Activation: {box.activation}")
    if show_shapes:
        ins = ", ".join(_shape_text(s) for s in box.input_shapes) or _shape_text(box.output_shape)
        lines.append(f"Input shape: {ins}")
        lines.append(f"Output shape: {_shape_text(box.output_shape)}")
    if show_dtype:
        lines.append("Output dtype: float32")
    if show_trainable:
        lines.append(f"Trainable: {'True' if box.trainable else 'False'}")
    return title, lines


def _check_flag(value, arg):
    if not isinstance(value, bool):
        raise ConfigError(f"Invalid value for argument `{arg}`. Expected True or False. "
                          f"Received {arg}={value!r}.")


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False,
               show_layer_names=False, rankdir="TB", expand_nested=False, dpi=200,
               show_layer_activations=False, show_trainable=False, **kwargs):
    """Keras 3's signature and defaults (layer names off, as Keras 3); writes `to_file`."""
    if kwargs:
        raise ConfigError(f"Invalid kwargs: {sorted(kwargs)}")
    for arg, value in (("show_shapes", show_shapes), ("show_dtype", show_dtype),
                       ("show_layer_names", show_layer_names), ("expand_nested", expand_nested),
                       ("show_layer_activations", show_layer_activations),
                       ("show_trainable", show_trainable)):
        _check_flag(value, arg)
    if rankdir not in ("TB", "LR"):
        raise ConfigError(f"Invalid value for argument `rankdir`. Expected 'TB' or 'LR'. "
                          f"Received rankdir={rankdir!r}.")
    if Path(to_file).suffix.lower() != ".png":
        raise ConfigError(f"plot_model writes PNG files. Expected `to_file` ending in .png. "
                          f"Received to_file={str(to_file)!r}.")
    if expand_nested:
        import warnings
        warnings.warn("plot_model: expand_nested=True is not supported by cnnlab; a nested "
                      "model is drawn as one box.", stacklevel=2)
    spec = model.to_spec() if hasattr(model, "to_spec") else model
    boxes, edges = graph_of(spec)
    labels = {b.name: _label(b, show_shapes, show_layer_names, show_layer_activations,
                             show_trainable, show_dtype) for b in boxes}
    _draw(boxes, edges, layout(boxes, edges), labels, rankdir, dpi, to_file)


# -- drawing ------------------------------------------------------------------------------

CHAR_W, LINE_H = 0.085, 0.22   # inches per character (10 pt) and per text line
GAP_ACROSS, GAP_ALONG = 0.4, 0.6   # inches between boxes side by side / between ranks
LANE = 0.15                    # inches between arrows routed beside the boxes


def _box_sizes(labels) -> dict[str, tuple[float, float]]:
    size = {}
    for name, (title, lines) in labels.items():
        width = max(len(t) for t in [title, *lines]) * CHAR_W + 0.3
        size[name] = (width, (1 + len(lines)) * LINE_H + 0.2 if lines else LINE_H + 0.1)
    return size


def _place(pos, size, rankdir):
    """Box centres in (along, across) inches: `along` follows the arrows (down or right)."""
    ext = {n: (h, w) if rankdir == "TB" else (w, h) for n, (w, h) in size.items()}
    ranks: dict[int, list[str]] = {}
    for name, rc in sorted(pos.items(), key=lambda kv: kv[1]):
        ranks.setdefault(rc[0], []).append(name)
    step = max(a for a, _ in ext.values()) + GAP_ALONG
    centre = {}
    for r, names in ranks.items():
        total = sum(ext[n][1] for n in names) + GAP_ACROSS * (len(names) - 1)
        v = -total / 2  # each rank centred on the axis
        for n in names:
            centre[n] = (r * step, v + ext[n][1] / 2)
            v += ext[n][1] + GAP_ACROSS
    return centre, ext, ranks, step


def _routes(edges, pos, centre, ext, ranks, step):
    """Polylines (along, across): straight between adjacent ranks; an arrow that skips ranks
    runs in a lane beside the boxes it passes (as Graphviz's orthogonal splines do)."""
    routes, lanes = [], {"+": 0, "-": 0}
    for a, b in edges:
        (ua, va), (ub, vb) = centre[a], centre[b]
        start, end = (ua + ext[a][0] / 2, va), (ub - ext[b][0] / 2, vb)
        skipped = [n for r in range(pos[a][0] + 1, pos[b][0]) for n in ranks.get(r, [])]
        if not skipped:
            routes.append([start, end])
            continue
        side = "+" if (va + vb) / 2 >= 0 else "-"
        lanes[side] += 1
        if side == "+":
            v = max(centre[n][1] + ext[n][1] / 2 for n in skipped) + lanes[side] * LANE + 0.1
        else:
            v = min(centre[n][1] - ext[n][1] / 2 for n in skipped) - lanes[side] * LANE - 0.1
        u1, u2 = start[0] + GAP_ALONG / 3, end[0] - GAP_ALONG / 3
        vb += (0.2 if side == "+" else -0.2) * min(1.0, ext[b][1] / 2)  # beside the direct arrow
        routes.append([start, (u1, va), (u1, v), (u2, v), (u2, vb), (end[0], vb)])
    return routes


def _draw(boxes, edges, pos, labels, rankdir, dpi, to_file) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from .io import atomic_path

    size = _box_sizes(labels)
    centre, ext, ranks, step = _place(pos, size, rankdir)
    routes = _routes(edges, pos, centre, ext, ranks, step)

    def xy(u, v):  # (along, across) -> figure inches
        return (v, -u) if rankdir == "TB" else (u, -v)

    corners = [xy(u + s * ext[n][0] / 2, v + t * ext[n][1] / 2)
               for n, (u, v) in centre.items() for s in (-1, 1) for t in (-1, 1)]
    corners += [xy(*p) for r in routes for p in r]
    x0, x1 = min(x for x, _ in corners) - 0.3, max(x for x, _ in corners) + 0.3
    y0, y1 = min(y for _, y in corners) - 0.3, max(y for _, y in corners) + 0.3
    fig = Figure(figsize=(x1 - x0, y1 - y0))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_axis_off()
    for name, (u, v) in centre.items():
        x, y = xy(u, v)
        w, h = size[name]
        title, lines = labels[name]
        band = LINE_H + 0.1
        ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.02",
                                    facecolor="white", edgecolor="black", linewidth=1))
        ax.add_patch(FancyBboxPatch((x - w / 2, y + h / 2 - band), w, band,
                                    boxstyle="round,pad=0.02", facecolor="black",
                                    edgecolor="black"))
        ax.text(x, y + h / 2 - band / 2, title, ha="center", va="center", color="white",
                fontsize=10, fontweight="bold", family="DejaVu Sans")
        for i, line in enumerate(lines):
            ax.text(x, y + h / 2 - band - (i + 0.5) * LINE_H - 0.05, line, ha="center",
                    va="center", fontsize=9, family="DejaVu Sans Mono")
    for route in routes:
        points = [xy(*p) for p in route]
        if len(points) > 2:
            ax.plot([p[0] for p in points[:-1]], [p[1] for p in points[:-1]], color="black",
                    linewidth=1, solid_capstyle="butt")
        ax.add_patch(FancyArrowPatch(points[-2], points[-1], arrowstyle="-|>",
                                     mutation_scale=12, linewidth=1, color="black",
                                     shrinkA=0, shrinkB=2))
    with atomic_path(to_file) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
