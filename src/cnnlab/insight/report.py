"""`cnnlab report RUN`: one page about a finished run, read from its directory alone.

Reads the run's config.yaml, summary.txt, history.json, metrics.json and final weights,
and the dataset its config names; writes into RUN/report (or `out`): report.html
(self-contained: images embedded as base64), report.md next to its PNGs, and
report.json (the numbers). Sections: config and summary; curves; final and best metrics;
diagnoses in plain words; the confusion matrix (counts and row-normalized); per-class
precision, recall and F1; the most confused pairs with examples; misclassified images and
the top losses; the first layer's filters; feature maps of one image per class;
calibration (reliability diagram, ECE).

The confusion matrix, per-class scores and calibration use the whole validation set;
the pictures and the activation statistics (dead ReLU units, pixel range) use at most
SAMPLE_CAP validation images, so the report takes seconds.

    >>> r = write_run_report("runs/lecture-1")
    >>> r["html"], r["accuracy"], r["findings"]
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ..errors import SpecError
from ..runs import DEFAULT_ROOT, find_run, load, read_json
from . import diagnose, figures, maps, scores
from .page import Document

SAMPLE_CAP = 2000      # validation images for activation statistics (dead ReLU units)
GALLERY = 24           # misclassified images shown
TOP_LOSSES = 12        # highest-loss images shown
PAIRS = 5              # most confused pairs shown
PAIR_EXAMPLES = 6      # example images per pair
BATCH = 500            # images per forward pass for layer outputs (bounds memory)


def _validation(cfg):
    """(dataset, training Arrays, validation Arrays) as the run validated."""
    from ..runner import load_data
    ds, train, val = load_data(cfg, progress=False)
    if val is None:  # the run validated on the last fraction of its training data
        from ..train.data import split_validation
        train, val = split_validation(train, cfg.data["validation"])
    return ds, train, val


def _probabilities(model, x: np.ndarray) -> np.ndarray:
    p = model.predict(x, batch_size=1000, verbose=0)
    p = p.reshape(len(p), -1)
    if p.shape[1] == 1:  # a single sigmoid unit: P(class 1)
        p = np.concatenate([1 - p, p], axis=1)
    return p


def _ever_active(model, x: np.ndarray, relu: list[int]) -> dict:
    """{layer name: bool per unit}, True if the unit was > 0 on some image of `x`; a Conv2D's
    unit is a filter (any position), a Dense unit any image."""
    active: dict = {}
    for s in range(0, len(x), BATCH):
        outs = maps.layer_outputs(model, x[s:s + BATCH])
        for j in relu:
            o = outs[j]
            axes = tuple(range(o.array.ndim - 1))
            hit = (o.array > 0).any(axis=axes)
            active[o.name] = hit | active[o.name] if o.name in active else hit
    return active


def _gallery(seen, shape, idx, caption) -> tuple[list, list]:
    pics, caps = [], []
    for i in idx:
        p = figures.picture(seen[i], shape)
        if p is not None:
            pics.append(p)
            caps.append(caption(i))
    return pics, caps


def build_report(model, history: dict, metrics: dict, config: dict, summary: str,
                 class_names, x_val: np.ndarray, truth: np.ndarray, train_labels,
                 config_text: str = "", notes=()) -> tuple:
    """The document and its numbers, from a loaded model and the run's validation data.
    config: the run's config as a dict (RunConfig.to_dict()); config_text: as shown;
    notes: warnings shown first."""
    spec = model.to_spec()
    k = len(class_names)
    probs = _probabilities(model, x_val)
    pred = probs.argmax(axis=1)
    cm = scores.confusion_matrix(truth, pred, k)
    norm = scores.row_normalized(cm)
    pc = scores.per_class(cm)
    cal = scores.calibration(probs, truth)
    n = len(truth)
    accuracy = float(np.trace(cm) / n) if n else math.nan
    p_true = probs[np.arange(n), truth] if n else np.zeros(0)
    losses = -np.log(np.clip(p_true, 1e-7, 1.0))    # Keras clips probabilities at 1e-7

    sample = x_val[:SAMPLE_CAP]
    seen = maps.input_batch(model, sample).numpy()   # the sample as the model sees it
    shape = spec.input_shape
    relu = maps.relu_layers(model)
    ever = _ever_active(model, sample, relu) if relu else {}

    from ..layers.reshaping import takes_raw_pixels
    found = diagnose.run_history_findings(history, config, metrics)
    found += [f for f in (
        diagnose.never_predicted(pred, truth, class_names),
        diagnose.dead_relu(ever, len(sample)) if ever else None,
        diagnose.class_imbalance(train_labels, class_names),
        diagnose.pixel_range(float(seen.min()), float(seen.max()), takes_raw_pixels(spec))
        if seen.size else None) if f is not None]

    doc = Document(f"Run report: {metrics.get('name') or 'run'}")
    for note in notes:
        doc.finding("Note", note)
    _overview(doc, metrics, history, accuracy, n)
    _diagnoses_section(doc, found, ever, len(sample))
    doc.heading("Config and summary")
    doc.pre(config_text or json.dumps(config, indent=1, default=str))
    if summary:
        doc.pre(summary)
    acc_key = diagnose.accuracy_key(history)
    if history.get("loss"):
        doc.heading("Curves")
        doc.image("curves.png", figures.curves_png(history, acc_key), "training and validation "
                  "accuracy and loss per epoch")
    doc.heading("Confusion matrix")
    doc.text(f"All {n} validation images; rows: true class, columns: predicted class. "
             f"Diagonal: {int(np.trace(cm))} correct = accuracy {accuracy:.4f}.")
    doc.image("confusion.png", figures.confusion_png(cm, class_names, norm),
              "confusion matrix: counts and row-normalized")
    doc.heading("Per-class precision, recall and F1")
    doc.table(["class", "precision", "recall", "F1", "images"],
              [[class_names[c], f"{pc['precision'][c]:.4f}", f"{pc['recall'][c]:.4f}",
                f"{pc['f1'][c]:.4f}", int(pc["support"][c])] for c in range(k)])
    pairs = scores.most_confused(cm, PAIRS)
    _pairs_section(doc, pairs, pred, truth, probs, seen, shape, class_names)
    _mistakes_section(doc, pred, truth, probs, losses, seen, shape, class_names)
    _filters_section(doc, model)
    _class_maps_section(doc, model, sample, seen, truth, pred, class_names)
    doc.heading("Calibration")
    doc.text(f"Expected calibration error (ECE) over {cal['bins']} equal-width confidence "
             f"bins: {cal['ece']:.4f} (sum over bins of the bin's share of images times "
             "|accuracy - mean confidence|).")
    doc.image("reliability.png", figures.reliability_png(cal), "reliability diagram")

    numbers = _numbers(cm, pc, cal, pairs, class_names, found, ever, len(sample))
    return doc, numbers


def _numbers(cm, pc, cal, pairs, names, found, ever, sample) -> dict:
    """What report.json holds: the numbers behind the page."""
    n = int(cm.sum())
    return {"images": n, "accuracy": float(np.trace(cm) / n) if n else math.nan,
            "confusion_matrix": cm.tolist(), "class_names": list(map(str, names)),
            "per_class": {str(names[c]): {"precision": float(pc["precision"][c]),
                                          "recall": float(pc["recall"][c]),
                                          "f1": float(pc["f1"][c]),
                                          "support": int(pc["support"][c])}
                          for c in range(len(names))},
            "most_confused": [{"true": names[t], "predicted": names[p], "count": c}
                              for t, p, c in pairs],
            "ece": cal["ece"], "calibration": {"count": cal["count"].tolist(),
                                               "confidence": cal["confidence"].tolist(),
                                               "accuracy": cal["accuracy"].tolist()},
            "findings": [f.to_dict() for f in found], "sample_images": int(sample),
            "relu_never_active": {name: [int((~a).sum()), int(a.size)]
                                  for name, a in ever.items()}}


def _diagnoses_section(doc, found, ever, sample):
    doc.heading("Diagnoses")
    for f in found:
        doc.finding(f.title, f"{f.text} What to do: {f.advice}")
    if not found:
        doc.finding("No problem found", "None of the diagnoses' rules fired: no overfitting, "
                    "underfitting, learning-rate, BatchNormalization, dead-unit, "
                    "never-predicted-class or data finding.", ok=True)
    if ever:
        doc.text(f"ReLU units never active on {sample} validation images (a diagnosis "
                 f"from {diagnose.DEAD_SHARE:.0%} of a layer): " + ", ".join(
                     f"{name} {int((~a).sum())} of {a.size}" for name, a in ever.items()) + ".")


def _overview(doc, metrics, history, accuracy, n):
    data = metrics.get("data") or {}
    doc.heading("Run")
    doc.items([f"status: {metrics.get('status', 'unknown')}, "
               f"{metrics.get('epochs_done', len(history.get('loss') or []))} epochs "
               f"of {metrics.get('epochs', '?')}, {metrics.get('train_seconds', '?')} s of training",
               f"data: {data.get('source') or data.get('name', '?')} "
               f"({data.get('n_train', '?')} training, {data.get('n_test', '?')} test images)",
               f"parameters: {metrics.get('params', '?'):,}" if isinstance(metrics.get("params"), int)
               else "parameters: ?"])
    doc.heading("Metrics")
    rows = []
    for key in ("val_accuracy", "val_loss", "accuracy", "loss"):
        v = [x for x in history.get(key) or [] if isinstance(x, (int, float))]
        if not v:
            continue
        best = max(v) if "accuracy" in key else min(v)
        rows.append([key, f"{v[-1]:.4f}", f"{best:.4f}", v.index(best) + 1])
    if rows:
        doc.table(["metric", "final", "best", "best epoch"], rows)
    doc.text(f"Accuracy of the final weights on the {n} validation images, recomputed here: "
             f"{accuracy:.4f}.")


def _pairs_section(doc, pairs, pred, truth, probs, seen, shape, names):
    if not pairs:
        return
    doc.heading("Most confused pairs")
    doc.table(["true", "predicted as", "images"], [[names[t], names[p], c] for t, p, c in pairs])
    pics, caps = [], []
    for t, p, _ in pairs:
        idx = np.flatnonzero((truth[:len(seen)] == t) & (pred[:len(seen)] == p))[:PAIR_EXAMPLES]
        a, b = _gallery(seen, shape, idx, lambda i: f"{names[t]} as {names[p]}\n"
                        f"{probs[i, p]:.0%}")
        pad = PAIR_EXAMPLES - len(a)  # one row per pair
        pics += a + [None] * pad
        caps += b + [""] * pad
    if any(p is not None for p in pics):
        doc.image("confused_pairs.png", figures.gallery_png(pics, caps, PAIR_EXAMPLES),
                  f"examples of each pair among the first {len(seen)} validation images "
                  "(true as predicted, confidence)")


def _mistakes_section(doc, pred, truth, probs, losses, seen, shape, names):
    m = len(seen)
    wrong = np.flatnonzero(pred[:m] != truth[:m])
    doc.heading("Misclassified images and top losses")
    if not len(wrong):
        doc.text(f"No misclassified image among the first {m} validation images.")
    else:
        conf = probs[wrong, pred[wrong]]
        order = wrong[np.argsort(-conf, kind="stable")][:GALLERY]
        pics, caps = _gallery(seen, shape, order, lambda i: f"true {names[truth[i]]}\n"
                              f"pred {names[pred[i]]} {probs[i, pred[i]]:.0%}")
        if pics:
            doc.image("misclassified.png", figures.gallery_png(pics, caps),
                      f"{len(wrong)} of the first {m} validation images are misclassified; "
                      f"the {len(pics)} most confident mistakes (true, predicted, confidence)")
    top = np.argsort(-losses[:m], kind="stable")[:TOP_LOSSES]
    pics, caps = _gallery(seen, shape, top, lambda i: f"loss {losses[i]:.2f}\ntrue "
                          f"{names[truth[i]]} pred {names[pred[i]]}")
    if pics:
        doc.image("top_losses.png", figures.gallery_png(pics, caps, 6),
                  "the highest losses (-log probability of the true class)")


def _filters_section(doc, model):
    f = maps.first_layer_filters(model)
    if f is None:
        return
    doc.heading("First-layer filters")
    doc.image("filters.png", figures.filters_png(f[1], f[0]), f"the learned kernels of {f[0]}")


def _class_maps_section(doc, model, sample, seen, truth, pred, names):
    spec = model.to_spec()
    if len(spec.input_shape) != 3:
        return
    chosen = []
    for c in range(len(names)):
        idx = np.flatnonzero((truth[:len(sample)] == c) & (pred[:len(sample)] == c))
        idx = idx if len(idx) else np.flatnonzero(truth[:len(sample)] == c)
        if len(idx):
            chosen.append(int(idx[0]))
    if not chosen:
        return
    outs = maps.layer_outputs(model, sample[chosen])
    convs = [o for o in outs if o.type in maps.CONV_TYPES and o.array.ndim == 4][:2]
    if not convs:
        return
    rows = [(f"{names[truth[i]]} (pred {names[pred[i]]})", figures.picture(seen[i], spec.input_shape),
             [(f"{o.name} ({o.type}) {o.array.shape[-1]} maps", o.array[r]) for o in convs])
            for r, i in enumerate(chosen)]
    doc.heading("Feature maps, one validation image per class")
    doc.image("class_feature_maps.png", figures.class_maps_png(rows),
              "one correctly classified validation image per class (where there is one) "
              "and its convolution layers' outputs, each map scaled to its own range")


def write_run_report(run, root=DEFAULT_ROOT, out=None) -> dict:
    """Make the report of a run; returns {"html", "markdown", "json", "seconds", "accuracy",
    "findings"}. Everything is computed before the first file is written."""
    t0 = time.perf_counter()
    run_dir = find_run(run, root)
    model = load(run_dir, root)
    cfg = model.run_config
    spec = model.to_spec()
    if len(spec.inputs) != 1 or len(spec.outputs) != 1 or len(spec.output_shape) != 1:
        raise SpecError(f"`cnnlab report` needs a classifier with one input and one vector "
                        f"output. Received a model with {len(spec.inputs)} input(s) and "
                        f"output shape(s) {', '.join(str((None, *spec.source_shape(o))) for o in spec.output_ids)}.")
    history = read_json(run_dir / "history.json", {}) or {}
    metrics = read_json(run_dir / "metrics.json", {}) or {}
    metrics.setdefault("name", run_dir.name)
    summary_path = run_dir / "summary.txt"
    summary = summary_path.read_text(encoding="utf-8") if summary_path.is_file() else ""
    ds, train, val = _validation(cfg)
    names = [str(c) for c in ds.class_names]
    k = max(len(names), int(val.y_index.max()) + 1 if len(val) else 0)
    names += [str(i) for i in range(len(names), k)]
    notes = []
    trained_on = (metrics.get("data") or {}).get("sha256")
    if trained_on and trained_on != ds.sha256:  # e.g. full MNIST found since the run
        notes.append(f"The data found now ({ds.source}, SHA-256 {ds.sha256[:12]}...) is not "
                     f"the data the run used (SHA-256 {trained_on[:12]}...): the numbers "
                     "below are on the data found now.")
    doc, numbers = build_report(model, history, metrics, cfg.to_dict(), summary, names,
                                val.x.numpy(), val.y_index.numpy(), train.y_index.numpy(),
                                config_text=(run_dir / "config.yaml").read_text(encoding="utf-8"),
                                notes=notes)
    folder = Path(out) if out is not None else run_dir / "report"
    numbers["seconds"] = round(time.perf_counter() - t0, 3)
    from ..runs import write_json
    write_json(folder / "report.json", numbers)
    paths = doc.write(folder, "report")  # the page last
    return {"run": str(run_dir), "html": str(paths["html"]), "markdown": str(paths["markdown"]),
            "json": str(folder / "report.json"), "seconds": numbers["seconds"],
            "accuracy": numbers["accuracy"], "images": numbers["images"],
            "findings": numbers["findings"]}


def format_report(r: dict) -> str:
    lines = [f"Report: {r['html']} ({r['seconds']:.1f}s)",
             f"accuracy {r['accuracy']:.4f} on {r['images']} validation images"]
    lines += [f"  {f['title']}" for f in r["findings"]] or ["  no problem found"]
    return "\n".join(lines)
