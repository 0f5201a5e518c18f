"""Pictures decoded on demand, in worker processes, or read back from a disk cache.

    >>> store = ImageStore(paths, (180, 180), "rgb", workers=2)
    >>> store.use_cache()                        # optional: decode once into a uint8 .npy
    >>> for xb in store.stream([rows0, rows1]):  # uint8 (B, 180, 180, 3) tensors, in order
    ...     ...

Without the cache every batch is decoded and resized (`folders.decode_image`) by one of
`workers` processes of a torch DataLoader, a few batches ahead of the consumer, so the
decoding of batch i+1.. overlaps the training step on batch i. With the cache the pictures
are decoded once, in parallel, into a memory-mapped uint8 array (N, H, W, C) in cnnlab's
cache folder, named by a fingerprint of the file list (paths, sizes, modification times)
and the decoding settings; later epochs and later runs on the same folder read rows from
it (the operating system keeps what fits in memory, so a dataset larger than memory works).
Either way a batch is the same bytes: the cache is a copy of what the decoder gives.
"""
from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from .folders import COLOR_MODES, check_decode_options, decode_image, parallel_map
from .paths import cache_dir

PREFETCH = 4          # batches each worker decodes ahead
CACHE_FORMAT = "cnnlab-folder-cache-1"  # in the fingerprint: a new layout gets new files


class ImageStore:
    """The decoded, resized pictures of a list of files (see the module doc)."""

    def __init__(self, paths, image_size, color_mode: str = "rgb",
                 crop_to_aspect_ratio: bool = False, interpolation: str = "bilinear",
                 workers: int = 2):
        self.paths = [str(p) for p in paths]
        self.size = check_decode_options(image_size, color_mode, interpolation)
        self.color_mode, self.crop, self.interpolation = color_mode, bool(crop_to_aspect_ratio), interpolation
        self.workers = int(workers)
        self.cache: np.ndarray | None = None   # (N, H, W, C) uint8 memory map, once opened
        self.cache_path: Path | None = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (*self.size, COLOR_MODES[self.color_mode])

    def settings(self) -> str:
        return (f"{CACHE_FORMAT};{self.size[0]}x{self.size[1]};{self.color_mode};"
                f"crop={self.crop};{self.interpolation}")

    def fingerprint(self) -> str:
        """SHA-256 of the settings and every file's path, size and modification time."""
        digest = hashlib.sha256(self.settings().encode())
        for p in self.paths:
            st = os.stat(p)
            digest.update(f"\n{p}\t{st.st_size}\t{st.st_mtime_ns}".encode())
        return digest.hexdigest()

    # -- decoding ---------------------------------------------------------------------
    def decode(self, rows) -> np.ndarray:
        """uint8 (len(rows), H, W, C): the pictures at `rows`, from the cache when open."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.cache is not None:
            return self.cache[rows]
        out = np.empty((len(rows), *self.image_shape), dtype=np.uint8)
        for j, r in enumerate(rows):
            out[j] = self._decode_one(int(r))
        return out

    def _decode_one(self, row: int) -> np.ndarray:
        path = self.paths[row]
        try:
            return decode_image(path, self.size, self.color_mode, self.crop, self.interpolation)
        except Exception as err:  # checked readable before training: it changed since
            raise DataError(f"{path} could not be read during training ({err}). It was readable "
                            "when training started: was it changed or removed? Expected the "
                            "folder to stay as it was; resume the run once it is.") from None

    def stream(self, batches):
        """uint8 tensors (B, H, W, C), one per entry of `batches` (arrays of rows), in order:
        read from the cache, or decoded `PREFETCH` batches ahead in worker processes."""
        if self.cache is not None or self.workers <= 0 or len(batches) <= 1:
            for rows in batches:
                yield torch.from_numpy(self.decode(rows))
            return
        loader = torch.utils.data.DataLoader(
            _Batches(self, batches), batch_size=None, shuffle=False,
            num_workers=min(self.workers, len(batches)), prefetch_factor=PREFETCH,
            multiprocessing_context=mp.get_context("fork"),  # workers inherit the file list
            # its own generator: a DataLoader draws its workers' base seed from torch's global
            # one otherwise, which would shift dropout's draws (and differ on a resume)
            generator=torch.Generator().manual_seed(0))
        for item in loader:
            if isinstance(item, str):  # a worker's DataError, re-raised here without its traceback
                raise DataError(item)
            yield item

    # -- the disk cache ------------------------------------------------------------------
    def use_cache(self, folder=None, stream=None) -> bool:
        """Open the cache of these pictures, decoding them into it first if it does not exist.
        False (with a notice) where it cannot be written: training then decodes every epoch."""
        folder = Path(folder) if folder is not None else cache_dir() / "folders"
        stream = stream or sys.stderr
        h, w, c = self.image_shape
        path = folder / f"{self.fingerprint()[:32]}-{h}x{w}x{c}.npy"
        if path.exists():
            try:
                self.cache, self.cache_path = np.load(path, mmap_mode="r"), path
                if self.cache.shape == (len(self), h, w, c) and self.cache.dtype == np.uint8:
                    return True
            except (OSError, ValueError):
                pass
            self.cache = None  # damaged or foreign: made anew below
        need = len(self) * h * w * c
        try:
            folder.mkdir(parents=True, exist_ok=True)
            free = shutil.disk_usage(folder).free
            if free < need * 1.05:
                raise OSError(f"{need / 2**20:,.0f} MiB needed, {free / 2**20:,.0f} MiB free")
            stream.write(f"cnnlab: decoding {len(self):,} pictures into the cache {path} "
                         f"({need / 2**20:,.0f} MiB, once; later epochs and runs read it)\n")
            self._build(path)
        except OSError as err:
            stream.write(f"cnnlab: notice: the decoded-picture cache could not be written in "
                         f"{folder} ({err}); every epoch decodes the pictures instead.\n")
            return False
        self.cache, self.cache_path = np.load(path, mmap_mode="r"), path
        return True

    def _build(self, path: Path) -> None:
        """Decode every picture into a temporary .npy, in parallel, then rename it."""
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                            shape=(len(self), *self.image_shape))
            del arr  # the header is written; workers fill the rows through their own maps
            n = len(self)
            step = max(1, min(256, -(-n // max(self.workers, 1))))
            spans = [(s, min(s + step, n)) for s in range(0, n, step)]
            errors = parallel_map(_fill, [(self, tmp, a, b) for a, b in spans], self.workers)
            failed = next((e for e in errors if e), None)
            if failed:
                raise DataError(failed)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                tmp.unlink()


def _fill(task) -> str | None:
    """Decode rows [a, b) into the cache file; the error message, or None."""
    store, tmp, a, b = task
    out = np.load(tmp, mmap_mode="r+")
    try:
        out[a:b] = store.decode(range(a, b))
    except DataError as err:
        return str(err)
    out.flush()
    return None


class _Batches(torch.utils.data.Dataset):
    """Batch i of a list of row arrays, decoded in a DataLoader worker."""

    def __init__(self, store: ImageStore, batches):
        self.store, self.batches = store, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i):
        try:
            return torch.from_numpy(self.store.decode(self.batches[i]))
        except DataError as err:  # its message, not a worker's traceback
            return str(err)
