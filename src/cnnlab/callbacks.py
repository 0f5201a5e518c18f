"""Keras's callbacks (`cnnlab.callbacks.EarlyStopping`, ...): see cnnlab.train.callbacks."""
from .train.callbacks import (Callback, CSVLogger, EarlyStopping, History, LearningRateScheduler,
                              ModelCheckpoint, ReduceLROnPlateau, TerminateOnNaN)
from .train.tensorboard import TensorBoard

__all__ = ["Callback", "CSVLogger", "EarlyStopping", "History", "LearningRateScheduler",
           "ModelCheckpoint", "ReduceLROnPlateau", "TensorBoard", "TerminateOnNaN"]
