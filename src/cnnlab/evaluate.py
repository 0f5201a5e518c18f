"""Using a trained run: evaluate it on a dataset, classify image files.

    >>> evaluate_run("lecture-1")                 # {"loss", "accuracy", "per_class": {...}}
    >>> predict_files("lecture-1", ["seven.png"]) # top-3 classes with probabilities
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .runs import DEFAULT_ROOT, load


def evaluate_run(run, root=DEFAULT_ROOT, data: str | None = None, data_dir=None,
                 fallback: bool = True) -> dict:
    from .config import RunConfig
    from .runner import load_data
    model = load(run, root)
    cfg: RunConfig = model.run_config
    cfg = cfg.with_overrides(data={"name": data, "data_dir": data_dir,
                                   **({} if fallback else {"fallback": False})})
    ds, train, val = load_data(cfg, progress=False)
    folder = cfg.data["name"] == "folder"
    if val is None and folder:
        from .errors import DataError
        raise DataError(f"Run {model.run_dir} trained on a folder without validation data. "
                        "Expected a val/ folder or data.validation_split > 0.")
    if val is None:  # the run validated on the last fraction of its training data
        from .train.data import split_validation
        _, val = split_validation(train, cfg.data["validation"])
    # the public API, two passes: Keras's evaluate for the metrics, predict for the classes
    result = model.evaluate(val, verbose=0, return_dict=True)
    images = val.images() if folder else val.x.numpy()  # a folder's: decoded batch by batch
    pred = model.predict(images, batch_size=1000, verbose=0).argmax(axis=-1)
    truth = val.y_index.numpy()
    if truth.ndim == 2:  # one-hot rows (a binary loss on class labels): the class is the 1
        truth = truth.argmax(axis=1)
    per_class = {}
    names = ds.class_names
    for c in range(len(names)):
        mask = truth == c
        if mask.any():
            per_class[names[c]] = {"accuracy": float((pred[mask] == c).mean()), "count": int(mask.sum())}
    return {"run": str(model.run_dir), "data": ds.record(), "loss": result["loss"],
            "accuracy": result.get("accuracy", float((pred == truth).mean()) if len(truth) else 0.0),
            "per_class": per_class}


def format_evaluation(r: dict) -> str:
    lines = [f"Run: {r['run']}", f"Data: {r['data']['name']} ({r['data']['source']}), "
             f"{r['data']['n_test']} test images",
             f"loss: {r['loss']:.4f} - accuracy: {r['accuracy']:.4f}", "", "per-class accuracy:"]
    for name, v in r["per_class"].items():
        lines.append(f"  {name:>14}  {v['accuracy']:.4f}  ({v['count']} images)")
    return "\n".join(lines)


def predict_files(run, paths, root=DEFAULT_ROOT, top: int = 3) -> dict:
    from .images import load_images
    model = load(run, root)
    spec = model.to_spec()
    data = getattr(model, "run_config", None) and model.run_config.data
    shape = tuple(spec.input_shape)
    folder = bool(data) and data["name"] == "folder"
    if folder or (len(shape) == 3 and shape[2] == 3):
        # a folder run's pictures are resized as its training pictures were; any other colour
        # model (CIFAR, npz) gets the same plain Keras resize to its input: the MNIST recipe
        # (inversion, centring by mass) is for grey digit models only
        from .data.folder_data import load_pictures
        settings = data if folder else {"image_size": None, "color_mode": None}
        batch = load_pictures([str(p) for p in paths], settings, spec.input_shape)
    else:
        batch = load_images([str(p) for p in paths], spec.input_shape)
    probs = model.predict(batch, batch_size=256)
    names = class_names_of(model, probs.shape[-1])
    out = []
    for path, p in zip(paths, probs):
        order = np.argsort(-p)[:top]
        out.append({"image": str(path),
                    "top": [{"class": names[i], "index": int(i), "probability": float(p[i])}
                            for i in order]})
    return {"run": str(model.run_dir), "predictions": out}


def class_names_of(model, n: int) -> list[str]:
    from .runs import read_json
    m = read_json(Path(model.run_dir) / "metrics.json", {}) or {}
    names = (m.get("data") or {}).get("class_names")
    return names if names and len(names) == n else [str(i) for i in range(n)]


def format_predictions(r: dict) -> str:
    lines = []
    for item in r["predictions"]:
        tops = ", ".join(f"{t['class']} {t['probability']:.1%}" for t in item["top"])
        lines.append(f"{item['image']}: {tops}")
    return "\n".join(lines)
