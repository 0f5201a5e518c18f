"""Benchmark worker: the lecture's code on Keras 3, backend from KERAS_BACKEND (jax or torch).

Runs in benchmarks/.venvs/keras-jax or benchmarks/.venvs/keras-torch (made by
benchmarks/setup.sh); the driver sets KERAS_BACKEND before Keras is imported.
Threads: torch.set_num_threads(--threads) on torch; on JAX, XLA's CPU client
uses every core it is given and has no thread-count setting, so the result
records the cores visible to the process.

    KERAS_BACKEND=jax benchmarks/.venvs/keras-jax/bin/python benchmarks/workers/keras3.py \
        --data benchmarks/out/synthetic-60000.npz --result /tmp/r.json
"""
from __future__ import annotations

import os

import common
import keras_api


def system_name() -> str:
    return f"keras-{os.environ.get('KERAS_BACKEND', 'tensorflow')}"


def body(result: dict, args) -> None:
    backend = os.environ.get("KERAS_BACKEND")
    if backend not in ("jax", "torch"):
        raise common.Unavailable(f"KERAS_BACKEND must be jax or torch; it is {backend!r}.")
    try:
        import keras
        framework = __import__(backend)
    except ImportError as e:
        raise common.Unavailable(f"ImportError: {e}") from e
    if backend == "torch":
        framework.set_num_threads(args.threads)
        threads_used = framework.get_num_threads()
    else:
        threads_used = {"cores_visible": len(os.sched_getaffinity(0)),
                        "devices": [str(d) for d in framework.devices()]}
    keras.utils.set_random_seed(args.seed)
    keras_api.train_and_measure(keras, result, args, call=keras_api.keras_call(keras))
    result.update(threads_used=threads_used,
                  versions={"keras": keras.__version__, backend: framework.__version__},
                  layout="NHWC")


if __name__ == "__main__":
    args = common.parse_args(system_name())
    common.run(system_name(), args, lambda result: body(result, args))
