"""`cnnlab serve`: load the runs, then run the app under uvicorn until SIGTERM or Ctrl-C.

    >>> serve(["runs/lecture-1"], host="127.0.0.1", port=8000)

On SIGTERM (or SIGINT) uvicorn stops accepting connections, lets the requests in
flight finish, runs the app's shutdown and returns; the process then exits 0.
"""
from __future__ import annotations

import contextlib
import socket
import sys

import uvicorn

from ..errors import ConfigError, RunError
from .limits import Settings
from .models import load_served, servable_runs


def serve(runs, runs_dir="runs", host: str = "127.0.0.1", port: int = 8000,
          settings: Settings | None = None, stream=None, threads: int = 1) -> int:
    import torch

    from .app import create_app
    stream = stream or sys.stdout
    names = None
    if not runs:
        runs, names = servable_runs(runs_dir)
        if not runs:
            raise RunError(f"No run to serve: {runs_dir} holds no run with final weights. "
                           "Expected RUN arguments or a runs folder with finished runs "
                           "(`cnnlab train` makes one).")
    if not 0 <= port <= 65535:
        raise ConfigError(f"Invalid value for `--port`. Expected 0..65535. Received {port}.")
    _check_can_listen(host, port)  # before the models load: a taken port fails in a second
    # one thread by default: a server's batches are small, and torch's OpenMP threads wait at
    # every barrier for a core that the event loop or image decoding holds (20 ms instead of
    # 1.5 ms for one image of the lecture's model on a busy 2-core machine)
    torch.set_num_threads(threads)
    models = load_served(runs, runs_dir, names)
    app = create_app(models, runs_dir=runs_dir, settings=settings)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=30)
    server = DrainingServer(config)
    names = ", ".join(models)
    stream.write(f"Serving {names} on http://{host}:{port}/ (API docs at /docs, runs at "
                 f"/dashboard). Ctrl-C or SIGTERM stops it.\n")
    stream.flush()
    server.run()
    return 0


class DrainingServer(uvicorn.Server):
    """uvicorn's server, except that a signal it has drained on is not re-raised.

    uvicorn restores the previous handlers after a graceful shutdown and raises the signal
    again, which ends the process with 143 (SIGTERM) or a KeyboardInterrupt (Ctrl-C). The
    requests in flight have been answered by then: the stop was clean, so exit 0. Until
    uvicorn installs its handlers (during its startup) the default ones still apply, so a
    signal is never lost."""

    @contextlib.contextmanager
    def capture_signals(self):
        with super().capture_signals():
            yield
            self._captured_signals.clear()


def _check_can_listen(host: str, port: int) -> None:
    """ConfigError if host:port cannot be bound (taken, or an address this machine lacks),
    instead of uvicorn's log line and exit 1 after the models have loaded."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ConfigError(f"Invalid value for `--host`. Expected an address of this machine. "
                          f"Received {host!r} ({err.strerror}).") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            s.bind(address)
        except OSError as err:
            raise ConfigError(f"Cannot listen on {host}:{port}: {err.strerror}. Expected a free "
                              "port (--port) on an address of this machine (--host).") from None
