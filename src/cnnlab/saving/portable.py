"""A run's model as a file other runtimes run: ONNX (onnxruntime, ...) or TorchScript (C++, torch).

    >>> write_onnx(model, "m.onnx")          # input "images" float32 (N, H, W, C), output "probabilities"
    >>> write_torchscript(model, "m.pt")     # torch.jit.load("m.pt")(images) -> probabilities

Both take a batch of any size (the first axis is dynamic) in Keras's layout, and
run the model in inference mode: Dropout off, BatchNormalization on its moving
statistics. The graph is built from the spec without cnnlab.fast's rewrites (its
fused kernels are cnnlab's own ops), with the trained weights: the same function.
How to prepare images is written into the file itself (`preprocessing()`): ONNX
metadata_props, and TorchScript's extra file `cnnlab.json`.
"""
from __future__ import annotations

import json
import warnings

import torch

from ..io import atomic_path

OPSET = 17          # ONNX opset: onnxruntime 1.16+ and most other runtimes run it
INPUT, OUTPUT = "images", "probabilities"


class _Exported(torch.nn.Module):
    """GraphNet in inference mode, one input, one output: what the file holds."""

    def __init__(self, model):
        super().__init__()
        from ..builder import build
        spec = model.to_spec()
        self.net = build(spec, fuse_pooling=False)
        self.net.load_state_dict(model.net.state_dict())
        self.net.eval()

    def forward(self, images):
        return self.net(images)


def preprocessing(model) -> dict:
    """The contract of the exported file's input, as metadata: shape, dtype, scale, recipe."""
    from ..layers.reshaping import takes_raw_pixels
    spec = model.to_spec()
    raw = takes_raw_pixels(spec)
    shape = [int(d) for d in spec.input_shape]
    return {
        "input": INPUT, "output": OUTPUT,
        "input_shape": ["N", *shape], "input_dtype": "float32", "layout": "channels_last (N, H, W, C)",
        "pixel_scale": 1.0 if raw else 1 / 255,
        "preprocessing": (
            "Decode PNG/JPEG and prepare each image as cnnlab.images.prepare_image does "
            f"(to {shape}: grey images whose border is light are inverted to light ink on "
            "black; 28x28 grey models crop to the ink, fit it in 20x20 and centre it by centre "
            "of mass, as MNIST was made; others resize keeping the aspect ratio and pad), then "
            + ("feed the 0..255 pixels as float32 (the model's Rescaling layer scales them)."
               if raw else "divide the 0..255 pixels by 255 and feed them as float32.")),
        "output_meaning": "class probabilities (softmax of the model's last layer)",
        "class_names": _class_names(model, int(spec.output_shape[-1])),
    }


def _class_names(model, n: int) -> list[str]:
    if getattr(model, "run_dir", None) is None:
        return [str(i) for i in range(n)]
    from ..evaluate import class_names_of
    return class_names_of(model, n)


def _example(model) -> torch.Tensor:
    return torch.zeros((2, *model.to_spec().input_shape), dtype=torch.float32)


def write_onnx(model, path) -> None:
    import onnx
    module = _Exported(model)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # the tracer's notes about Python branches on shapes: the branches are fixed per spec
        warnings.simplefilter("ignore")
        # the TorchScript-based exporter: no onnxscript, no network, the same graph for a CNN
        torch.onnx.export(module, (_example(model),), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=[INPUT], output_names=[OUTPUT],
                          dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
        proto = onnx.load(str(tmp))
        onnx.helper.set_model_props(proto, {f"cnnlab.{k}": json.dumps(v) if not isinstance(v, str) else v
                                            for k, v in preprocessing(model).items()})
        proto.producer_name = "cnnlab"
        onnx.save(proto, str(tmp))


def write_torchscript(model, path) -> None:
    module = _Exported(model)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, _example(model), check_trace=False)
        torch.jit.save(traced, str(tmp),
                       _extra_files={"cnnlab.json": json.dumps(preprocessing(model), indent=2)})
