"""Spec -> torch module whose forward pass equals Keras's for the same weights.

    >>> net = build(spec)                    # a KerasSequential (torch.nn.Module)
    >>> probs = net(x_nhwc)                  # (N, H, W, C) float in, Keras's output out
    >>> logits = net(x_nhwc, logits=True)    # the same before the final softmax/sigmoid

Speed, without changing results: images are held as (N, C, H, W) in
channels-last memory, a monotone activation followed by max pooling is
applied after the pooling (max(f(x)) == f(max(x)) for non-decreasing f, on a
tensor 4x smaller), and a Conv2D followed by 2x2 max pooling runs as one op
whose backward pass differentiates only each window's winner (fused.py).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import activations
from .layers import Activation, Conv2D, Dense, MaxPooling2D
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
        if fuse_pooling:
            _move_activations_after_max_pooling(spec, self.layers)
            _fuse_conv_and_pool(spec, self.layers)
        # conv kernels in channels-last memory too, or every step converts them on the fly
        self.to(memory_format=torch.channels_last)
        self.regularized = [m for m in self.layers if getattr(m, "regularization", None)
                            and (m.kernel_regularizer or m.bias_regularizer)]

    def forward(self, x: torch.Tensor, logits: bool = False) -> torch.Tensor:
        if self.image_input:
            x = x.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W) view, channels-last memory
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
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


def _move_activations_after_max_pooling(spec: ModelSpec, modules: nn.ModuleList) -> None:
    for i in range(len(spec.layers) - 1):
        layer, nxt = spec.layers[i], spec.layers[i + 1]
        if not (isinstance(layer, Conv2D) and isinstance(nxt, MaxPooling2D)):
            continue
        act = activations.get(layer.config["activation"])
        if act.fn is not None and act.monotone:
            modules[i].activation = None
            modules[i + 1].post_activation = act


def _fuse_conv_and_pool(spec: ModelSpec, modules: nn.ModuleList) -> None:
    """Each Conv2D (stride 1) with a 2x2/stride-2 max pooling after it runs as one op.

    Applies where pooling comes first already (monotone or no activation), and the
    pooling is 'valid' or 'same' padded only at the end (torch's ceil_mode).
    """
    for i in range(len(spec.layers) - 1):
        conv, pool = spec.layers[i], spec.layers[i + 1]
        if not (isinstance(conv, Conv2D) and isinstance(pool, MaxPooling2D)):
            continue
        act = activations.get(conv.config["activation"])
        if not (conv.config["strides"] == (1, 1) and pool.config["pool_size"] == (2, 2)
                and pool.config["strides"] == (2, 2) and (act.fn is None or act.monotone)
                and modules[i + 1].pad is None):
            continue
        modules[i].pooled_hw = spec.output_shapes[i + 1][:2]
        modules[i].pool_ceil = modules[i + 1].ceil_mode
        modules[i].activation = None
        modules[i].pooled_activation = act if act.fn is not None else None
        modules[i + 1].done_by_previous = True
        modules[i + 1].post_activation = None


def build(spec: ModelSpec, *, seed: int | None = None, fuse_pooling: bool = True) -> KerasSequential:
    """Build the module with Keras's initializers (seeded when `seed` is given)."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return KerasSequential(spec, fuse_pooling)
    return KerasSequential(spec, fuse_pooling)
