"""A model used as a layer: `Sequential([base_model, Softmax()])`, or `encoder(x)` in a graph.

The nested model keeps its own layers and weights: a live model object nested
in another shares its torch module, so training either trains both, as in Keras.
In YAML a nested model is written in place, in its own spec form:

    - Sequential: {name: features, input_shape: [28, 28, 1], layers: [...]}
"""
from __future__ import annotations

import torch.nn as nn

from ..errors import SpecError
from .base import Layer, shape_str

DEFAULT_NAMES = ("sequential", "functional")


class ModelLayer(Layer):
    keras_name, auto_name = "Sequential", "sequential"
    ARGS: dict = {}

    def __init__(self, model=None, *, name=None, trainable=True, **spec_dict):
        from ..spec import ModelSpec
        if model is not None:
            spec = model.to_spec()
        else:
            if not spec_dict:
                raise SpecError("A nested model needs its spec: `layers` and `input_shape` (or "
                                "`inputs`, `layers` and `outputs`).")
            spec = ModelSpec.from_dict({**spec_dict, **({"name": name} if name else {})})
        if len(spec.inputs) != 1 or len(spec.outputs) != 1:
            raise SpecError(f"Model {spec.name!r} has {len(spec.inputs)} inputs and "
                            f"{len(spec.outputs)} outputs. Expected one of each to use it as a "
                            "layer.")
        own = name or (spec.name if spec.name not in DEFAULT_NAMES else None)
        super().__init__(name=own, trainable=trainable)
        self.model, self.spec = model, spec
        self.keras_name = "Sequential" if spec.is_sequential else "Functional"
        self.auto_name = self.keras_name.lower()

    @property
    def implied_input_shape(self):
        """A nested model first in a Sequential gives it its input shape, as in Keras."""
        return self.spec.input_shape

    def get_config(self) -> dict:
        out = {k: v for k, v in self.spec.to_dict().items() if k != "name"}
        out["name"] = self.name
        if not self._trainable:
            out["trainable"] = False
        return out

    def output_shape(self, input_shape):
        if tuple(input_shape) != self.spec.input_shape:
            raise SpecError(f"Model {self.name!r} expects input shape "
                            f"{shape_str(self.spec.input_shape)}. Received "
                            f"{shape_str(tuple(input_shape))}.")
        return self.spec.output_shape

    def param_counts(self, input_shape):
        from ..summary import totals
        t = totals(self.spec)
        return t["trainable_params"], t["non_trainable_params"]

    def build(self, input_shape):
        if self.model is None:  # from a file or YAML: a model object, as Keras's nested ones
            from ..models import Model
            self.model = Model.from_spec(self.spec)
        return NestedNet(self.model.net)

    def __eq__(self, other):
        return isinstance(other, ModelLayer) and self.get_config() == other.get_config()

    __hash__ = None


class NestedNet(nn.Module):
    """Runs a model's GraphNet on the outer graph's internal-layout tensors."""

    bias_regularizer = None

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.output_activation = net.output_activation

    @property
    def kernel_regularizer(self):
        return True if self.net.regularized else None

    def regularization(self):
        return self.net.regularization()

    def forward(self, x, activate: bool = True):
        return self.net.run([x], logits=not activate)[0]

    def keras_weights(self) -> list:
        return [w for ws in self.net.keras_weights() for w in ws]

    def set_keras_weights(self, arrays) -> None:
        per_layer, i = [], 0
        for ws in self.net.keras_weights():
            per_layer.append(list(arrays[i:i + len(ws)]))
            i += len(ws)
        self.net.set_keras_weights(per_layer)
