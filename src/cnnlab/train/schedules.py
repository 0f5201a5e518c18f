"""Learning-rate schedules as pure functions of the step, so a resumed run gets the same rates."""
from __future__ import annotations

import math

from .callbacks import Callback


def one_cycle_lr(step: int, total: int, max_lr: float, pct_start: float = 0.25,
                 div: float = 25.0, final_div: float = 1e4) -> float:
    """fastai/Smith's one-cycle: cosine warm-up from max_lr/div to max_lr, then cosine
    annealing to max_lr/(div*final_div). `step` counts from 0 to total-1."""
    warm = max(int(total * pct_start), 1)
    start, end = max_lr / div, max_lr / (div * final_div)
    if step < warm:
        t = step / warm
        return start + (max_lr - start) * (1 - math.cos(math.pi * t)) / 2
    t = min((step - warm) / max(total - warm, 1), 1.0)
    return end + (max_lr - end) * (1 + math.cos(math.pi * t)) / 2


class OneCycle(Callback):
    def __init__(self, max_learning_rate: float, pct_start: float = 0.25):
        super().__init__()
        self.max_lr, self.pct_start = max_learning_rate, pct_start

    def on_train_batch_begin(self, batch, logs=None):
        total = self.params["epochs"] * self.params["steps"]
        lr = one_cycle_lr(self.trainer.position.global_step, total, self.max_lr, self.pct_start)
        for group in self.trainer.optimizer.param_groups:
            group["lr"] = lr

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = self.trainer.optimizer.param_groups[0]["lr"]
