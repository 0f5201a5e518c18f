"""Test isolation: no test reads the real caches, the system datasets or the network."""
import os
import socket

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(autouse=True)
def _isolated_data_env(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("KERAS_HOME", str(home / "keras"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setenv("CNNLAB_SYSTEM_DATA", "")
    # a closed local port: any download attempt fails at once instead of reaching out
    monkeypatch.setenv("CNNLAB_MIRRORS", "http://127.0.0.1:9/")
    monkeypatch.setenv("CNNLAB_DOWNLOAD_TIMEOUT", "2")


@pytest.fixture
def offline_data_env(tmp_path, monkeypatch):
    """Fake HOME and caches, no system copy, and mirrors that refuse connections."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))     # bound, never listening: connections are refused
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.setenv("CNNLAB_SYSTEM_DATA", "")
    monkeypatch.setenv("CNNLAB_MIRRORS", f"http://127.0.0.1:{closed.getsockname()[1]}/")
    yield tmp_path
    closed.close()


def pytest_configure(config):
    config.addinivalue_line("markers", "requires_kernels: needs cnnlab's compiled kernels "
                                       "(skipped, with the reason, where they do not run)")


def pytest_collection_modifyitems(config, items):
    from cnnlab import fast
    if fast.kernels_available():
        return
    skip = pytest.mark.skip(reason=f"needs cnnlab's compiled kernels: {fast.kernels_status()}")
    for item in items:
        if "requires_kernels" in item.keywords:
            item.add_marker(skip)
