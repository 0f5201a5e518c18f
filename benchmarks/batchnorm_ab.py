"""A/B in one process: improve.yaml's batchnorm variant with fast.batch_norm_train against
the literal formula (modules.BatchNorm with `literal = True`), epochs alternating.

One process and alternating epochs cancel most of a shared machine's drift, which
separate benchmark processes minutes apart do not. Prints every epoch and the ratio of
the fastest later epochs.

    PYTHONPATH=src .venv/bin/python benchmarks/batchnorm_ab.py --steps 20 --rounds 4 --threads 1
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE / "workers"))
import variant_model  # noqa: E402
import variants  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="steps per epoch (default: 20)")
    p.add_argument("--rounds", type=int, default=4,
                   help="epochs per model, alternating; the first of each is warm-up (default: 4)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--variant", default="batchnorm", help="improve.yaml variant (default: batchnorm)")
    args = p.parse_args(argv)

    import cnnlab
    from cnnlab.layers.modules import BatchNorm

    torch.set_num_threads(args.threads)
    recipe = variants.resolve(HERE.parent / "examples" / "improve.yaml", [args.variant])[args.variant]
    models = {"fast": variant_model.keras_model(cnnlab, recipe),
              "literal": variant_model.keras_model(cnnlab, recipe)}
    for m in models["literal"].net.modules():
        if isinstance(m, BatchNorm):
            m.literal = True
    n = recipe["batch_size"] * args.steps
    rng = np.random.default_rng(0)
    x = rng.random((n, *recipe["input_shape"]), dtype=np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, n)]
    epochs = {name: [] for name in models}
    for r in range(args.rounds):
        order = list(models) if r % 2 == 0 else list(models)[::-1]
        for name in order:
            t0 = time.perf_counter()
            models[name].fit(x, y, batch_size=recipe["batch_size"], epochs=1, verbose=0)
            epochs[name].append(time.perf_counter() - t0)
    for name, s in epochs.items():
        print(f"{name:8s} epochs (s): {', '.join(f'{v:.2f}' for v in s)}")
    ratio = min(epochs["fast"][1:]) / min(epochs["literal"][1:])
    print(f"fastest later epoch, fast / literal: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
