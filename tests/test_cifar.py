"""CIFAR-10/100 through the source chain, from small fixture archives built here in both
published formats (python pickles, binary records): Keras's arrays and dtypes, Keras's cache
layouts, a crafted pickle refused without running its code, a truncated archive, and a
download from a server on 127.0.0.1 (a wrong SHA-256 refused). No network."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import pickle
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from cnnlab.data import load_dataset
from cnnlab.data.catalog import FULL_DATASETS, RemoteFile
from cnnlab.data.cifar import unpickle_batch
from cnnlab.datasets import cifar10, cifar100
from cnnlab.errors import DataError, DownloadError

PER_BATCH, N_TEST = 4, 3     # cifar10: 5 x 4 training images; cifar100: 20 in one file


def images(n, seed):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)


def planes(x):  # Keras's (N, 32, 32, 3) -> CIFAR's (N, 3072) channel planes
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2).reshape(len(x), 3072))


def py_batch(x, labels: dict) -> bytes:
    """A batch as CIFAR's python version holds it (bytes keys), pickled with protocol 2."""
    d = {b"batch_label": b"fixture", b"data": planes(x),
         b"filenames": [b"img_%d.png" % i for i in range(len(x))]}
    d.update({k.encode(): [int(v) for v in vals] for k, vals in labels.items()})
    return pickle.dumps(d, protocol=2)


def bin_batch(x, *label_columns) -> bytes:
    cols = [np.asarray(c, np.uint8)[:, None] for c in label_columns]
    return np.concatenate([*cols, planes(x)], axis=1).tobytes()


def targz(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# the arrays every fixture holds
X10, Y10 = images(5 * PER_BATCH, 0), np.arange(5 * PER_BATCH) % 10
XT10, YT10 = images(N_TEST, 1), np.array([9, 0, 5])
X100, FINE, COARSE = images(20, 2), (np.arange(20) * 7) % 100, np.arange(20) % 20
XT100, FINE_T, COARSE_T = images(N_TEST, 3), np.array([99, 0, 42]), np.array([19, 0, 7])


def cifar10_py_members():
    m = {f"cifar-10-batches-py/data_batch_{i + 1}":
         py_batch(X10[i * PER_BATCH:(i + 1) * PER_BATCH],
                  {"labels": Y10[i * PER_BATCH:(i + 1) * PER_BATCH]}) for i in range(5)}
    m["cifar-10-batches-py/test_batch"] = py_batch(XT10, {"labels": YT10})
    return m


def cifar10_bin_members():
    m = {f"cifar-10-batches-bin/data_batch_{i + 1}.bin":
         bin_batch(X10[i * PER_BATCH:(i + 1) * PER_BATCH], Y10[i * PER_BATCH:(i + 1) * PER_BATCH])
         for i in range(5)}
    m["cifar-10-batches-bin/test_batch.bin"] = bin_batch(XT10, YT10)
    return m


def cifar100_py_members():
    return {"cifar-100-python/train": py_batch(X100, {"fine_labels": FINE, "coarse_labels": COARSE}),
            "cifar-100-python/test": py_batch(XT100, {"fine_labels": FINE_T,
                                                      "coarse_labels": COARSE_T})}


def cifar100_bin_members():
    return {"cifar-100-binary/train.bin": bin_batch(X100, COARSE, FINE),
            "cifar-100-binary/test.bin": bin_batch(XT100, COARSE_T, FINE_T)}


ARCHIVES = {"cifar-10-python.tar.gz": targz(cifar10_py_members()),
            "cifar-10-binary.tar.gz": targz(cifar10_bin_members()),
            "cifar-100-python.tar.gz": targz(cifar100_py_members()),
            "cifar-100-binary.tar.gz": targz(cifar100_bin_members())}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def env(offline_data_env, monkeypatch):
    """Offline env; the catalog's CIFAR entries shrunk to the fixtures (names, SHA-256s, counts)."""
    for name in ("cifar10", "cifar100", "cifar100-coarse"):
        spec = FULL_DATASETS[name]
        filesets = tuple(dataclasses.replace(fs, files=tuple(
            RemoteFile(f.name, sha(ARCHIVES[f.name])) for f in fs.files)) for fs in spec.filesets)
        monkeypatch.setitem(FULL_DATASETS, name, dataclasses.replace(
            spec, n_train=5 * PER_BATCH if name == "cifar10" else 20, n_test=N_TEST,
            filesets=filesets))
    return offline_data_env


def write_tree(root, members: dict[str, bytes]):
    for name, data in members.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def check10(ds):
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_train.dtype == np.uint8
    np.testing.assert_array_equal(ds.x_train, X10)
    np.testing.assert_array_equal(ds.y_train, Y10)
    np.testing.assert_array_equal(ds.x_test, XT10)
    np.testing.assert_array_equal(ds.y_test, YT10)
    assert ds.class_names[0] == "airplane" and ds.num_classes == 10


@pytest.mark.parametrize("layout", ["py-dir", "py-tar", "bin-dir", "bin-tar"])
def test_cifar10_from_the_data_dir_in_every_published_form(env, monkeypatch, layout):
    data = env / "data"
    monkeypatch.setenv("CNNLAB_DATA", str(data))
    if layout == "py-dir":
        write_tree(data, cifar10_py_members())
    elif layout == "bin-dir":
        write_tree(data, cifar10_bin_members())
    else:
        name = "cifar-10-python.tar.gz" if layout == "py-tar" else "cifar-10-binary.tar.gz"
        write_tree(data, {name: ARCHIVES[name]})
    ds = load_dataset("cifar10", download=False)
    check10(ds)
    assert ds.source.startswith("data dir")


def test_load_data_returns_keras_shapes_and_dtypes(env, monkeypatch):
    write_tree(env / "data", cifar10_py_members())
    write_tree(env / "data", {"cifar-100-python.tar.gz": ARCHIVES["cifar-100-python.tar.gz"]})
    monkeypatch.setenv("CNNLAB_DATA", str(env / "data"))
    (x, y), (xt, yt) = cifar10.load_data(download=False)
    assert (x.shape, x.dtype, y.shape, y.dtype) == ((20, 32, 32, 3), np.uint8, (20, 1), np.uint8)
    assert (xt.shape, yt.shape, yt.dtype) == ((3, 32, 32, 3), (3, 1), np.uint8)
    (x, y), (xt, yt) = cifar100.load_data(download=False)
    assert (y.shape, y.dtype) == ((20, 1), np.int64)
    np.testing.assert_array_equal(y[:, 0], FINE)
    np.testing.assert_array_equal(x, X100)
    (_, y), (_, yt) = cifar100.load_data("coarse", download=False)
    np.testing.assert_array_equal(y[:, 0], COARSE)
    np.testing.assert_array_equal(yt[:, 0], COARSE_T)
    with pytest.raises(Exception, match="Expected one of 'fine', 'coarse'"):
        cifar100.load_data("medium")


def test_cifar100_binary_records_hold_coarse_then_fine(env, monkeypatch):
    write_tree(env / "data", cifar100_bin_members())
    monkeypatch.setenv("CNNLAB_DATA", str(env / "data"))
    fine = load_dataset("cifar100", download=False)
    coarse = load_dataset("cifar100-coarse", download=False)
    np.testing.assert_array_equal(fine.y_train, FINE)
    np.testing.assert_array_equal(coarse.y_test, COARSE_T)
    np.testing.assert_array_equal(fine.x_test, XT100)
    assert fine.num_classes == 100 and coarse.num_classes == 20


@pytest.mark.parametrize("where", ["cifar-10-batches-py-target/cifar-10-batches-py",
                                   "cifar-10-batches-py"])
def test_keras_caches_keras_3_and_keras_2_layouts(env, where):
    keras = env / "home" / ".keras" / "datasets"
    members = {k.replace("cifar-10-batches-py", where): v for k, v in cifar10_py_members().items()}
    write_tree(keras, members)
    ds = load_dataset("cifar10", download=False)
    check10(ds)
    assert ds.source.startswith("Keras cache")


def test_keras_3_downloaded_archive_is_read_too(env):
    keras = env / "home" / ".keras" / "datasets"
    write_tree(keras, {"cifar-10-batches-py-target_archive": ARCHIVES["cifar-10-python.tar.gz"]})
    check10(load_dataset("cifar10", download=False))


class Evil:
    """Unpickling this calls os.system: what a crafted CIFAR batch could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_is_refused_and_runs_nothing(env, monkeypatch):
    marker = env / "pwned"
    members = cifar10_py_members()
    members["cifar-10-batches-py/data_batch_3"] = pickle.dumps(
        {b"data": Evil(marker), b"labels": [0]}, protocol=2)
    write_tree(env / "data", members)
    monkeypatch.setenv("CNNLAB_DATA", str(env / "data"))
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", download=False)
    assert "data_batch_3: not a readable CIFAR batch" in str(err.value)
    assert "refusing to load `posix.system`" in str(err.value)
    assert not marker.exists()
    # the same file in Keras's cache is skipped with the reason, never run either
    keras = env / "home" / ".keras" / "datasets" / "cifar-10-batches-py"
    write_tree(keras.parent, {k: v for k, v in members.items()})
    monkeypatch.delenv("CNNLAB_DATA")
    with pytest.raises(DataError, match="refusing to load `posix.system`"):
        load_dataset("cifar10", download=False)
    assert not marker.exists()


@pytest.mark.parametrize("payload", [
    np.array([1, "x"], dtype=object),                 # an object array would unpickle objects
    {b"data": np.zeros((2, 3072), np.float64), b"labels": [0, 1]},   # not uint8
    [1, 2, 3],                                        # not a dict
])
def test_anything_but_cifars_plain_structure_is_refused(payload):
    with pytest.raises(DataError):
        batch = unpickle_batch(pickle.dumps(payload, protocol=2), "x")
        from cnnlab.data.cifar import _pixels
        _pixels(batch.get("data"), None, "x")


def test_a_truncated_archive_is_an_error_that_says_so(env, monkeypatch):
    data = ARCHIVES["cifar-10-binary.tar.gz"]
    write_tree(env / "data", {"cifar-10-binary.tar.gz": data[: len(data) // 2]})
    monkeypatch.setenv("CNNLAB_DATA", str(env / "data"))
    with pytest.raises(DataError, match="damaged or truncated archive"):
        load_dataset("cifar10", download=False)


def test_a_truncated_binary_batch_is_an_error(env, monkeypatch):
    members = cifar10_bin_members()
    members["cifar-10-batches-bin/test_batch.bin"] = members[
        "cifar-10-batches-bin/test_batch.bin"][:-100]
    write_tree(env / "data", members)
    monkeypatch.setenv("CNNLAB_DATA", str(env / "data"))
    with pytest.raises(DataError, match="Expected a multiple of 3073 bytes"):
        load_dataset("cifar10", download=False)


def test_offline_notice_lists_every_place_and_how_to_get_it(env):
    with pytest.raises(DataError) as err:
        load_dataset("cifar10", download=False)
    text = str(err.value)
    assert "cifar-10-batches-py-target/cifar-10-batches-py" in text
    assert "cifar-10-binary.tar.gz (from https://www.cs.toronto.edu/~kriz/)" in text
    assert "download: not attempted (downloads disabled)" in text


class Handler(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    hits: list[str] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.hits.append(self.path)
        data = self.files.get(self.path.rsplit("/", 1)[-1])
        if data is None:
            self.send_error(404, "Not Found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server(monkeypatch):
    Handler.files, Handler.hits = dict(ARCHIVES), []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/"
    monkeypatch.setenv("CNNLAB_MIRRORS", url)
    yield url
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_sha256_and_caches_the_binary_archive(env, server):
    ds = load_dataset("cifar10", progress=False)
    check10(ds)
    assert Handler.hits == ["/cifar-10-binary.tar.gz"]
    cached = env / "cache" / "cnnlab" / "cifar10" / "cifar-10-binary.tar.gz"
    assert cached.read_bytes() == ARCHIVES["cifar-10-binary.tar.gz"]
    assert ds.source.startswith(f"downloaded from {server}")
    again = load_dataset("cifar10", download=False)      # now from the cache, verified
    assert again.source.startswith("cnnlab cache") and "sha256 verified" in again.source


def test_a_download_with_the_wrong_sha256_is_refused_and_leaves_nothing(env, server):
    Handler.files = {k: v[:-1] + bytes([v[-1] ^ 1]) for k, v in ARCHIVES.items()}
    with pytest.raises(DownloadError) as err:
        load_dataset("cifar10", progress=False)
    assert "checksum mismatch" in str(err.value)
    cache = env / "cache" / "cnnlab"
    assert not [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else True


def test_cnnlab_train_takes_data_cifar10(env, monkeypatch, capsys, tmp_path):
    from pathlib import Path

    from test_resume_support import run_cli
    write_tree(env / "data", {"cifar-10-python.tar.gz": ARCHIVES["cifar-10-python.tar.gz"]})
    monkeypatch.setenv("CNNLAB_DATA", str(env / "data"))
    monkeypatch.chdir(tmp_path)
    example = Path(__file__).resolve().parents[1] / "examples" / "cifar10_convnet.yaml"
    code, out, err = run_cli(capsys, "train", example, "--data", "cifar10", "--epochs", "1",
                             "--out", "runs", "--name", "c", "--quiet")
    assert code == 0, err
    import json
    metrics = json.loads((tmp_path / "runs" / "c" / "metrics.json").read_text())
    assert metrics["data"]["name"] == "cifar10" and metrics["data"]["n_train"] == 20

    # predict on a colour model: a picture of any size is resized to 32x32 as Keras resizes
    # (stretched to the input, no fitting-and-padding, no MNIST inversion or centring)
    from PIL import Image

    import cnnlab
    from cnnlab.data.folders import decode_image
    from cnnlab.images import load_images
    pic = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (41, 97, 3), dtype=np.uint8)).save(pic)
    code, out, err = run_cli(capsys, "predict", "c", str(pic), "--json", "--out", "runs")
    assert code == 0, err
    got = {t["index"]: t["probability"] for t in json.loads(out)["predictions"][0]["top"]}
    x = decode_image(pic, (32, 32), "rgb", False)
    assert x.shape == (32, 32, 3)
    assert not np.array_equal(x, load_images([str(pic)], (32, 32, 3))[0])  # the old fit-and-pad
    model = cnnlab.load(tmp_path / "runs" / "c")
    want = model.predict(x[None], verbose=0)[0]
    for i, p in got.items():
        assert p == pytest.approx(float(want[i]), abs=1e-6)


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4])
def test_the_plain_data_reader_reads_what_pickle_writes(protocol):
    from cnnlab.data.cifar import load_plain
    batch = {b"batch_label": b"training batch 1 of 5", b"labels": [3, 0, 255, 7],
             b"data": planes(images(4, 9)), "filenames": ["a.png", "b.png"],
             "nested": ([1, -2, 2**40], {"x": None, "y": True, "z": 1.5})}
    got = load_plain(pickle.dumps(batch, protocol=protocol))
    assert got.keys() == batch.keys()
    np.testing.assert_array_equal(got[b"data"], batch[b"data"])
    assert got[b"data"].dtype == np.uint8
    for k in (b"batch_label", b"labels", "filenames", "nested"):
        assert got[k] == batch[k]


def test_broken_or_hostile_streams_are_data_errors_never_crashes():
    good = pickle.dumps({b"data": planes(images(2, 4)), b"labels": [1, 2]}, protocol=2)
    for cut in range(0, len(good), max(1, len(good) // 200)):
        with pytest.raises(DataError):
            unpickle_batch(good[:cut], "x")
    loop = []
    loop.append(loop)
    for payload in (pickle.dumps(loop, protocol=2), pickle.dumps({b"data": {(1,): 2}}),
                    b"\x80\x02c__builtin__\neval\nq\x00X\x01\x00\x00\x001\x85R.",
                    b"\x80\x02}(]]u."):
        with pytest.raises(DataError):
            unpickle_batch(payload, "x")
