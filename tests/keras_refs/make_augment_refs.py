"""Generate the Keras reference fixtures for the preprocessing and augmentation layers
(issue 17 item 4): augment_refs.npz (images in, Keras's images out) and augment_refs.json
(summary rows and configs).

Random layers are checked on their deterministic part: each Keras layer's own transform
applied with a FIXED parameter (a given angle, zoom, shift, flip, contrast or brightness),
e.g. `RandomRotation.transform_images(x, {"rotation_matrix": M(angle)})`; cnnlab's module
applies the same parameter (`module.apply(x, ...)`) in tests/test_augmentation.py. Resizing,
CenterCrop, RandomCrop's deterministic branch and every layer at inference are whole calls.

Run once, with real Keras (not by the test suite)::

    KERAS_BACKEND=torch /work/refenv/bin/python tests/keras_refs/make_augment_refs.py
"""
from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = Path(__file__).resolve().parent
L = keras.layers
FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("bilinear", "nearest")


def tensor(a):
    # a copy: some Keras layers work in place (RandomBrightness's `images += delta`)
    return torch.tensor(np.array(a, dtype=np.float32))


def built(layers, cases: dict) -> dict:
    """{key: layers.<Class>(*args, **kwargs)} for augment_calls.json's [Class, args, kwargs]."""
    return {key: getattr(layers, kind)(*args, **kwargs)
            for key, (kind, args, kwargs) in cases.items()}


def arr(t):
    return np.asarray(keras.ops.convert_to_numpy(t), dtype=np.float32)


EXAMPLES = ("cifar10.yaml", "cifar10_convnet.yaml")


def example_summary(name: str) -> dict:
    """Keras's summary rows of the model in examples/NAME (a run config)."""
    import yaml
    cfg = yaml.safe_load((HERE.parents[1] / "examples" / name).read_text())["model"]
    keras.backend.clear_session()
    stack = [keras.Input(tuple(cfg["input_shape"]))]
    for entry in cfg["layers"]:
        (cls, kwargs), = entry.items()
        stack.append(getattr(L, cls)(**{k: tuple(v) if isinstance(v, list) else v
                                        for k, v in (kwargs or {}).items()}))
    model = keras.Sequential(stack)
    return {"rows": [[layer.name, list(layer.output.shape[1:]), layer.count_params()]
                     for layer in model.layers], "total_params": model.count_params()}


def main():
    rng = np.random.default_rng(17)
    out = {}
    x = rng.uniform(0, 255, (3, 9, 11, 2)).astype(np.float32)   # odd, non-square: (N, H, W, C)
    out["x"] = x
    n, h, w = 3, 9, 11

    # affine layers at fixed parameters, every fill mode and interpolation
    angles = np.array([30.0, -90.0, 200.0], np.float32)
    zooms_h = np.array([0.7, 1.3, 1.0], np.float32)
    zooms_w = np.array([1.2, 0.8, 1.5], np.float32)
    shifts = np.array([[2.5, -1.0], [-3.0, 4.2], [0.0, 7.0]], np.float32)  # (dx, dy) pixels
    out["angles"], out["zooms_h"], out["zooms_w"], out["shifts"] = angles, zooms_h, zooms_w, shifts
    for fill in FILL_MODES:
        for interp in INTERPOLATIONS:
            key = f"{fill}_{interp}"
            rot = L.RandomRotation(0.5, fill_mode=fill, interpolation=interp, fill_value=7.0)
            m = rot._compute_affine_matrix(
                center_x=0.5, center_y=0.5, angle=tensor(angles), translate_x=torch.zeros(n),
                translate_y=torch.zeros(n), scale=torch.ones(n), shear_x=torch.zeros(n),
                shear_y=torch.zeros(n), height=h, width=w)
            out[f"rotation_{key}"] = arr(rot.transform_images(
                tensor(x), {"rotation_matrix": m}, training=True))
            zoom = L.RandomZoom(0.5, 0.5, fill_mode=fill, interpolation=interp, fill_value=7.0)
            out[f"zoom_{key}"] = arr(zoom._zoom_inputs(
                tensor(x), {"height_zoom": tensor(zooms_h[:, None]),
                            "width_zoom": tensor(zooms_w[:, None])}, interp))
            tr = L.RandomTranslation(0.5, 0.5, fill_mode=fill, interpolation=interp,
                                     fill_value=7.0)
            out[f"translation_{key}"] = arr(tr._translate_inputs(
                tensor(x), {"translations": tensor(shifts)}, interp))

    flips = np.array([True, False, True])
    out["flips"] = flips
    for mode in ("horizontal", "vertical", "horizontal_and_vertical"):
        layer = L.RandomFlip(mode)
        out[f"flip_{mode}"] = arr(layer.transform_images(
            tensor(x), {"flips": torch.as_tensor(flips).view(n, 1, 1, 1)}, training=True))
    contrast = np.array([0.5, 1.0, 1.7], np.float32)
    out["contrast"] = contrast
    out["contrast_out"] = arr(L.RandomContrast(0.9).transform_images(
        tensor(x), {"contrast_factor": tensor(contrast).view(n, 1, 1, 1)}, training=True))
    delta = np.array([-40.0, 0.0, 100.0], np.float32)
    out["brightness"] = delta
    out["brightness_out"] = arr(L.RandomBrightness(0.5).transform_images(
        tensor(x), {"rgb_delta": tensor(delta).view(n, 1, 1, 1)}, training=True))

    # deterministic layers: whole calls; then every random layer at inference (the cases,
    # shared with tests/test_augmentation.py, in augment_calls.json)
    cases = json.loads((HERE / "augment_calls.json").read_text())
    for key, layer in built(L, cases["calls"]).items():
        out[key] = arr(layer(tensor(x), training=True))
    for key, layer in built(L, cases["inference"]).items():
        out[f"inference_{key}"] = arr(layer(tensor(x), training=False))
    np.savez_compressed(HERE / "augment_refs.npz", **out)

    # summary rows and configs of a model using each layer (fresh auto names)
    keras.backend.clear_session()
    model = keras.Sequential([
        keras.Input((32, 32, 3)), L.RandomFlip("horizontal"), L.RandomRotation(0.1),
        L.RandomZoom(0.1, 0.2), L.RandomTranslation(0.1, 0.1), L.RandomContrast(0.2),
        L.RandomBrightness(0.2), L.RandomCrop(30, 30, seed=5), L.Resizing(28, 28),
        L.CenterCrop(24, 24), L.Rescaling(1 / 255), L.Conv2D(8, 3), L.Flatten(), L.Dense(10)])
    rows = [{"name": layer.name, "class": type(layer).__name__,
             "output_shape": list(layer.output.shape[1:]), "params": layer.count_params()}
            for layer in model.layers]
    configs = {type(layer).__name__: {k: v for k, v in layer.get_config().items()
                                      if k not in ("name", "dtype")}
               for layer in model.layers[:9]}
    record = {"keras_version": keras.__version__, "rows": rows,
              "total_params": model.count_params(), "configs": configs,
              "examples": {name: example_summary(name) for name in EXAMPLES}}
    (HERE / "augment_refs.json").write_text(json.dumps(record, indent=1, default=list) + "\n")


if __name__ == "__main__":
    main()
