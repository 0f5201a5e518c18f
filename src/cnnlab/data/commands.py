"""`cnnlab data list|info|fetch`: the text each command prints, as plain functions.

The CLI only parses arguments, calls these and prints the result; errors are CnnlabError
subclasses (ConfigError for an unknown name, DataError, DownloadError).

    >>> print(data_info("fashion-mnist"))      # doctest: +SKIP
    fashion-mnist: Fashion-MNIST clothing images (Zalando Research)
    source:   system copy /usr/share/datasets/fashion-mnist (...)
    ...
"""
from __future__ import annotations

from .catalog import FULL_DATASETS
from .registry import DESCRIPTIONS, PATTERNS, SAMPLE_FILE, load_dataset, resolve_name
from .sources import locate

INDENT = 17   # width of the name column (cifar100-coarse and a gap)


def _availability(name: str, data_dir) -> str:
    if name == "mnist-sample":
        return "yes, bundled with cnnlab" if SAMPLE_FILE.is_file() else "no: the bundled file is missing"
    spec = FULL_DATASETS[name]
    where = locate(spec, data_dir)
    if where is not None:
        note = f" ({where.note})" if where.note else ""
        return f"yes, {where.label} {where.path}{note}"
    then = "; without network, falls back to mnist-sample" if name == "mnist" else ""
    return f"no (downloaded on first use, or by `cnnlab data fetch {name}`{then})"


def data_list(data_dir=None) -> str:
    """Every dataset name, what it is, and whether (and where) it is available here."""
    lines = []
    for name, what in DESCRIPTIONS.items():
        lines.append(f"{name:<{INDENT}}{what}")
        lines.append(f"{'':<{INDENT}}here: {_availability(name, data_dir)}")
    for pattern, what in PATTERNS.items():
        lines.append(f"{pattern:<{INDENT}}{what}")
    lines.append(f"{'folder:PATH':<{INDENT}}a folder of pictures, one sub-folder per class "
                 "(see `cnnlab data info folder:PATH`)")
    return "\n".join(lines)


def data_info(name: str, data_dir=None) -> str:
    """Source, counts, class balance and checksum of a dataset available here (no download)."""
    if isinstance(name, str) and name.startswith("folder:"):
        from .folder_data import folder_info
        return folder_info(name[len("folder:"):])
    key = resolve_name(name)
    ds = load_dataset(key, data_dir=data_dir, fallback=False, download=False, progress=False)
    title = FULL_DATASETS[key].title if key in FULL_DATASETS else DESCRIPTIONS.get(key, key)
    train, test = ds.class_counts("train"), ds.class_counts("test")
    width = max(len(c) for c in ds.class_names)
    lines = [
        f"{ds.name}: {title}",
        f"source:   {ds.source}",
        f"train:    {len(ds.x_train):,} images of shape {ds.image_shape}, {ds.x_train.dtype}",
        f"test:     {len(ds.x_test):,} images",
        f"classes:  {ds.num_classes}",
        "class balance (train / test):",
    ]
    lines += [f"  {i:>2} {c:<{width}}  {n:>7,} / {m:,}"
              for i, (c, n, m) in enumerate(zip(ds.class_names, train, test))]
    lines.append(f"sha256:   {ds.sha256}  (of the arrays)")
    return "\n".join(lines)


def data_fetch(name: str, data_dir=None) -> str:
    """Make a dataset available here: download it into cnnlab's cache unless already present."""
    key = resolve_name(name)
    if key == "mnist-sample":
        return "mnist-sample is bundled with cnnlab: nothing to fetch."
    ds = load_dataset(key, data_dir=data_dir, fallback=False, download=True, progress=True)
    if key not in FULL_DATASETS:
        return f"{key}: local files, nothing to fetch; they read correctly ({ds.source})."
    done = "fetched" if ds.source.startswith("downloaded") else "already here, nothing downloaded"
    return (f"{key}: {done}.\n"
            f"source:   {ds.source}\n"
            f"counts:   {len(ds.x_train):,} train / {len(ds.x_test):,} test\n"
            f"sha256:   {ds.sha256}  (of the arrays)")
