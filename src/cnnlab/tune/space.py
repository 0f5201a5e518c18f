"""Tune files: a base config, a search space, and the variant a trial's values fill in.

    title: Learning rate, batch size and dropout
    base: lecture.yaml                 # a config file (relative to this file) or inline
    objective: val_accuracy            # a history key, the last epoch's value is the score
    trials: 20
    sampler: {name: tpe, seed: 0}      # tpe | random
    pruner: {name: median}             # median | hyperband | none
    params:
      lr:         {float: [1.0e-4, 1.0e-2], log: true}
      batch_size: {choice: [32, 64, 128]}
      filters:    {int: [16, 64], step: 16}
      extra:      {choice: {two: [], three: [{Conv2D: {filters: 64, kernel_size: 3}}]}}
    variant:                           # a variant (docs/experiments.md); $name = a value
      train: {optimizer: {learning_rate: $lr}, batch_size: $batch_size}
      set: {conv2d: {filters: $filters}}

    >>> tune = load_tune("examples/tune.yaml")
    >>> tune.config({"lr": 0.003, "batch_size": 64, ...})     # -> RunConfig

A trial's parameters become a config through the experiments' variant
mechanism (`experiments.variants.apply_variant`): the file's `variant` is a
template whose "$name" strings are replaced by the trial's values, so a search
can change anything a variant can. Choices given as a mapping are sampled by
their label (Optuna stores scalars) and stand for the value, which may be a
list or a layer. The whole space is checked before anything trains: every
corner (each bound, each choice) is built into a config and its model spec.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..config import RunConfig
from ..errors import CnnlabError, ConfigError, reject_unknown_keys
from ..experiments.plan import _base_dict, _check_output
from ..experiments.variants import apply_variant, check_variant
from ..spec import read_yaml_file

TUNE_KEYS = ("title", "base", "objective", "direction", "trials", "sampler", "pruner",
             "params", "variant")
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "hyperband", "none")
PLACEHOLDER = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Param:
    """One dimension of the search space."""
    name: str
    kind: str                 # "float", "int" or "choice"
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    labels: tuple = ()        # choice: what Optuna samples (scalars)
    values: tuple = ()        # choice: what each label stands for

    def suggest(self, trial):
        """The trial's sampled value (a choice's label: `value_of` gives what it stands for)."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log,
                                     step=self.step or 1)
        return trial.suggest_categorical(self.name, list(self.labels))

    def value_of(self, sampled):
        """A sampled (stored) value -> the value the variant receives."""
        if self.kind != "choice":
            return sampled
        return copy.deepcopy(self.values[self.labels.index(sampled)])

    def corners(self) -> list:
        """Sampled values that every config must accept: bounds and each choice."""
        return [self.low, self.high] if self.kind != "choice" else list(self.labels)


@dataclass(frozen=True)
class Tune:
    name: str
    title: str
    source: str
    base: dict
    params: tuple[Param, ...]
    variant: dict
    objective: str = "val_accuracy"
    direction: str = "maximize"
    trials: int = 20
    sampler: dict = field(default_factory=dict)
    pruner: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)

    def variant_for(self, values: dict) -> dict:
        """The variant with each "$name" replaced by values[name] (the variant's values)."""
        return substitute(self.variant, values)

    def config(self, sampled: dict) -> RunConfig:
        """The RunConfig of a trial whose sampled (stored) parameters are `sampled`."""
        values = {p.name: p.value_of(sampled[p.name]) for p in self.params}
        cfg = RunConfig.from_dict(apply_variant(copy.deepcopy(self.base), self.variant_for(values)),
                                  "trial config")
        cfg = cfg.with_overrides(data=self.overrides.get("data"), train=self.overrides.get("train"))
        _check_output(cfg)
        return cfg


def substitute(tree, values: dict):
    """`tree` with every string "$name" replaced by values[name] (any type)."""
    if isinstance(tree, dict):
        return {k: substitute(v, values) for k, v in tree.items()}
    if isinstance(tree, list):
        return [substitute(v, values) for v in tree]
    if isinstance(tree, str):
        m = PLACEHOLDER.match(tree)
        if m:
            return copy.deepcopy(values[m.group(1)])
    return tree


def placeholders(tree) -> set[str]:
    if isinstance(tree, dict):
        return set().union(*(placeholders(v) for v in tree.values())) if tree else set()
    if isinstance(tree, list):
        return set().union(*(placeholders(v) for v in tree)) if tree else set()
    m = PLACEHOLDER.match(tree) if isinstance(tree, str) else None
    return {m.group(1)} if m else set()


# -- parsing ---------------------------------------------------------------------------

def _number(value, what, integer=False) -> float | int:
    ok = (isinstance(value, int) if integer else isinstance(value, (int, float)))
    if isinstance(value, bool) or not ok or not math.isfinite(value):
        kind = "an integer" if integer else "a finite number"
        raise ConfigError(f"Invalid value for `{what}`. Expected {kind}. Received {value!r}.")
    return value


def _range_param(name: str, kind: str, d: dict) -> Param:
    where = f"params.{name}"
    bounds = d[kind]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise ConfigError(f"Invalid value for `{where}.{kind}`. Expected [low, high]. "
                          f"Received {bounds!r}.")
    integer = kind == "int"
    low, high = (_number(b, f"{where}.{kind}", integer) for b in bounds)
    if not low < high:
        raise ConfigError(f"Invalid value for `{where}.{kind}`. Expected low < high. "
                          f"Received [{low}, {high}].")
    log = d.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"Invalid value for `{where}.log`. Expected true or false. "
                          f"Received {log!r}.")
    if log and low <= 0:
        raise ConfigError(f"Invalid value for `{where}.{kind}`. Expected low > 0 with log: true "
                          f"(a log-uniform range). Received [{low}, {high}].")
    step = d.get("step")
    if step is not None:
        step = _number(step, f"{where}.step", integer)
        if step <= 0 or step > high - low:
            raise ConfigError(f"Invalid value for `{where}.step`. Expected 0 < step <= high - "
                              f"low ({high - low}). Received step={step!r}.")
        if log:
            raise ConfigError(f"`{where}`: step and log: true cannot be combined (Optuna "
                              "samples a log range continuously). Expected one of them.")
    return Param(name, kind, float(low) if not integer else low,
                 float(high) if not integer else high, log, step)


def _scalar(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _choice_param(name: str, d: dict) -> Param:
    where = f"params.{name}.choice"
    choice = d["choice"]
    if isinstance(choice, list) and choice:
        if not all(_scalar(v) for v in choice):
            raise ConfigError(f"Invalid value for `{where}`. Expected a list of numbers, strings "
                              "or booleans; for lists or layers give a mapping {label: value}. "
                              f"Received {choice!r}.")
        labels = values = tuple(choice)
    elif isinstance(choice, dict) and choice:
        labels, values = tuple(str(k) for k in choice), tuple(choice.values())
    else:
        raise ConfigError(f"Invalid value for `{where}`. Expected a non-empty list of values or "
                          f"mapping {{label: value}}. Received {choice!r}.")
    if len(set(map(repr, labels))) != len(labels):
        raise ConfigError(f"Invalid value for `{where}`. Expected distinct choices. "
                          f"Received {choice!r}.")
    extra = sorted(set(d) - {"choice"})
    if extra:
        raise ConfigError(f"`params.{name}`: `{extra[0]}` does not apply to a choice. "
                          "Expected only `choice`.")
    return Param(name, "choice", labels=labels, values=values)


def parse_param(name, d) -> Param:
    if not isinstance(name, str) or not PARAM_NAME.match(name):
        raise ConfigError(f"Invalid parameter name {name!r}. Expected letters, digits and '_', "
                          "not starting with a digit (the variant refers to it as $name).")
    kinds = [k for k in ("float", "int", "choice") if isinstance(d, dict) and k in d]
    if len(kinds) != 1:
        raise ConfigError(f"Invalid value for `params.{name}`. Expected exactly one of "
                          "{float: [low, high]}, {int: [low, high]} or {choice: [...]} (with "
                          f"log: or step: for ranges). Received {d!r}.")
    if kinds[0] == "choice":
        return _choice_param(name, d)
    reject_unknown_keys(d, (kinds[0], "log", "step"), f"`params.{name}`")
    return _range_param(name, kinds[0], d)


# each sampler's and pruner's options (all integers >= 0 but seed, which may be null)
OPTIONS = {("sampler", "tpe"): ("seed", "startup_trials"), ("sampler", "random"): ("seed",),
           ("pruner", "median"): ("startup_trials", "warmup_epochs"),
           ("pruner", "hyperband"): ("min_epochs", "reduction_factor"), ("pruner", "none"): ()}


def _mapping_setting(value, key: str, names: tuple, default: str) -> dict:
    """sampler/pruner: a name or {name: ..., options}, each option checked."""
    if value is None:
        value = {"name": default}
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or value.get("name", default) not in names:
        got = value.get("name") if isinstance(value, dict) else value
        raise ConfigError(f"Invalid value for `{key}`. Expected one of: {', '.join(names)}. "
                          f"Received {got!r}.")
    value = {"name": default, **value}
    valid = OPTIONS[(key, value["name"])]
    reject_unknown_keys(value, ("name", *valid), f"`{key}` ({value['name']})")
    for option, v in value.items():
        if option == "name" or (option == "seed" and v is None):
            continue
        if isinstance(v, bool) or not isinstance(v, int) or v < (2 if option ==
                                                                  "reduction_factor" else 0):
            least = 2 if option == "reduction_factor" else 0
            raise ConfigError(f"Invalid value for `{key}.{option}`. Expected an integer >= "
                              f"{least}. Received {option}={v!r}.")
    return value


def _direction(objective: str, direction) -> str:
    if direction is None:  # Keras's rule (ModelCheckpoint's mode='auto'): losses go down
        return "minimize" if "loss" in objective else "maximize"
    if direction not in ("maximize", "minimize"):
        raise ConfigError(f"Invalid value for `direction`. Expected maximize or minimize. "
                          f"Received {direction!r}.")
    return direction


def parse_tune(d, source="<tune>", source_dir=".", name=None, *, trials=None, epochs=None,
               data=None) -> Tune:
    """A checked Tune from the file's mapping; every corner of the space is built."""
    if not isinstance(d, dict):
        raise ConfigError(f"Expected {source} to be a mapping with keys "
                          f"{', '.join(TUNE_KEYS)}. Received {type(d).__name__}.")
    reject_unknown_keys(d, TUNE_KEYS, source)
    try:
        base = _base_dict(d.get("base"), Path(source_dir))
    except CnnlabError as err:
        raise type(err)(f"Invalid base config in {source}: {err}") from None
    raw = d.get("params")
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("Invalid value for `params`. Expected a mapping from parameter names "
                          f"to ranges such as {{lr: {{float: [1.0e-4, 1.0e-2], log: true}}}}. "
                          f"Received {raw!r}.")
    params = tuple(parse_param(k, v) for k, v in raw.items())
    variant = check_variant(d.get("variant"))
    used, defined = placeholders(variant), {p.name for p in params}
    if used - defined:
        raise ConfigError(f"`variant` uses ${sorted(used - defined)[0]}, which `params` does not "
                          f"define. Expected one of: {', '.join(sorted(defined))}.")
    if defined - used:
        raise ConfigError(f"Parameter `{sorted(defined - used)[0]}` is not used by `variant` "
                          "(it would be searched without changing anything). Expected "
                          f"${sorted(defined - used)[0]} somewhere in `variant`.")
    objective = d.get("objective", "val_accuracy")
    if not isinstance(objective, str) or not objective:
        raise ConfigError(f"Invalid value for `objective`. Expected a history key such as "
                          f"val_accuracy or val_loss. Received {objective!r}.")
    n = trials if trials is not None else d.get("trials", 20)
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ConfigError(f"Invalid value for `trials`. Expected a strictly positive integer. "
                          f"Received trials={n!r}.")
    tune = Tune(name or Path(source).stem, str(d.get("title") or f"Search {Path(source).stem}"),
                str(source), base, params, variant, objective,
                _direction(objective, d.get("direction")), n,
                _mapping_setting(d.get("sampler"), "sampler", SAMPLERS, "tpe"),
                _mapping_setting(d.get("pruner"), "pruner", PRUNERS, "median"),
                {"train": {"epochs": epochs}, "data": dict(data or {})})
    check_space(tune)
    return tune


def check_space(tune: Tune) -> None:
    """ConfigError naming the parameter values whose config or model is invalid.

    Each parameter's every bound or choice is tried with the others at their first corner:
    a search never reaches a config that was not checked in kind."""
    first = {p.name: p.corners()[0] for p in tune.params}
    points = [dict(first)] + [{**first, p.name: c} for p in tune.params for c in p.corners()[1:]]
    errors = []
    for point in points:
        try:
            tune.config(point)
        except CnnlabError as err:
            text = ", ".join(f"{k}={v!r}" for k, v in point.items())
            errors.append(f"  {text}: {err}")
    if errors:
        raise ConfigError(f"{len(errors)} point(s) of the search space in {tune.source} give an "
                          "invalid config; nothing was trained:\n" + "\n".join(errors))


def load_tune(path, name=None, **overrides) -> Tune:
    path = Path(path)
    return parse_tune(read_yaml_file(path), str(path), path.parent, name, **overrides)
