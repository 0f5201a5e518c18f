"""The lecture's model as data: its layers, shapes, parameters and work.

Every worker builds this same model in its own framework; this module is the
one place the benchmark derives sizes and FLOPs from, with the standard library
only, so that it imports in every venv.

    >>> from lecture import LAYERS, INPUT_SHAPE, forward_macs, param_count
    >>> forward_macs(LAYERS, INPUT_SHAPE)      # multiply-adds per image
    2573056
    >>> param_count(LAYERS, INPUT_SHAPE)
    166986

The lecture's Keras code, which the workers reproduce:

    Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1))
    MaxPooling2D((2, 2))
    Conv2D(64, (3, 3), activation="relu")
    MaxPooling2D((2, 2), padding="same")
    Flatten()
    Dense(64, activation="relu")
    Dense(10, activation="softmax")
    compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    fit(batch_size=128)
"""
from __future__ import annotations

import math

INPUT_SHAPE = (28, 28, 1)  # (H, W, C), channels-last as in Keras
NUM_CLASSES = 10
BATCH_SIZE = 128
LEARNING_RATE = 1e-3  # Keras's and torch's Adam default

# (kind, argument, padding): conv = (filters, kernel), pool = pool size,
# dense = units. Strides are Keras's defaults (1 for conv, pool size for pool).
LAYERS = (
    ("conv", (32, 3), "valid"),
    ("pool", 2, "valid"),
    ("conv", (64, 3), "valid"),
    ("pool", 2, "same"),
    ("flatten", None, None),
    ("dense", 64, None),
    ("dense", NUM_CLASSES, None),
)

# Training work per image relative to the forward pass: forward, then the
# gradients with respect to inputs and to weights, each about one forward.
# (The first conv needs no input gradient, so 3x slightly overcounts; it is the
# convention of the issue and of most MFU figures.)
TRAIN_TO_FORWARD = 3
FLOP_PER_MAC = 2


def _spatial(size: int, window: int, stride: int, padding: str) -> int:
    """Output length of a conv or pool along one axis, as TF computes it."""
    if padding == "same":
        return math.ceil(size / stride)
    return (size - window) // stride + 1


def walk(layers=LAYERS, input_shape=INPUT_SHAPE):
    """Yield (kind, output_shape, forward_macs, params) per layer."""
    h, w, c = input_shape
    flat = None  # set once the tensor is flattened
    for kind, arg, padding in layers:
        if kind == "conv":
            filters, k = arg
            h, w = _spatial(h, k, 1, padding), _spatial(w, k, 1, padding)
            macs = h * w * filters * k * k * c
            params = k * k * c * filters + filters
            c = filters
            yield kind, (h, w, c), macs, params
        elif kind == "pool":
            h, w = _spatial(h, arg, arg, padding), _spatial(w, arg, arg, padding)
            yield kind, (h, w, c), 0, 0  # comparisons, not multiply-adds
        elif kind == "flatten":
            flat = h * w * c
            yield kind, (flat,), 0, 0
        elif kind == "dense":
            macs = flat * arg
            params = flat * arg + arg
            flat = arg
            yield kind, (flat,), macs, params
        else:
            raise ValueError(f"Unknown layer kind {kind!r}; expected one of conv, pool, flatten, dense.")


def forward_macs(layers=LAYERS, input_shape=INPUT_SHAPE) -> int:
    """Multiply-adds of one image's forward pass."""
    return sum(macs for _, _, macs, _ in walk(layers, input_shape))


def param_count(layers=LAYERS, input_shape=INPUT_SHAPE) -> int:
    """Trainable parameters, as Keras's summary counts them."""
    return sum(params for _, _, _, params in walk(layers, input_shape))


def flatten_size(layers=LAYERS, input_shape=INPUT_SHAPE) -> int:
    """Features entering the first Dense layer (2304 for the lecture model)."""
    for kind, shape, _, _ in walk(layers, input_shape):
        if kind == "flatten":
            return shape[0]
    raise ValueError("The model has no Flatten layer.")


def train_flop(images: int, layers=LAYERS, input_shape=INPUT_SHAPE) -> float:
    """Floating-point operations to train on `images` images once (one epoch)."""
    return float(images) * forward_macs(layers, input_shape) * FLOP_PER_MAC * TRAIN_TO_FORWARD
