"""Run configs: the model spec, the data and the training settings, in one YAML file.

    model: {input_shape: [28, 28, 1], layers: [...]}      # the model spec
    data: {name: mnist}
    train:
      loss: categorical_crossentropy
      optimizer: {name: adam, learning_rate: 0.001}
      metrics: [accuracy]
      batch_size: 128
      epochs: 10
      seed: 0

    >>> cfg = RunConfig.from_dict(read_yaml_file("examples/lecture.yaml"))
    >>> cfg = cfg.with_overrides({"train.epochs": 3})
Unknown keys are errors that list the valid keys. Defaults are the lecture's.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from . import metrics, optimizers, validate
from .errors import ConfigError, reject_unknown_keys
from .losses import get as get_loss
from .spec import ModelSpec, dump_yaml, load_yaml, read_yaml_file
from .train.schedules import ANNEAL_STRATEGIES

LECTURE_MODEL = {
    "input_shape": [28, 28, 1],
    "layers": [
        {"Conv2D": {"filters": 32, "kernel_size": [3, 3], "activation": "relu"}},
        {"MaxPooling2D": {"pool_size": [2, 2]}},
        {"Conv2D": {"filters": 64, "kernel_size": [3, 3], "activation": "relu"}},
        {"MaxPooling2D": {"pool_size": [2, 2], "padding": "same"}},
        {"Flatten": {}},
        {"Dense": {"units": 64, "activation": "relu"}},
        {"Dense": {"units": 10, "activation": "softmax"}},
    ],
}

DATA_DEFAULTS = {"name": "mnist", "data_dir": None, "fallback": True, "validation": "test"}

TRAIN_DEFAULTS = {
    "loss": "categorical_crossentropy",
    "optimizer": {"name": "adam", "learning_rate": 0.001},
    "metrics": ["accuracy"],
    "batch_size": 128,
    "epochs": 10,
    "seed": 0,
    "shuffle": True,
    "label_smoothing": 0.0,
    "lr_schedule": None,        # null, or {one_cycle: {max_learning_rate: 0.004, pct_start: 0.25,
                                #                      anneal_strategy: cos (or linear)}}
    "validation_freq": 1,       # validate every N epochs (the last epoch always)
    "callbacks": [],            # [{EarlyStopping: {patience: 2}}, TerminateOnNaN, ...]
    "checkpoint_every_steps": 0,  # 0: checkpoints at epoch ends only
    "device": "auto",
    "precision": "float32",     # float32 | mixed_bfloat16 | mixed_float16 (--precision 32|bf16|16-mixed)
    "threads": None,            # torch threads; null: all cores
}

# Recipes: named sets of train settings. `fast` reaches the lecture schedule's
# accuracy in a fraction of its time (see benchmarks/RESULTS.md).
RECIPES = {
    "lecture": {},
    # tuned on Fashion-MNIST (3 seeds each, 33 settings, benchmarks/RESULTS.md): Adam with
    # shorter memories (beta_1 0.8, beta_2 0.95) and a linear one-cycle to 0.012 reach
    # 0.9174 in 3 epochs at batch 384 (0.9184 at batch 256, ~15% slower; 0.9135 in 2
    # epochs at 256; the old cosine one-cycle with betas 0.9/0.999: 0.908 in 3 epochs at
    # 256); weight decay, more smoothing or a weight average did no better
    "fast": {"batch_size": 384, "epochs": 3, "label_smoothing": 0.1,
             "optimizer": {"name": "adam", "learning_rate": 0.012, "beta_1": 0.8,
                           "beta_2": 0.95},
             "lr_schedule": {"one_cycle": {"max_learning_rate": 0.012, "pct_start": 0.2,
                                           "anneal_strategy": "linear"}},
             "validation_freq": 3},
}

SECTIONS = ("model", "data", "train")


def _check_keys(section: str, d: dict, valid) -> None:
    reject_unknown_keys(d, valid, f"`{section}`")


def _positive_int(section, key, value, allow_none=False):
    if allow_none and value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"Invalid value for `{section}.{key}`. Expected a strictly positive "
                          f"integer. Received {key}={value!r}.")
    return value


def _check_train(t: dict) -> dict:
    _check_keys("train", t, TRAIN_DEFAULTS)
    from .train.precision import policy_name
    t["precision"] = policy_name(t["precision"])  # Keras's name, whichever spelling was given
    if not isinstance(t["loss"], str):  # the registries look names up in dicts: strings only
        raise ConfigError(f"Invalid value for `train.loss`. Expected a loss name such as "
                          f"categorical_crossentropy. Received {t['loss']!r}.")
    get_loss(t["loss"])
    opt = t["optimizer"]
    if not isinstance(opt.get("name") if isinstance(opt, dict) else opt, str):
        raise ConfigError(f"Invalid value for `train.optimizer`. Expected a name such as adam or "
                          f"a mapping such as {{name: sgd, learning_rate: 0.01}}. Received {opt!r}.")
    optimizers.get(opt)
    for key in ("batch_size", "epochs", "validation_freq"):
        _positive_int("train", key, t[key])
    _positive_int("train", "threads", t["threads"], allow_none=True)
    seed = t["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"Invalid value for `train.seed`. Expected an integer >= 0. Received "
                          f"seed={seed!r}.")
    ls = t["label_smoothing"]
    if isinstance(ls, bool) or not isinstance(ls, (int, float)) or not 0 <= ls < 1:
        raise ConfigError(f"Invalid value for `train.label_smoothing`. Expected a number in "
                          f"[0, 1). Received label_smoothing={ls!r}.")
    ms = t["metrics"]
    if not isinstance(ms, list) or not all(isinstance(m, str) for m in ms):
        raise ConfigError(f"Invalid value for `train.metrics`. Expected a list of metric names "
                          f"such as [accuracy, auc]. Received {ms!r}.")
    metrics.resolve(ms)  # unknown names fail with the valid ones
    # a run always records accuracy, under that key: its plots, metrics.json and the
    # experiment reports are built on it
    t["metrics"] = ["accuracy", *[m for m in ms if m.lower() not in metrics.ACCURACY]]
    if t["device"] == "mps":  # a clear reason rather than "not one of" (train/fit_api.py)
        from .train.fit_api import mps_message
        raise ConfigError(mps_message())
    if t["device"] not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"Invalid value for `train.device`. Expected one of auto, cpu, cuda. "
                          f"Received {t['device']!r}.")
    if not isinstance(t["callbacks"], list):
        raise ConfigError(f"Invalid value for `train.callbacks`. Expected a list. Received "
                          f"{t['callbacks']!r}.")
    _check_schedule(t["lr_schedule"])
    validate.check_train_domains(t)
    from .train.precision import check_device
    check_device(t["precision"], t["device"])  # before a run directory exists
    return t


def _check_schedule(s) -> None:
    if s is None:
        return
    ok = isinstance(s, dict) and set(s) == {"one_cycle"} and isinstance(s["one_cycle"] or {}, dict)
    if ok:
        args = s["one_cycle"] or {}
        ok = set(args) <= {"max_learning_rate", "pct_start", "anneal_strategy"}
    if not ok:
        raise ConfigError("Invalid value for `train.lr_schedule`. Expected null or "
                          "{one_cycle: {max_learning_rate: 0.004, pct_start: 0.25, "
                          f"anneal_strategy: cos}}. Received {s!r}.")
    if "max_learning_rate" not in args:
        raise ConfigError("Missing `train.lr_schedule.one_cycle.max_learning_rate`. Expected a "
                          f"strictly positive number such as 0.004. Received {s!r}.")
    lr, pct = args["max_learning_rate"], args.get("pct_start", 0.25)
    anneal = args.get("anneal_strategy", "cos")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
        raise ConfigError("Invalid value for `train.lr_schedule.one_cycle.max_learning_rate`. "
                          f"Expected a strictly positive number. Received {lr!r}.")
    if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not 0 < pct < 1:
        raise ConfigError("Invalid value for `train.lr_schedule.one_cycle.pct_start`. "
                          f"Expected a number between 0 and 1. Received {pct!r}.")
    if anneal not in ANNEAL_STRATEGIES:
        raise ConfigError("Invalid value for `train.lr_schedule.one_cycle.anneal_strategy`. "
                          f"Expected one of: {', '.join(ANNEAL_STRATEGIES)}. Received {anneal!r}.")


def _check_data(d: dict) -> dict:
    from .data.folder_data import check_folder_config, is_folder
    if is_folder(d["name"]):  # a folder of pictures has settings of its own
        return check_folder_config(d, DATA_DEFAULTS)
    _check_keys("data", d, DATA_DEFAULTS)
    if not isinstance(d["name"], str) or not d["name"]:
        raise ConfigError(f"Invalid value for `data.name`. Expected a dataset name such as "
                          f"mnist. Received {d['name']!r}.")
    v = d["validation"]
    if v != "test" and not (isinstance(v, float) and 0 < v < 1):
        raise ConfigError(f"Invalid value for `data.validation`. Expected 'test' (the test "
                          f"split, as the lecture does) or a fraction of the training data in "
                          f"(0, 1). Received {v!r}.")
    validate.check_data_domains(d)
    return d


@dataclass(frozen=True, eq=False)
class RunConfig:
    spec: ModelSpec
    data: dict
    train: dict

    @classmethod
    def from_dict(cls, d, source="config") -> "RunConfig":
        if d is None:
            d = {}
        validate.check_finite(d)
        if not isinstance(d, dict):
            raise ConfigError(f"Expected {source} to be a mapping with sections "
                              f"{', '.join(SECTIONS)}. Received {type(d).__name__}.")
        if "layers" in d and "model" not in d:  # a bare model spec
            d = {"model": d}
        _check_keys("the config", d, SECTIONS)
        model = d.get("model") or LECTURE_MODEL
        data = {**DATA_DEFAULTS, **_mapping(d.get("data"), "data")}
        train = {**copy.deepcopy(TRAIN_DEFAULTS), **_mapping(d.get("train"), "train")}
        return cls(ModelSpec.from_dict(model), _check_data(data), _check_train(train))

    @classmethod
    def load(cls, path) -> "RunConfig":
        if path is None:
            return cls.from_dict({})
        return cls.from_dict(read_yaml_file(path), str(path))

    def to_dict(self) -> dict:
        return {"model": self.spec.to_dict(), "data": dict(self.data), "train": dict(self.train)}

    def to_yaml(self) -> str:
        return dump_yaml(self.to_dict())

    def with_overrides(self, data: dict | None = None, train: dict | None = None) -> "RunConfig":
        d = self.to_dict()
        d["data"].update({k: v for k, v in (data or {}).items() if v is not None})
        d["train"].update({k: v for k, v in (train or {}).items() if v is not None})
        return RunConfig.from_dict(d)

    def with_recipe(self, name: str | None) -> "RunConfig":
        if name is None:
            return self
        return self.with_overrides(train=recipe_changes(name))


# -- train settings -> the public API (the one place `cnnlab train` and `fit(recipe=)` read them)

def recipe_changes(name: str) -> dict:
    """The train settings a recipe changes; ConfigError listing the recipes if unknown."""
    if name not in RECIPES:
        raise ConfigError(f"Unknown recipe {name!r}. Expected one of: {', '.join(RECIPES)}.")
    return copy.deepcopy(RECIPES[name])


def recipe_settings(name: str) -> dict:
    """A recipe's full train settings: the defaults with its changes."""
    return {**copy.deepcopy(TRAIN_DEFAULTS), **recipe_changes(name)}


def compile_kwargs(t: dict) -> dict:
    """`model.compile(**compile_kwargs(cfg.train))`."""
    return {"loss": t["loss"], "optimizer": t["optimizer"], "metrics": t["metrics"],
            "label_smoothing": t["label_smoothing"], "device": t["device"]}


def fit_kwargs(t: dict) -> dict:
    """`model.fit(x, y, **fit_kwargs(cfg.train), callbacks=...)` (the schedule is a callback:
    `schedule_callbacks`)."""
    return {"batch_size": t["batch_size"], "epochs": t["epochs"], "shuffle": t["shuffle"],
            "seed": t["seed"], "validation_freq": t["validation_freq"]}


def schedule_callbacks(t: dict) -> list:
    """The learning-rate schedule of train settings, as callbacks ([] for none)."""
    if not t["lr_schedule"]:
        return []
    from .train.schedules import OneCycle
    return [OneCycle(**(t["lr_schedule"]["one_cycle"] or {}))]


def _mapping(value, section):
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"Expected `{section}` to be a mapping. Received {value!r}.")
    return value


def lecture_yaml() -> str:
    return RunConfig.from_dict({}).to_yaml()


__all__ = ["RunConfig", "RECIPES", "LECTURE_MODEL", "load_yaml", "lecture_yaml"]
