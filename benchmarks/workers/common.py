"""What every benchmark worker shares: arguments, data, clocks, results.

A worker is one script per system (tf.keras, Keras 3, PyTorch eager, cnnlab),
run by `benchmarks/epoch_time.py` as a subprocess in that system's venv. It
imports only the standard library and numpy from here, so that it runs in
every venv; the framework is the worker's own business.

    def body(result):                                  # fills `result` in place
        data = common.load_data(args)                  # x float32 (N, 28, 28, 1) in [0, 1]
        clock = common.EpochClock(predict, data.get("x_val"), data.get("y_val"))
        ...                                            # clock.begin() / clock.end() per epoch
        result.update(clock.as_dict())
    args = common.parse_args("torch-eager")
    common.run("torch-eager", args, body)              # writes --result, prints one JSON line
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
import traceback

import numpy as np

import lecture

LATENCY_WARMUP_CALLS = 20  # single-image predicts before the timed ones


def parse_args(system: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"Benchmark worker for {system}.")
    p.add_argument("--data", required=True, help="the .npz written by epoch_time.py")
    p.add_argument("--result", required=True, help="where to write the JSON result")
    p.add_argument("--mode", choices=("epoch", "tta", "variant"), default="epoch",
                   help="epoch: time epochs, inference and latency; tta: record "
                        "validation accuracy after each epoch; variant: time the epochs of "
                        "--variant only (default: epoch)")
    p.add_argument("--variant-file", default=None,
                   help="the variants' recipes (JSON) the driver wrote, for --mode variant")
    p.add_argument("--variant", default=None,
                   help="the variant to train, from --variant-file (default: none)")
    p.add_argument("--recipe", default="lecture",
                   help="training schedule; only cnnlab knows 'fast' (default: lecture)")
    p.add_argument("--epochs", type=int, default=3, help="epochs to train (default: 3)")
    p.add_argument("--batch-size", type=int, default=lecture.BATCH_SIZE,
                   help=f"training batch size (default: {lecture.BATCH_SIZE})")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="intra-op threads (default: all cores)")
    p.add_argument("--inference-batch", type=int, default=1000,
                   help="batch size of the throughput measurement (default: 1000)")
    p.add_argument("--inference-images", type=int, default=10_000,
                   help="images per throughput measurement (default: 10000)")
    p.add_argument("--latency-calls", type=int, default=200,
                   help="timed single-image predicts (default: 200)")
    p.add_argument("--seed", type=int, default=0, help="framework seed (default: 0)")
    return p.parse_args()


def load_data(args: argparse.Namespace) -> dict:
    """The driver's .npz as the lecture prepares it: x / 255 as float32 (N, 28, 28, 1).

    Labels stay integer (N,); Keras workers one-hot them as the lecture does.
    `x_val`/`y_val` are loaded in tta mode only, where the data must have them.
    """
    raw = np.load(args.data)
    data = {"x_train": _prepare(raw["x_train"]), "y_train": raw["y_train"].astype(np.int64)}
    if args.mode == "tta":
        if "x_val" not in raw:
            raise ValueError(f"{args.data} has no x_val/y_val; tta mode needs validation data.")
        data["x_val"] = _prepare(raw["x_val"])
        data["y_val"] = raw["y_val"].astype(np.int64)
    return data


def _prepare(images: np.ndarray) -> np.ndarray:
    # (N, 28, 28) uint8 -> (N, 28, 28, 1) float32 in [0, 1]
    return (images.astype(np.float32) / 255.0)[..., None]


def one_hot(labels: np.ndarray, classes: int = lecture.NUM_CLASSES) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[labels]


class EpochClock:
    """Wall time of each epoch, and validation accuracy in tta mode.

    Frameworks call `begin()` from their on_epoch_begin and `end()` from their
    on_epoch_end. The clock stops before the validation predict, so epoch times
    and time-to-accuracy count training only.
    """

    def __init__(self, predict_fn=None, x_val=None, y_val=None):
        self.predict_fn = predict_fn  # (N, 28, 28, 1) float32 -> (N, classes) scores
        self.x_val, self.y_val = x_val, y_val
        self.epoch_s: list[float] = []
        self.val_accuracy: list[float] = []
        self._start = None

    def begin(self) -> None:
        self._start = time.perf_counter()

    def end(self) -> None:
        self.epoch_s.append(time.perf_counter() - self._start)
        if self.x_val is not None:
            scores = self.predict_fn(self.x_val)
            self.val_accuracy.append(float(np.mean(np.argmax(scores, axis=1) == self.y_val)))

    def as_dict(self) -> dict:
        out = {"epoch_s": self.epoch_s}
        if self.x_val is not None:
            out["val_accuracy"] = self.val_accuracy
        return out


def inference_images_per_s(predict_batch, x: np.ndarray, images: int, repeats: int = 3) -> float:
    """Median throughput of `predict_batch(x[:images])` after one warm-up call."""
    x = x[:images]
    predict_batch(x)
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        predict_batch(x)
        rates.append(len(x) / (time.perf_counter() - t0))
    return statistics.median(rates)


def latency_ms(predict_one, x: np.ndarray, calls: int) -> list[float]:
    """Milliseconds of each of `calls` single-image predicts, after a warm-up."""
    for i in range(LATENCY_WARMUP_CALLS):
        predict_one(x[i:i + 1])
    out = []
    for i in range(calls):
        j = i % len(x)
        t0 = time.perf_counter()
        predict_one(x[j:j + 1])
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


def percentile(values: list[float], q: float) -> float:
    """q-th percentile (0-100), linear between order statistics, as numpy's default."""
    return float(np.percentile(np.asarray(values), q))


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024.0 if sys.platform != "darwin" else kib / 2**20


def base_result(system: str, args: argparse.Namespace) -> dict:
    return {
        "system": system,
        "status": "ok",
        "mode": args.mode,
        "recipe": args.recipe,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "env_threads": {k: os.environ.get(k) for k in (
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS",
            "TF_NUM_INTEROP_THREADS", "XLA_FLAGS", "KERAS_BACKEND")},
    }


def measure_serving(result: dict, args, x: np.ndarray, predict_batch, predict_one) -> None:
    """Add inference throughput and single-image latency to `result`."""
    result["inference_images_per_s"] = inference_images_per_s(predict_batch, x, args.inference_images)
    result["latency_ms"] = latency_ms(predict_one, x, args.latency_calls)


def run(system: str, args: argparse.Namespace, body) -> None:
    """Call `body(result)` and write the result, whatever happens.

    `body` fills `result` in place. An ImportError/AttributeError raised as
    `Unavailable` marks the system unavailable; any other exception marks it
    failed, with the traceback in the result for the driver to show.
    """
    result = base_result(system, args)
    t0 = time.perf_counter()
    try:
        body(result)
    except Unavailable as e:
        result.update(status="unavailable", reason=str(e))
    except Exception as e:  # reported, not hidden: the driver prints it
        result.update(status="failed", reason=f"{type(e).__name__}: {e}",
                      traceback=traceback.format_exc())
    result["worker_wall_s"] = time.perf_counter() - t0
    result["peak_rss_mb"] = peak_rss_mb()
    write_result(args.result, result)


class Unavailable(Exception):
    """The system cannot run here (missing package or API); not a failure."""


def write_result(path: str, result: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(result, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    # One line on stdout too, for a person running a worker by hand.
    long = ("latency_ms", "call_latency_ms", "traceback")
    print(json.dumps({k: v for k, v in result.items() if k not in long}))
