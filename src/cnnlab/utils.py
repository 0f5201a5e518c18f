"""Keras's utils: `cnnlab.utils.to_categorical(y, 10)`, `PyDataset`, `set_random_seed(0)`,
`cnnlab.utils.plot_model(model)`, `image_dataset_from_directory("PetImages", ...)`."""
import sys

from . import np_utils
from .data.image_dataset import AUTOTUNE, image_dataset_from_directory
from .data.preprocess import to_categorical as _one_hot
from .train.loop import seed_everything as set_random_seed
from .train.sources import PyDataset, Sequence

__all__ = ["AUTOTUNE", "PyDataset", "image_dataset_from_directory", "Sequence", "plot_model", "set_random_seed", "to_categorical"]


def to_categorical(y, num_classes=None, dtype="float32"):
    """One-hot rows for integer labels, as Keras's to_categorical."""
    return _one_hot(y, num_classes).astype(dtype, copy=False)


def plot_model(model, to_file="model.png", show_shapes=False, show_dtype=False,
               show_layer_names=False, rankdir="TB", expand_nested=False, dpi=200,
               show_layer_activations=False, show_trainable=False, **kwargs):
    """Keras's plot_model, drawn with matplotlib (no Graphviz needed): see model_plot.py."""
    from .model_plot import plot_model as plot
    return plot(model, to_file, show_shapes, show_dtype, show_layer_names, rankdir,
                expand_nested, dpi, show_layer_activations, show_trainable, **kwargs)


# Keras 2's `keras.utils.np_utils`, importable as a module too
# (`from cnnlab.utils.np_utils import to_categorical`)
sys.modules[__name__ + ".np_utils"] = np_utils
