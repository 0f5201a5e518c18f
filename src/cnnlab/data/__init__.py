"""Datasets for cnnlab: MNIST, Fashion-MNIST, a bundled real-MNIST sample, your own files.

Arrays stay uint8, as Keras returns them; scaling to [0, 1] happens per batch.

    >>> from cnnlab.data import load_dataset
    >>> ds = load_dataset("mnist")         # found locally, downloaded, or the bundled sample
    >>> ds.x_train.shape, ds.source        # doctest: +SKIP
    ((60000, 28, 28), 'cnnlab cache /home/me/.cache/cnnlab/mnist.npz (sha256 verified)')

See `cnnlab.data.sources` for where datasets are looked for, and `cnnlab.data.paths`
for the environment variables that redirect each place.
"""
from .dataset import Dataset
from .registry import list_datasets, load_dataset

__all__ = ["Dataset", "list_datasets", "load_dataset"]
