"""Training: the loop, its callbacks, checkpoints and the progress bar."""
from .callbacks import (Callback, CSVLogger, EarlyStopping, History, LearningRateScheduler,
                        ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN)
from .progress import ProgressBar
from .loop import Position, Trainer, epoch_order, seed_everything

__all__ = ["Callback", "CSVLogger", "EarlyStopping", "History", "LearningRateScheduler",
           "ModelCheckpoint", "ProgressBar", "ReduceLROnPlateau", "TerminateOnNaN", "Position",
           "Trainer", "epoch_order", "seed_everything"]
