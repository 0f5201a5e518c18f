"""The lecture's model on a CUDA GPU: does cnnlab's train path run there, and how fast.

CI has no GPU, so this is run by hand on a machine that has one (nothing else in
the project needs it). It trains the lecture's code (`keras_api.build_model`, the
same code every benchmark system runs) on synthetic images with `device="auto"`,
which picks CUDA when torch sees a GPU, then the `fast` recipe, and prints epoch
times, accuracies, inference images/s and single-image latency. The optional C++
kernels are CPU-only: on CUDA every layer runs on torch's own GPU kernels.

    PYTHONPATH=src python benchmarks/gpu_check.py                 # 60000 images, 3 epochs
    PYTHONPATH=src python benchmarks/gpu_check.py --images 12000 --epochs 2
    PYTHONPATH=src python benchmarks/gpu_check.py --precision 32,bf16,16-mixed

`--precision` runs the lecture's schedule once per policy (float32, bf16 and fp16
autocast, fp16 with loss scaling) and prints each one's epoch time and accuracy.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "workers"))
sys.path.insert(0, str(HERE))

import datasets  # noqa: E402
import keras_api  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=60000, help="training images (default: 60000)")
    p.add_argument("--epochs", type=int, default=3, help="epochs of the lecture schedule (default: 3)")
    p.add_argument("--out", help="also write the figures as JSON here")
    p.add_argument("--precision", default="32,bf16", help="comma-separated policies for the "
                   "lecture's schedule: 32, bf16, 16-mixed (default: 32,bf16)")
    args = p.parse_args(argv)

    import torch

    import cnnlab

    if not torch.cuda.is_available():
        print("error: torch sees no CUDA GPU here; this check needs one.", file=sys.stderr)
        return 2
    report = {"torch": torch.__version__, "gpu": torch.cuda.get_device_name(0)}
    print(f"torch {torch.__version__}, {report['gpu']}")
    data = datasets.synthetic_arrays(args.images + 10000, seed=0)
    x = (data["x_train"][..., None] / 255).astype("float32")
    y = np.eye(10, dtype="float32")[data["y_train"]]
    x_train, y_train, x_val, y_val = x[:args.images], y[:args.images], x[args.images:], y[args.images:]

    class Clock(cnnlab.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_epoch_begin(self, epoch, logs=None):
            torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t)

    runs = [(f"lecture-{p}" if p != "32" else "lecture", p, dict(batch_size=128, epochs=args.epochs))
            for p in args.precision.split(",")] + [("fast", "32", dict(recipe="fast"))]
    for name, precision, fit in runs:
        model = keras_api.build_model(cnnlab)
        clock = Clock()
        with cnnlab.mixed_precision.policy_scope(precision):
            history = model.fit(x_train, y_train, validation_data=(x_val, y_val), verbose=0,
                                callbacks=[clock], seed=0, **fit)
        device = str(model.device)
        later = clock.times[1:] or clock.times
        row = {"device": device, "precision": precision, "epoch_s": [round(t, 3) for t in clock.times],
               "median_epoch_s_after_first": round(statistics.median(later), 3),
               "val_accuracy": [round(float(v), 4) for v in history.history.get("val_accuracy", [])]}
        if name == "lecture":
            batch = x_val[:1000]
            model.predict(batch, batch_size=1000, verbose=0)
            t = time.perf_counter()
            for _ in range(10):
                model.predict(batch, batch_size=1000, verbose=0)
            row["infer_images_per_s"] = round(10 * len(batch) / (time.perf_counter() - t))
            lat = []
            for i in range(120):
                t = time.perf_counter()
                model.predict(x_val[i:i + 1], verbose=0)
                lat.append(time.perf_counter() - t)
            lat = sorted(lat[20:])
            row["predict_p50_ms"] = round(1000 * lat[len(lat) // 2], 3)
        report[name] = row
        print(name, json.dumps(row))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
