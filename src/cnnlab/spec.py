"""The model spec: the single source of truth of a model, sequential or a graph.

A spec is a directed acyclic graph of Keras layers: inputs, calls (a layer
applied to the outputs of inputs or earlier calls) and outputs. The common
case, a sequential model, is an input shape plus an ordered list of layers and
keeps its short YAML form. A spec is validated on construction (every call's
shape is derived once, here), serializes back to the same YAML/JSON, and is
saved with every run. The torch module, the summary and the Keras export are
derived from it.

    >>> spec = ModelSpec.from_dict(yaml.safe_load('''
    ... input_shape: [28, 28, 1]
    ... layers:
    ...   - Conv2D: {filters: 32, kernel_size: [3, 3], activation: relu}
    ...   - Flatten: {}
    ...   - Dense: {units: 10, activation: softmax}
    ... '''))
    >>> spec.output_shapes[-1]        # (10,)

The graph form (docs/model-spec.md): `inputs`, layers with `inbound` (the names
of the tensors they read; omitted: the previous layer's output), `outputs`.
A layer called again (`- Call: {layer: c2, inbound: c1}`) shares its weights;
its second output is named `c2@1`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from . import layers as layer_registry
from .errors import ConfigError, SpecError, reject_unknown_keys
from .layers.base import Layer, shape_tuple

SEQUENTIAL_KEYS = ("input_shape", "layers", "name")
GRAPH_KEYS = ("inputs", "layers", "outputs", "name")
MODEL_KEYS = SEQUENTIAL_KEYS  # kept for callers that list a sequential spec's keys
INBOUND, CALL = "inbound", "Call"  # the graph form's reserved argument and entry


def _layer_error(index: int, layer_type: str, err: SpecError) -> SpecError:
    return SpecError(f"Layer {index} ({layer_type}): {err}")


def parse_layer(entry, index: int) -> Layer:
    """One YAML entry (`{Conv2D: {filters: 32, ...}}` or `Flatten`) -> a Layer."""
    layer, inbound = _parse_entry(entry, index, graph=False)
    return layer


def _parse_entry(entry, index: int, graph: bool):
    """(Layer, inbound refs or None). In a graph, `inbound` is a reserved argument."""
    if isinstance(entry, Layer):
        return entry, None
    if isinstance(entry, str):
        entry = {entry: {}}
    if not isinstance(entry, dict) or len(entry) != 1:
        raise SpecError(f"Layer {index}: expected a one-key mapping from a Keras layer name to "
                        f"its arguments, such as {{Dense: {{units: 10}}}}. Received {entry!r}.")
    (layer_type, args), = entry.items()
    args = {} if args is None else args
    if not isinstance(args, dict):
        raise _layer_error(index, layer_type, SpecError(
            f"Expected a mapping of arguments. Received {args!r}."))
    inbound = None
    if graph and INBOUND in args:
        args = dict(args)
        inbound = _refs(args.pop(INBOUND), f"Layer {index} ({layer_type}): `inbound`")
    try:
        cls = layer_registry.get(layer_type)
        return cls(**args), inbound
    except SpecError as err:
        raise _layer_error(index, layer_type, err) from None
    except TypeError as err:  # e.g. non-string keys
        raise _layer_error(index, layer_type, SpecError(str(err))) from None


def _refs(value, what: str) -> tuple[str, ...]:
    value = [value] if isinstance(value, str) else value
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise SpecError(f"Invalid value for {what}. Expected a tensor name or a list of them "
                        f"(an input's or a layer's name). Received {value!r}.")
    return tuple(value)


@dataclass(frozen=True)
class InputSpec:
    """A model input: its shape without the batch axis, and its name (None: automatic)."""

    shape: tuple[int, ...]
    name: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "shape", shape_tuple(self.shape, "shape"))
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise SpecError(f"Invalid value for argument `name` of an input. Expected a non-empty "
                            f"string. Received name={self.name!r}.")


@dataclass(frozen=True, eq=False)
class Node:
    """One call of a layer in the graph, with everything derived about it."""

    layer: Layer
    sources: tuple[int, ...]      # what it reads: 0..n_inputs-1 the inputs, then the nodes
    layer_name: str
    call_index: int               # 0 for the layer's first call, 1 for its second ...
    ref: str                      # the name of its output: the layer's name, or `name@k`
    inbound: tuple[str, ...]      # the refs it reads
    input_shapes: tuple           # one shape per source
    output_shape: tuple

    @property
    def input_shape(self):
        """The shape it reads: one shape, or a list of shapes for a merge layer."""
        return list(self.input_shapes) if self.layer.multi_input else self.input_shapes[0]


class ModelSpec:
    """A validated model: inputs, nodes in topological order, outputs.

    `ModelSpec(input_shape, layers, name)` is a sequential model;
    `ModelSpec.graph(inputs, calls, outputs, name)` any other graph.
    """

    def __init__(self, input_shape, layers, name: str = "sequential"):
        layers = tuple(layers)
        if not layers:
            raise SpecError("A model needs at least one layer. Received an empty `layers` list.")
        for i, layer in enumerate(layers):
            if isinstance(layer, layer_registry.InputBase):
                raise SpecError(f"Layer {i} (Input): Input may only be the first layer.")
        calls = [(layer, (i,)) for i, layer in enumerate(layers)]
        self._init(name, (InputSpec(input_shape),), calls, (len(layers),), sequential=True)

    @classmethod
    def graph(cls, inputs, calls, outputs, name: str = "functional") -> "ModelSpec":
        """inputs: InputSpecs; calls: (layer, source ids) in topological order, where ids
        0..len(inputs)-1 are the inputs and len(inputs)+j the j-th call's output;
        outputs: source ids."""
        spec = cls.__new__(cls)
        spec._init(name, tuple(inputs), list(calls), tuple(outputs), sequential=False)
        return spec

    def _init(self, name, inputs, calls, outputs, sequential):
        if not isinstance(name, str) or not name:
            raise SpecError(f"Invalid model `name`. Expected a non-empty string. Received {name!r}.")
        if not inputs:
            raise SpecError("A model needs at least one input.")
        if not calls:
            raise SpecError("A model needs at least one layer. Received an empty `layers` list.")
        self.name, self.is_sequential, self.inputs = name, sequential, inputs
        layers = []
        for layer, _ in calls:
            if not any(layer is seen for seen in layers):
                layers.append(layer)
        self.layers = tuple(layers)
        names = _auto_names([*(i.name for i in inputs)], layers)
        self.input_names = names[:len(inputs)]
        self.layer_names = tuple(names[len(inputs):])
        name_of = {id(layer): n for layer, n in zip(layers, self.layer_names)}
        refs = list(self.input_names)
        shapes = [i.shape for i in inputs]
        consumers = [0] * (len(inputs) + len(calls))
        called: dict[int, list] = {}  # id(layer) -> [calls so far, its first call's input shapes]
        nodes = []
        for j, (layer, sources) in enumerate(calls):
            nodes.append(self._node(j, layer, tuple(sources), name_of[id(layer)], called, refs,
                                    shapes, consumers, sequential))
        self.nodes = tuple(nodes)
        if not outputs:
            raise SpecError("A model needs at least one output.")
        for o in outputs:
            if not (isinstance(o, int) and len(inputs) <= o < len(refs)):
                raise SpecError(f"Invalid model output {o!r}. Expected the output of a layer.")
            consumers[o] += 1
        self.outputs = tuple(refs[o] for o in outputs)
        self.output_ids = tuple(outputs)
        unused = [refs[k] for k, n in enumerate(consumers) if n == 0]
        if unused:
            raise SpecError(f"The output of {unused[0]!r} is not used by any layer or model "
                            "output. Expected every input and layer to lead to an output.")
        self.consumers = tuple(consumers)
        self.output_shapes = tuple(n.output_shape for n in nodes)
        # Keras's order of a graph's layers (model.layers, the summary, get_weights): by depth
        # from the outputs, then by discovery; inputs are entries ("input", k)
        self.keras_order = tuple(_keras_order(len(inputs), nodes, outputs)) if not sequential \
            else tuple(("layer", layer) for layer in layers)
        if not sequential:
            ordered = [x for kind, x in self.keras_order if kind == "layer"]
            names = dict(zip(map(id, self.layers), self.layer_names))
            self.layers = tuple(ordered)
            self.layer_names = tuple(names[id(layer)] for layer in ordered)

    def _node(self, j, layer, sources, lname, called, refs, shapes, consumers, sequential):
        where = f"Layer {j} ({layer.keras_name})" if sequential else \
            f"Layer {j} ({layer.keras_name} {lname!r})"
        if not sources or not all(isinstance(s, int) and 0 <= s < len(refs) for s in sources):
            raise SpecError(f"{where}: it may only read inputs and earlier layers.")
        if layer.multi_input and len(sources) < 2:
            raise SpecError(f"{where}: a merge layer should be called on a list of at least 2 "
                            f"inputs. Received {len(sources)} input.")
        if not layer.multi_input and len(sources) != 1:
            raise SpecError(f"{where}: expects one input. Received {len(sources)}: "
                            f"{', '.join(refs[s] for s in sources)}.")
        in_shapes = tuple(shapes[s] for s in sources)
        arg = list(in_shapes) if layer.multi_input else in_shapes[0]
        seen = called.setdefault(id(layer), [0, in_shapes])
        k, first = seen[0], seen[1]
        seen[0] += 1
        if k and in_shapes != first:
            raise SpecError(f"{where}: a shared layer must be called on inputs of the shape of "
                            f"its first call, {_shapes_str(first)}. "
                            f"Received {_shapes_str(in_shapes)}.")
        try:
            out = tuple(layer.output_shape(arg))
        except SpecError as err:
            raise SpecError(f"{where}: {err}") from None
        for s in sources:
            consumers[s] += 1
        ref = lname if k == 0 else f"{lname}@{k}"
        inbound = tuple(refs[s] for s in sources)
        refs.append(ref)
        shapes.append(out)
        return Node(layer, sources, lname, k, ref, inbound, in_shapes, out)

    # -- construction ------------------------------------------------------
    @classmethod
    def from_layers(cls, layers, input_shape=None, name="sequential") -> "ModelSpec":
        """Layers as the Python API holds them; the input shape may sit on the first layer."""
        layers = list(layers)
        if layers and type(layers[0]).__name__ == "KerasTensor":  # [Input(shape=...), ...]
            layers[0] = layer_registry.InputBase(shape=layers[0]._shape)
        if input_shape is not None:  # checked first: the comparisons below need a tuple
            input_shape = shape_tuple(input_shape, "input_shape")
        if layers and isinstance(layers[0], layer_registry.InputBase):
            if input_shape is not None and tuple(input_shape) != layers[0].config["shape"]:
                raise SpecError(f"Two different input shapes: input_shape={list(input_shape)} "
                                f"and Input shape={list(layers[0].config['shape'])}.")
            input_shape = layers.pop(0).config["shape"]
        first = layers[0].input_shape if layers else None
        first = first if first is not None else getattr(layers[0], "implied_input_shape", None) \
            if layers else None
        if first is not None:
            if input_shape is not None and tuple(input_shape) != first:
                raise SpecError(f"Two different input shapes: input_shape={list(input_shape)} "
                                f"and the first layer's input_shape={list(first)}.")
            input_shape = first
        if input_shape is None:
            raise SpecError("Missing input shape. Expected `input_shape: [height, width, "
                            "channels]` on the model, `input_shape` on the first layer, or an "
                            "`Input: {shape: [...]}` first layer.")
        for i, layer in enumerate(layers[1:], start=1):
            if layer.input_shape is not None:
                raise SpecError(f"Layer {i} ({layer.keras_name}): `input_shape` is only "
                                "allowed on the first layer.")
        return cls(tuple(input_shape), tuple(layers), name)

    @classmethod
    def from_dict(cls, d) -> "ModelSpec":
        if not isinstance(d, dict):
            raise SpecError(f"A model spec must be a mapping with `layers` (and `input_shape`). "
                            f"Received {type(d).__name__}.")
        if "inputs" in d or "outputs" in d:
            return cls._graph_from_dict(d)
        reject_unknown_keys(d, SEQUENTIAL_KEYS, "the model spec", SpecError)
        raw_layers = _layer_list(d)
        layers = [parse_layer(entry, i) for i, entry in enumerate(raw_layers)]
        return cls.from_layers(layers, d.get("input_shape"), d.get("name", "sequential"))

    @classmethod
    def _graph_from_dict(cls, d) -> "ModelSpec":
        reject_unknown_keys(d, GRAPH_KEYS, "the model spec (graph form)", SpecError)
        raw_inputs = d.get("inputs")
        if not isinstance(raw_inputs, list) or not raw_inputs:
            raise SpecError(f"The model spec needs `inputs`: a list such as [{{name: image, "
                            f"shape: [28, 28, 1]}}]. Received {raw_inputs!r}.")
        inputs = []
        for i, entry in enumerate(raw_inputs):
            if not isinstance(entry, dict) or "shape" not in entry:
                raise SpecError(f"Input {i}: expected a mapping with `shape` (and `name`). "
                                f"Received {entry!r}.")
            reject_unknown_keys(entry, ("shape", "name"), f"input {i}", SpecError)
            inputs.append(InputSpec(entry["shape"], entry.get("name")))
        entries = []  # (layer or name of the layer to call again, inbound refs or None)
        for i, entry in enumerate(_layer_list(d)):
            if isinstance(entry, dict) and len(entry) == 1 and CALL in entry:
                args = entry[CALL]
                if not isinstance(args, dict) or set(args) != {"layer", INBOUND}:
                    raise SpecError(f"Layer {i} (Call): expected {{layer: <name>, inbound: "
                                    f"<tensor names>}}. Received {args!r}.")
                entries.append((str(args["layer"]), _refs(args[INBOUND],
                                                         f"Layer {i} (Call): `inbound`")))
            else:
                entries.append(_parse_entry(entry, i, graph=True))
        layers = [e for e, _ in entries if isinstance(e, Layer)]
        names = _auto_names([i.name for i in inputs], layers)
        by_name = dict(zip(names[len(inputs):], layers))
        ids = {n: k for k, n in enumerate(names[:len(inputs)])}
        calls, counts = [], {}
        for j, (what, inbound) in enumerate(entries):
            layer = what if isinstance(what, Layer) else by_name.get(what)
            if layer is None:
                raise SpecError(f"Layer {j} (Call): no layer named {what!r}. Expected one of: "
                                f"{', '.join(by_name)}.")
            if inbound is None:
                if j == 0 and len(inputs) != 1:
                    raise SpecError(f"Layer 0 ({layer.keras_name}): `inbound` is needed when "
                                    "the model has several inputs.")
                sources = (len(inputs) - 1 + j,) if j else (0,)
            else:
                missing = [r for r in inbound if r not in ids]
                if missing:
                    raise SpecError(f"Layer {j} ({layer.keras_name}): `inbound` names "
                                    f"{missing[0]!r}, which is not an input or an earlier layer. "
                                    f"Expected one of: {', '.join(ids)}.")
                sources = tuple(ids[r] for r in inbound)
            k = counts.get(id(layer), 0)
            counts[id(layer)] = k + 1
            lname = names[len(inputs) + layers.index(layer)]
            ids[lname if k == 0 else f"{lname}@{k}"] = len(inputs) + j
            calls.append((layer, sources))
        outs = _refs(d.get("outputs"), "`outputs`") if "outputs" in d else None
        if outs is None:
            out_ids = (len(inputs) + len(calls) - 1,)
        else:
            missing = [r for r in outs if r not in ids]
            if missing:
                raise SpecError(f"`outputs` names {missing[0]!r}, which is not a layer. "
                                f"Expected one of: {', '.join(list(ids)[len(inputs):])}.")
            out_ids = tuple(ids[r] for r in outs)
        return cls.graph(inputs, calls, out_ids, d.get("name", "functional"))

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>") -> "ModelSpec":
        return cls.from_dict(load_yaml(text, source))

    # -- serialization -----------------------------------------------------
    def to_dict(self) -> dict:
        if self.is_sequential:
            out = {"input_shape": list(self.input_shape),
                   "layers": [{layer.keras_name: FlowDict(layer.get_config())}
                              for layer in self.layers]}
            if self.name != "sequential":
                out["name"] = self.name
            return out
        n_in = len(self.inputs)
        entries = []
        for j, node in enumerate(self.nodes):
            follows = node.sources == (n_in - 1 + j,) if j else node.sources == (0,) and n_in == 1
            inbound = None if follows else (node.inbound[0] if len(node.inbound) == 1
                                            else list(node.inbound))
            if node.call_index:
                entries.append({CALL: FlowDict(layer=node.layer_name,
                                               inbound=inbound or node.inbound[0])})
                continue
            config = dict(node.layer.get_config())
            config["name"] = node.layer_name
            if inbound is not None:
                config[INBOUND] = inbound
            entries.append({node.layer.keras_name: FlowDict(config)})
        return {"name": self.name,
                "inputs": [FlowDict(name=n, shape=list(i.shape))
                           for n, i in zip(self.input_names, self.inputs)],
                "layers": entries, "outputs": list(self.outputs)}

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    def __eq__(self, other):
        return isinstance(other, ModelSpec) and self.to_dict() == other.to_dict()

    __hash__ = None

    def __repr__(self):
        kind = "sequential" if self.is_sequential else "graph"
        return f"ModelSpec({self.name!r}, {kind}, {len(self.nodes)} calls)"

    # -- derived -----------------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...]:
        """The (first) input's shape, without the batch axis."""
        return self.inputs[0].shape

    @property
    def output_shape(self) -> tuple[int, ...]:
        """The (first) output's shape, without the batch axis."""
        return self.source_shape(self.output_ids[0])

    def source_shape(self, source: int) -> tuple[int, ...]:
        n_in = len(self.inputs)
        return self.inputs[source].shape if source < n_in else self.nodes[source - n_in].output_shape

    def input_shapes(self) -> tuple:
        """The Keras shape entering each node (a list of shapes for a merge layer)."""
        return tuple(n.input_shape for n in self.nodes)

    @property
    def num_outputs(self) -> int:
        return self.output_shape[-1]

    def layer_input_shape(self, layer: Layer):
        """The shape a layer was built for (its first call's input)."""
        for node in self.nodes:
            if node.layer is layer:
                return node.input_shape
        raise KeyError(layer)


def _keras_order(n_in: int, nodes, output_ids) -> list[tuple[str, object]]:
    """Keras's Functional layer order (keras/src/ops/function.py, map_graph): a depth-first
    walk from the outputs numbers each layer when first reached; a layer's depth is its
    largest distance to an output; layers sort by depth, deepest first, then by number."""
    def op(t):
        return ("input", t) if t < n_in else ("layer", nodes[t - n_in].layer)

    def key(t):
        return ("input", t) if t < n_in else id(nodes[t - n_in].layer)

    index, finished, post, ops = {}, set(), [], {}
    stack = [(t, False) for t in reversed(output_ids)]
    while stack:  # iterative depth-first walk; a node is finished after its inputs
        t, done = stack.pop()
        if done:
            finished.add(t)
            post.append(t)
            continue
        if t in finished:
            continue
        index.setdefault(key(t), len(index))
        ops[key(t)] = op(t)
        stack.append((t, True))
        if t >= n_in:
            stack.extend((s, False) for s in reversed(nodes[t - n_in].sources))
    node_depth, op_depth = {}, {}
    for t in reversed(post):
        d = max(node_depth.setdefault(t, 0), op_depth.get(key(t), 0))
        op_depth[key(t)] = node_depth[t] = d
        if t >= n_in:
            for s in nodes[t - n_in].sources:
                node_depth[s] = max(d + 1, node_depth.get(s, 0))
    for k in range(n_in):
        if ("input", k) not in index:
            index[("input", k)], op_depth[("input", k)], ops[("input", k)] = len(index), 0, op(k)
    return [ops[k] for k in sorted(op_depth, key=lambda k: (-op_depth[k], index[k]))]


def _layer_list(d) -> list:
    raw = d.get("layers")
    if not isinstance(raw, list):
        raise SpecError(f"The model spec needs `layers`: a list of layers. Received {raw!r}.")
    return raw


def _shapes_str(shapes) -> str:
    from .layers.base import shape_str
    return ", ".join(shape_str(s) for s in shapes)


def _auto_names(input_names, layers) -> list[str]:
    """Keras's per-model names: input_layer, conv2d, max_pooling2d, conv2d_1, ... (given names
    kept). Inputs first, then the layers in order of their first call."""
    taken = {n for n in input_names if n is not None}
    taken |= {layer._name for layer in layers if layer._name is not None}
    counts: dict[str, int] = {}
    names = []

    def auto(prefix):
        while True:
            n = counts.get(prefix, 0)
            counts[prefix] = n + 1
            name = prefix if n == 0 else f"{prefix}_{n}"
            if name not in taken:
                return name

    for i, given in enumerate(input_names):
        name = given if given is not None else auto("input_layer")
        if name in names:
            raise SpecError(f"Input {i}: the name {name!r} is already used. Expected unique names.")
        names.append(name)
    for i, layer in enumerate(layers):
        name = layer._name if layer._name is not None else auto(layer.auto_name)
        if name in names:
            raise SpecError(f"Layer {i} ({layer.keras_name}): the name {name!r} is already used "
                            "by another layer. Expected unique layer names.")
        names.append(name)
    return names


# -- YAML helpers shared by every config file ---------------------------------

def load_yaml(text: str, source: str = "<string>"):
    """yaml.safe_load with bounds (aliases, nesting, size) and duplicate keys refused."""
    from .bounded import load_yaml as bounded_load
    return bounded_load(text, source)


def read_yaml_file(path) -> object:
    """A config/spec YAML file: a regular file of bounded size, parsed with bounds."""
    from .bounded import MAX_CONFIG_BYTES, read_text
    path = Path(path)
    return load_yaml(read_text(path, "config file", MAX_CONFIG_BYTES), str(path))


class FlowDict(dict):
    """A mapping written on one line in YAML: `- Dense: {units: 10, activation: softmax}`."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)  # indent lists under their key


def _short_lists(dumper, data):
    # short lists of scalars in flow style: kernel_size: [3, 3]
    flow = len(data) <= 4 and all(isinstance(x, (int, float, str)) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _short_lists)
_Dumper.add_representer(tuple, _short_lists)
_Dumper.add_representer(FlowDict, lambda d, data: d.represent_mapping(
    "tag:yaml.org,2002:map", data, flow_style=True))


def dump_yaml(data) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False)
