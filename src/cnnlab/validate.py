"""Domain checks for every number and name of a run config, before anything is created.

    >>> check_finite({"train": {"optimizer": {"learning_rate": float("nan")}}})
    ConfigError: Invalid value for `train.optimizer.learning_rate`. Expected a finite number...
    >>> check_optimizer_args("adam", {"beta_1": 1.0, ...})    # ConfigError: beta_1 in [0, 1)
    >>> cfg = validate_train({"train": {"epochs": 2}})         # what `cnnlab train` checks

`config.RunConfig` calls the first three on every config it makes (so experiments
validate every variant this way before the first run), `runner.train_run` calls
`check_run` before the run directory exists; `validate_train` is the two together, the
whole of what `cnnlab train` checks before it creates anything.
"""
from __future__ import annotations

import math
import os

from .errors import ConfigError

MAX_THREADS = 512       # torch.set_num_threads(100000) crashes the process (OpenMP)
MAX_SEED = 2**32 - 1    # NumPy's seed range (torch takes more; the run seeds all three)
MAX_COUNT = 2**31 - 1   # epochs, batch sizes, step counts: beyond this, a typo
MAX_DEPTH = 64          # nesting of a config's mappings and lists


def _where(path) -> str:
    return ".".join(str(p) for p in path) or "the config"


def check_finite(value, path=(), depth=0, seen=None) -> None:
    """ConfigError naming the first NaN or infinite number anywhere in `value` (a config's
    mappings and lists), or a structure nested deeper than MAX_DEPTH or containing itself."""
    seen = set() if seen is None else seen
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"Invalid value for `{_where(path)}`. Expected a finite number. "
                          f"Received {value!r}.")
    if isinstance(value, (dict, list, tuple)):
        if depth > MAX_DEPTH:
            raise ConfigError(f"`{_where(path[:3])}...` is nested more than {MAX_DEPTH} levels "
                              "deep. Expected a config of mappings and lists a few levels deep.")
        if id(value) in seen:
            raise ConfigError(f"`{_where(path)}` contains itself (a recursive YAML alias). "
                              "Expected a tree of mappings and lists.")
        seen.add(id(value))
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in items:
            check_finite(v, (*path, k), depth + 1, seen)
        seen.discard(id(value))


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# optimizer argument -> (test, what it expects)
_OPTIMIZER_DOMAINS = {
    "beta_1": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "beta_2": (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "rho": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "epsilon": (lambda v: _number(v) and 0 < v < math.inf, "a finite number > 0"),
    "momentum": (lambda v: _number(v) and 0 <= v < math.inf, "a finite number >= 0"),
    "weight_decay": (lambda v: _number(v) and 0 <= v < math.inf, "a finite number >= 0"),
    "initial_accumulator_value": (lambda v: _number(v) and 0 <= v < math.inf,
                                  "a finite number >= 0"),
    "amsgrad": (lambda v: isinstance(v, bool), "True or False"),
    "nesterov": (lambda v: isinstance(v, bool), "True or False"),
    "centered": (lambda v: isinstance(v, bool), "True or False"),
}


def check_optimizer_args(name: str, args: dict) -> None:
    """ConfigError for an optimizer argument outside the domain torch and Keras accept."""
    for key, value in args.items():
        if key in _OPTIMIZER_DOMAINS:
            ok, expected = _OPTIMIZER_DOMAINS[key]
            if not ok(value):
                raise ConfigError(f"Invalid value for argument `{key}` of optimizer {name!r}. "
                                  f"Expected {expected}. Received {key}={value!r}.")
    lr = args.get("learning_rate")
    if _number(lr) and not math.isfinite(lr):
        raise ConfigError(f"Invalid value for argument `learning_rate` of optimizer {name!r}. "
                          f"Expected a finite number > 0. Received learning_rate={lr!r}.")
    if args.get("nesterov") and not (_number(args.get("momentum")) and args["momentum"] > 0):
        raise ConfigError(f"Invalid value for argument `momentum` of optimizer {name!r}. "
                          "Expected a number > 0 with nesterov=True (Nesterov momentum needs "
                          f"momentum). Received momentum={args.get('momentum')!r}.")


def _int_in(t: dict, key: str, low: int, high: int) -> None:
    v = t[key]
    if v is None and key == "threads":
        return
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise ConfigError(f"Invalid value for `train.{key}`. Expected an integer in [{low}, "
                          f"{high}]. Received {key}={v!r}.")


def check_train_domains(t: dict) -> None:
    """The ranges of `train`'s numbers and flags (after the types config.py checks)."""
    _int_in(t, "seed", 0, MAX_SEED)
    _int_in(t, "threads", 1, MAX_THREADS)
    _int_in(t, "checkpoint_every_steps", 0, MAX_COUNT)
    for key in ("batch_size", "epochs", "validation_freq"):
        _int_in(t, key, 1, MAX_COUNT)
    if not isinstance(t["shuffle"], bool):
        raise ConfigError(f"Invalid value for `train.shuffle`. Expected true or false. Received "
                          f"shuffle={t['shuffle']!r}.")


def check_data_domains(d: dict) -> None:
    """`data`'s flags and paths (after config.py's checks of the name and validation)."""
    if not isinstance(d["fallback"], bool):
        raise ConfigError(f"Invalid value for `data.fallback`. Expected true or false. Received "
                          f"fallback={d['fallback']!r}.")
    if isinstance(d["data_dir"], os.PathLike):  # from Python: a Path is a folder path too
        d["data_dir"] = os.fspath(d["data_dir"])
    if d["data_dir"] is not None and (not isinstance(d["data_dir"], str) or not d["data_dir"]
                                      or "\0" in d["data_dir"]):
        raise ConfigError(f"Invalid value for `data.data_dir`. Expected null or a folder path. "
                          f"Received data_dir={d['data_dir']!r}.")
    if "\0" in d["name"]:
        raise ConfigError(f"Invalid value for `data.name`. Expected a dataset name such as mnist. "
                          f"Received {d['name']!r}.")


def check_loss_fits(spec, loss) -> None:
    """The model's output must be one vector of class scores per image: the labels of a
    dataset are classes, whatever the loss (mse and binary_crossentropy take them one-hot)."""
    from .errors import SpecError
    out = spec.output_shape
    if len(out) != 1:
        shape = "(None, " + ", ".join(map(str, out)) + ")"
        raise SpecError(f"The model's output has shape {shape}, but {loss.name} on a dataset's "
                        "class labels needs one vector per image, (None, classes). Is a Flatten "
                        "or GlobalAveragePooling2D missing before the last Dense?")


def check_callback_paths(entries) -> None:
    """A run's callbacks write inside the run directory: their `filepath`/`filename` is a
    relative path without '..' (a config from elsewhere cannot write over ~/.bashrc)."""
    from pathlib import PurePosixPath
    for i, entry in enumerate(entries or []):
        if not isinstance(entry, dict) or len(entry) != 1:
            continue  # the callbacks' own checks say what is wrong
        (name, args), = entry.items()
        for key in ("filepath", "filename"):
            value = args.get(key) if isinstance(args, dict) else None
            if value is None:
                continue
            ok = (isinstance(value, str) and value and "\0" not in value
                  and not PurePosixPath(value).is_absolute()
                  and ".." not in PurePosixPath(value).parts)
            if not ok:
                raise ConfigError(f"train.callbacks[{i}] ({name}): Invalid value for argument "
                                  f"`{key}`. Expected a file name inside the run directory "
                                  f"(a relative path without '..'). Received {key}={value!r}.")


def check_run(cfg) -> None:
    """What `cnnlab train` checks of a config beyond RunConfig's own checks, before the run
    directory exists: the loss against the model's output, the callbacks, the memory."""
    from .losses import get as get_loss
    from .runner import check_model_fits
    from .train import callbacks as cbs
    check_loss_fits(cfg.spec, get_loss(cfg.train["loss"]))
    check_callback_paths(cfg.train["callbacks"])
    cbs.from_config(cfg.train["callbacks"])
    check_model_fits(cfg.spec, cfg.train["device"])


def validate_train(d):
    """A RunConfig from a config mapping, checked as `cnnlab train` checks it before it
    creates the run directory; a CnnlabError otherwise."""
    from .config import RunConfig
    cfg = RunConfig.from_dict(d)
    check_run(cfg)
    return cfg
