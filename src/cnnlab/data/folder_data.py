"""A run's folder dataset: `data: {name: folder, path: ...}` in a config, `--data folder:PATH`.

    data:
      name: folder
      path: PetImages
      image_size: [180, 180]    # null: the model's input height and width
      color_mode: rgb           # rgb | grayscale | rgba; null: from the model's channels
      validation_split: 0.2     # used where the folder has no val/, validation/ or test/
      seed: null                # the split's seed; null: train.seed
      labels: inferred          # one sub-folder per class (the only kind)
      crop_to_aspect_ratio: false
      cache: true               # decode once into cnnlab's cache (uint8, memory-mapped)
      workers: 2                # decoding processes

    >>> fd = load_folder(cfg.data, input_shape=(180, 180, 3), seed=0)   # doctest: +SKIP
    >>> fd.class_names, len(fd.train_rows), len(fd.val_rows), len(fd.skipped)

The folder is listed, split (its own val/ folder, or a stratified, seeded split), and
every file checked before training; unreadable files are left out and reported once.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError, DataError, reject_unknown_keys
from . import folders
from .image_store import ImageStore

FOLDER_DEFAULTS = {"path": None, "image_size": None, "color_mode": None,
                   "validation_split": 0.2, "seed": None, "labels": "inferred",
                   "crop_to_aspect_ratio": False, "cache": True, "workers": 2}
CHANNEL_MODES = {1: "grayscale", 3: "rgb", 4: "rgba"}


def is_folder(name) -> bool:
    return isinstance(name, str) and (name == "folder" or name.startswith("folder:"))


def check_folder_config(d: dict, base_keys) -> dict:
    """The data section of a folder run, checked, `folder:PATH` split into name and path."""
    d = dict(d)
    if d["name"].startswith("folder:"):
        d["path"] = d["name"][len("folder:"):]
        d["name"] = "folder"
    d = {**FOLDER_DEFAULTS, **d}
    reject_unknown_keys(d, [*base_keys, *FOLDER_DEFAULTS], "`data`")
    if not isinstance(d["path"], str) or not d["path"].strip():
        raise ConfigError("Missing `data.path`. Expected the folder of class sub-folders, as "
                          f"data: {{name: folder, path: PetImages}} or --data folder:PATH. "
                          f"Received path={d['path']!r}.")
    if d["image_size"] is not None:
        folders.check_decode_options(d["image_size"], "rgb")
        d["image_size"] = [int(s) for s in d["image_size"]]
    if d["color_mode"] is not None and d["color_mode"] not in folders.COLOR_MODES:
        folders.check_decode_options((1, 1), d["color_mode"])
    v = d["validation_split"]
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1):
        raise ConfigError("Invalid value for `data.validation_split`. Expected a number in "
                          f"[0, 1). Received validation_split={v!r}.")
    seed = d["seed"]
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(f"Invalid value for `data.seed`. Expected an integer >= 0 or null. "
                          f"Received seed={seed!r}.")
    if d["labels"] != "inferred":
        raise ConfigError("Invalid value for `data.labels`. Expected 'inferred' (one sub-folder "
                          f"per class). Received labels={d['labels']!r}.")
    for key in ("crop_to_aspect_ratio", "cache"):
        if not isinstance(d[key], bool):
            raise ConfigError(f"Invalid value for `data.{key}`. Expected true or false. "
                              f"Received {key}={d[key]!r}.")
    w = d["workers"]
    if isinstance(w, bool) or not isinstance(w, int) or w < 0:
        raise ConfigError(f"Invalid value for `data.workers`. Expected an integer >= 0 (0: "
                          f"decode in the training process). Received workers={w!r}.")
    return d


def decode_settings(d: dict, input_shape) -> tuple[tuple[int, int], str]:
    """(image_size, color_mode) of a folder config for a model taking `input_shape`; both
    default to the model's, and must agree with it."""
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[2] not in CHANNEL_MODES:
        raise DataError(f"A folder dataset gives pictures (height, width, channels). Expected a "
                        f"model with input_shape (H, W, 1), (H, W, 3) or (H, W, 4). Received "
                        f"input_shape={list(shape)}.")
    size = tuple(d["image_size"] or shape[:2])
    mode = d["color_mode"] or CHANNEL_MODES[shape[2]]
    if size != shape[:2] or folders.COLOR_MODES[mode] != shape[2]:
        raise DataError(f"The folder's pictures are resized to {size[0]}x{size[1]} {mode} "
                        f"({folders.COLOR_MODES[mode]} channels), but the model's input_shape is "
                        f"{list(shape)}. Expected data.image_size {list(shape[:2])} and "
                        f"data.color_mode {CHANNEL_MODES[shape[2]]} (or leave them out).")
    return size, mode


@dataclass(eq=False)
class FolderData:
    """What a run reads from a folder: the store of every readable picture, which rows
    train and which validate, the class names, the files left out."""

    name: str
    store: ImageStore
    labels: np.ndarray          # (N,) class index per row of the store
    train_rows: np.ndarray
    val_rows: np.ndarray
    class_names: list[str]
    source: str
    skipped: list = field(default_factory=list)   # [(path, why)]
    sha256: str = ""

    def record(self) -> dict:
        """What a run records about its data (metrics.json)."""
        return {"name": self.name, "source": self.source, "n_train": int(len(self.train_rows)),
                "n_test": int(len(self.val_rows)), "num_classes": len(self.class_names),
                "sha256": self.sha256, "skipped": len(self.skipped)}


def _verified(listing: folders.Listing, workers: int) -> tuple[folders.Listing, list]:
    skipped = folders.find_unreadable(listing.paths, workers)
    if skipped:
        listing = folders.drop(listing, [p for p, _ in skipped])
        folders.check_classes(listing, "readable picture")
    return listing, skipped


def load_folder(d: dict, input_shape, seed: int, stream=None) -> FolderData:
    """The checked folder dataset of config section `d` (see the module doc)."""
    stream = stream or sys.stderr
    size, mode = decode_settings(d, input_shape)
    train_dir, val_dir = folders.split_layout(d["path"])
    listing, skipped = _verified(folders.list_folder(train_dir), d["workers"])
    if val_dir is not None:
        val_listing = folders.list_folder(val_dir)
        if not set(val_listing.class_names) <= set(listing.class_names):
            extra = sorted(set(val_listing.class_names) - set(listing.class_names))
            raise DataError(f"{val_dir} has class sub-folders that {train_dir} lacks: {extra}. "
                            f"Expected the same classes as training: {listing.class_names}.")
        val_bad = folders.find_unreadable(val_listing.paths, d["workers"])
        val_listing = folders.drop(val_listing, [p for p, _ in val_bad])
        skipped += val_bad
        remap = np.array([listing.class_names.index(c) for c in val_listing.class_names])
        paths = listing.paths + val_listing.paths
        labels = np.concatenate([listing.labels, remap[val_listing.labels]])
        train_rows = np.arange(len(listing.paths))
        val_rows = np.arange(len(listing.paths), len(paths))
        how = f"validation: {val_dir.name}/"
    else:
        paths, labels = listing.paths, listing.labels
        split = d["validation_split"] or 0.0
        split_seed = d["seed"] if d["seed"] is not None else seed
        train_rows, val_rows = folders.stratified_split(labels, split, split_seed)
        how = (f"validation: {split:g} of each class (seed {split_seed})" if split
               else "no validation")
    total = len(paths) + len(skipped)
    if skipped:
        stream.write(folders.skipped_report(skipped, total, listing.root.parent
                                            if val_dir is not None else listing.root,
                                            "all listed in the run's skipped_files.txt") + "\n")
    store = ImageStore(paths, size, mode, d["crop_to_aspect_ratio"], "bilinear", d["workers"])
    fd = FolderData("folder", store, labels, train_rows, val_rows, list(listing.class_names),
                    source=f"folder {folders.check_directory(d['path'])} ({len(paths):,} "
                           f"pictures, {size[0]}x{size[1]} {mode}, {how})",
                    skipped=skipped)
    fd.sha256 = _fingerprint(fd)
    return fd


def _fingerprint(fd: FolderData) -> str:
    """SHA-256 of the files (paths, sizes, times), the settings, labels and the split:
    what a resumed run checks it trains on again."""
    digest = hashlib.sha256(fd.store.fingerprint().encode())
    for part in (fd.labels, fd.train_rows, fd.val_rows):
        digest.update(np.ascontiguousarray(part, dtype=np.int64).tobytes())
    digest.update("\n".join(fd.class_names).encode())
    return digest.hexdigest()


def folder_info(path, workers: int = 2) -> str:
    """`cnnlab data info folder:PATH`: layout, classes and counts, unreadable files."""
    train_dir, val_dir = folders.split_layout(path)
    lines = [f"folder: {train_dir.parent if val_dir is not None else train_dir}"]
    for title, where in (("train", train_dir), ("validation", val_dir)):
        if where is None:
            continue
        listing = folders.list_folder(where)
        bad = folders.find_unreadable(listing.paths, workers)
        counts = listing.counts()
        width = max(len(c) for c in listing.class_names)
        lines.append(f"{title} ({where}): {len(listing.paths):,} picture files, "
                     f"{len(listing.class_names)} classes")
        bad_by_class = np.bincount([listing.labels[listing.paths.index(p)] for p, _ in bad],
                                   minlength=len(listing.class_names)) if bad else None
        for i, (c, n) in enumerate(zip(listing.class_names, counts)):
            note = f"  ({bad_by_class[i]} unreadable)" if bad and bad_by_class[i] else ""
            lines.append(f"  {i:>2} {c:<{width}}  {n:>7,}{note}")
        if bad:
            lines.append(folders.skipped_report(bad, len(listing.paths), where,
                                                "left out when training").replace("cnnlab: s", "S", 1))
        else:
            lines.append("  every file decodes")
    if val_dir is None:
        lines.append("validation: none in the folder; a run splits off data.validation_split "
                     "(default 0.2) of each class")
    return "\n".join(lines)


def load_pictures(paths, d: dict, input_shape) -> np.ndarray:
    """uint8 (N, *input_shape): picture files prepared exactly as a folder run's training
    data was (decoded, converted, resized), for `cnnlab predict` on its model."""
    from pathlib import Path
    size, mode = decode_settings(d, input_shape)
    out = np.empty((len(paths), *size, folders.COLOR_MODES[mode]), dtype=np.uint8)
    for i, p in enumerate(paths):
        if not Path(p).is_file():
            raise DataError(f"Image file not found. Expected a picture file. Received {str(p)!r}.")
        why = folders.why_unreadable(str(p))
        if why:
            raise DataError(f"Cannot read {p}: {why}. Expected a picture (JPEG, PNG, BMP, GIF "
                            "or WebP).")
        out[i] = folders.decode_image(p, size, mode, d.get("crop_to_aspect_ratio", False))
    return out


def check_fits(d: dict, spec, binary: bool) -> None:
    """DataError unless a model `spec` can train on folder config `d`: its input shape and
    its number of outputs (files are not opened)."""
    decode_settings(d, spec.input_shape)
    train_dir, _ = folders.split_layout(d["path"])
    check_class_count(folders.list_folder(train_dir).class_names, spec, binary)


def check_class_count(class_names, spec, binary: bool) -> None:
    """DataError unless `spec`'s output has a unit per class (a binary loss takes 2 classes
    on one unit)."""
    n = len(class_names)
    if n > spec.num_outputs and not binary:
        raise DataError(f"The folder has {n} classes ({', '.join(class_names)}), but the "
                        f"model's last layer has {spec.num_outputs} units. Expected units >= {n}.")
