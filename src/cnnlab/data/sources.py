"""Find MNIST, Fashion-MNIST or CIFAR wherever the user keeps them, else download them into the cache.

Sources are tried in this order, and the one used is reported in words:

1. the user's data directory (`--data-dir` / `$CNNLAB_DATA`): `mnist.npz`, `mnist/`,
   `MNIST/raw/` (torchvision's layout), `fashion-mnist/`, `FashionMNIST/raw/`;
2. cnnlab's cache (`$XDG_CACHE_HOME/cnnlab`);
3. Keras's cache (`~/.keras/datasets/mnist.npz`, `~/.keras/datasets/fashion-mnist/`,
   `cifar-10-batches-py-target/cifar-10-batches-py/` and Keras 2's `cifar-10-batches-py/`);
4. the system copy of Debian's/Ubuntu's `dataset-fashion-mnist` (`/usr/share/datasets`);
5. a download from the canonical mirrors into cnnlab's cache (SHA-256 verified).

Files whose SHA-256 matches the canonical download are "verified"; other copies (a Debian
re-compression, an uncompressed IDX file) are accepted when their contents check out
(uint8 28x28 images, labels 0-9, 60,000/10,000 examples). A corrupt file in cnnlab's own
cache is reported, deleted and fetched again; a corrupt file in the user's data directory
is an error; a corrupt file in Keras's cache or the system copy is skipped.

    >>> arrays, source = load_full(FULL_DATASETS["fashion-mnist"])  # doctest: +SKIP
    >>> source
    'system copy /usr/share/datasets/fashion-mnist (Debian/Ubuntu package dataset-fashion-mnist; ...)'
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, DownloadError
from . import cifar, paths
from .catalog import IDX_STEMS, FullDataset, canonical_sha256
from .dataset import check_arrays
from .download import Attempt, download_error, fetch, sha256_file
from .readers import find_idx_files, read_idx_files, read_npz


@dataclass(frozen=True)
class Candidate:
    """A place the dataset may be: an .npz file or a directory of IDX files."""

    label: str      # "data dir", "cnnlab cache", "Keras cache", "system copy"
    kind: str       # "npz" or "idx"
    path: Path
    policy: str     # on a corrupt file: "raise" (user's), "delete" (our cache), "skip" (others')
    note: str = ""

    def files(self, name: str = "") -> list[Path] | None:
        """The files that make up the dataset here, or None if they are not all present."""
        if self.kind == "npz" or self.kind.endswith("-tar"):
            return [self.path] if self.path.is_file() else None
        if self.kind.startswith("cifar"):
            return cifar.dir_files(self.kind, self.path, name) if self.path.is_dir() else None
        return find_idx_files(self.path) if self.path.is_dir() else None


@dataclass(frozen=True)
class Tried:
    """One place looked at and what was found there."""

    label: str      # "data dir", "cnnlab cache", ..., "download"
    where: str      # a path or URL, or ""
    outcome: str

    def __str__(self):
        return f"{self.label} {self.where}: {self.outcome}" if self.where else f"{self.label}: {self.outcome}"


def _tried_text(tried: list[Tried]) -> str:
    return "\n".join(f"  {t}" for t in tried)


class NotFound(DataError):
    """The dataset is nowhere on this machine (and was not downloaded); `.tried` lists where."""

    def __init__(self, message: str, tried: list[Tried]):
        super().__init__(message)
        self.tried = tried


def candidates(spec: FullDataset, data_dir=None) -> list[Candidate]:
    """Every place `spec` may already be on this machine, in the order they are tried."""
    found = []
    user = paths.data_dir(data_dir)
    if user is not None:
        found += [Candidate("data dir", kind, user / rel, "raise") for kind, rel in spec.data_dir_layouts]
    cache = paths.cache_dir()
    found += [Candidate("cnnlab cache", fs.kind, fs.cache_path(cache), "delete")
              for fs in spec.filesets]
    if spec.keras_layout is not None:
        for kind, rel in (spec.keras_layout, *spec.more_keras_layouts):
            found.append(Candidate("Keras cache", kind, paths.keras_datasets_dir() / rel, "skip"))
    if spec.system_layout is not None:
        note = f"Debian/Ubuntu package {spec.system_package}" if spec.system_package else ""
        found += [Candidate("system copy", "idx", root / spec.system_layout, "skip", note)
                  for root in paths.system_roots()]
    return found


def locate(spec: FullDataset, data_dir=None) -> Candidate | None:
    """The first place `spec`'s files are all present (not read or verified), or None."""
    return next((c for c in candidates(spec, data_dir) if c.files(spec.name) is not None), None)


def _read(spec: FullDataset, c: Candidate, files: list[Path]):
    """Read and check the arrays at `c`; DataError if they are not `spec`'s dataset."""
    where = str(c.path)
    if c.kind == "npz":
        train, test, _ = read_npz(files[0])
    elif c.kind.startswith("cifar"):
        train, test = cifar.read_cifar(c.kind, files, spec.name)
    else:
        train, test = read_idx_files(files, where)
    arrays = check_arrays(*train, *test, where=where, num_classes=len(spec.class_names),
                          image_shape=spec.image_shape)
    n_train, n_test = len(arrays[0]), len(arrays[2])
    if (n_train, n_test) != (spec.n_train, spec.n_test):
        raise DataError(f"{where}: not the full {spec.name}. Expected {spec.n_train} training and "
                        f"{spec.n_test} test images. Received {n_train} and {n_test}.")
    return arrays


def _load_candidate(spec: FullDataset, c: Candidate, files: list[Path]):
    """(arrays, source) from a present candidate; applies the candidate's corrupt-file policy."""
    unverified = [f for f in files if sha256_file(f) != canonical_sha256(spec.name, f.name)]
    try:
        arrays = _read(spec, c, files)
    except DataError as e:
        if c.policy == "raise":
            raise
        if c.policy == "delete":
            for f in unverified:
                f.unlink(missing_ok=True)
            print(f"cnnlab: the cached {spec.name} file is corrupt and was removed; it will be "
                  f"fetched again. {e}", file=sys.stderr)
            raise DataError(f"corrupt, removed ({e})") from e
        raise DataError(f"unusable ({e})") from e
    check = ("sha256 verified" if not unverified else
             "contents checked; not byte-identical to the canonical download")
    details = "; ".join(x for x in (c.note, check) if x)
    return arrays, f"{c.label} {c.path} ({details})"


def _find_local(spec: FullDataset, data_dir, tried: list[Tried]):
    """(arrays, source) from the first usable local candidate, or None; appends to `tried`."""
    if paths.data_dir(data_dir) is None:
        tried.append(Tried("data dir", "", "not given (--data-dir or CNNLAB_DATA)"))
    if spec.system_layout is not None and not paths.system_roots():
        tried.append(Tried("system copy", "", "lookup disabled (CNNLAB_SYSTEM_DATA is empty)"))
    for c in candidates(spec, data_dir):
        files = c.files(spec.name)
        if files is None:
            tried.append(Tried(c.label, str(c.path), _absent(c, spec.name)))
            continue
        try:
            return _load_candidate(spec, c, files)
        except DataError as e:
            if c.policy == "raise":
                raise
            tried.append(Tried(c.label, str(c.path), str(e)))
    return None


def _absent(c: Candidate, name: str = "") -> str:
    if c.kind.startswith("cifar"):
        return cifar.absent(c.kind, c.path, name)
    if c.kind == "npz" or not c.path.is_dir():
        return "not found"
    have = sum(any(p.name.startswith((s, s.replace("-idx", ".idx"))) for p in c.path.iterdir())
               for s in IDX_STEMS)
    return f"incomplete ({have} of 4 IDX files)" if have else "no IDX files"


def _download(spec: FullDataset, progress: bool):
    """(arrays, source) downloaded into cnnlab's cache; DownloadError listing every try."""
    override = paths.mirror_override()
    cache = paths.cache_dir()
    attempts = []
    for fs in spec.filesets:
        dest_dir = cache / fs.cache_subdir
        urls = []
        try:
            for f in fs.files:
                path = dest_dir / f.name
                if path.is_file() and sha256_file(path) == f.sha256:
                    continue
                urls.append(fetch(f.name, f.sha256, dest_dir, override or fs.mirrors,
                                  progress=progress).url)
        except DownloadError as e:
            attempts += getattr(e, "attempts", None) or [Attempt(str(dest_dir), str(e))]
            continue
        c = Candidate("cnnlab cache", fs.kind, fs.cache_path(cache), "delete")
        arrays, where = _load_candidate(spec, c, c.files(spec.name))
        origin = urls[0].rsplit("/", 1)[0] + "/" if urls else "an earlier download"
        return arrays, f"downloaded from {origin}: {where}"
    names = ", ".join(f.name for fs in spec.filesets for f in fs.files)
    raise download_error(f"{spec.name} ({names})", cache, attempts)


def how_to_get(spec: FullDataset) -> str:
    """Instructions for getting the full dataset onto an offline machine."""
    cache = paths.cache_dir()
    first = spec.filesets[0]
    url = first.mirrors[0] + first.files[0].name
    if first.kind == "npz":
        text = f"put {first.files[0].name} (from {url}) in {cache / first.cache_subdir}/"
    else:
        names = ", ".join(f.name for f in first.files)
        text = f"put {names} (from {first.mirrors[0]}) in {cache / first.cache_subdir}/"
    if spec.system_package:
        text += f", or install the {spec.system_package} package (apt install {spec.system_package})"
    display = spec.title.split(" ")[0]   # "MNIST", "Fashion-MNIST"
    return f"To get full {display}: {text}, or run `cnnlab data fetch {spec.name}` with network access."


def load_full(spec: FullDataset, data_dir=None, download: bool = True, progress: bool = True):
    """`(arrays, source)` for a full dataset: local copies first, then a download.

    Raises NotFound (a DataError) when absent and `download` is False, or a DownloadError
    (with `.tried`) when the download failed too. Both messages list every place tried.
    """
    tried: list[Tried] = []
    found = _find_local(spec, data_dir, tried)
    if found is not None:
        return found
    if download:
        try:
            return _download(spec, progress)
        except DownloadError as e:
            attempts = getattr(e, "attempts", None)
            tried += ([Tried("download", a.url, a.outcome) for a in attempts] if attempts
                      else [Tried("download", "", str(e))])
            error = DownloadError(f"{spec.name} is not on this machine and could not be "
                                  f"downloaded. Tried:\n{_tried_text(tried)}\n{how_to_get(spec)}")
            error.tried = tried
            raise error from e
    tried.append(Tried("download", "", "not attempted (downloads disabled)"))
    raise NotFound(f"{spec.name} is not on this machine. Tried:\n{_tried_text(tried)}\n"
                   f"{how_to_get(spec)}", tried)
