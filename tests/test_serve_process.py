"""`cnnlab serve` as a process: it binds 127.0.0.1, answers, and SIGTERM drains then exits 0."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("uvicorn", reason="the server needs uvicorn (requirements.lock)")
import httpx  # noqa: E402

from serve_support import free_port, runs_root  # noqa: E402,F401

SRC = str(Path(__file__).resolve().parents[1] / "src")


def start(runs_root, *flags):  # noqa: F811
    port = free_port()
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", "mini", "--runs-dir",
                             str(runs_root), "--port", str(port), *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("the server did not become ready in 60 s")


def test_sigterm_lets_the_request_in_flight_finish_then_exits_0(runs_root):  # noqa: F811
    # a 1.5 s batching wait keeps the request in flight while SIGTERM arrives
    proc, url = start(runs_root, "--max-wait-ms", "1500")
    try:
        answer = {}

        def slow_request():
            answer["r"] = httpx.post(url + "/v1/models/mini/predict",
                                     json={"pixels": np.zeros((28, 28, 1)).tolist()}, timeout=30)
        t = threading.Thread(target=slow_request)
        t.start()
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        t.join(30)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert answer["r"].status_code == 200 and len(answer["r"].json()["predictions"]) == 1
    assert proc.returncode == 0, err
    assert f"Serving mini on {url}/" in out and "Traceback" not in err
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/healthz", timeout=2)


def test_serve_refuses_a_missing_run_with_exit_5(runs_root):  # noqa: F811
    r = subprocess.run([sys.executable, "-m", "cnnlab", "serve", "nope", "--runs-dir", str(runs_root)],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
    assert r.returncode == 5 and "No run found at 'nope'" in r.stderr and "Traceback" not in r.stderr


def test_a_taken_port_is_refused_with_exit_2_before_loading(runs_root):  # noqa: F811
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "cnnlab", "serve", "mini", "--out", str(runs_root),
                            "--port", str(port)], capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": SRC}, timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"Cannot listen on 127.0.0.1:{port}: Address already in use." in r.stderr
    assert "Traceback" not in r.stderr
