"""Optimizers by Keras name, with Keras's defaults, running on torch's optimizers.

    >>> opt = get({"name": "adam", "learning_rate": 0.001})
    >>> torch_opt = opt.build(net.parameters())
    >>> cnnlab.optimizers.Adam(learning_rate=1e-3)    # the Python API

Keras's epsilon (1e-7) is kept. Differences from Keras's update rules that do
not change results in practice: torch adds Adam's epsilon to the bias-corrected
sqrt(v), Keras to the uncorrected one.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .errors import ConfigError, unknown_name

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
}
_FUSED = {"adam", "adamw", "sgd", "adagrad"}  # torch has fused CPU kernels for these


def _torch_kwargs(name: str, a: dict) -> dict:
    kw = {"lr": a["learning_rate"]}
    if name in ("adam", "adamw"):
        kw.update(betas=(a["beta_1"], a["beta_2"]), eps=a["epsilon"], amsgrad=a["amsgrad"])
        if name == "adamw":
            kw["weight_decay"] = a["weight_decay"]
    elif name == "sgd":
        kw.update(momentum=a["momentum"], nesterov=a["nesterov"])
    elif name == "rmsprop":
        kw.update(alpha=a["rho"], momentum=a["momentum"], eps=a["epsilon"], centered=a["centered"])
    elif name == "adagrad":
        kw.update(initial_accumulator_value=a["initial_accumulator_value"], eps=a["epsilon"])
    return kw


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
        unknown = sorted(set(self.args) - set(defaults))
        if unknown:
            raise ConfigError(f"Unknown argument `{unknown[0]}` for optimizer {key!r}. "
                              f"Expected one of: {', '.join(defaults)}.")
        lr = self.args.get("learning_rate", defaults["learning_rate"])
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
            raise ConfigError(f"Invalid value for `learning_rate`. Expected a strictly positive "
                              f"number. Received learning_rate={lr!r}.")
        self.args = {**defaults, **self.args}

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
        return self._torch

    def to_config(self) -> dict:
        defaults = _TABLE[self.name][1]
        return {"name": self.name, **{k: v for k, v in self.args.items()
                                      if v != defaults[k] or k == "learning_rate"}}


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


def Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False):
    return Optimizer("adam", dict(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                                  epsilon=epsilon, amsgrad=amsgrad))


def AdamW(learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
          amsgrad=False):
    return Optimizer("adamw", dict(learning_rate=learning_rate, weight_decay=weight_decay,
                                   beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad))


def SGD(learning_rate=0.01, momentum=0.0, nesterov=False):
    return Optimizer("sgd", dict(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov))


def RMSprop(learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False):
    return Optimizer("rmsprop", dict(learning_rate=learning_rate, rho=rho, momentum=momentum,
                                     epsilon=epsilon, centered=centered))


def Adagrad(learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7):
    return Optimizer("adagrad", dict(learning_rate=learning_rate,
                                     initial_accumulator_value=initial_accumulator_value,
                                     epsilon=epsilon))
