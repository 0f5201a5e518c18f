"""What cnnlab knows about MNIST and Fashion-MNIST: file names, SHA-256s, mirrors, classes.

Pure data, no I/O. The sources module walks these facts to find a dataset on disk
or fetch it; nothing else in cnnlab hard-codes a URL or a checksum.

    >>> from cnnlab.data.catalog import FULL_DATASETS
    >>> FULL_DATASETS["mnist"].filesets[0].files[0].name
    'mnist.npz'
"""
from __future__ import annotations

from dataclasses import dataclass

# Keras's mirror (tf.keras.datasets) and torchvision's mirrors, as those libraries use them.
KERAS_BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
TORCHVISION_MNIST_BASES = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
ZALANDO_FASHION_BASE = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# The four IDX files, in the order (x_train, y_train, x_test, y_test).
IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@dataclass(frozen=True)
class RemoteFile:
    """A file as published: its canonical name and the SHA-256 of its bytes."""

    name: str
    sha256: str


@dataclass(frozen=True)
class FileSet:
    """One way a dataset is published: one .npz or four IDX files, and who serves them.

    `cache_subdir` is where the files live inside cnnlab's cache ("" = the cache root).
    """

    kind: str                       # "npz" or "idx"
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]        # base URLs; a file's URL is base + file name
    cache_subdir: str


@dataclass(frozen=True)
class FullDataset:
    """A dataset cnnlab can find on disk or download (not the bundled sample)."""

    name: str
    title: str
    class_names: tuple[str, ...]
    n_train: int
    n_test: int
    image_shape: tuple[int, ...]
    filesets: tuple[FileSet, ...]   # tried in order when downloading
    data_dir_layouts: tuple[tuple[str, str], ...]  # (kind, relative path) under --data-dir
    keras_layout: tuple[str, str] | None           # (kind, path under ~/.keras/datasets)
    system_layout: str | None = None               # IDX dir under /usr/share/datasets
    system_package: str | None = None


MNIST_NPZ = RemoteFile("mnist.npz", "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1")

MNIST_IDX = (
    RemoteFile("train-images-idx3-ubyte.gz", "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
    RemoteFile("train-labels-idx1-ubyte.gz", "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    RemoteFile("t10k-images-idx3-ubyte.gz", "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
    RemoteFile("t10k-labels-idx1-ubyte.gz", "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
)

# Zalando's published files (Keras serves the same bytes).
FASHION_IDX = (
    RemoteFile("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
    RemoteFile("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
    RemoteFile("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
    RemoteFile("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
)

DIGITS = tuple(str(d) for d in range(10))

# As in Keras's fashion_mnist docs, label order 0..9.
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

FULL_DATASETS: dict[str, FullDataset] = {
    "mnist": FullDataset(
        name="mnist",
        title="MNIST handwritten digits (LeCun, Cortes, Burges)",
        class_names=DIGITS,
        n_train=60_000,
        n_test=10_000,
        image_shape=(28, 28),
        filesets=(
            FileSet("npz", (MNIST_NPZ,), (KERAS_BASE,), ""),
            FileSet("idx", MNIST_IDX, TORCHVISION_MNIST_BASES, "mnist"),
        ),
        data_dir_layouts=(("npz", "mnist.npz"), ("idx", "mnist"), ("idx", "MNIST/raw")),
        keras_layout=("npz", "mnist.npz"),
    ),
    "fashion-mnist": FullDataset(
        name="fashion-mnist",
        title="Fashion-MNIST clothing images (Zalando Research)",
        class_names=FASHION_CLASSES,
        n_train=60_000,
        n_test=10_000,
        image_shape=(28, 28),
        filesets=(
            FileSet("idx", FASHION_IDX, (KERAS_BASE, ZALANDO_FASHION_BASE), "fashion-mnist"),
        ),
        data_dir_layouts=(("idx", "fashion-mnist"), ("idx", "FashionMNIST/raw")),
        keras_layout=("idx", "fashion-mnist"),
        system_layout="fashion-mnist",
        system_package="dataset-fashion-mnist",
    ),
}


def canonical_sha256(dataset: str, file_name: str) -> str | None:
    """SHA-256 of a canonical file of `dataset` ("mnist", "fashion-mnist"), or None."""
    for fs in FULL_DATASETS[dataset].filesets:
        for f in fs.files:
            if f.name == file_name:
                return f.sha256
    return None
