"""Spec -> torch module whose forward pass equals Keras's for the same weights.

    >>> net = build(spec)                    # a GraphNet (torch.nn.Module)
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
from .layers.objects import apply_trainable
from .spec import ModelSpec

OUTPUT_ACTIVATIONS = ("softmax", "sigmoid")  # folded into the loss when training


class GraphNet(nn.Module):
    """The torch module of a spec: one module per layer (`self.layers`, in the spec's layer
    order; a shared layer is one module), run call by call in the spec's topological order.
    A sequential spec is the chain of its layers, as before."""

    def __init__(self, spec: ModelSpec, fuse_pooling: bool = True, reuse: bool = False):
        super().__init__()
        self.spec = spec
        modules = []
        for layer in spec.layers:
            bound = layer._module if reuse else None
            m = bound if bound is not None else layer.build(spec.layer_input_shape(layer))
            if not layer.trainable:
                apply_trainable(m, False)
            modules.append(m)
        self.layers = nn.ModuleList(modules)
        index = {id(layer): i for i, layer in enumerate(spec.layers)}
        # (module index, sources, reads a list) per call; sources index inputs, then calls
        self.calls = [(index[id(n.layer)], n.sources, n.layer.multi_input) for n in spec.nodes]
        self.is_chain = spec.is_sequential  # net.layers[i] is call i (train/fast_step.py)
        self.n_inputs = len(spec.inputs)
        self.image_inputs = [len(i.shape) == 3 for i in spec.inputs]
        self.image_input = self.image_inputs[0]
        self.output_ids = spec.output_ids
        self.image_outputs = [len(spec.source_shape(o)) == 3 for o in spec.output_ids]
        self.image_output = self.image_outputs[0]
        self.output_activation = _output_activation(spec)
        if fuse_pooling:
            shared = {i for i, layer in enumerate(spec.layers)
                      if reuse and layer._module is not None}
            for a, b in _fusable_pairs(spec, shared):
                _move_activation_after_max_pooling(spec, self.layers, a, b)
                _fuse_conv_and_pool(spec, self.layers, a, b)
        # conv kernels in channels-last memory too, or every step converts them on the fly
        self.to(memory_format=torch.channels_last)
        self.regularized = [m for m in self.layers if getattr(m, "regularization", None)
                            and (m.kernel_regularizer or m.bias_regularizer)]

    def forward(self, x, logits: bool = False):
        """Keras layout in and out: (N, H, W, C) images; a list for several inputs/outputs."""
        xs = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(xs) != self.n_inputs:
            from .errors import DataError
            raise DataError(f"The model has {self.n_inputs} inputs. Received {len(xs)} arrays.")
        # (N, H, W, C) -> (N, C, H, W) views in channels-last memory
        xs = [t.permute(0, 3, 1, 2) if img else t for t, img in zip(xs, self.image_inputs)]
        outs = self.run(xs, logits)
        outs = [t.permute(0, 2, 3, 1) if img else t for t, img in zip(outs, self.image_outputs)]
        return outs[0] if len(outs) == 1 else outs

    def run(self, xs: list, logits: bool = False) -> list:
        """The graph on internal-layout tensors (images (N, C, H, W))."""
        values = list(xs) + [None] * len(self.calls)
        n_in, fold = self.n_inputs, logits and self.output_activation is not None
        last = self.output_ids[0] - n_in
        for j, (mi, sources, multi) in enumerate(self.calls):
            arg = [values[s] for s in sources] if multi else values[sources[0]]
            if fold and j == last:
                values[n_in + j] = self.layers[mi](arg, activate=False)  # the loss applies it
            else:
                values[n_in + j] = self.layers[mi](arg)
        return [values[o] for o in self.output_ids]

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
    if len(spec.outputs) != 1:
        return None
    last = spec.nodes[spec.output_ids[0] - len(spec.inputs)].layer
    if isinstance(last, (Dense, Conv2D, Activation)):
        name = last.config["activation"]
        if name in OUTPUT_ACTIVATIONS:
            return name
    return None


def _fusable_pairs(spec: ModelSpec, shared: set) -> list[tuple[int, int]]:
    """(conv module, pool module) indices where a Conv2D's only reader is a MaxPooling2D, both
    called once, and neither module is shared with another model (their flags would leak)."""
    n_in, pairs = len(spec.inputs), []
    calls = {}
    for node in spec.nodes:
        calls[id(node.layer)] = calls.get(id(node.layer), 0) + 1
    index = {id(layer): i for i, layer in enumerate(spec.layers)}
    for j, node in enumerate(spec.nodes[1:], start=1):
        prev = spec.nodes[j - 1]
        if not (isinstance(prev.layer, Conv2D) and isinstance(node.layer, MaxPooling2D)):
            continue
        a, b = index[id(prev.layer)], index[id(node.layer)]
        if (node.sources == (n_in + j - 1,) and spec.consumers[n_in + j - 1] == 1
                and calls[id(prev.layer)] == 1 and calls[id(node.layer)] == 1
                and a not in shared and b not in shared):
            pairs.append((a, b))
    return pairs


def _move_activation_after_max_pooling(spec: ModelSpec, modules: nn.ModuleList, a, b) -> None:
    act = activations.get(spec.layers[a].config["activation"])
    if act.fn is not None and act.monotone:
        modules[a].activation = None
        modules[b].post_activation = act


def _fuse_conv_and_pool(spec: ModelSpec, modules: nn.ModuleList, a, b) -> None:
    """A Conv2D (stride 1) with a 2x2/stride-2 max pooling after it runs as one op.

    Applies where pooling comes first already (monotone or no activation), and the
    pooling is 'valid' or 'same' padded only at the end (torch's ceil_mode).
    """
    conv, pool = spec.layers[a], spec.layers[b]
    act = activations.get(conv.config["activation"])
    if not (conv.config["strides"] == (1, 1) and pool.config["pool_size"] == (2, 2)
            and pool.config["strides"] == (2, 2) and (act.fn is None or act.monotone)
            and modules[b].pad is None):
        return
    pool_node = next(n for n in spec.nodes if n.layer is pool)
    modules[a].pooled_hw = pool_node.output_shape[:2]
    modules[a].pool_ceil = modules[b].ceil_mode
    modules[a].activation = None
    modules[a].pooled_activation = act if act.fn is not None else None
    modules[b].done_by_previous = True
    modules[b].post_activation = None


def build(spec: ModelSpec, *, seed: int | None = None, fuse_pooling: bool = True,
          reuse: bool = False) -> GraphNet:
    """Build the module with Keras's initializers (seeded when `seed` is given).

    reuse: layers already built by a model keep their module (their weights), as Keras's
    layer objects do; new ones are built. Without it every module is new."""
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return GraphNet(spec, fuse_pooling, reuse)
    return GraphNet(spec, fuse_pooling, reuse)


KerasSequential = GraphNet  # the name before models were graphs
