"""Downloads against an HTTP server on 127.0.0.1 started by the test: good, corrupt,
truncated, 404-then-good, stalled. After every failure the cache holds no partial or
unverified file and the error says what happened. Nothing here touches the network."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from cnnlab.data import load_dataset
from cnnlab.data.catalog import FULL_DATASETS, RemoteFile
from cnnlab.data.download import fetch
from cnnlab.errors import DownloadError

N_TRAIN, N_TEST = 20, 10


# --- fixture files --------------------------------------------------------------------------

def make_arrays(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (N_TRAIN, 28, 28), dtype=np.uint8),
            (np.arange(N_TRAIN) % 10).astype(np.uint8),
            rng.integers(0, 256, (N_TEST, 28, 28), dtype=np.uint8),
            (np.arange(N_TEST) % 10).astype(np.uint8))


def npz_bytes(arrays) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **dict(zip(("x_train", "y_train", "x_test", "y_test"), arrays)))
    return buf.getvalue()


def idx_bytes(a: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return gzip.compress(header + a.tobytes(), mtime=0)


IDX_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
FILES = {"mnist.npz": npz_bytes(make_arrays(0))}
FASHION = dict(zip(IDX_NAMES, (idx_bytes(a) for a in make_arrays(1))))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the server -----------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    """/good/NAME serves the file; /corrupt/ flips a byte; /truncated/ sends half;
    /missing/ is 404; /stall/ sends headers and a few bytes, then waits; /silent/ never answers."""

    files: dict[str, bytes] = {}
    stop = threading.Event()
    hits: list[str] = []

    def log_message(self, *args):   # keep pytest output clean
        pass

    def do_GET(self):
        self.hits.append(self.path)
        _, mode, name = self.path.split("/", 2)
        data = self.files.get(name)
        if mode == "missing" or data is None:
            self.send_error(404, "Not Found")
            return
        if mode == "silent":                              # accepts, never answers
            self.stop.wait(10)
            return
        if mode == "corrupt":
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if mode == "truncated":
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
        elif mode == "stall":
            self.wfile.write(data[:10])
            self.wfile.flush()
            self.stop.wait(10)
        else:
            self.wfile.write(data)


@pytest.fixture
def server():
    Handler.files = {**FILES, **FASHION}
    Handler.stop = threading.Event()
    Handler.hits = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    Handler.stop.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def env(offline_data_env, monkeypatch):
    """Offline env (conftest), a 2 s download timeout, and the catalog's files shrunk."""
    monkeypatch.setenv("CNNLAB_DOWNLOAD_TIMEOUT", "2")
    # Small fixtures stand in for the real files: same names, their own checksums and counts.
    for name, files in (("mnist", FILES), ("fashion-mnist", FASHION)):
        spec = FULL_DATASETS[name]
        filesets = tuple(dataclasses.replace(fs, files=tuple(RemoteFile(f.name, sha(files[f.name]))
                                                             for f in fs.files if f.name in files))
                         for fs in spec.filesets if any(f.name in files for f in fs.files))
        monkeypatch.setitem(FULL_DATASETS, name, dataclasses.replace(
            spec, n_train=N_TRAIN, n_test=N_TEST, filesets=filesets))
    return offline_data_env


def cache_files(tmp_path):
    """Every file under the cache, hidden ones (.part) included."""
    root = tmp_path / "cache"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


# --- fetch() --------------------------------------------------------------------------------

def test_good_download_is_verified_and_in_place(env, server):
    dest = env / "cache" / "cnnlab"
    got = fetch("mnist.npz", sha(FILES["mnist.npz"]), dest, [server + "/good/"], progress=False)
    assert got.path == dest / "mnist.npz" and got.url == server + "/good/mnist.npz"
    assert got.path.read_bytes() == FILES["mnist.npz"]
    assert cache_files(env) == ["cnnlab/mnist.npz"]


def test_checksum_mismatch_leaves_nothing_and_says_so(env, server):
    dest = env / "cache" / "cnnlab"
    with pytest.raises(DownloadError) as info:
        fetch("mnist.npz", sha(FILES["mnist.npz"]), dest, [server + "/corrupt/"], progress=False)
    message = str(info.value)
    assert f"{server}/corrupt/mnist.npz: checksum mismatch: expected sha256 {sha(FILES['mnist.npz'])}" in message
    assert "file discarded" in message
    assert cache_files(env) == []
    assert Handler.hits == ["/corrupt/mnist.npz"]        # a bad checksum is not retried


def test_truncated_transfer_is_retried_then_reported(env, server):
    dest = env / "cache" / "cnnlab"
    n = len(FILES["mnist.npz"])
    with pytest.raises(DownloadError) as info:
        fetch("mnist.npz", sha(FILES["mnist.npz"]), dest, [server + "/truncated/"],
              retry_wait_s=0, progress=False)
    assert f"truncated transfer: received {n // 2} of {n} bytes" in str(info.value)
    assert len(Handler.hits) == 2                       # transient: tried twice
    assert cache_files(env) == []


def test_404_on_first_mirror_then_good_second(env, server):
    dest = env / "cache" / "cnnlab"
    got = fetch("mnist.npz", sha(FILES["mnist.npz"]), dest,
                [server + "/missing/", server + "/good/"], progress=False)
    assert got.url == server + "/good/mnist.npz"
    assert Handler.hits == ["/missing/mnist.npz", "/good/mnist.npz"]
    assert cache_files(env) == ["cnnlab/mnist.npz"]


@pytest.mark.parametrize("mode", ["stall", "silent"])
def test_stalled_server_times_out_and_leaves_nothing(env, server, mode):
    dest = env / "cache" / "cnnlab"
    with pytest.raises(DownloadError) as info:
        fetch("mnist.npz", sha(FILES["mnist.npz"]), dest, [f"{server}/{mode}/"],
              timeout=0.3, attempts_per_mirror=1, progress=False)
    assert f"{server}/{mode}/mnist.npz: timed out: no data for 0.3 s" in str(info.value)
    assert cache_files(env) == []


def test_every_mirror_is_listed_when_all_fail(env, server):
    dest = env / "cache" / "cnnlab"
    with pytest.raises(DownloadError) as info:
        fetch("mnist.npz", "0" * 64, dest, [server + "/missing/", server + "/good/"],
              progress=False)
    message = str(info.value)
    assert "Could not download mnist.npz: every mirror failed." in message
    assert f"{server}/missing/mnist.npz: HTTP 404 Not Found" in message
    assert f"{server}/good/mnist.npz: checksum mismatch" in message
    assert f"Nothing was written to {dest}" in message
    assert cache_files(env) == []


def test_progress_bar_only_on_a_tty(env, server, monkeypatch, capsys):
    class FakeTTY(io.StringIO):
        def isatty(self):
            return True

    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    fetch("mnist.npz", sha(FILES["mnist.npz"]), env / "c1", [server + "/good/"], progress=True)
    assert "\rDownloading mnist.npz 100% [" in tty.getvalue()
    monkeypatch.setattr(sys, "stderr", io.StringIO())     # not a TTY: one line, no bar
    fetch("mnist.npz", sha(FILES["mnist.npz"]), env / "c2", [server + "/good/"], progress=True)
    assert sys.stderr.getvalue() == f"cnnlab: downloading {server}/good/mnist.npz\n"


# --- load_dataset() through CNNLAB_MIRRORS ----------------------------------------------------

def test_load_downloads_into_cache_then_reuses_it_offline(env, server, monkeypatch):
    monkeypatch.setenv("CNNLAB_MIRRORS", f"{server}/missing/,{server}/good")
    ds = load_dataset("mnist", fallback=False, progress=False)
    assert ds.name == "mnist" and ds.x_train.shape == (N_TRAIN, 28, 28)
    assert ds.source.startswith(f"downloaded from {server}/good/: cnnlab cache ")
    assert ds.source.endswith("(sha256 verified)")
    assert cache_files(env) == ["cnnlab/mnist.npz"]
    Handler.hits.clear()
    again = load_dataset("mnist", fallback=False, progress=False)
    assert Handler.hits == [] and again.sha256 == ds.sha256
    assert again.source == f"cnnlab cache {env}/cache/cnnlab/mnist.npz (sha256 verified)"


def test_fashion_idx_files_download(env, server, monkeypatch):
    monkeypatch.setenv("CNNLAB_MIRRORS", f"{server}/good/")
    ds = load_dataset("fashion-mnist", progress=False)
    assert ds.class_names[0] == "T-shirt/top" and ds.x_test.shape == (N_TEST, 28, 28)
    assert cache_files(env) == sorted(f"cnnlab/fashion-mnist/{n}" for n in IDX_NAMES)


def test_corrupt_cached_file_is_reported_removed_and_fetched_again(env, server, monkeypatch, capsys):
    cached = env / "cache" / "cnnlab" / "mnist.npz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(FILES["mnist.npz"][:100])          # a half-downloaded file
    monkeypatch.setenv("CNNLAB_MIRRORS", f"{server}/good/")
    ds = load_dataset("mnist", fallback=False, progress=False)
    err = capsys.readouterr().err
    assert "the cached mnist file is corrupt and was removed; it will be fetched again" in err
    assert ds.source.startswith("downloaded from")
    assert cached.read_bytes() == FILES["mnist.npz"]


def test_failed_download_falls_back_to_sample_with_mirrors_listed(env, server, monkeypatch, capsys):
    monkeypatch.setenv("CNNLAB_MIRRORS", f"{server}/missing/,{server}/corrupt/")
    ds = load_dataset("mnist", progress=False)
    err = capsys.readouterr().err
    assert ds.name == "mnist-sample"
    assert f"download {server}/missing/mnist.npz: HTTP 404 Not Found" in err
    assert f"download {server}/corrupt/mnist.npz: checksum mismatch" in err
    assert cache_files(env) == []


def test_failed_download_without_fallback_is_a_download_error(env, server, monkeypatch):
    monkeypatch.setenv("CNNLAB_MIRRORS", f"{server}/stall/")
    monkeypatch.setenv("CNNLAB_DOWNLOAD_TIMEOUT", "0.2")
    monkeypatch.setattr("cnnlab.data.download.time.sleep", lambda s: None)
    with pytest.raises(DownloadError) as info:
        load_dataset("fashion-mnist", progress=False)
    message = str(info.value)
    assert "fashion-mnist is not on this machine and could not be downloaded" in message
    assert f"download {server}/stall/train-images-idx3-ubyte.gz: timed out: no data for 0.2 s" in message
    assert "To get full Fashion-MNIST:" in message
    assert info.value.exit_code == 6
    assert cache_files(env) == []
