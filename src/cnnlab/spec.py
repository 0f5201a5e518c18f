"""The model spec: the single source of truth of a sequential model.

A spec is an input shape plus an ordered list of Keras layers. It is validated
on construction (every layer's shape is derived once, here), serializes back to
the same YAML/JSON, and is saved with every run. The torch module, the summary
and the Keras export are all derived from it.

    >>> spec = ModelSpec.from_dict(yaml.safe_load('''
    ... input_shape: [28, 28, 1]
    ... layers:
    ...   - Conv2D: {filters: 32, kernel_size: [3, 3], activation: relu}
    ...   - Flatten: {}
    ...   - Dense: {units: 10, activation: softmax}
    ... '''))
    >>> spec.output_shapes[-1]        # (10,)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from . import layers as layer_registry
from .errors import ConfigError, SpecError, reject_unknown_keys
from .layers.base import Layer, shape_tuple

MODEL_KEYS = ("input_shape", "layers", "name")


def _layer_error(index: int, layer_type: str, err: SpecError) -> SpecError:
    return SpecError(f"Layer {index} ({layer_type}): {err}")


def parse_layer(entry, index: int) -> Layer:
    """One YAML entry (`{Conv2D: {filters: 32, ...}}` or `Flatten`) -> a Layer."""
    if isinstance(entry, Layer):
        return entry
    if isinstance(entry, str):
        entry = {entry: {}}
    if not isinstance(entry, dict) or len(entry) != 1:
        raise SpecError(f"Layer {index}: expected a one-key mapping from a Keras layer name to "
                        f"its arguments, such as {{Dense: {{units: 10}}}}. Received {entry!r}.")
    (layer_type, args), = entry.items()
    try:
        cls = layer_registry.get(layer_type)
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise SpecError(f"Expected a mapping of arguments. Received {args!r}.")
        return cls(**args)
    except SpecError as err:
        raise _layer_error(index, layer_type, err) from None
    except TypeError as err:  # e.g. non-string keys
        raise _layer_error(index, layer_type, SpecError(str(err))) from None


@dataclass(frozen=True, eq=False)
class ModelSpec:
    input_shape: tuple[int, ...]
    layers: tuple[Layer, ...]
    name: str = "sequential"
    # derived, in Keras layout without the batch axis: shape after each layer
    output_shapes: tuple[tuple[int, ...], ...] = field(init=False)
    layer_names: tuple[str, ...] = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "input_shape", shape_tuple(self.input_shape, "input_shape"))
        object.__setattr__(self, "layers", tuple(self.layers))
        if not self.layers:
            raise SpecError("A model needs at least one layer. Received an empty `layers` list.")
        shapes, shape = [], self.input_shape
        for i, layer in enumerate(self.layers):
            if isinstance(layer, layer_registry.Input):
                raise SpecError(f"Layer {i} (Input): Input may only be the first layer.")
            try:
                shape = tuple(layer.output_shape(shape))
            except SpecError as err:
                raise _layer_error(i, layer.keras_name, err) from None
            shapes.append(shape)
        object.__setattr__(self, "output_shapes", tuple(shapes))
        object.__setattr__(self, "layer_names", _auto_names(self.layers))

    # -- construction ------------------------------------------------------
    @classmethod
    def from_layers(cls, layers, input_shape=None, name="sequential") -> "ModelSpec":
        """Layers as the Python API holds them; the input shape may sit on the first layer."""
        layers = list(layers)
        if input_shape is not None:  # checked first: the comparisons below need a tuple
            input_shape = shape_tuple(input_shape, "input_shape")
        if layers and isinstance(layers[0], layer_registry.Input):
            if input_shape is not None and tuple(input_shape) != layers[0].config["shape"]:
                raise SpecError(f"Two different input shapes: input_shape={list(input_shape)} "
                                f"and Input shape={list(layers[0].config['shape'])}.")
            input_shape = layers.pop(0).config["shape"]
        if layers and layers[0].input_shape is not None:
            if input_shape is not None and tuple(input_shape) != layers[0].input_shape:
                raise SpecError(f"Two different input shapes: input_shape={list(input_shape)} "
                                f"and the first layer's input_shape={list(layers[0].input_shape)}.")
            input_shape = layers[0].input_shape
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
        reject_unknown_keys(d, MODEL_KEYS, "the model spec", SpecError)
        raw_layers = d.get("layers")
        if not isinstance(raw_layers, list):
            raise SpecError(f"The model spec needs `layers`: a list of layers. Received "
                            f"{raw_layers!r}.")
        layers = [parse_layer(entry, i) for i, entry in enumerate(raw_layers)]
        name = d.get("name", "sequential")
        if not isinstance(name, str) or not name:
            raise SpecError(f"Invalid model `name`. Expected a non-empty string. Received {name!r}.")
        return cls.from_layers(layers, d.get("input_shape"), name)

    @classmethod
    def from_yaml(cls, text: str, source: str = "<string>") -> "ModelSpec":
        return cls.from_dict(load_yaml(text, source))

    # -- serialization -----------------------------------------------------
    def to_dict(self) -> dict:
        out = {"input_shape": list(self.input_shape),
               "layers": [{layer.keras_name: FlowDict(layer.get_config())} for layer in self.layers]}
        if self.name != "sequential":
            out["name"] = self.name
        return out

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    def __eq__(self, other):
        return isinstance(other, ModelSpec) and self.to_dict() == other.to_dict()

    # -- derived -----------------------------------------------------------
    def input_shapes(self) -> tuple[tuple[int, ...], ...]:
        """The Keras shape entering each layer."""
        return (self.input_shape, *self.output_shapes[:-1])

    @property
    def num_outputs(self) -> int:
        return self.output_shapes[-1][-1]


def _auto_names(layers) -> tuple[str, ...]:
    """Keras's per-model names: conv2d, max_pooling2d, conv2d_1, ... (user names kept)."""
    counts: dict[str, int] = {}
    names = []
    for i, layer in enumerate(layers):
        if layer.name is not None:
            name = layer.name
        else:
            n = counts.get(layer.auto_name, 0)
            counts[layer.auto_name] = n + 1
            name = layer.auto_name if n == 0 else f"{layer.auto_name}_{n}"
        if name in names:
            raise SpecError(f"Layer {i} ({layer.keras_name}): the name {name!r} is already used "
                            "by another layer. Expected unique layer names.")
        names.append(name)
    return tuple(names)


# -- YAML helpers shared by every config file ---------------------------------

def load_yaml(text: str, source: str = "<string>"):
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"Invalid YAML in {source}{where}: {problem}.") from None


def read_yaml_file(path) -> object:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"Config file not found: {path}.") from None
    except IsADirectoryError:
        raise ConfigError(f"Expected a YAML file. Received a directory: {path}.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"Cannot read config file {path}: {err}.") from None
    return load_yaml(text, str(path))


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
