"""The merge layers: Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate.

Each reads a list of tensors (`multi_input`), in a graph model:

    >>> y = cnnlab.layers.Add()([x1, x2])            # x1, x2: KerasTensors of one shape
    >>> z = cnnlab.layers.Concatenate(axis=-1)([x1, y])

Spec class and torch module live together here. Image tensors run as
(N, C, H, W) in channels-last memory, so a Keras axis is mapped to torch's.
"""
from __future__ import annotations

import functools
import operator

import torch
import torch.nn as nn

from ..errors import SpecError
from .base import Layer, is_int, invalid, shape_str


def _shapes_text(shapes) -> str:
    return "[" + ", ".join(shape_str(s) for s in shapes) + "]"


class _Merge(Layer):
    multi_input = True
    op = "add"
    exactly: int | None = None  # Subtract takes exactly two inputs

    def output_shape(self, input_shapes):
        shapes = [tuple(s) for s in input_shapes]
        if self.exactly is not None and len(shapes) != self.exactly:
            raise SpecError(f"A `{self.keras_name}` layer should be called on exactly "
                            f"{self.exactly} inputs. Received {len(shapes)} inputs.")
        if len(set(shapes)) != 1:
            raise SpecError(f"Inputs of a `{self.keras_name}` layer must have the same shape. "
                            f"Received shapes {_shapes_text(shapes)}.")
        return shapes[0]

    def build(self, input_shapes):
        return ElementwiseMerge(self.op)


class ElementwiseMerge(nn.Module):
    def __init__(self, op: str):
        super().__init__()
        self.op = op

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        if self.op == "add":
            return functools.reduce(operator.add, xs)
        if self.op == "subtract":
            return xs[0] - xs[1]
        if self.op == "multiply":
            return functools.reduce(operator.mul, xs)
        if self.op == "average":
            return functools.reduce(operator.add, xs) / len(xs)
        if self.op == "maximum":
            return functools.reduce(torch.maximum, xs)
        return functools.reduce(torch.minimum, xs)


class Add(_Merge):
    keras_name, auto_name, op = "Add", "add", "add"


class Subtract(_Merge):
    keras_name, auto_name, op, exactly = "Subtract", "subtract", "subtract", 2


class Multiply(_Merge):
    keras_name, auto_name, op = "Multiply", "multiply", "multiply"


class Average(_Merge):
    keras_name, auto_name, op = "Average", "average", "average"


class Maximum(_Merge):
    keras_name, auto_name, op = "Maximum", "maximum", "maximum"


class Minimum(_Merge):
    keras_name, auto_name, op = "Minimum", "minimum", "minimum"


class Concatenate(Layer):
    keras_name, auto_name = "Concatenate", "concatenate"
    multi_input = True
    POSITIONAL = ("axis",)
    ARGS = {"axis": -1}

    def normalize(self, c):
        if not is_int(c["axis"]) or c["axis"] == 0:
            raise invalid("axis", "a non-zero integer (the batch axis cannot be joined)", c["axis"])
        return c

    def _axis(self, rank: int) -> int:
        """The axis in Keras's shape without the batch axis."""
        axis = self.config["axis"]
        k = axis - 1 if axis > 0 else rank + axis
        if not 0 <= k < rank:
            raise SpecError(f"Concatenate: axis {axis} is out of range for inputs of rank "
                            f"{rank + 1} (with the batch axis).")
        return k

    def output_shape(self, input_shapes):
        shapes = [tuple(s) for s in input_shapes]
        ranks = {len(s) for s in shapes}
        if len(ranks) != 1:
            raise SpecError(f"A `Concatenate` layer requires inputs of one rank. Received shapes "
                            f"{_shapes_text(shapes)}.")
        k = self._axis(ranks.pop())
        rest = {s[:k] + s[k + 1:] for s in shapes}
        if len(rest) != 1:
            raise SpecError(f"A `Concatenate` layer requires inputs with matching shapes except "
                            f"for the concatenation axis. Received: input_shape="
                            f"{_shapes_text(shapes)}")
        s = shapes[0]
        return s[:k] + (sum(x[k] for x in shapes),) + s[k + 1:]

    def build(self, input_shapes):
        rank = len(input_shapes[0])
        k = self._axis(rank)
        # images run as (N, C, H, W): Keras's (H, W, C) axes 0, 1, 2 are torch's 2, 3, 1
        dim = (2, 3, 1)[k] if rank == 3 else k + 1
        return Concat(dim)


class Concat(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        out = torch.cat(xs, dim=self.dim)
        if out.dim() == 4 and self.dim == 1:  # keep channels-last memory for the next conv
            out = out.contiguous(memory_format=torch.channels_last)
        return out


MERGE_LAYERS = (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate)
