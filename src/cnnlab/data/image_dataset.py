"""Keras's `image_dataset_from_directory`, and the dataset object it returns.

    >>> from cnnlab.utils import image_dataset_from_directory
    >>> train_ds, val_ds = image_dataset_from_directory(
    ...     "PetImages", validation_split=0.2, subset="both", seed=1337,
    ...     image_size=(180, 180), batch_size=128)            # doctest: +SKIP
    Found 23410 files belonging to 2 classes.
    Using 18728 files for training.
    Using 4682 files for validation.
    >>> model.fit(train_ds, epochs=25, validation_data=val_ds)  # doctest: +SKIP

The arguments, printed lines, checks and messages are Keras 3's, and so is the split:
the files are shuffled with NumPy's `RandomState(seed)` as Keras does before the last
`validation_split` of them go to validation, so the same seed puts the same files in each
subset as Keras would. What differs, on purpose: unreadable files are found before the
first epoch and left out with one notice on stderr (Keras stops mid-epoch on them), and
.webp files are read too.

The dataset yields `(images, labels)` batches as NumPy arrays that also have TensorFlow's
`.numpy()` (tutorials call both `np.min(images)` and `images[i].numpy()`, which no torch
tensor allows together; a `map` function's torch results are converted back): images
float32 (B, H, W, C) in 0..255, labels int32 (B,) for label_mode="int", float32 one-hot rows for
"categorical", float32 (B, 1) for "binary", none for None. Batches are decoded in worker
processes (`workers`, cnnlab's addition) a few batches ahead. TensorFlow's dataset methods
that tutorials call are there: `prefetch` (a no-op: the workers already prefetch),
`cache` (decode once into a uint8 file in cnnlab's cache, or `filename`), `shuffle` (the
batch order, reshuffled every pass, as tf.data's on a batched dataset), `map`, `take`,
`skip`, `as_numpy_iterator`, `cardinality` and `len()`.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from . import folders
from .image_store import ImageStore

AUTOTUNE = -1  # tf.data.AUTOTUNE: the workers already decide how far ahead to decode
LABEL_MODES = ("int", "categorical", "binary", None)


class Batch(np.ndarray):
    """A NumPy array with TensorFlow's `.numpy()` (see the module doc)."""

    def numpy(self) -> np.ndarray:
        return np.asarray(self)


def as_batch(t):
    """A torch tensor or array -> Batch; anything else as it is."""
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    return t.view(Batch) if isinstance(t, np.ndarray) else t


class DatasetBase:
    """tf.data's methods shared by every stage of a pipeline."""

    def __iter__(self):
        raise NotImplementedError

    def __len__(self) -> int:
        raise NotImplementedError

    def cardinality(self) -> int:
        return len(self)

    def prefetch(self, buffer_size=AUTOTUNE) -> "DatasetBase":
        return self  # the decoding workers prefetch already

    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None) -> "DatasetBase":
        return _Mapped(self, map_func)

    def take(self, count: int) -> "DatasetBase":
        return _Sliced(self, 0, count)

    def skip(self, count: int) -> "DatasetBase":
        return _Sliced(self, count, None)

    def shuffle(self, buffer_size=None, seed=None, reshuffle_each_iteration=True) -> "DatasetBase":
        return _Shuffled(self, seed, reshuffle_each_iteration)

    def cache(self, filename: str = "") -> "DatasetBase":
        return _Cached(self)

    def as_numpy_iterator(self):
        for item in self:
            yield (tuple(np.asarray(t) for t in item) if isinstance(item, tuple) else np.asarray(item))

    @property
    def class_names(self):
        return self.parent.class_names

    @property
    def file_paths(self):
        return self.parent.file_paths


class ImageDataset(DatasetBase):
    """The pictures of a folder, batched (see the module doc)."""

    def __init__(self, store: ImageStore, labels, label_mode, class_names, batch_size,
                 shuffle: bool, seed: int):
        self.store, self.labels, self.label_mode = store, labels, label_mode
        self._class_names, self.batch_size = list(class_names), batch_size
        self._shuffle, self.seed, self.passes = shuffle, seed, 0

    @property
    def class_names(self):
        return self._class_names

    @property
    def file_paths(self):
        return list(self.store.paths)

    def __len__(self) -> int:
        return -(-len(self.store) // (self.batch_size or 1))

    def __iter__(self):
        n, size = len(self.store), self.batch_size or 1
        order = (np.random.default_rng([self.seed, self.passes]).permutation(n) if self._shuffle
                 else np.arange(n))  # a new order each pass, from (seed, pass) alone
        self.passes += 1
        chunks = [order[s:s + size] for s in range(0, n, size)]
        for rows, images in zip(chunks, self.store.stream(chunks)):
            x = images.numpy().astype(np.float32)
            if self.batch_size is None:  # unbatched: one image and its label at a time
                yield from (self._item(x[0], rows[:1], single=True),)
            else:
                yield self._item(x, rows)

    def _item(self, x, rows, single=False):
        if self.label_mode is None:
            return as_batch(x)
        y = self.labels[rows]  # int32
        if self.label_mode == "categorical":
            y = np.eye(len(self._class_names), dtype=np.float32)[y]
        elif self.label_mode == "binary":
            y = y.astype(np.float32)[:, None]
        return as_batch(x), as_batch(y[0] if single else y)

    def cache(self, filename: str = "") -> "ImageDataset":
        """Decode every picture once into a uint8 .npy (cnnlab's cache, or `filename`'s
        folder) that later passes read; tf.data's `cache()`, kept on disk."""
        self.store.use_cache(Path(filename).parent if filename else None)
        return self


class _Mapped(DatasetBase):
    def __init__(self, parent, fn):
        self.parent, self.fn = parent, fn

    def __len__(self):
        return len(self.parent)

    def __iter__(self):
        for item in self.parent:
            out = self.fn(*item) if isinstance(item, tuple) else self.fn(item)
            yield tuple(as_batch(t) for t in out) if isinstance(out, tuple) else as_batch(out)


class _Sliced(DatasetBase):
    def __init__(self, parent, start, count):
        self.parent, self.start, self.count = parent, start, count

    def __len__(self):
        n = max(len(self.parent) - self.start, 0)
        return n if self.count is None or self.count < 0 else min(n, self.count)

    def __iter__(self):
        import itertools
        stop = None if self.count is None or self.count < 0 else self.start + self.count
        return itertools.islice(iter(self.parent), self.start, stop)


class _Shuffled(DatasetBase):
    """The parent's elements (batches) in an order drawn anew each pass."""

    def __init__(self, parent, seed, reshuffle):
        self.parent, self.reshuffle, self.passes = parent, reshuffle, 0
        self.seed = seed if seed is not None else int(np.random.randint(1_000_000))

    def __len__(self):
        return len(self.parent)

    def __iter__(self):
        items = list(self.parent)
        order = np.random.default_rng([self.seed, self.passes]).permutation(len(items))
        self.passes += self.reshuffle
        return (items[i] for i in order)


class _Cached(DatasetBase):
    """The parent's elements as the first full pass produced them (tf.data's `cache()`
    after a `map`: the mapped batches, kept in memory)."""

    def __init__(self, parent):
        self.parent, self.items = parent, None

    def __len__(self):
        return len(self.parent)

    def __iter__(self):
        if self.items is not None:
            return iter(self.items)
        return self._fill()

    def _fill(self):
        items = []
        for item in self.parent:
            items.append(item)
            yield item
        self.items = items


def _check_arguments(labels, label_mode, color_mode, validation_split, subset, shuffle, seed,
                     interpolation):
    if labels not in ("inferred", None):
        raise DataError("`labels` argument should be a list/tuple of integer labels, of the same "
                        "size as the number of image files in the target directory. If you wish "
                        "to infer the labels from the subdirectory names in the target directory,"
                        ' pass `labels="inferred"`. If you wish to get a dataset that only '
                        "contains images (no labels), pass `labels=None`. (cnnlab reads inferred "
                        f"labels or none.) Received: labels={labels!r}")
    if label_mode not in LABEL_MODES:
        raise DataError('`label_mode` argument must be one of "int", "categorical", "binary", or '
                        f"None. Received: label_mode={label_mode!r}")
    folders.check_decode_options((1, 1), color_mode, interpolation)
    if validation_split and not 0 < validation_split < 1:
        raise DataError(f"`validation_split` must be between 0 and 1, received: {validation_split}")
    if (validation_split or subset) and not (validation_split and subset):
        raise DataError("If `subset` is set, `validation_split` must be set, and inversely.")
    if subset not in ("training", "validation", "both", None):
        raise DataError('`subset` must be either "training", "validation" or "both", received: '
                        f"{subset}")
    if validation_split and shuffle and seed is None:
        raise DataError("If using `validation_split` and shuffling the data, you must provide a "
                        "`seed` argument, to make sure that there is no overlap between the "
                        "training and validation subset.")


def image_dataset_from_directory(directory, labels="inferred", label_mode="int",
                                 class_names=None, color_mode="rgb", batch_size=32,
                                 image_size=(256, 256), shuffle=True, seed=None,
                                 validation_split=None, subset=None, interpolation="bilinear",
                                 follow_links=False, crop_to_aspect_ratio=False,
                                 pad_to_aspect_ratio=False, data_format=None, verbose=True,
                                 *, workers: int = 2):
    """Keras's `keras.utils.image_dataset_from_directory` (see the module doc)."""
    if labels is None or label_mode is None:
        labels, label_mode = None, None
    _check_arguments(labels, label_mode, color_mode, validation_split, subset, shuffle, seed,
                     interpolation)
    if pad_to_aspect_ratio:
        raise DataError("`pad_to_aspect_ratio=True` is not supported by cnnlab. Expected False "
                        "(use crop_to_aspect_ratio=True to keep the aspect ratio). Received "
                        "pad_to_aspect_ratio=True.")
    if data_format not in (None, "channels_last"):
        raise DataError("Invalid value for argument `data_format`. Expected 'channels_last' (or "
                        f"None). Received data_format={data_format!r}.")
    size = folders.check_decode_options(image_size, color_mode, interpolation)
    if seed is None:
        seed = int(np.random.randint(1_000_000))
    listing = folders.list_folder(directory, class_names, follow_links)
    paths, labels_all = listing.paths, listing.labels.astype(np.int32)
    if verbose:
        print(f"Found {len(paths)} files belonging to {len(listing.class_names)} classes.")
    if shuffle:  # Keras's order: one RandomState(seed) permutation of files and labels
        perm = np.random.RandomState(seed).permutation(len(paths))
        paths, labels_all = [paths[i] for i in perm], labels_all[perm]
    if label_mode == "binary" and len(listing.class_names) != 2:
        raise DataError('When passing `label_mode="binary"`, there must be exactly 2 '
                        f"class_names. Received: class_names={listing.class_names}")
    n_val = int((validation_split or 0) * len(paths))
    parts = {"training": (slice(0, len(paths) - n_val), shuffle),
             "validation": (slice(len(paths) - n_val, None), False)}
    wanted = ["training", "validation"] if subset == "both" else [subset or "all"]
    made, skipped = [], []
    for name in wanted:
        index, shuffled = parts.get(name, (slice(None), shuffle))
        if name != "all" and verbose:
            print(f"Using {len(paths[index])} files for {name}.")
        bad = folders.find_unreadable(paths[index], workers)
        skipped += bad
        bad_set = {p for p, _ in bad}
        keep = [i for i, p in enumerate(paths[index]) if p not in bad_set]
        sub_paths = [paths[index][i] for i in keep]
        if not sub_paths:
            raise DataError(f"No {'training' if name != 'validation' else 'validation'} images "
                            f"found in directory {directory}. Allowed formats: "
                            f"{folders.IMAGE_EXTENSIONS}")
        store = ImageStore(sub_paths, size, color_mode, crop_to_aspect_ratio, interpolation, workers)
        made.append(ImageDataset(store, labels_all[index][keep], label_mode, listing.class_names,
                                 batch_size, shuffled, seed))
    if skipped:
        print(folders.skipped_report(skipped, len(paths), listing.root,
                                     "left out of the dataset"), file=sys.stderr)
    return made if subset == "both" else made[0]
