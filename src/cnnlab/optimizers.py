"""Optimizers by Keras name, with Keras's defaults, running on torch's optimizers.

    >>> opt = get({"name": "adam", "learning_rate": 0.001})
    >>> torch_opt = opt.build(net.parameters())
    >>> cnnlab.optimizers.Adam(learning_rate=1e-3)    # the Python API
    >>> cnnlab.optimizers.SGD(learning_rate=cnnlab.optimizers.schedules.CosineDecay(0.1, 1000))

Keras's epsilon (1e-7) is kept. Adadelta, Adamax and Nadam run Keras's own update rules
(keras_rules.py). A `learning_rate` may be a schedule (lr_schedules.py): the training
loop sets the rate before every step from its step counter. Keras 2's `lr=` and `decay=`
are accepted with a deprecation notice naming Keras 3's spelling.

Differences from Keras's update rules that do not change results in practice: torch
adds Adam's epsilon to the bias-corrected sqrt(v), Keras to the uncorrected one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sys

import torch

from . import lr_schedules as schedules
from .deprecation import deprecated
from .errors import ConfigError, unknown_name
from .keras_rules import KerasAdadelta, KerasAdamax, KerasNadam
from .validate import check_optimizer_args

# `cnnlab.optimizers.schedules` as Keras spells it, importable too
# (`from cnnlab.optimizers.schedules import ExponentialDecay`)
sys.modules[__name__ + ".schedules"] = schedules

# Keras name -> (torch class, Keras defaults, Keras arg -> torch arg)
_TABLE = {
    "adam": (torch.optim.Adam, {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999,
                                "epsilon": 1e-7, "amsgrad": False}),
    "adamw": (torch.optim.AdamW, {"learning_rate": 0.001, "weight_decay": 0.004, "beta_1": 0.9,
                                  "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False}),
    "sgd": (torch.optim.SGD, {"learning_rate": 0.01, "momentum": 0.0, "nesterov": False}),
    "rmsprop": (torch.optim.RMSprop, {"learning_rate": 0.001, "rho": 0.9, "momentum": 0.0,
                                      "epsilon": 1e-7, "centered": False}),
    "adagrad": (torch.optim.Adagrad, {"learning_rate": 0.001, "initial_accumulator_value": 0.1,
                                      "epsilon": 1e-7}),
    "adadelta": (KerasAdadelta, {"learning_rate": 0.001, "rho": 0.95, "epsilon": 1e-7}),
    "adamax": (KerasAdamax, {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999,
                             "epsilon": 1e-7}),
    "nadam": (KerasNadam, {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999,
                           "epsilon": 1e-7}),
}
_FUSED = {"adam", "adamw", "sgd", "adagrad"}  # torch has fused CPU kernels for these


def _torch_kwargs(name: str, a: dict) -> dict:
    lr = a["learning_rate"]
    kw = {"lr": lr(0) if isinstance(lr, schedules.LearningRateSchedule) else lr}
    if name in ("adam", "adamw", "adamax", "nadam"):
        kw.update(betas=(a["beta_1"], a["beta_2"]), eps=a["epsilon"])
        if name in ("adam", "adamw"):
            kw["amsgrad"] = a["amsgrad"]
        if name == "adamw":
            kw["weight_decay"] = a["weight_decay"]
    elif name == "sgd":
        kw.update(momentum=a["momentum"], nesterov=a["nesterov"])
    elif name == "rmsprop":
        kw.update(alpha=a["rho"], momentum=a["momentum"], eps=a["epsilon"], centered=a["centered"])
    elif name == "adagrad":
        kw.update(initial_accumulator_value=a["initial_accumulator_value"], eps=a["epsilon"])
    elif name == "adadelta":
        kw.update(rho=a["rho"], eps=a["epsilon"])
    return kw


def _keras2_args(args: dict, default_rate: float) -> dict:
    """`lr=` -> `learning_rate=`, `decay=d` -> InverseTimeDecay(lr, 1, d) (Keras 2's
    per-step decay), each with its notice."""
    args = dict(args)
    if "lr" in args:
        if args.get("learning_rate") is not None:
            raise ConfigError("Both `lr` and `learning_rate` were given. `lr` is Keras 2's "
                              "spelling of `learning_rate`: pass only `learning_rate`.")
        deprecated("lr", "learning_rate", stacklevel=7)
        args["learning_rate"] = args.pop("lr")
    if "decay" in args:
        decay = args.pop("decay")
        deprecated("decay", "learning_rate=cnnlab.optimizers.schedules.InverseTimeDecay(...)",
                   stacklevel=7)
        if decay:
            lr = args.get("learning_rate", default_rate)
            if isinstance(lr, schedules.LearningRateSchedule):
                raise ConfigError("`decay` cannot be combined with a learning-rate schedule.")
            args["learning_rate"] = schedules.InverseTimeDecay(lr, 1, decay)
    return {k: v for k, v in args.items() if not (k == "learning_rate" and v is None)}


def _check_rate(lr) -> None:
    if isinstance(lr, schedules.LearningRateSchedule):
        return
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ConfigError(f"Invalid value for argument `learning_rate`. Expected a strictly "
                          f"positive number or a schedule from cnnlab.optimizers.schedules. "
                          f"Received learning_rate={lr!r}.")


@dataclass
class Optimizer:
    """A Keras optimizer description; `build` makes the torch optimizer."""

    name: str
    args: dict = field(default_factory=dict)

    def __post_init__(self):
        key = self.name.lower() if isinstance(self.name, str) else None
        if key not in _TABLE:
            raise ConfigError(unknown_name("optimizer", self.name, _TABLE))
        self.name = key
        defaults = _TABLE[key][1]
        self.args = _keras2_args(self.args, defaults["learning_rate"])
        if isinstance(self.args.get("learning_rate"), dict):  # a schedule from a config file
            self.args["learning_rate"] = schedules.deserialize(self.args["learning_rate"])
        unknown = sorted(set(self.args) - set(defaults))
        if unknown:
            raise ConfigError(f"Unknown argument `{unknown[0]}` for optimizer {key!r}. "
                              f"Expected one of: {', '.join(defaults)}.")
        _check_rate(self.args.get("learning_rate", defaults["learning_rate"]))
        self.args = {**defaults, **self.args}
        check_optimizer_args(key, self.args)

    @property
    def learning_rate(self) -> float:
        """The current learning rate (of the torch optimizer once built)."""
        built = self.__dict__.get("_torch")
        return built.param_groups[0]["lr"] if built is not None else self.args["learning_rate"]

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        built = self.__dict__.get("_torch")
        if built is not None:
            for group in built.param_groups:
                group["lr"] = float(value)
        else:
            self.args["learning_rate"] = float(value)

    def build(self, params) -> torch.optim.Optimizer:
        cls = _TABLE[self.name][0]
        kw = _torch_kwargs(self.name, self.args)
        params = list(params)
        opt = None
        if self.name in _FUSED:
            try:
                opt = cls(params, fused=True, **kw)
            except (RuntimeError, TypeError, ValueError):
                opt = None
        self._torch = opt if opt is not None else cls(params, **kw)
        lr = self.args["learning_rate"]
        if isinstance(lr, schedules.LearningRateSchedule):
            self._torch.cnnlab_schedule = lr  # read by the training loop before every step
        return self._torch

    def to_config(self) -> dict:
        defaults = _TABLE[self.name][1]
        args = {k: v for k, v in self.args.items() if v != defaults[k] or k == "learning_rate"}
        if isinstance(args["learning_rate"], schedules.LearningRateSchedule):
            args["learning_rate"] = schedules.serialize(args["learning_rate"])
        return {"name": self.name, **args}


def get(value) -> Optimizer:
    """'adam', {'name': 'sgd', 'momentum': 0.9} or an Optimizer."""
    if isinstance(value, Optimizer):
        return value
    if isinstance(value, str):
        return Optimizer(value)
    if isinstance(value, dict) and "name" in value:
        return Optimizer(value["name"], {k: v for k, v in value.items() if k != "name"})
    raise ConfigError(f"Invalid optimizer. Expected a name such as 'adam' or a mapping such as "
                      f"{{name: sgd, learning_rate: 0.01, momentum: 0.9}}. Received {value!r}.")


def _make(name: str, args: dict, kwargs: dict) -> Optimizer:
    """The Python constructors' common part: `learning_rate=None` means Keras's default;
    `kwargs` may hold Keras 2's `lr`/`decay` (or a wrong name, refused with the valid ones)."""
    kwargs.pop("name", None)  # Keras's optimizer name: nothing here depends on it
    args = {k: v for k, v in args.items() if not (k == "learning_rate" and v is None)}
    return Optimizer(name, {**args, **kwargs})


def Adam(learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kwargs):
    return _make("adam", dict(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                              epsilon=epsilon, amsgrad=amsgrad), kwargs)


def AdamW(learning_rate=None, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
          amsgrad=False, **kwargs):
    return _make("adamw", dict(learning_rate=learning_rate, weight_decay=weight_decay,
                               beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad),
                 kwargs)


def SGD(learning_rate=None, momentum=0.0, nesterov=False, **kwargs):
    return _make("sgd", dict(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov),
                 kwargs)


def RMSprop(learning_rate=None, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kwargs):
    return _make("rmsprop", dict(learning_rate=learning_rate, rho=rho, momentum=momentum,
                                 epsilon=epsilon, centered=centered), kwargs)


def Adagrad(learning_rate=None, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
    return _make("adagrad", dict(learning_rate=learning_rate,
                                 initial_accumulator_value=initial_accumulator_value,
                                 epsilon=epsilon), kwargs)


def Adadelta(learning_rate=None, rho=0.95, epsilon=1e-7, **kwargs):
    return _make("adadelta", dict(learning_rate=learning_rate, rho=rho, epsilon=epsilon), kwargs)


def Adamax(learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
    return _make("adamax", dict(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                                epsilon=epsilon), kwargs)


def Nadam(learning_rate=None, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
    return _make("nadam", dict(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                               epsilon=epsilon), kwargs)
