"""Serve trained runs over HTTP: the prediction API, the draw page and the runs dashboard.

    $ cnnlab serve runs/lecture-1 --port 8000     # then open http://127.0.0.1:8000/
    >>> from cnnlab.serve import create_app, load_served
    >>> app = create_app(load_served(["runs/lecture-1"]))   # an ASGI app (FastAPI)

`app` (routes, limits, errors), `batching` (requests in flight share a forward
pass), `models` (a run as a served model: images -> arrays -> probabilities),
`pages` (HTML pages, dashboard data, run files), `features` (feature maps for the
draw page), `server` (uvicorn, SIGTERM drains and exits 0). FastAPI and uvicorn
are imported only here, so the rest of cnnlab runs without them.
"""
from .limits import Settings  # light: the CLI reads its defaults for --help


def load_served(*args, **kwargs):
    from .models import load_served as load
    return load(*args, **kwargs)


def create_app(*args, **kwargs):
    from .app import create_app as make
    return make(*args, **kwargs)


def serve(*args, **kwargs):
    from .server import serve as run
    return run(*args, **kwargs)


__all__ = ["Settings", "create_app", "load_served", "serve"]
