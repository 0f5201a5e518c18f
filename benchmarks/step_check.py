"""A second, independent measurement of issue 16's ratios, sharing no code with epoch_time.py.

epoch_time.py resolves examples/improve.yaml through cnnlab's own variant rules, builds the
models in its workers and times epochs with a callback. This script writes a few of the
variants out by hand in Keras code, runs each system in its own process, and times whole
`fit` calls of 50 unshuffled steps with a plain clock: the median of three after one
warm-up call. If both measurements agree, neither one's harness is what
the ratios measure.

    .venv/bin/python benchmarks/step_check.py                 # base, batchnorm, wider, strided
    .venv/bin/python benchmarks/step_check.py --variants base,elu

tf.keras runs in benchmarks/.venvs/tf (bash benchmarks/setup.sh tf).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = {"cnnlab": ROOT / ".venv" / "bin" / "python",
           "tf-keras": ROOT / "benchmarks" / ".venvs" / "tf" / "bin" / "python"}

# Each variant as a reader types it: (layer name, arguments) in order.
C32 = ("Conv2D", dict(filters=32, kernel_size=(3, 3), activation="relu"))
C64 = ("Conv2D", dict(filters=64, kernel_size=(3, 3), activation="relu"))
P, PS = ("MaxPooling2D", dict(pool_size=(2, 2))), ("MaxPooling2D", dict(pool_size=(2, 2), padding="same"))
HEAD = [("Flatten", {}), ("Dense", dict(units=64, activation="relu")),
        ("Dense", dict(units=10, activation="softmax"))]
BN = ("BatchNormalization", {})
VARIANTS = {
    "base": [C32, P, C64, PS] + HEAD,
    "batchnorm": [C32, BN, P, C64, BN, PS, HEAD[0], HEAD[1], BN, HEAD[2]],
    "wider": [("Conv2D", dict(filters=64, kernel_size=(3, 3), activation="relu")), P,
              ("Conv2D", dict(filters=128, kernel_size=(3, 3), activation="relu")), PS,
              HEAD[0], ("Dense", dict(units=128, activation="relu")), HEAD[2]],
    "strided": [("Conv2D", dict(filters=32, kernel_size=(3, 3), strides=2, activation="relu")),
                ("Conv2D", dict(filters=64, kernel_size=(3, 3), strides=2, activation="relu"))]
               + HEAD,
    "elu": [("Conv2D", dict(filters=32, kernel_size=(3, 3), activation="elu")), P,
            ("Conv2D", dict(filters=64, kernel_size=(3, 3), activation="elu")), PS, HEAD[0],
            ("Dense", dict(units=64, activation="elu")), HEAD[2]],
}

WORKER = r"""
import json, sys, time
import numpy as np
system, layers = sys.argv[1], json.loads(sys.argv[2])
if system == "cnnlab":
    import cnnlab as keras
    import torch; torch.set_num_threads(2)
else:
    import tensorflow as tf; from tensorflow import keras
    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(2)
model = keras.Sequential([keras.Input((28, 28, 1))] +
                         [getattr(keras.layers, k)(**a) for k, a in layers])
model.compile(optimizer=keras.optimizers.Adam(0.001), loss="categorical_crossentropy",
              metrics=["accuracy"])
rng = np.random.default_rng(0)
x = rng.random((128 * 50, 28, 28, 1), dtype=np.float32)
y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, 128 * 50)]
model.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False)  # warm-up
blocks = []
for _ in range(3):
    t = time.perf_counter()
    model.fit(x, y, batch_size=128, epochs=1, verbose=0, shuffle=False)
    blocks.append((time.perf_counter() - t) / 50 * 1000)
print(json.dumps(sorted(blocks)[1]))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default="base,batchnorm,wider,strided")
    args = ap.parse_args()
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"Unknown variant(s) {', '.join(unknown)}. Expected names from "
              f"{', '.join(VARIANTS)}.", file=sys.stderr)
        return 2
    missing = [s for s, p in PYTHONS.items() if not p.exists()]
    if missing:
        print(f"No venv for {', '.join(missing)}: run make venv and bash benchmarks/setup.sh tf.",
              file=sys.stderr)
        return 2
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), KERAS_BACKEND="tensorflow",
               TF_CPP_MIN_LOG_LEVEL="3")
    print(f"{'variant':<10} {'cnnlab ms':>10} {'tf.keras ms':>12} {'ratio':>6}")
    for name in names:
        ms = {}
        for system in ("cnnlab", "tf-keras"):  # one after the other, each in its own process
            out = subprocess.run([str(PYTHONS[system]), "-c", WORKER, system,
                                  json.dumps(VARIANTS[name])], env=env, capture_output=True,
                                 text=True, check=True)
            ms[system] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name:<10} {ms['cnnlab']:>10.2f} {ms['tf-keras']:>12.2f} "
              f"{ms['cnnlab'] / ms['tf-keras']:>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
