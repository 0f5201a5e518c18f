"""What a model computes inside: every layer's output, saliency, Grad-CAM, learned filters.

Library functions over any cnnlab model (Sequential or functional), usable from a
notebook as from `cnnlab explain`, `cnnlab report` and the prediction server:

    >>> outs = layer_outputs(model, x)      # x: images as predict takes them
    >>> [(o.name, o.type, o.shape) for o in outs][:2]
    [('conv2d', 'Conv2D', (None, 26, 26, 32)), ('max_pooling2d', 'MaxPooling2D', (None, 13, 13, 32))]
    >>> outs[0].array.shape                 # (N, 26, 26, 32): Keras's channels-last layout
    >>> sal = saliency(model, x)            # d(score of the predicted class) / d(input)
    >>> cam = grad_cam(model, x)            # (N, H, W) in [0, 1] over the input, or None
    >>> name, kernels = first_layer_filters(model)  # (filters, kh, kw, channels_in)

Every layer runs as its own module, one call per spec node, in the spec's
topological order: the speed rewrites of `cnnlab.fast` (a Conv2D and its pooling
as one op) would hide the Conv2D's own output, so they are not used here. The
modules are the model's own (same weights); results equal the model's forward
pass up to float rounding.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError, SpecError

__all__ = ["LayerOutput", "layer_outputs", "input_batch", "saliency", "grad_cam",
           "last_conv_layer", "first_layer_filters", "relu_layers"]

CONV_TYPES = ("Conv2D", "SeparableConv2D", "DepthwiseConv2D", "Conv2DTranspose")


@dataclass(frozen=True)
class LayerOutput:
    """One layer call's output: `name` (Keras's layer name; `name@k` for the k-th call of a
    shared layer), `type` (Keras class name), `shape` (Keras's, batch axis None) and `array`
    (NumPy float32, (N, *shape[1:]), images channels-last)."""

    name: str
    type: str
    shape: tuple
    array: np.ndarray


def input_batch(model, x) -> torch.Tensor:
    """x as the model sees it: float32 (N, *input_shape), uint8 pixels scaled to [0, 1]
    exactly as `model.predict` scales them (not scaled where a first Rescaling layer does)."""
    from ..train.data import takes_raw_pixels, to_images
    spec = model.to_spec()
    if len(spec.inputs) != 1:
        raise SpecError(f"Expected a model with one input. Received a model with "
                        f"{len(spec.inputs)} inputs.")
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        xt, scale = x.detach().cpu().float(), 1.0
    else:
        xt, scale = to_images(x, spec.input_shape, "images", takes_raw_pixels(spec))
    xb = xt.float() * scale if scale != 1.0 else xt.float()
    if tuple(xb.shape[1:]) != tuple(spec.input_shape):
        raise DataError(f"Expected images of shape {tuple(spec.input_shape)}. Received shape "
                        f"{tuple(xb.shape[1:])}.")
    return xb.contiguous()


def _trace(model, xb: torch.Tensor, logits: bool = False, keep=None):
    """Run the spec node by node on internal-layout tensors (images (N, C, H, W)).

    Returns the list of values (inputs first, then one per node). `logits`: the model's
    output layer without its final softmax/sigmoid. `keep(j, tensor)` may replace node j's
    value (Grad-CAM makes it a leaf that records its gradient)."""
    spec, net = model.to_spec(), model.net
    module_of = {id(layer): m for layer, m in zip(spec.layers, net.layers)}
    x = xb.to(model.device)
    values = [x.permute(0, 3, 1, 2) if len(spec.input_shape) == 3 else x]
    n_in, last = len(spec.inputs), spec.output_ids[0]
    fold = logits and net.output_activation is not None
    for j, node in enumerate(spec.nodes):
        module = module_of[id(node.layer)]
        arg = [values[s] for s in node.sources] if node.layer.multi_input else values[node.sources[0]]
        out = module(arg, activate=False) if fold and n_in + j == last else module(arg)
        values.append(keep(j, out) if keep is not None else out)
    return values


def _keras_layout(t: torch.Tensor, shape) -> torch.Tensor:
    # (N, C, H, W) -> (N, H, W, C) for image-shaped outputs, as Keras holds them
    return t.permute(0, 2, 3, 1) if len(shape) == 3 else t


class _eval_mode:
    """The model's module in inference mode (dropout off, moving statistics), then as it was."""

    def __init__(self, model):
        self.net = model.net

    def __enter__(self):
        self.was = self.net.training
        self.net.eval()

    def __exit__(self, *exc):
        self.net.train(self.was)


def layer_outputs(model, x) -> list[LayerOutput]:
    """Every layer call's output for the images `x`, in the spec's order (for a sequential
    model: the order of `model.summary()`), in inference mode.

    model: a cnnlab `Sequential` or `Model` (e.g. `cnnlab.load(run)`); one input.
    x: images as `model.predict` takes them (uint8 pixels are scaled by 1/255; floats are
    used as given), shaped (N, *input_shape) or reshapeable to it.
    Returns a list of `LayerOutput(name, type, shape, array)`; `array` is NumPy float32 on
    the host, (N, *shape[1:]), images channels-last (N, H, W, C) as Keras's layer outputs.
    The last entry equals `model.predict(x)` up to float rounding.
    """
    spec = model.to_spec()
    xb = input_batch(model, x)
    with _eval_mode(model), torch.no_grad():
        values = _trace(model, xb)
    n_in = len(spec.inputs)
    out = []
    for j, node in enumerate(spec.nodes):
        t = _keras_layout(values[n_in + j], node.output_shape)
        out.append(LayerOutput(node.ref, node.layer.keras_name, (None, *node.output_shape),
                               t.detach().float().cpu().numpy()))
    return out


def _class_scores(model, values, classes) -> tuple[torch.Tensor, np.ndarray]:
    """The score (logit) of each image's class: `classes` (N ints), or the predicted ones."""
    spec = model.to_spec()
    out = values[spec.output_ids[0]]
    if out.dim() != 2:
        raise SpecError(f"Expected a model whose output is a vector of class scores. Received "
                        f"output shape {(None, *spec.output_shape)}.")
    idx = out.detach().argmax(dim=1) if classes is None else \
        torch.as_tensor(np.asarray(classes, dtype=np.int64).reshape(-1), device=out.device)
    if idx.shape[0] != out.shape[0]:
        raise DataError(f"Expected one class per image ({out.shape[0]}). Received "
                        f"{idx.shape[0]}.")
    return out.gather(1, idx[:, None]).sum(), idx.cpu().numpy()


def saliency(model, x, classes=None) -> dict:
    """The gradient of the class score w.r.t. the input image (Simonyan et al., 2013).

    The score is the output layer's value before its softmax/sigmoid (the logit), of the
    predicted class (or of `classes`, one per image). Returns {"gradient": (N, *input_shape)
    float32, "map": |gradient| reduced over channels (max) -> (N, H, W) for images,
    (N, *input_shape) otherwise, "classes": (N,) int}. Inference mode (no dropout)."""
    spec = model.to_spec()
    xb = input_batch(model, x).to(model.device).requires_grad_(True)
    with _eval_mode(model), torch.enable_grad():
        values = _trace(model, xb, logits=True)
        score, idx = _class_scores(model, values, classes)
        (grad,) = torch.autograd.grad(score, xb)
    g = grad.detach().cpu().numpy().astype(np.float32)
    m = np.abs(g).max(axis=-1) if len(spec.input_shape) == 3 else np.abs(g)
    return {"gradient": g, "map": m, "classes": idx}


def last_conv_layer(model) -> int | None:
    """Index (into spec.nodes) of the last call of a convolution with an image output."""
    spec = model.to_spec()
    found = None
    for j, node in enumerate(spec.nodes):
        if node.layer.keras_name in CONV_TYPES and len(node.output_shape) == 3:
            found = j
    return found


def grad_cam(model, x, classes=None, layer: int | None = None) -> dict | None:
    """Grad-CAM (Selvaraju et al., 2017) on the last convolution (or spec node `layer`).

    Each channel k of that layer's output A is weighted by the mean over positions of
    d(score)/dA_k; the map is ReLU(sum_k w_k A_k), resized (bilinear) to the input's height
    and width and divided by its maximum per image (an all-zero map stays zero).
    Returns {"map": (N, H, W) float32 in [0, 1], "coarse": the map at the layer's own
    resolution (unnormalised), "layer": its name, "classes": (N,) int}, or None for a
    model without a convolution layer or without an image input."""
    spec = model.to_spec()
    j = last_conv_layer(model) if layer is None else layer
    if j is None or len(spec.input_shape) != 3:
        return None
    xb = input_batch(model, x)
    held = {}

    def keep(k, t):
        if k == j:
            t = t.detach().requires_grad_(True)
            held["a"] = t
        return t
    with _eval_mode(model), torch.enable_grad():
        values = _trace(model, xb, logits=True, keep=keep)
        score, idx = _class_scores(model, values, classes)
        a = held["a"]
        (grad,) = torch.autograd.grad(score, a)
    weights = grad.mean(dim=(2, 3), keepdim=True)               # (N, C, 1, 1)
    coarse = torch.relu((weights * a.detach()).sum(dim=1))       # (N, h, w)
    h, w = spec.input_shape[:2]
    up = F.interpolate(coarse[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    peak = up.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    cam = (up / peak).clamp(0, 1)
    return {"map": cam.cpu().numpy().astype(np.float32),
            "coarse": coarse.cpu().numpy().astype(np.float32),
            "layer": spec.nodes[j].ref, "classes": idx}


def first_layer_filters(model) -> tuple[str, np.ndarray] | None:
    """The first Conv2D's kernels as (filters, kh, kw, channels_in) float32 (Keras's kernel
    (kh, kw, channels_in, filters) with the filter axis first), with the layer's name;
    None for a model without a Conv2D."""
    spec = model.to_spec()
    for layer, name, module in zip(spec.layers, spec.layer_names, model.net.layers):
        if layer.keras_name == "Conv2D":
            kernel = module.keras_weights()[0]                   # (kh, kw, c_in, filters)
            return name, np.ascontiguousarray(np.transpose(kernel, (3, 0, 1, 2)), np.float32)
    return None


def relu_layers(model) -> list[int]:
    """Indices (into spec.nodes) of the calls whose output is a ReLU's: layers with
    activation='relu', Activation('relu') and ReLU layers without a cap or slope."""
    out = []
    for j, node in enumerate(model.to_spec().nodes):
        cfg = node.layer.config
        if cfg.get("activation") == "relu" or (
                node.layer.keras_name == "ReLU" and not cfg.get("negative_slope")
                and cfg.get("max_value") is None and not cfg.get("threshold")):
            out.append(j)
    return out
