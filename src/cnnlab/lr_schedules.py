"""Keras's learning-rate schedules (`cnnlab.optimizers.schedules`): pure functions of the
optimizer's step count, so a resumed run gets the same rates.

    >>> lr = cnnlab.optimizers.schedules.ExponentialDecay(0.1, decay_steps=100, decay_rate=0.9)
    >>> opt = cnnlab.optimizers.SGD(learning_rate=lr)
    >>> lr(0), lr(100)      # 0.1, 0.09: the rate of the step with that index (from 0)

The training loop sets the rate before every step from its global step counter
(Keras's `optimizer.iterations`, which counts from 0), see train/loop.py.
"""
from __future__ import annotations

import math

from .errors import ConfigError


def _number(name: str, value, positive: bool = False, low: float | None = None) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if ok and positive:
        ok = value > 0
    if ok and low is not None:
        ok = value >= low
    if not ok:
        expected = ("a strictly positive number" if positive else
                    f"a number >= {low:g}" if low is not None else "a number")
        raise ConfigError(f"Invalid value for argument `{name}`. Expected {expected}. "
                          f"Received {name}={value!r}.")
    return float(value)


class LearningRateSchedule:
    """Base class: `schedule(step) -> learning rate` for the step with that index."""

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def get_config(self) -> dict:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class ExponentialDecay(LearningRateSchedule):
    """initial_learning_rate * decay_rate ** (step / decay_steps), the exponent floored
    when `staircase`."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate,
                                             positive=True)
        self.decay_steps = _number("decay_steps", decay_steps, positive=True)
        self.decay_rate = _number("decay_rate", decay_rate, positive=True)
        self.staircase, self.name = bool(staircase), name

    def __call__(self, step: int) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate ** p

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class InverseTimeDecay(LearningRateSchedule):
    """initial_learning_rate / (1 + decay_rate * step / decay_steps); Keras 2's `decay=`
    argument of the optimizers is this schedule with decay_steps=1."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate,
                                             positive=True)
        self.decay_steps = _number("decay_steps", decay_steps, positive=True)
        self.decay_rate = _number("decay_rate", decay_rate, low=0.0)
        self.staircase, self.name = bool(staircase), name

    def __call__(self, step: int) -> float:
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate / (1 + self.decay_rate * p)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class PiecewiseConstantDecay(LearningRateSchedule):
    """values[0] up to and including step boundaries[0], values[1] up to boundaries[1], ...,
    values[-1] after the last boundary."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        boundaries, values = list(boundaries), list(values)
        if len(values) != len(boundaries) + 1:
            raise ConfigError(f"The length of `values` should be one more than the length of "
                              f"`boundaries`. Received boundaries={boundaries!r}, "
                              f"values={values!r}.")
        for b in boundaries:
            _number("boundaries", b)
        if any(a >= b for a, b in zip(boundaries, boundaries[1:])):
            raise ConfigError(f"Invalid value for argument `boundaries`. Expected increasing "
                              f"steps. Received boundaries={boundaries!r}.")
        self.boundaries = boundaries
        self.values = [_number("values", v, positive=True) for v in values]
        self.name = name

    def __call__(self, step: int) -> float:
        for boundary, value in zip(self.boundaries, self.values):
            if step <= boundary:
                return value
        return self.values[-1]

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Half a cosine from the rate to alpha times it over decay_steps, after an optional
    linear warm-up from initial_learning_rate to warmup_target over warmup_steps."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = _number("initial_learning_rate", initial_learning_rate,
                                             low=0.0)
        self.decay_steps = _number("decay_steps", decay_steps, positive=True)
        self.alpha = _number("alpha", alpha, low=0.0)
        self.warmup_target = (None if warmup_target is None
                              else _number("warmup_target", warmup_target, positive=True))
        self.warmup_steps = _number("warmup_steps", warmup_steps, low=0.0)
        self.name = name

    def _decay(self, step: float, start_lr: float) -> float:
        cosine = 0.5 * (1.0 + math.cos(math.pi * step / self.decay_steps))
        return start_lr * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step: int) -> float:
        if self.warmup_target is None:
            return self._decay(min(step, self.decay_steps), self.initial_learning_rate)
        step = min(step, self.decay_steps + self.warmup_steps)
        if step < self.warmup_steps:
            delta = self.warmup_target - self.initial_learning_rate
            return delta * step / self.warmup_steps + self.initial_learning_rate
        return self._decay(step - self.warmup_steps, self.warmup_target)

    def get_config(self) -> dict:
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


SCHEDULES = {c.__name__: c for c in (ExponentialDecay, InverseTimeDecay,
                                     PiecewiseConstantDecay, CosineDecay)}


def deserialize(config: dict) -> LearningRateSchedule:
    """{"class_name": "ExponentialDecay", "config": {...}} (Keras's form) -> a schedule."""
    name = config.get("class_name") if isinstance(config, dict) else None
    if name not in SCHEDULES:
        from .errors import unknown_name
        raise ConfigError(unknown_name("learning-rate schedule", name, SCHEDULES))
    return SCHEDULES[name](**config.get("config", {}))


def serialize(schedule: LearningRateSchedule) -> dict:
    return {"class_name": type(schedule).__name__, "config": schedule.get_config()}
