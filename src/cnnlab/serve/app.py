"""The HTTP API: models, predictions, health; the pages and the dashboard are added by `pages`.

    >>> app = create_app(load_served(["runs/lecture-1"]), runs_dir="runs")
    >>> # uvicorn.run(app) or fastapi.testclient.TestClient(app)

    POST /v1/models/{name}/predict   multipart `file` (repeatable), JSON {"image": base64},
                                     {"images": [base64, ...]}, {"pixels": [...]} or a raw
                                     image/png | image/jpeg body; ?top=K (default 3)
    GET  /v1/models, /v1/models/{name}, /healthz, /readyz; OpenAPI at /docs

Every refusal is JSON `{"error": message, "status": code}` with a 4xx status (503 when a
prediction timed out); an unexpected failure is a 500 with a one-line message, never
a traceback, and the server goes on.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from ..errors import CnnlabError, DataError
from .batching import Batcher
from .limits import BodyLimit, Refusal, Settings
from .models import ServedModel

log = logging.getLogger("cnnlab.serve")

IMAGE_TYPES = ("image/png", "image/jpeg")
INLINE_DECODE_BYTES = 32 * 1024  # smaller uploads are decoded on the event loop when it is idle
_PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
    "application/json": {"schema": {"type": "object", "properties": {
        "image": {"type": "string", "description": "base64 PNG/JPEG (a data: URL too)"},
        "images": {"type": "array", "items": {"type": "string"}},
        "pixels": {"type": "array", "description": "grey levels 0..255 shaped input_shape "
                                                   "or [N, *input_shape]"},
        "top": {"type": "integer"}}}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "image/jpeg": {"schema": {"type": "string", "format": "binary"}}}}}


def create_app(models: dict[str, ServedModel], runs_dir="runs", settings: Settings | None = None,
               pages: bool = True) -> FastAPI:
    settings = settings or Settings()
    batchers = {name: Batcher(m.predict, settings.max_batch, settings.max_wait_ms / 1000)
                for name, m in models.items()}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        app.state.ready = True
        yield
        app.state.ready = False  # draining: uvicorn has stopped accepting connections
        for b in batchers.values():
            await b.close()

    app = FastAPI(title="cnnlab prediction server", version="1", lifespan=lifespan,
                  description="Predictions of cnnlab runs; the pages are at / and /dashboard.")
    app.state.ready = False
    app.state.models, app.state.batchers, app.state.settings = models, batchers, settings
    _add_error_handlers(app)
    _add_api(app, models, batchers, settings)
    if pages:
        from .pages import add_pages
        add_pages(app, runs_dir)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "status": status}, status_code=status)


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Refusal)
    async def refusal(request, err: Refusal):
        return _error(err.status, err.message)

    @app.exception_handler(HTTPException)
    async def http_error(request, err: HTTPException):
        detail = err.detail if isinstance(err.detail, str) else json.dumps(err.detail)
        return _error(err.status_code, detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, err: RequestValidationError):
        first = err.errors()[0] if err.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(422, f"Invalid value for `{where}`: {first.get('msg', 'invalid')}. "
                           f"Received {first.get('input')!r}.")

    @app.exception_handler(CnnlabError)
    async def cnnlab_error(request, err: CnnlabError):
        return _error(422, str(err))

    @app.exception_handler(Exception)
    async def unexpected(request, err: Exception):  # a bug: logged, answered in one line
        log.exception("unexpected error on %s", request.url.path)
        return _error(500, f"Internal error ({type(err).__name__}); the server goes on.")


def _add_api(app: FastAPI, models, batchers, settings: Settings) -> None:
    def model_or_404(name: str) -> ServedModel:
        if name not in models:
            raise Refusal(404, f"Unknown model {name!r}. Expected one of: "
                               f"{', '.join(sorted(models)) or '(none served)'}.")
        return models[name]

    @app.get("/healthz", tags=["health"])
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz():
        if not app.state.ready:
            return _error(503, "Not ready: starting or draining.")
        return {"status": "ready", "models": sorted(models)}

    @app.get("/v1/models", tags=["models"])
    async def list_models():
        return {"models": [_describe(m, full=False) for m in models.values()]}

    @app.get("/v1/models/{name}", tags=["models"])
    async def get_model(name: str):
        return _describe(model_or_404(name), full=True)

    @app.post("/v1/models/{name}/predict", tags=["models"], openapi_extra=_PREDICT_BODY)
    async def predict(name: str, request: Request, top: int | None = None):
        served = model_or_404(name)
        batcher = batchers[name]
        batcher.announce()  # so the batch being collected waits for this one
        try:
            batch, k = await _read_inputs(request, served, settings, busy=batcher.coming > 1)
            k = _check_top(top if top is not None else k, settings.top, len(served.class_names))
        except BaseException:
            batcher.withdraw()
            raise
        try:
            probs = await asyncio.wait_for(batcher.submit(batch), settings.timeout_s)
        except asyncio.TimeoutError:
            raise Refusal(503, f"Prediction timed out after {settings.timeout_s:g} s (the "
                               "server is overloaded). Expected to retry later.") from None
        # a JSONResponse as is: FastAPI's encoder walks every value again (~0.1 ms a request)
        return JSONResponse({"model": name, "version": served.version,
                             "predictions": [{"top": served.top(p, k), "probabilities": p.tolist()}
                                             for p in probs]})

    feature_maps: dict = {}

    @app.post("/v1/models/{name}/features", tags=["models"], openapi_extra=_PREDICT_BODY)
    async def features(name: str, request: Request):
        """What each image-shaped layer computes for the request's first image (the draw page)."""
        from .features import FeatureMaps
        served = model_or_404(name)
        batch, _ = await _read_inputs(request, served, settings)
        if name not in feature_maps:
            feature_maps[name] = FeatureMaps(served.model)
        layers = await run_in_threadpool(feature_maps[name], batch[:1])
        return {"model": name, "version": served.version, "layers": layers}


def _describe(m: ServedModel, full: bool) -> dict:
    d = {"name": m.name, "version": m.version, "input_shape": list(m.input_shape),
         "class_names": m.class_names, "run": str(m.run_dir)}
    if full:
        d.update(m.info)
    return d


def _check_top(k, default: int, classes: int) -> int:
    if k is None:
        return min(default, classes)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= classes:
        raise Refusal(422, f"Invalid value for `top`. Expected an integer from 1 to {classes}. "
                           f"Received top={k!r}.")
    return k


async def _read_inputs(request: Request, served: ServedModel, settings: Settings,
                       busy: bool = False):
    """The request's images as uint8 (N, *input_shape), and the `top` a JSON body asked for.
    `busy`: other requests are in flight (decode in threads, not on the loop)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        images = await _multipart_files(request, settings)
        return await _decode_all(served, images, settings, busy), None
    if kind in IMAGE_TYPES:
        return await _decode_all(served, [("<body>", await request.body())], settings, busy), None
    if kind == "application/json":
        return await _json_inputs(request, served, settings, busy)
    raise Refusal(415, "Unsupported content type. Expected multipart/form-data, application/json, "
                       f"image/png or image/jpeg. Received {kind or 'none'!r}.")


async def _multipart_files(request: Request, settings: Settings) -> list[tuple[str, bytes]]:
    form = await request.form(max_files=settings.max_images, max_fields=16)
    files = form.getlist("file")
    if not files:
        raise Refusal(422, "Missing field `file`. Expected a multipart form with one or more "
                           f"`file` parts. Received fields: {', '.join(form.keys()) or 'none'}.")
    out = []
    for f in files:
        if not isinstance(f, UploadFile):
            raise Refusal(422, "Invalid value for `file`. Expected an uploaded file. Received "
                               "a text field.")
        out.append((f.filename or "<upload>", await f.read()))
    return out


async def _json_inputs(request: Request, served: ServedModel, settings: Settings, busy: bool):
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as err:
        raise Refusal(400, f"Invalid JSON body: {err}.") from None
    except RecursionError:
        raise Refusal(400, "Invalid JSON body: nested too deeply. Expected an object with "
                           "`image`, `images` or `pixels`.") from None
    if not isinstance(body, dict):
        raise Refusal(422, "Invalid JSON body. Expected an object with `image`, `images` or "
                           f"`pixels`. Received a {type(body).__name__}.")
    given = [k for k in ("image", "images", "pixels") if k in body]
    if len(given) != 1:
        raise Refusal(422, "Expected exactly one of the fields `image`, `images`, `pixels`. "
                           f"Received fields: {', '.join(map(str, body)) or 'none'}.")
    field = given[0]
    if field == "pixels":
        batch = served.from_pixels(body["pixels"])
        _check_count(len(batch), settings)
        return batch, body.get("top")
    texts = [body["image"]] if field == "image" else body["images"]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
        raise Refusal(422, f"Invalid value for `{field}`. Expected "
                           + ("a base64 string" if field == "image" else "a non-empty list of base64 strings")
                           + f". Received {type(body[field]).__name__}.")
    _check_count(len(texts), settings)
    images = [(f"{field}[{i}]" if field == "images" else "image", _b64(t, field, i))
              for i, t in enumerate(texts)]
    return await _decode_all(served, images, settings, busy), body.get("top")


def _b64(text: str, field: str, i: int) -> bytes:
    if text.startswith("data:"):  # a data URL, as a canvas's toDataURL gives
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        where = field if field == "image" else f"{field}[{i}]"
        raise Refusal(400, f"Invalid value for `{where}`. Expected base64 (RFC 4648) text. "
                           f"Received text that does not decode ({err}).") from None


def _check_count(n: int, settings: Settings) -> None:
    if n > settings.max_images:
        raise Refusal(413, f"Too many images in one request. Expected at most "
                           f"{settings.max_images}. Received {n}.")


async def _decode_all(served: ServedModel, images, settings: Settings, busy: bool):
    _check_count(len(images), settings)

    def decode():
        import numpy as np
        return np.concatenate([served.from_image_bytes(data, label, settings.max_pixels)
                               for label, data in images])
    try:
        if not busy and sum(len(data) for _, data in images) <= INLINE_DECODE_BYTES:
            return decode()  # a lone drawing or small digit: ~0.5 ms, less than a thread hop
        # a photo would stall the loop; under load, PIL's decoding and resizing release the
        # GIL, so threads decode while the loop parses the next requests
        return await run_in_threadpool(decode)
    except DataError as err:
        bomb = "decompression bomb" in str(err)
        raise Refusal(413 if bomb else 415, str(err)) from None
