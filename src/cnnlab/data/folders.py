"""Folders of pictures as datasets: one sub-folder per class, as Keras reads them.

    >>> listing = list_folder("PetImages")               # doctest: +SKIP
    >>> listing.class_names, len(listing.paths)           # sorted sub-folder names, files
    (['Cat', 'Dog'], 25000)
    >>> train, val = stratified_split(listing.labels, 0.2, seed=0)
    >>> bad = find_unreadable(listing.paths, workers=2)   # [(path, why), ...], before training
    >>> decode_image("PetImages/Cat/0.jpg", (180, 180), "rgb").shape
    (180, 180, 3)

What Keras does and this module does alike: class names are the sorted names of the
sub-folders (hidden ones left out), files are found recursively inside each, sorted by
folder then name, and kept when their extension (any case) is an image's; anything else
(.DS_Store, Thumbs.db, notes) is ignored. Pictures are decoded with Pillow, converted to
the requested colour mode and resized with TensorFlow's bilinear rule (half-pixel
centres, no antialiasing: `tf.image.resize`'s default, which Keras uses) in uint8, so a
decoded picture can be cached on disk as bytes (Keras keeps float32; the two differ by at
most one grey level, tests/test_folders.py checks it against Keras). Keras also reads .webp
here: Pillow decodes it.

Real folders are messy (Microsoft's Cats-vs-Dogs download has undecodable JPEGs and a
0-byte file): `find_unreadable` opens every file before training, in parallel, and
decodes it (JPEGs at 1/8 scale, which still reads all their data, so a truncated file
fails), so that training never meets a broken file.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ConfigError, DataError
from ..images import MAX_PIXELS

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png", ".webp")
COLOR_MODES = {"rgb": 3, "grayscale": 1, "rgba": 4}
INTERPOLATIONS = {"bilinear": "bilinear", "nearest": "nearest-exact"}  # Keras name -> torch's
VALIDATION_FOLDERS = ("val", "validation", "test")  # looked for, in this order, beside train/
SHOWN_SKIPPED = 5  # unreadable files named on stderr; the run directory lists them all


@dataclass
class Listing:
    """The image files of a folder, in Keras's order, and their class indices."""

    root: Path
    class_names: list[str]
    paths: list[str]           # absolute paths
    labels: np.ndarray         # (N,) int64 class index per file

    def counts(self) -> list[int]:
        return np.bincount(self.labels, minlength=len(self.class_names)).tolist()


# -- finding the files ---------------------------------------------------------------

def class_folders(directory: Path) -> list[str]:
    """Sorted names of the visible sub-folders: Keras's class names."""
    return sorted(e.name for e in os.scandir(directory)
                  if not e.name.startswith(".") and e.is_dir())


def check_directory(directory) -> Path:
    path = Path(directory).expanduser()
    if not path.exists():
        raise DataError(f"Image folder not found. Expected a folder with one sub-folder per "
                        f"class. Received {str(directory)!r}, which does not exist.")
    if not path.is_dir():
        raise DataError(f"Invalid image folder. Expected a folder with one sub-folder per "
                        f"class. Received {str(directory)!r}, which is a file.")
    return path.resolve()


def image_files(folder: Path, follow_links: bool = False) -> list[str]:
    """Image files under `folder`, recursively, sorted by sub-folder then name (Keras's
    `iter_valid_files`)."""
    found = []
    for root, _, files in sorted(os.walk(folder, followlinks=follow_links), key=lambda w: w[0]):
        found += [os.path.join(root, f) for f in sorted(files)
                  if f.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def list_folder(directory, class_names=None, follow_links: bool = False) -> Listing:
    """The files of a folder of class sub-folders; DataError when there is nothing to learn
    from (no sub-folders, no images, one class, a class without any image file)."""
    root = check_directory(directory)
    found = class_folders(root)
    if class_names is not None:
        names = [str(c) for c in class_names]
        if not set(names) <= set(found):  # Keras: a subset, in the order given
            raise DataError(f"The `class_names` passed did not match the names of the "
                            f"subdirectories of the target directory. Expected: {found} (or a "
                            f"subset of it), but received: class_names={names}")
    else:
        names = found
    if not names:
        loose = [f for f in os.listdir(root) if f.lower().endswith(IMAGE_EXTENSIONS)]
        hint = (f" It holds {len(loose)} image files directly: put each class's pictures in a "
                "sub-folder named after the class." if loose else "")
        raise DataError(f"No class sub-folders in {root}. Expected one sub-folder per class "
                        f"(e.g. {root}/cat, {root}/dog), each holding that class's pictures."
                        f"{hint}")
    paths, labels = [], []
    for i, name in enumerate(names):
        files = image_files(root / name, follow_links)
        paths += files
        labels += [i] * len(files)
    listing = Listing(root, names, paths, np.asarray(labels, dtype=np.int64))
    check_classes(listing)
    return listing


def check_classes(listing: Listing, what: str = "image files") -> None:
    counts = listing.counts()
    summary = ", ".join(f"{n}: {c}" for n, c in zip(listing.class_names, counts))
    if sum(counts) == 0:
        raise DataError(f"No {what} in {listing.root}. Expected pictures with the extensions "
                        f"{', '.join(IMAGE_EXTENSIONS)} inside its class sub-folders. Found the "
                        f"sub-folders {listing.class_names}, with no picture in any.")
    if len(listing.class_names) < 2:
        raise DataError(f"Only one class in {listing.root}. Expected at least two class "
                        f"sub-folders to tell apart. Received {summary}.")
    empty = [n for n, c in zip(listing.class_names, counts) if c == 0]
    if empty:
        raise DataError(f"Class sub-folder {empty[0]!r} of {listing.root} has no {what}. "
                        f"Expected at least one in every class. Received {summary}.")


def split_layout(directory) -> tuple[Path, Path | None]:
    """(training folder, validation folder or None): `train/` with `val/`, `validation/`
    or `test/` beside it where they exist, else the folder itself and None."""
    root = check_directory(directory)
    train = root / "train"
    if train.is_dir():
        for name in VALIDATION_FOLDERS:
            if (root / name).is_dir():
                return train, root / name
    return root, None


def drop(listing: Listing, bad_paths) -> Listing:
    """The listing without `bad_paths` (the unreadable files)."""
    bad = set(bad_paths)
    keep = [i for i, p in enumerate(listing.paths) if p not in bad]
    return Listing(listing.root, listing.class_names, [listing.paths[i] for i in keep],
                   listing.labels[keep])


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training positions, validation positions), sorted: `fraction` of every class,
    drawn from (seed) alone, at least one picture of each class kept for training."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in range(int(labels.max()) + 1 if len(labels) else 0):
        members = np.flatnonzero(labels == c)
        n_val = min(int(round(fraction * len(members))), max(len(members) - 1, 0))
        chosen = rng.permutation(members)
        val.append(chosen[:n_val])
        train.append(chosen[n_val:])
    if not train:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


# -- decoding --------------------------------------------------------------------------

def check_decode_options(image_size, color_mode: str, interpolation: str = "bilinear") -> tuple[int, int]:
    ok = (isinstance(image_size, (list, tuple)) and len(image_size) == 2
          and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                  for s in image_size))
    if not ok:
        raise ConfigError("Invalid value for argument `image_size`. Expected (height, width), "
                          f"two strictly positive integers. Received image_size={image_size!r}.")
    if color_mode not in COLOR_MODES:
        raise ConfigError(f'`color_mode` must be one of {{"rgb", "rgba", "grayscale"}}. '
                          f"Received: color_mode={color_mode!r}")
    if interpolation not in INTERPOLATIONS:
        raise ConfigError(f"Invalid value for argument `interpolation`. Expected one of "
                          f"{', '.join(INTERPOLATIONS)}. Received interpolation={interpolation!r}.")
    return int(image_size[0]), int(image_size[1])


def to_mode(img: Image.Image, color_mode: str) -> np.ndarray:
    """Any Pillow mode -> uint8 (H, W, C) in `color_mode`. Alpha is dropped for rgb and
    grayscale (as TensorFlow's decoders drop it); 16-bit and float greys are scaled to 8 bits."""
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        levels = np.asarray(img).astype(np.float32)
        if img.mode != "F":
            levels = levels / 257.0  # 65535 -> 255
        img = Image.fromarray(np.clip(levels, 0, 255).round().astype(np.uint8))  # mode "L"
    elif img.mode == "P":  # a palette with transparency goes through RGBA (Pillow warns otherwise)
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    target = {"rgb": "RGB", "grayscale": "L", "rgba": "RGBA"}[color_mode]
    if img.mode != target:
        img = img.convert(target)
    pixels = np.array(img, dtype=np.uint8)  # a writable copy: torch takes it as is
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def crop_box(height: int, width: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """(top, left, crop height, crop width): the largest centred box with the target's aspect
    ratio (Keras's `smart_resize`)."""
    target_h, target_w = size
    crop_h = min(height, int(float(width * target_h) / target_w))
    crop_w = min(width, int(float(height * target_w) / target_h))
    return int(float(height - crop_h) / 2), int(float(width - crop_w) / 2), crop_h, crop_w


def resize(pixels: np.ndarray, size: tuple[int, int], crop_to_aspect_ratio: bool = False,
           interpolation: str = "bilinear") -> np.ndarray:
    """uint8 (H, W, C) -> uint8 (h, w, C) with TensorFlow's resize rule (see the module doc)."""
    if crop_to_aspect_ratio:
        top, left, ch, cw = crop_box(pixels.shape[0], pixels.shape[1], size)
        pixels = pixels[top:top + ch, left:left + cw]
    if pixels.shape[:2] == tuple(size):
        return np.ascontiguousarray(pixels)
    x = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)[None]  # (1, C, H, W) uint8
    mode = INTERPOLATIONS[interpolation]
    extra = {"align_corners": False, "antialias": False} if mode == "bilinear" else {}
    # torch's uint8 kernel (fixed-point weights): within one grey level of the float
    # computation, and 1.6x faster than converting to float32, resizing and rounding
    out = F.interpolate(x, size=tuple(size), mode=mode, **extra)
    return np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())


def open_checked(path) -> Image.Image:
    """Image.open with cnnlab's pixel limit checked from the header (no pixel decoded yet)."""
    img = Image.open(path)
    w, h = img.size
    if w * h > MAX_PIXELS:
        img.close()
        raise DataError(f"{w}x{h} pixels, more than the limit of {MAX_PIXELS:,}")
    return img


def decode_image(path, image_size, color_mode: str = "rgb", crop_to_aspect_ratio: bool = False,
                 interpolation: str = "bilinear") -> np.ndarray:
    """One picture file -> uint8 (height, width, channels), as the model sees it."""
    with warnings.catch_warnings():  # EXIF and palette notes of files Pillow still decodes
        warnings.simplefilter("ignore")
        with open_checked(path) as img:
            img.load()
            pixels = to_mode(img, color_mode)
    return resize(pixels, tuple(image_size), crop_to_aspect_ratio, interpolation)


# -- finding unreadable files before training ------------------------------------------

def why_unreadable(path: str) -> str | None:
    """None for a picture that decodes, else why not (a short phrase)."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with open_checked(path) as img:
                if img.format == "JPEG":
                    img.draft(None, (1, 1))  # 1/8 scale: every byte is still read
                img.load()
    except DataError as err:
        return str(err)
    except Image.UnidentifiedImageError:
        return "not a picture Pillow can decode"
    except Exception as err:  # Pillow raises OSError, SyntaxError, ValueError, EOFError...
        return f"not a readable picture ({type(err).__name__}: {err})"
    return None


def _check_chunk(paths: list[str]) -> list[str | None]:
    return [why_unreadable(p) for p in paths]


def find_unreadable(paths: list[str], workers: int = 2) -> list[tuple[str, str]]:
    """[(path, why)] of the files that do not decode, checked in `workers` processes."""
    if workers <= 1 or len(paths) < 64:  # starting processes costs more than a few files
        reasons = _check_chunk(paths)
    else:
        chunk = max(16, len(paths) // (workers * 8))
        parts = [paths[i:i + chunk] for i in range(0, len(paths), chunk)]
        reasons = [r for part in parallel_map(_check_chunk, parts, workers) for r in part]
    return [(p, r) for p, r in zip(paths, reasons) if r is not None]


class _Calls(torch.utils.data.Dataset):
    def __init__(self, fn, items):
        self.fn, self.items = fn, items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.fn(self.items[i])


def parallel_map(fn, items: list, workers: int) -> list:
    """[fn(item) for item in items], computed in `workers` forked processes.

    A torch DataLoader rather than a multiprocessing pool: forking a process that runs
    torch's threads (a training process) can leave a pool's children waiting forever on a
    lock held at the fork (seen here, under load); torch's workers are made to be forked
    from it. Its own generator: a DataLoader would otherwise draw its workers' seed from
    torch's global generator and shift the training's random draws."""
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    import multiprocessing as mp
    loader = torch.utils.data.DataLoader(
        _Calls(fn, items), batch_size=None, num_workers=min(workers, len(items)),
        collate_fn=lambda x: x, multiprocessing_context=mp.get_context("fork"),
        generator=torch.Generator().manual_seed(0))
    return list(loader)


def skipped_report(skipped: list[tuple[str, str]], total: int, root: Path, listed_in: str) -> str:
    """The one notice about unreadable files: the count and the first few."""
    lines = [f"cnnlab: skipped {len(skipped)} unreadable file{'s' * (len(skipped) != 1)} of "
             f"{total:,} in {root} ({listed_in}):"]
    for path, why in skipped[:SHOWN_SKIPPED]:
        lines.append(f"  {os.path.relpath(path, root)}: {why}")
    if len(skipped) > SHOWN_SKIPPED:
        lines.append(f"  ... and {len(skipped) - SHOWN_SKIPPED} more")
    return "\n".join(lines)


def skipped_text(skipped: list[tuple[str, str]]) -> str:
    """skipped_files.txt: one `path<TAB>why` line per file."""
    return "".join(f"{p}\t{why}\n" for p, why in skipped)
