"""Benchmark worker: the lecture's code on tf.keras (tensorflow-cpu), the reference system.

Runs in benchmarks/.venvs/tf (made by benchmarks/setup.sh). Threads: intra-op
and inter-op pools both set to --threads before TensorFlow starts its runtime.
Since TensorFlow 2.16, `tf.keras` is Keras 3 on the TensorFlow backend; the
result records both versions.

    benchmarks/.venvs/tf/bin/python benchmarks/workers/tfkeras.py \
        --data benchmarks/out/synthetic-60000.npz --result /tmp/r.json
"""
from __future__ import annotations

import common
import keras_api

SYSTEM = "tf-keras"


def body(result: dict, args) -> None:
    try:
        import tensorflow as tf
    except ImportError as e:
        raise common.Unavailable(f"ImportError: {e}") from e
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras = tf.keras
    keras.utils.set_random_seed(args.seed)
    keras_api.train_and_measure(keras, result, args, call=keras_api.keras_call(keras))
    result.update(
        threads_used={"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                      "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
        versions={"tensorflow": tf.__version__, "keras": keras.__version__},
        layout="NHWC")


if __name__ == "__main__":
    args = common.parse_args(SYSTEM)
    common.run(SYSTEM, args, lambda result: body(result, args))
