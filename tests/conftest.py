"""Test isolation: no test reads the real caches, the system datasets or the network."""
import os

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
