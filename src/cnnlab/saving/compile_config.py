"""A loaded model's compile settings (Keras's `compile_config`), both ways, best effort.

    >>> compile_from_keras(model, config["compile_config"])  # compiles when cnnlab knows them
    >>> compile_to_keras(model)                              # {} when not compiled

Keras compiles a loaded model when its file holds a compile config; cnnlab does
the same for the optimizers, losses and metrics it knows by name. Anything else
leaves the model uncompiled with a warning (call `compile()` yourself), since the
weights and the architecture, the file's content, loaded fine.
"""
from __future__ import annotations

import warnings

from ..errors import CnnlabError


def _name(value):
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return value.get("class_name") or (value.get("config") or {}).get("name")
    return None


def _optimizer(value):
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, dict) and isinstance(value.get("config"), dict):
        cfg = value["config"]
        out = {"name": str(value.get("class_name", "")).lower()}
        if isinstance(cfg.get("learning_rate"), (int, float)):
            out["learning_rate"] = float(cfg["learning_rate"])
        return out
    raise ValueError(f"unsupported optimizer {value!r}")


# Keras's loss classes, as compile_config serializes a loss object
LOSS_CLASSES = {"categorical_crossentropy": "CategoricalCrossentropy",
                "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
                "binary_crossentropy": "BinaryCrossentropy",
                "mean_squared_error": "MeanSquaredError", "mean_absolute_error": "MeanAbsoluteError",
                "hinge": "Hinge", "kl_divergence": "KLDivergence"}
OPTIMIZER_CLASSES = {"adam": "Adam", "adamw": "AdamW", "sgd": "SGD", "rmsprop": "RMSprop",
                     "adagrad": "Adagrad", "adadelta": "Adadelta", "adamax": "Adamax",
                     "nadam": "Nadam"}


def _loss(value):
    """A loss from compile_config: a name, or a serialized loss object whose settings
    (from_logits, label_smoothing) change what it computes."""
    from .. import losses
    if isinstance(value, dict) and isinstance(value.get("config"), dict):
        cls = getattr(losses, str(value.get("class_name")), None)
        if cls is not None and str(value.get("class_name")) in LOSS_CLASSES.values():
            cfg = value["config"]
            kwargs = {k: cfg[k] for k in ("from_logits", "label_smoothing") if k in cfg}
            return cls(**kwargs)
    return _name(value)


def compile_from_keras(model, config) -> None:
    if not isinstance(config, dict) or not config.get("loss"):
        return
    try:
        loss = _loss(config["loss"])
        metrics = config.get("metrics") or []
        metrics = [_name(m) for m in (metrics if isinstance(metrics, list) else [metrics])]
        model.compile(optimizer=_optimizer(config.get("optimizer", "rmsprop")), loss=loss,
                      metrics=[m for m in metrics if m] or None, device="cpu")
    except (CnnlabError, ValueError, TypeError) as err:
        warnings.warn(f"The model was loaded without compiling it: its compile config could "
                      f"not be used by cnnlab ({err}). Call model.compile() before fit.",
                      stacklevel=3)


def compile_to_keras(model) -> dict:
    """Keras's compile_config for a compiled cnnlab model; {} (as Keras writes) otherwise."""
    opt, loss = getattr(model, "optimizer", None), getattr(model, "loss", None)
    if opt is None or loss is None:
        return {}
    loss_name = getattr(loss, "name", None) or (loss if isinstance(loss, str) else None)
    if not loss_name:
        return {}
    class_name = OPTIMIZER_CLASSES.get(getattr(opt, "name", ""), None)
    if class_name is None:
        return {}
    if getattr(loss, "from_logits", False) or getattr(loss, "label_smoothing", 0.0):
        # a loss object's settings change what it computes: written as Keras serializes it
        cfg = {"name": loss_name, "reduction": "sum_over_batch_size",
               "from_logits": bool(loss.from_logits)}
        if loss_name in ("categorical_crossentropy", "binary_crossentropy"):
            cfg["label_smoothing"] = float(loss.label_smoothing)
        loss_name = {"module": "keras.losses", "class_name": LOSS_CLASSES[loss_name],
                     "config": cfg, "registered_name": None}
    return {"optimizer": {"module": "keras.optimizers", "class_name": class_name,
                          "config": {"name": opt.name, "learning_rate": opt.learning_rate},
                          "registered_name": None},
            "loss": loss_name, "loss_weights": None, "metrics": list(model.metrics) or None,
            "weighted_metrics": None, "run_eagerly": False, "steps_per_execution": 1,
            "jit_compile": False}
