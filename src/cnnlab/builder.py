"""Spec -> torch module whose forward pass equals Keras's for the same weights.

    >>> net = build(spec)                    # a KerasSequential (torch.nn.Module)
    >>> probs = net(x_nhwc)                  # (N, H, W, C) float in, Keras's output out
    >>> logits = net(x_nhwc, logits=True)    # the same before the final softmax/sigmoid

Images are held as (N, C, H, W) in channels-last memory. `layers` holds one
module per spec layer (the parameters, state and Keras weights); the forward
pass runs `chain`, the same layers as cnnlab.fast rewrites them for speed
(a Conv2D and the max pooling after it as one module, ...), with the same results.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import fast
from .layers import Activation, Conv2D, Dense
from .spec import ModelSpec

OUTPUT_ACTIVATIONS = ("softmax", "sigmoid")  # folded into the loss when training


class KerasSequential(nn.Module):
    def __init__(self, spec: ModelSpec, fuse_pooling: bool = True):
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleList(
            layer.build(shape) for layer, shape in zip(spec.layers, spec.input_shapes()))
        self.image_input = len(spec.input_shape) == 3
        self.image_output = len(spec.output_shapes[-1]) == 3
        self.output_activation = _output_activation(spec)
        # what the forward pass runs: a plain tuple, so the modules it holds are not
        # registered twice (parameters and state_dict keys stay those of `layers`)
        self.chain = tuple(self.layers)
        if fuse_pooling:
            self.chain = tuple(fast.optimize_chain(
                zip(spec.layers, self.layers, spec.output_shapes))[0])
        # conv kernels in channels-last memory too, or every step converts them on the fly
        self.to(memory_format=torch.channels_last)
        self.regularized = [m for m in self.layers if getattr(m, "regularization", None)
                            and (m.kernel_regularizer or m.bias_regularizer)]

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        if self.image_input:
            x = x.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W) view, channels-last memory
        last = len(self.chain) - 1
        for i, layer in enumerate(self.chain):
            if i == last and logits and self.output_activation:
                x = layer(x, activate=False)  # the loss applies softmax/sigmoid itself, stably
            else:
                x = layer(x)
        if self.image_output:
            x = x.permute(0, 2, 3, 1)
        return x

    def regularization(self) -> torch.Tensor | None:
        """Sum of the L1/L2 penalties, added to the training loss as Keras does."""
        terms = [m.regularization() for m in self.regularized]
        return sum(terms) if terms else None

    def keras_weights(self) -> list[list]:
        """Per layer, its weights in Keras's layout and order (layer.get_weights())."""
        return [m.keras_weights() if hasattr(m, "keras_weights") else [] for m in self.layers]

    def set_keras_weights(self, per_layer) -> None:
        from .errors import SpecError
        if len(per_layer) != len(self.layers):
            raise SpecError(f"Expected weights for {len(self.layers)} layers. "
                            f"Received {len(per_layer)}.")
        for i, (m, arrays) in enumerate(zip(self.layers, per_layer)):
            current = m.keras_weights() if hasattr(m, "keras_weights") else []
            shapes = [tuple(a.shape) for a in current]
            got = [tuple(getattr(a, "shape", ())) for a in arrays]
            if shapes != got:
                raise SpecError(f"Layer {i} ({self.spec.layer_names[i]}): weight shapes do not "
                                f"match the spec. Expected {shapes}. Received {got}.")
            if arrays:
                m.set_keras_weights(arrays)


def _output_activation(spec: ModelSpec) -> str | None:
    last = spec.layers[-1]
    if isinstance(last, (Dense, Conv2D, Activation)):
        name = last.config["activation"]
        if name in OUTPUT_ACTIVATIONS:
            return name
    return None


def build(spec: ModelSpec, *, seed: int | None = None, fuse_pooling: bool = True) -> KerasSequential:
    """Build the module with Keras's initializers (seeded when `seed` is given)."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return KerasSequential(spec, fuse_pooling)
    return KerasSequential(spec, fuse_pooling)
