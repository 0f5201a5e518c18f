"""What the augmentation layers cost per batch, beside the training step they precede.

Augmentation runs on the device inside the model (cnnlab/layers/augmentation.py). This
times, side by side in one process, (a) the forward pass of an augmentation stack in training
mode and (b) one full training step (forward, backward, Adam) of a model with that stack in
front, for 32x32 (CIFAR-10, batch 128) and 180x180 (cats vs dogs, batch 32) RGB batches, and
prints the ratio a/b. Medians over repeats; no timed test depends on it.

    .venv/bin/python benchmarks/augment_cost.py                 # CPU, torch's thread count
    .venv/bin/python benchmarks/augment_cost.py --threads 1 --device cuda
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

import cnnlab
from cnnlab import layers
from cnnlab.builder import build
from cnnlab.spec import ModelSpec

STACK = [  # Keras's image-classification examples' augmentation, plus zoom and contrast
    lambda: layers.RandomFlip("horizontal"),
    lambda: layers.RandomTranslation(0.1, 0.1),
    lambda: layers.RandomRotation(0.05),
    lambda: layers.RandomZoom(0.1),
    lambda: layers.RandomContrast(0.2, value_range=(0, 1)),
]
CASES = {  # name -> (image side, batch size, the model after the augmentation)
    "32x32": (32, 128, lambda: [layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
                                layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
                                layers.Conv2D(64, 3, activation="relu"), layers.Flatten(),
                                layers.Dense(64, activation="relu"),
                                layers.Dense(10, activation="softmax")]),
    "180x180": (180, 32, lambda: [layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(),
                                  layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(),
                                  layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
                                  layers.GlobalAveragePooling2D(),
                                  layers.Dense(2, activation="softmax")]),
}


def timed(fn, repeats: int, device) -> float:
    """Median seconds of fn() over `repeats` runs (after 2 warm-up runs)."""
    out = []
    for i in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= 2:
            out.append(time.perf_counter() - t)
    return statistics.median(out)


def measure(name: str, device, repeats: int) -> dict:
    side, batch, model_layers = CASES[name]
    shape = (side, side, 3)
    cnnlab.utils.set_random_seed(0)
    aug = build(ModelSpec.from_layers([f() for f in STACK], input_shape=shape), seed=0)
    aug.to(device).train()
    model = cnnlab.models.Sequential([layers.Input(shape), *(f() for f in STACK), *model_layers()])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", device=str(device))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (batch, *shape)).astype(np.float32)
    y = rng.integers(0, 2, batch)
    xt = torch.from_numpy(x).to(device)
    with torch.no_grad():
        a = timed(lambda: aug(xt), repeats, device)
    # a whole training step through fit's own path: one batch, one epoch
    step = timed(lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False),
                 max(3, repeats // 3), device)
    return {"case": name, "batch": batch, "augment_ms": round(a * 1e3, 3),
            "train_step_ms": round(step * 1e3, 3), "augment_over_step": round(a / step, 4)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (default: 0, torch's)")
    p.add_argument("--repeats", type=int, default=15, help="timed repeats (default: 15)")
    p.add_argument("--json", action="store_true", help="print JSON lines (default: a table)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [measure(name, device, args.repeats) for name in CASES]
    for r in rows:
        r.update(device=str(device), threads=torch.get_num_threads(), torch=torch.__version__)
        if args.json:
            print(json.dumps(r))
        else:
            print(f"{r['case']:>8} batch {r['batch']:>3}: augmentation {r['augment_ms']:8.2f} ms, "
                  f"training step {r['train_step_ms']:8.2f} ms, ratio {r['augment_over_step']:.3f} "
                  f"({r['device']}, {r['threads']} threads)")


if __name__ == "__main__":
    main()
