"""What cnnlab knows about MNIST, Fashion-MNIST and CIFAR-10/100: file names, SHA-256s, mirrors, classes.

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

    kind: str                       # "npz", "idx", or a CIFAR archive "cifar-py-tar"/"cifar-bin-tar"
    files: tuple[RemoteFile, ...]
    mirrors: tuple[str, ...]        # base URLs; a file's URL is base + file name
    cache_subdir: str

    def cache_path(self, cache):
        """Where this file set lives in cnnlab's cache: the file of a one-file set (.npz at
        the cache root, a CIFAR archive in its folder), else the folder of IDX files."""
        if self.kind == "npz":
            return cache / self.files[0].name
        if self.kind.endswith("-tar"):
            return cache / self.cache_subdir / self.files[0].name
        return cache / self.cache_subdir


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
    more_keras_layouts: tuple[tuple[str, str], ...] = ()  # tried after keras_layout


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


# The CIFAR archives as their authors publish them (Keras downloads the python ones, with these
# SHA-256s); the binary ones need no pickle and are downloaded first.
CIFAR_BASE = "https://www.cs.toronto.edu/~kriz/"
CIFAR10_PY = RemoteFile("cifar-10-python.tar.gz", "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce")
CIFAR10_BIN = RemoteFile("cifar-10-binary.tar.gz", "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd")
CIFAR100_PY = RemoteFile("cifar-100-python.tar.gz", "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7")
CIFAR100_BIN = RemoteFile("cifar-100-binary.tar.gz", "58a81ae192c23a4be8b1804d68e518ed807d710a4eb253b1f2a199162a40d8ec")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
CIFAR100_FINE = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle",
    "bottle", "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle",
    "caterpillar", "cattle", "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch",
    "crab", "crocodile", "cup", "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox",
    "girl", "hamster", "house", "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion",
    "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain", "mouse", "mushroom",
    "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road",
    "rocket", "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake",
    "spider", "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank",
    "telephone", "television", "tiger", "tractor", "train", "trout", "tulip", "turtle",
    "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)
CIFAR100_COARSE = (
    "aquatic_mammals", "fish", "flowers", "food_containers", "fruit_and_vegetables",
    "household_electrical_devices", "household_furniture", "insects", "large_carnivores",
    "large_man-made_outdoor_things", "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores", "medium_mammals", "non-insect_invertebrates", "people",
    "reptiles", "small_mammals", "trees", "vehicles_1", "vehicles_2",
)


def _cifar(name: str, title: str, classes, py: RemoteFile, binary: RemoteFile, folders,
           subdir: str) -> FullDataset:
    """A CIFAR entry: its archives (binary first), the extracted folders under --data-dir
    and Keras's cache (Keras 3's `<name>-target/<folder>`, Keras 2's `<folder>`)."""
    py_dir, bin_dir, keras_dir = folders
    return FullDataset(
        name=name, title=title, class_names=tuple(classes), n_train=50_000, n_test=10_000,
        image_shape=(32, 32, 3),
        filesets=(FileSet("cifar-bin-tar", (binary,), (CIFAR_BASE,), subdir),
                  FileSet("cifar-py-tar", (py,), (CIFAR_BASE,), subdir)),
        data_dir_layouts=(("cifar-py-dir", py_dir), ("cifar-bin-dir", bin_dir),
                          ("cifar-py-tar", py.name), ("cifar-bin-tar", binary.name),
                          ("cifar-py-dir", f"{subdir}/{py_dir}"),
                          ("cifar-bin-dir", f"{subdir}/{bin_dir}")),
        keras_layout=("cifar-py-dir", f"{keras_dir}-target/{py_dir}"),
        more_keras_layouts=(("cifar-py-dir", keras_dir), ("cifar-py-tar", f"{keras_dir}.tar.gz"),
                            ("cifar-py-tar", f"{keras_dir}-target_archive")),
    )


FULL_DATASETS["cifar10"] = _cifar(
    "cifar10", "CIFAR-10 small colour images (Krizhevsky, Nair, Hinton)", CIFAR10_CLASSES,
    CIFAR10_PY, CIFAR10_BIN, ("cifar-10-batches-py", "cifar-10-batches-bin",
                              "cifar-10-batches-py"), "cifar10")
FULL_DATASETS["cifar100"] = _cifar(
    "cifar100", "CIFAR-100 small colour images, 100 fine labels (Krizhevsky)", CIFAR100_FINE,
    CIFAR100_PY, CIFAR100_BIN, ("cifar-100-python", "cifar-100-binary", "cifar-100-python"),
    "cifar100")
FULL_DATASETS["cifar100-coarse"] = _cifar(
    "cifar100-coarse", "CIFAR-100 small colour images, 20 coarse labels (Krizhevsky)",
    CIFAR100_COARSE, CIFAR100_PY, CIFAR100_BIN,
    ("cifar-100-python", "cifar-100-binary", "cifar-100-python"), "cifar100")


def canonical_sha256(dataset: str, file_name: str) -> str | None:
    """SHA-256 of a canonical file of `dataset` ("mnist", "fashion-mnist"), or None."""
    for fs in FULL_DATASETS[dataset].filesets:
        for f in fs.files:
            if f.name == file_name:
                return f.sha256
    return None
