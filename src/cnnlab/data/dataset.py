"""The `Dataset` a loader returns: uint8 arrays as Keras gives them, plus where they came from.

    >>> ds = Dataset("toy", x_train, y_train, x_test, y_test, class_names=["0", "1"],
    ...              source="a test")                         # doctest: +SKIP
    >>> ds.record()    # what a run's metrics.json stores      # doctest: +SKIP
    {'name': 'toy', 'source': 'a test', 'n_train': 4, 'n_test': 2, 'num_classes': 2, 'sha256': '...'}
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import DataError

SPLITS = ("x_train", "y_train", "x_test", "y_test")


def arrays_sha256(x_train, y_train, x_test, y_test) -> str:
    """SHA-256 fingerprint of the four arrays: name, dtype, shape and C-order bytes of each.

    Two datasets with the same fingerprint hold the same pixels and labels in the same order,
    whatever file or format they were read from.
    """
    digest = hashlib.sha256()
    for name, a in zip(SPLITS, (x_train, y_train, x_test, y_test)):
        a = np.ascontiguousarray(a)
        digest.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        if a.size:   # memoryview refuses to cast empty arrays; they add no bytes anyway
            digest.update(memoryview(a).cast("B"))
    return digest.hexdigest()


def check_arrays(x_train, y_train, x_test, y_test, where: str, num_classes: int | None = None,
                 image_shape: tuple[int, ...] | None = None):
    """Validate and normalise four arrays read from `where`; return them with uint8 labels.

    Images must be uint8 of shape (N, H, W) or (N, H, W, C); labels integers of shape (N,)
    in [0, num_classes). Raises DataError saying what was expected and what was received.
    """
    out = []
    for split, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype != np.uint8 or x.ndim not in (3, 4):
            raise DataError(f"{where}: invalid x_{split}. Expected uint8 images of shape (N, H, W) "
                            f"or (N, H, W, C). Received dtype {x.dtype}, shape {x.shape}.")
        if image_shape is not None and x.shape[1:] != tuple(image_shape):
            raise DataError(f"{where}: invalid x_{split}. Expected images of shape "
                            f"{tuple(image_shape)}. Received {x.shape[1:]}.")
        if y.ndim == 2 and y.shape[1] == 1:  # (N, 1) column of labels, as some tools save them
            y = y[:, 0]
        if y.ndim != 1 or y.dtype.kind not in "iu":
            raise DataError(f"{where}: invalid y_{split}. Expected integer labels of shape (N,). "
                            f"Received dtype {y.dtype}, shape {y.shape}.")
        if len(y) != len(x):
            raise DataError(f"{where}: x_{split} and y_{split} differ in length. Expected one label "
                            f"per image. Received {len(x)} images and {len(y)} labels.")
        if len(y):
            low, high = int(y.min()), int(y.max())
            limit = num_classes if num_classes is not None else 256
            if low < 0 or high >= limit:
                raise DataError(f"{where}: invalid y_{split}. Expected labels in [0, {limit - 1}]. "
                                f"Received labels in [{low}, {high}].")
        out += [x, y if y.dtype == np.uint8 else y.astype(np.uint8)]
    if out[0].shape[1:] != out[2].shape[1:]:
        raise DataError(f"{where}: train and test images differ in shape. Expected the same shape. "
                        f"Received {out[0].shape[1:]} and {out[2].shape[1:]}.")
    return tuple(out)


@dataclass(eq=False)
class Dataset:
    """Train and test arrays (uint8, as Keras returns them) and their provenance.

    `source` says in words where the arrays came from; `sha256` fingerprints the arrays
    (computed when not given).
    """

    name: str
    x_train: np.ndarray = field(repr=False)
    y_train: np.ndarray = field(repr=False)
    x_test: np.ndarray = field(repr=False)
    y_test: np.ndarray = field(repr=False)
    class_names: list[str] = field(default_factory=list)
    source: str = ""
    sha256: str = ""

    def __post_init__(self):
        if not self.class_names:
            top = max([int(y.max()) for y in (self.y_train, self.y_test) if len(y)], default=-1)
            self.class_names = [str(i) for i in range(top + 1)]
        self.class_names = [str(c) for c in self.class_names]
        if not self.sha256:
            self.sha256 = arrays_sha256(self.x_train, self.y_train, self.x_test, self.y_test)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, ...]:
        """Shape of one image: (H, W) or (H, W, C)."""
        return tuple(self.x_train.shape[1:])

    def as_keras(self):
        """`(x_train, y_train), (x_test, y_test)`, exactly what Keras's `load_data()` returns."""
        return (self.x_train, self.y_train), (self.x_test, self.y_test)

    def class_counts(self, split: str = "train") -> list[int]:
        """Number of examples of each class in `split` ("train" or "test")."""
        y = self.y_train if split == "train" else self.y_test
        return np.bincount(y, minlength=self.num_classes).tolist()

    def record(self) -> dict:
        """What a run records about its data (metrics.json)."""
        return {
            "name": self.name,
            "source": self.source,
            "n_train": int(len(self.x_train)),
            "n_test": int(len(self.x_test)),
            "num_classes": self.num_classes,
            "sha256": self.sha256,
        }
