"""The prediction API in one process: every endpoint, every refusal, the dynamic batcher."""
import asyncio
import base64
import json
import struct
import time
import zlib

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the server needs fastapi (requirements.lock)")
import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from cnnlab.evaluate import predict_files  # noqa: E402
from cnnlab.images import render_digit_png  # noqa: E402
from cnnlab.serve import Settings, create_app, load_served  # noqa: E402
from cnnlab.serve.batching import Batcher  # noqa: E402
from serve_support import runs_root  # noqa: E402,F401  (a session fixture)

LIMITS = Settings(max_body_bytes=300_000, max_images=4, timeout_s=5.0)


@pytest.fixture(scope="module")
def served(runs_root):  # noqa: F811
    return load_served(["mini"], runs_root)


@pytest.fixture(scope="module")
def client(served, runs_root):  # noqa: F811
    # one client for the module: its event loop (and the batcher's task in it) lives on,
    # and every refusal below goes to the same server, which must keep answering
    app = create_app(served, runs_dir=runs_root, settings=LIMITS)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def seven(runs_root, tmp_path_factory):  # noqa: F811
    path = tmp_path_factory.mktemp("img") / "seven.png"
    path.write_bytes(render_digit_png(7))
    expected = predict_files(str(runs_root / "mini"), [path], top=10)["predictions"][0]["top"]
    probs = np.zeros(10)
    for t in expected:
        probs[t["index"]] = t["probability"]
    return path, probs


def _probs(response):
    assert response.status_code == 200, response.text
    return np.array([p["probabilities"] for p in response.json()["predictions"]])


def test_health_readiness_models_and_docs(client, runs_root):  # noqa: F811
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready", "models": ["mini"]}
    models = client.get("/v1/models").json()["models"]
    assert [m["name"] for m in models] == ["mini"] and len(models[0]["version"]) == 12
    one = client.get("/v1/models/mini").json()
    assert one["input_shape"] == [28, 28, 1] and one["class_names"] == [str(i) for i in range(10)]
    assert one["parameters"] == 80 + 13530
    assert "conv2d (Conv2D)" in one["summary"] and one["metrics"]["status"] == "finished"
    assert one["spec"]["layers"][0]["Conv2D"]["filters"] == 8
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "multipart/form-data" in spec["paths"]["/v1/models/{name}/predict"]["post"]["requestBody"]["content"]


def test_every_input_form_predicts_what_cnnlab_predict_does(client, seven):
    path, expected = seven
    data = path.read_bytes()
    b64 = base64.b64encode(data).decode()
    answers = [
        client.post("/v1/models/mini/predict", files={"file": ("seven.png", data, "image/png")}),
        client.post("/v1/models/mini/predict", json={"image": b64}),
        client.post("/v1/models/mini/predict", json={"image": "data:image/png;base64," + b64}),
        client.post("/v1/models/mini/predict", content=data, headers={"content-type": "image/png"}),
    ]
    for r in answers:
        np.testing.assert_allclose(_probs(r)[0], expected, atol=1e-6)
    body = answers[0].json()
    assert body["model"] == "mini" and len(body["version"]) == 12
    top = body["predictions"][0]["top"]
    assert len(top) == 3 and top[0]["index"] == int(expected.argmax())
    assert top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]
    assert abs(sum(body["predictions"][0]["probabilities"]) - 1) < 1e-5
    two = client.post("/v1/models/mini/predict?top=5", json={"images": [b64, b64]})
    assert _probs(two).shape == (2, 10) and len(two.json()["predictions"][1]["top"]) == 5


def test_pixel_arrays_single_and_batch(client, served):
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (3, 28, 28, 1))
    expected = served["mini"].model.predict(batch.astype(np.uint8), verbose=0)
    np.testing.assert_allclose(_probs(client.post("/v1/models/mini/predict",
                                                  json={"pixels": batch.tolist()})), expected, atol=1e-6)
    np.testing.assert_allclose(_probs(client.post("/v1/models/mini/predict",
                                                  json={"pixels": batch[0].tolist(), "top": 1}))[0],
                               expected[0], atol=1e-6)


def _png_header_only(width, height) -> bytes:
    """A PNG whose header claims width x height pixels (a decompression bomb's header)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def _chunks(data: bytes, size=65536):
    for i in range(0, len(data), size):
        yield data[i:i + size]


REFUSALS = [
    ("bad base64", dict(json={"image": "not base64 !!"}), 400, "Expected base64"),
    ("bad JSON", dict(content=b'{"image": ', headers={"content-type": "application/json"}),
     400, "Invalid JSON body"),
    ("JSON nested too deeply", dict(content=b"[" * 100_000 + b"]" * 100_000,
                                    headers={"content-type": "application/json"}), 400, "nested too deeply"),
    ("file as a text field", dict(data={"file": "hello"}, files={"other": ("x", b"x")}), 422,
     "Expected an uploaded file"),
    ("JSON not an object", dict(json=[1, 2]), 422, "Received a list"),
    ("missing field", dict(json={"picture": "x"}), 422, "Received fields: picture"),
    ("images not a list", dict(json={"images": "abc"}), 422, "Expected a non-empty list"),
    ("not an image", dict(files={"file": ("a.txt", b"hello world", "text/plain")}), 415,
     "Expected PNG or JPEG"),
    ("a GIF", dict(files={"file": ("a.gif", b"GIF89a" + b"\0" * 20, "image/gif")}), 415,
     "unsupported format GIF"),
    ("empty file", dict(files={"file": ("e.png", b"", "image/png")}), 415, "is empty"),
    ("truncated PNG", dict(content=render_digit_png(3)[:200], headers={"content-type": "image/png"}),
     415, "truncated or corrupt"),
    ("decompression bomb", dict(content=_png_header_only(100_000, 100_000),
                                headers={"content-type": "image/png"}), 413, "decompression bomb"),
    ("multipart without file", dict(files={"other": ("x.png", b"x", "image/png")}), 422,
     "Missing field `file`"),
    ("wrong content type", dict(content=b"x", headers={"content-type": "text/plain"}), 415,
     "Received 'text/plain'"),
    ("wrong pixel shape", dict(json={"pixels": [[0, 1], [2, 3]]}), 422, "Received shape [2, 2]"),
    ("ragged pixels", dict(json={"pixels": [[0, 1], [2]]}), 422, "ragged"),
    ("pixels out of range", dict(json={"pixels": np.full((28, 28, 1), 300).tolist()}), 422,
     "Expected grey levels from 0 to 255"),
    ("top out of range", dict(json={"pixels": np.zeros((28, 28, 1)).tolist(), "top": 11}), 422,
     "Expected an integer from 1 to 10. Received top=11"),
    ("batch too big", dict(json={"pixels": np.zeros((5, 28, 28, 1)).tolist()}), 413,
     "Expected at most 4. Received 5"),
    ("too many files", dict(json={"images": ["AAAA"] * 5}), 413, "Expected at most 4. Received 5"),
    ("body too large", dict(content=b"\0" * 400_000, headers={"content-type": "image/png"}), 413,
     "Expected at most 300,000 bytes. Received 400,000 bytes"),
    ("chunked body too large", dict(content=_chunks(b"\0" * 400_000),
                                    headers={"content-type": "image/png"}), 413,
     "Expected at most 300,000 bytes. Received more than 300,000 bytes"),
]


@pytest.mark.parametrize("what,request_args,status,message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_are_json_with_a_status_and_a_message(client, what, request_args, status, message):
    r = client.post("/v1/models/mini/predict", **request_args)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and message in body["error"], body
    assert "Traceback" not in r.text
    assert client.get("/healthz").status_code == 200  # the server goes on


def test_unknown_model_and_unknown_file_are_404(client):
    r = client.post("/v1/models/nope/predict", json={"pixels": [0]})
    assert r.status_code == 404 and r.json()["error"] == "Unknown model 'nope'. Expected one of: mini."
    assert client.get("/v1/models/nope").status_code == 404
    for path in ("/files/../../etc/passwd", "/files/%2e%2e/x.json", "/files/mini/weights/final.safetensors",
                 "/run/nope"):
        assert client.get(path).status_code == 404, path


def test_an_internal_failure_is_a_500_in_one_line_and_the_server_goes_on(client):
    batcher = client.app.state.batchers["mini"]
    original = batcher.predict

    def broken(x):
        raise RuntimeError("boom")
    batcher.predict = broken
    try:
        r = client.post("/v1/models/mini/predict", json={"pixels": np.zeros((28, 28, 1)).tolist()})
    finally:
        batcher.predict = original
    assert r.status_code == 500 and r.json()["error"] == "Internal error (RuntimeError); the server goes on."
    assert _probs(client.post("/v1/models/mini/predict", json={"pixels": np.zeros((28, 28, 1)).tolist()})).shape == (1, 10)


def test_a_prediction_that_takes_too_long_is_refused_with_503(served, runs_root):  # noqa: F811
    app = create_app(served, runs_dir=runs_root, settings=Settings(timeout_s=0.2))
    with TestClient(app) as c:
        batcher = c.app.state.batchers["mini"]
        original = batcher.predict
        batcher.predict = lambda x: (time.sleep(0.5), original(x))[1]
        r = c.post("/v1/models/mini/predict", json={"pixels": np.zeros((28, 28, 1)).tolist()})
        assert r.status_code == 503 and "timed out after 0.2 s" in r.json()["error"]
        batcher.predict = original
        assert c.get("/healthz").status_code == 200


def _concurrent(app, n):
    async def go():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            rng = np.random.default_rng(1)
            images = [rng.integers(0, 256, (28, 28, 1)).tolist() for _ in range(n)]
            return images, await asyncio.gather(*(c.post("/v1/models/mini/predict", json={"pixels": im})
                                                  for im in images))
    return asyncio.run(go())


def test_requests_in_flight_are_batched_together(served, runs_root):  # noqa: F811
    app = create_app(served, runs_dir=runs_root, settings=Settings(max_wait_ms=200))
    images, answers = _concurrent(app, 16)
    batcher = app.state.batchers["mini"]
    assert batcher.images == 16 and batcher.calls < 16, (batcher.calls, batcher.images)
    expected = served["mini"].model.predict(np.array(images, dtype=np.uint8), verbose=0)
    np.testing.assert_allclose(np.concatenate([_probs(a) for a in answers]), expected, atol=1e-6)
    asyncio.run(batcher.close())


def test_batching_off_runs_each_request_alone(served, runs_root):  # noqa: F811
    app = create_app(served, runs_dir=runs_root, settings=Settings(max_batch=1, max_wait_ms=0))
    _, answers = _concurrent(app, 6)
    assert all(a.status_code == 200 for a in answers)
    assert app.state.batchers["mini"].calls == 6


def test_batcher_keeps_each_requests_rows_apart():
    calls = []

    def predict(x):
        calls.append(len(x))
        return x * 10

    async def go():
        b = Batcher(predict, max_batch=100, max_wait_s=0.05)
        out = await asyncio.gather(*(b.submit(np.full((k, 1), k)) for k in (1, 2, 3)))
        await b.close()
        return out
    out = asyncio.run(go())
    assert calls == [6]
    assert [o.ravel().tolist() for o in out] == [[10], [20, 20], [30, 30, 30]]


def test_pages_dashboard_and_run_files(client):
    page = client.get("/").text
    assert '<canvas id="pad"' in page and "/static/draw.js" in page and "http" not in page.split("<body>")[1]
    assert client.get("/static/draw.js").status_code == 200
    assert 'id="runs"' in client.get("/dashboard").text
    rows = client.get("/api/runs").json()["runs"]
    mini = next(r for r in rows if r["name"] == "mini")
    assert mini["status"] == "finished" and mini["epochs"] == 2 and mini["data"] == "mnist-sample"
    assert mini["curves"] == ["/files/mini/accuracy.png", "/files/mini/loss.png"]
    png = client.get(mini["curves"][0])
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    run_page = client.get("/run/mini").text
    assert "/files/mini/accuracy.png" in run_page and "conv2d (Conv2D)" in run_page


def test_feature_maps_of_a_drawing(client, seven):
    path, _ = seven
    r = client.post("/v1/models/mini/features", files={"file": ("s.png", path.read_bytes(), "image/png")})
    layers = r.json()["layers"]
    assert [(l["name"], l["shape"]) for l in layers] == [("conv2d", [26, 26, 8]), ("max_pooling2d", [13, 13, 8])]
    maps = np.array(layers[0]["maps"])
    assert maps.shape == (8, 26, 26) and maps.min() >= 0 and maps.max() <= 255


def test_training_writes_the_live_progress_the_dashboard_reads(runs_root):  # noqa: F811
    progress = json.loads((runs_root / "mini" / "progress.json").read_text())
    metrics = json.loads((runs_root / "mini" / "metrics.json").read_text())
    assert (progress["epoch"], progress["epochs"]) == (2, 2)
    assert progress["step"] == progress["steps"] == metrics["steps_per_epoch"]
    assert progress["logs"]["val_accuracy"] == metrics["final_val_accuracy"]


def test_experiment_reports_are_listed_and_viewable(served, tmp_path):
    (tmp_path / "improve").mkdir()
    (tmp_path / "improve" / "report.html").write_text("<html><h1>Improving</h1></html>")
    (tmp_path / "improve" / "secret.safetensors").write_bytes(b"\0")
    with TestClient(create_app(served, runs_dir=tmp_path)) as c:
        body = c.get("/api/runs").json()
        assert body == {"runs": [], "reports": [{"name": "improve", "url": "/files/improve/report.html"}]}
        page = c.get(body["reports"][0]["url"])
        assert page.status_code == 200 and "<h1>Improving</h1>" in page.text
        assert page.headers["content-type"].startswith("text/html")
        assert c.get("/files/improve/secret.safetensors").status_code == 404


def test_serving_a_whole_runs_folder_names_experiment_runs_apart(runs_root, tmp_path):  # noqa: F811
    import shutil

    from cnnlab.serve.models import servable_runs
    shutil.copytree(runs_root / "mini", tmp_path / "mini")
    shutil.copytree(runs_root / "mini", tmp_path / "exp" / "mini")
    (tmp_path / "unfinished").mkdir()
    shutil.copy(runs_root / "mini" / "config.yaml", tmp_path / "unfinished")
    paths, names = servable_runs(tmp_path)
    assert sorted(names) == ["exp.mini", "mini"]
    assert sorted(load_served(paths, tmp_path, names)) == ["exp.mini", "mini"]
