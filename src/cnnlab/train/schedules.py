"""Learning-rate schedules as pure functions of the step, so a resumed run gets the same rates."""
from __future__ import annotations

import math

from .callbacks import Callback


ANNEAL_STRATEGIES = ("cos", "linear")  # torch's OneCycleLR names


def one_cycle_lr(step: int, total: int, max_lr: float, pct_start: float = 0.25,
                 div: float = 25.0, final_div: float = 1e4, anneal_strategy: str = "cos") -> float:
    """fastai/Smith's one-cycle: warm-up from max_lr/div to max_lr over pct_start of the
    steps, then annealing to max_lr/(div*final_div), both cosine ("cos") or straight lines
    ("linear", as torch's OneCycleLR(anneal_strategy="linear")). `step` counts from 0 to
    total-1."""
    warm = max(int(total * pct_start), 1)
    start, end = max_lr / div, max_lr / (div * final_div)
    if step < warm:
        t = step / warm
        return start + (max_lr - start) * _rise(t, anneal_strategy)
    t = min((step - warm) / max(total - warm, 1), 1.0)
    return end + (max_lr - end) * (1 - _rise(t, anneal_strategy))


def _rise(t: float, anneal_strategy: str) -> float:
    """0 at t=0 to 1 at t=1: half a cosine, or a straight line."""
    return t if anneal_strategy == "linear" else (1 - math.cos(math.pi * t)) / 2


class OneCycle(Callback):
    def __init__(self, max_learning_rate: float, pct_start: float = 0.25,
                 anneal_strategy: str = "cos"):
        super().__init__()
        self.max_lr, self.pct_start, self.anneal = max_learning_rate, pct_start, anneal_strategy

    def on_train_begin(self, logs=None):
        if self.params.get("steps") is None:
            from ..errors import ConfigError
            raise ConfigError("The one-cycle learning-rate schedule needs the number of steps "
                              "per epoch: pass `steps_per_epoch` for data without a length "
                              "(a Python generator).")

    def on_train_batch_begin(self, batch, logs=None):
        total = self.params["epochs"] * self.params["steps"]
        lr = one_cycle_lr(self.trainer.position.global_step, total, self.max_lr, self.pct_start,
                          anneal_strategy=self.anneal)
        for group in self.trainer.optimizer.param_groups:
            group["lr"] = lr

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.trainer.optimizer.param_groups[0]["lr"]
