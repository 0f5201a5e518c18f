"""`cnnlab explain RUN IMAGE...`: the lecture's pipeline picture, drawn from the trained
model for the user's own images.

For each image: the input as the model sees it (prepared exactly as `cnnlab predict`
prepares it), every layer's output in order (feature maps of conv/pool layers as a grid
with the layer's name, type and output shape; vectors as strips), the probabilities as a
bar chart with the class names, and where the model looked: a saliency map and Grad-CAM
on the last convolution. One PNG per image and one self-contained HTML page.

    >>> r = explain_run("lecture-1", ["seven.png"], out="runs/lecture-1/explain")
    >>> r["images"][0]["top"][0]      # {"class": "7", "index": 7, "probability": 0.99...}
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..runs import DEFAULT_ROOT, load
from . import figures, maps
from .page import Document

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _png_name(i: int, path) -> str:
    stem = _SAFE.sub("_", Path(str(path)).stem)[:60] or "image"
    return f"{i + 1:02d}-{stem}.png"


def explain_model(model, batch: np.ndarray, class_names, labels, top: int = 3) -> list[dict]:
    """The pictures and numbers for a batch of prepared images (uint8 or float, as
    `model.predict` takes them): per image {"png": bytes, "top": [...], "layers": [...]}."""
    probs = model.predict(batch, batch_size=256, verbose=0)
    outputs = maps.layer_outputs(model, batch)
    sal = maps.saliency(model, batch)
    cam = maps.grad_cam(model, batch)
    seen = maps.input_batch(model, batch).numpy()
    shape = model.to_spec().input_shape
    results = []
    for i, label in enumerate(labels):
        p = probs[i]
        order = np.argsort(-p)[:top]
        tops = [{"class": class_names[k], "index": int(k), "probability": float(p[k])}
                for k in order]
        title = f"{label}: {tops[0]['class']} ({tops[0]['probability']:.1%})"
        png = figures.pipeline_png(figures.picture(seen[i], shape), outputs, probs,
                                   class_names, sal["map"], cam, title, index=i)
        results.append({"png": png, "top": tops,
                        "layers": [{"name": o.name, "type": o.type, "output_shape": list(o.shape)}
                                   for o in outputs],
                        "grad_cam_layer": cam["layer"] if cam else None})
    return results


def explain_run(run, paths, root=DEFAULT_ROOT, out=None, top: int = 3,
                weights: str = "final") -> dict:
    """Explain image files with a run's model; writes PNGs and explain.html into `out`
    (default: RUN/explain). Every image is read and checked before anything is written."""
    from ..evaluate import class_names_of
    from ..images import load_images
    model = load(run, root, weights=weights)
    spec = model.to_spec()
    batch = load_images([str(p) for p in paths], spec.input_shape)  # as `cnnlab predict`
    names = class_names_of(model, spec.output_shape[-1])
    results = explain_model(model, batch, names, [str(p) for p in paths], top)
    folder = Path(out) if out is not None else Path(model.run_dir) / "explain"
    doc = Document(f"What {Path(model.run_dir).name} sees")
    doc.text("Each picture follows the lecture's pipeline: the input as the model sees it "
             "(after the same preparation as `cnnlab predict`), then every layer's output in "
             "order, each feature map scaled to its own range, then the probabilities. "
             "Saliency: the size of the gradient of the predicted class's score (before the "
             "softmax) with respect to each input pixel. Grad-CAM: the last convolution's "
             "feature maps weighted by their mean gradient, ReLU, scaled to [0, 1].")
    entries = []
    for i, (path, r) in enumerate(zip(paths, results)):
        name = _png_name(i, path)
        doc.heading(f"{path}")
        doc.table(["class", "probability"], [[t["class"], f"{t['probability']:.4f}"]
                                             for t in r["top"]])
        doc.image(name, r["png"], f"{path}: the pipeline, layer by layer")
        entries.append({"image": str(path), "png": str(folder / name), "top": r["top"],
                        "grad_cam_layer": r["grad_cam_layer"]})
    written = doc.write(folder, "explain", markdown=False)
    return {"run": str(model.run_dir), "html": str(written["html"]), "images": entries,
            "layers": results[0]["layers"] if results else []}


def format_explain(r: dict) -> str:
    lines = []
    for item in r["images"]:
        tops = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in item["top"])
        lines.append(f"{item['image']}: {tops}  -> {item['png']}")
    lines.append(f"Page: {r['html']}")
    return "\n".join(lines)
