"""Benchmark worker: the lecture's code on cnnlab's own train path.

cnnlab's Python API follows Keras, so the lecture's code runs unchanged
through `keras_api` with `keras=cnnlab`. Runs in the project's .venv.
Until the API exists the worker reports the system "unavailable" with the
import error, and the driver prints that in the table.

    python benchmarks/workers/cnnlab_worker.py --data benchmarks/out/synthetic-60000.npz \
        --result /tmp/r.json                      # the lecture's schedule
    python benchmarks/workers/cnnlab_worker.py ... --mode tta --recipe fast
"""
from __future__ import annotations

import common
import keras_api

SYSTEM = "cnnlab"


def import_cnnlab():
    """cnnlab with the Keras names the lecture uses, or Unavailable saying what is missing."""
    try:
        import cnnlab
        import cnnlab.callbacks  # noqa: F401  (the Callback base class)
        import cnnlab.layers  # noqa: F401
    except ImportError as e:
        raise common.Unavailable(f"ImportError: {e}") from e
    for name in ("Sequential", "layers", "callbacks"):
        if not hasattr(cnnlab, name):
            raise common.Unavailable(f"ImportError: cnnlab has no attribute {name!r}")
    return cnnlab


def fast_recipe_fit(cnnlab, args):
    """`fit(model, x, y_onehot, callbacks)` that trains with cnnlab's fast recipe.

    `model.fit(..., recipe="fast")` takes the settings of `cnnlab train --recipe fast`
    (its epochs, batch size, optimizer, label smoothing and one-cycle schedule) and
    fires the callbacks' epoch events, so the clock and validation accuracy work.
    """
    def fit(model, x, y_onehot, callbacks):
        return model.fit(x, y_onehot, recipe="fast", callbacks=callbacks, verbose=0, seed=args.seed)

    return fit


def body(result: dict, args) -> None:
    cnnlab = import_cnnlab()
    import torch  # cnnlab's engine; imported after cnnlab so a missing cnnlab reports first

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if args.recipe not in ("lecture", "fast"):
        raise ValueError(f"Unknown recipe {args.recipe!r}; expected one of lecture, fast.")
    fit = fast_recipe_fit(cnnlab, args) if args.recipe == "fast" else None
    keras_api.train_and_measure(cnnlab, result, args, fit=fit)
    result.update(threads_used=torch.get_num_threads(),
                  versions={"cnnlab": getattr(cnnlab, "__version__", "unknown"),
                            "torch": torch.__version__})


if __name__ == "__main__":
    args = common.parse_args(SYSTEM)
    common.run(SYSTEM, args, lambda result: body(result, args))
