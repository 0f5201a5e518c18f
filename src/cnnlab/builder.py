"""Spec -> torch module whose forward pass equals Keras's for the same weights.

    >>> net = build(spec)                    # a GraphNet (torch.nn.Module)
    >>> probs = net(x_nhwc)                  # (N, H, W, C) float in, Keras's output out
    >>> logits = net(x_nhwc, logits=True)    # the same before the final softmax/sigmoid

Images are held as (N, C, H, W) in channels-last memory. `layers` holds one
module per spec layer (the parameters, state and Keras weights; a shared layer
is one module); the forward pass runs `program`, the spec's calls in
topological order as cnnlab.fast rewrites them for speed (a Conv2D and the max
pooling that alone reads it as one module, ...), with the same results.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from . import fast
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
        self.is_chain = spec.is_sequential
        self.n_inputs = len(spec.inputs)
        self.image_inputs = [len(i.shape) == 3 for i in spec.inputs]
        self.image_input = self.image_inputs[0]
        self.output_ids = spec.output_ids
        self.image_outputs = [len(spec.source_shape(o)) == 3 for o in spec.output_ids]
        self.image_output = self.image_outputs[0]
        self.output_activation = _output_activation(spec)
        # what the forward pass runs: (module, sources, reads a list, output id) per call; a
        # plain tuple, so the modules it holds are not registered twice (parameters and
        # state_dict keys stay those of `layers`)
        self.program = _program(spec, self.layers, fuse_pooling)
        # a sequential model's modules as they run, for fast.plan_step (None for a graph)
        self.chain = tuple(m for m, *_ in self.program) if spec.is_sequential else None
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
        values = list(xs) + [None] * (len(self.spec.nodes))
        fold = logits and self.output_activation is not None
        last = self.output_ids[0]
        for module, sources, multi, out in self.program:
            arg = [values[s] for s in sources] if multi else values[sources[0]]
            if fold and out == last:
                values[out] = module(arg, activate=False)  # the loss applies it, stably
            else:
                values[out] = module(arg)
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


def _program(spec: ModelSpec, modules: nn.ModuleList, optimize: bool) -> tuple:
    """The calls to run, in order: (module, sources, reads a list, output id).

    A run of calls in which each output is read by the next call alone is a chain, which
    cnnlab.fast may rewrite (a Conv2D and its max pooling as one module: the Conv2D's own
    output then never exists). A sequential model is one chain."""
    n_in = len(spec.inputs)
    index = {id(layer): i for i, layer in enumerate(spec.layers)}
    program, j = [], 0
    while j < len(spec.nodes):
        end = j + 1
        while end < len(spec.nodes) and _linked(spec, end - 1):
            end += 1
        nodes = spec.nodes[j:end]
        chain = [(n.layer, modules[index[id(n.layer)]], n.output_shape) for n in nodes]
        if optimize:
            runs, at = fast.optimize_chain(chain)
        else:
            runs, at = [m for _, m, _ in chain], list(range(len(chain)))
        for p, module in enumerate(runs):
            first = at.index(p)
            last = len(at) - 1 - at[::-1].index(p)
            node = nodes[first]
            program.append((module, node.sources, node.layer.multi_input, n_in + j + last))
        j = end
    return tuple(program)


def _linked(spec: ModelSpec, j: int) -> bool:
    """Call j's output is read by call j + 1 alone (and is no model output): a chain link."""
    n_in = len(spec.inputs)
    node, nxt = spec.nodes[j], spec.nodes[j + 1]
    return (not nxt.layer.multi_input and nxt.sources == (n_in + j,)
            and spec.consumers[n_in + j] == 1 and (n_in + j) not in spec.output_ids)


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
