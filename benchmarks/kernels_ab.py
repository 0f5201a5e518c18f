"""The compiled kernels on and off (CNNLAB_NO_KERNELS=1), side by side on this CPU.

    .venv/bin/python benchmarks/kernels_ab.py --rounds 3 --steps 100     # the lecture's model

Each round runs one subprocess with the kernels and one without, alternating which goes
first; each trains the lecture's model with Sequential.fit on the same random images
(batch 128) for 3 epochs and reports its fastest epoch after the first. Prints the
medians and the ratio (kernels / torch's ops): below 1, the kernels help on this CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

WORKER = r"""
import json, sys, time
import numpy as np
import cnnlab
from cnnlab import fast, layers
steps, threads, variant = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
import torch; torch.set_num_threads(threads)
rng = np.random.default_rng(0)
x = rng.integers(0, 256, (steps * 128, 28, 28, 1), dtype=np.uint8)
y = (x.reshape(len(x), -1)[:, ::97].sum(1) % 10).astype(np.int64)
model = cnnlab.Sequential([layers.Input(shape=(28, 28, 1)),
    layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
    layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2, padding="same"),
    layers.Flatten(), layers.Dense(64, activation="relu"),
    *( [layers.BatchNormalization()] if variant == "batchnorm" else []),
    layers.Dense(10, activation="softmax")])
model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
times = []
class T(cnnlab.callbacks.Callback):
    def on_epoch_begin(self, e, logs=None): self.t = time.perf_counter()
    def on_epoch_end(self, e, logs=None): times.append(time.perf_counter() - self.t)
model.fit(x, y, batch_size=128, epochs=3, verbose=0, seed=0, callbacks=[T()])
print(json.dumps({"times": times, "kernels": fast.kernels_status()}))
"""


def run(env_off: bool, steps: int, threads: int, variant: str) -> dict:
    env = dict(os.environ)
    env.pop("CNNLAB_NO_KERNELS", None)
    if env_off:
        env["CNNLAB_NO_KERNELS"] = "1"
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = str(root / "src")
    out = subprocess.run([sys.executable, "-c", WORKER, str(steps), str(threads), variant],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="pairs of runs (default: 3)")
    p.add_argument("--steps", type=int, default=100, help="steps per epoch (default: 100)")
    p.add_argument("--threads", type=int, default=os.cpu_count(),
                   help="torch threads (default: all cores)")
    p.add_argument("--variant", choices=("lecture", "batchnorm"), default="lecture",
                   help="the lecture's model, or with a BatchNormalization (default: lecture)")
    a = p.parse_args()
    best = {True: [], False: []}
    for r in range(a.rounds):
        for off in ((False, True) if r % 2 == 0 else (True, False)):
            res = run(off, a.steps, a.threads, a.variant)
            best[off].append(min(res["times"][1:]))
            print(f"round {r + 1}: {'torch ops' if off else res['kernels'] + ' kernels':>14}: "
                  f"epochs {', '.join(f'{t:.2f}' for t in res['times'])} s", flush=True)
    on, off = statistics.median(best[False]), statistics.median(best[True])
    print(f"median fastest epoch: kernels {on:.3f} s, torch's ops {off:.3f} s, "
          f"ratio {on / off:.2f}")


if __name__ == "__main__":
    main()
