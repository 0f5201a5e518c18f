"""The pages in a real browser: Playwright driving Debian's chromium (`apt-get install chromium`).

Skipped, with the reason, where Playwright or chromium is missing; CI installs chromium
(.ci/run). The server is a real uvicorn on a free 127.0.0.1 port in a thread of this process.
"""
import json
import os
import shutil
import threading
import time

import httpx
import numpy as np
import pytest

from cnnlab.evaluate import predict_files
from cnnlab.images import render_digit_png
from serve_support import free_port, runs_root  # noqa: F401  (a session fixture)

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser tests need playwright "
                               "(pip, requirements.lock)")
pytest.importorskip("uvicorn", reason="the server needs uvicorn (requirements.lock)")
CHROMIUM = os.environ.get("CNNLAB_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.exists(CHROMIUM):
    pytest.skip(f"no chromium browser at {CHROMIUM} (Debian: apt-get install chromium; or set "
                "CNNLAB_CHROMIUM)", allow_module_level=True)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def server(runs_root):  # noqa: F811
    import uvicorn

    from cnnlab.serve import create_app, load_served
    # a run still training, as the dashboard sees one: metrics.json says running, progress.json moves
    live = runs_root / "live"
    live.mkdir(exist_ok=True)
    shutil.copy(runs_root / "mini" / "config.yaml", live / "config.yaml")
    (live / "metrics.json").write_text(json.dumps({"status": "running", "epochs_done": 1,
                                                   "data": {"name": "mnist-sample"}}))
    (live / "progress.json").write_text(json.dumps({"epoch": 2, "epochs": 5, "step": 10,
                                                    "steps": 125, "logs": {"loss": 0.5}}))
    app = create_app(load_served(["mini"], runs_root), runs_dir=runs_root)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def _draw(page, strokes):
    """Each stroke a list of (x, y) points in canvas pixels (280x280), drawn with the mouse."""
    box = page.locator("#pad").bounding_box()
    for points in strokes:
        x, y = points[0]
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.down()
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            for t in np.linspace(0, 1, 8)[1:]:
                page.mouse.move(box["x"] + x0 + t * (x1 - x0), box["y"] + y0 + t * (y1 - y0))
        page.mouse.up()


def _server_answer(page, server):
    image = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    r = httpx.post(f"{server}/v1/models/mini/predict", json={"image": image}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0]


def _shown(page):
    page.wait_for_function("document.querySelectorAll('#predictions tr').length === 3")
    rows = page.locator("#predictions tr")
    return [(rows.nth(i).locator("td").first.inner_text(),
             float(rows.nth(i).get_attribute("data-probability"))) for i in range(3)]


def test_drawing_a_seven_shows_the_servers_prediction_live(page, server):
    page.goto(server + "/")
    page.wait_for_selector("body[data-ready='1']")
    page.check("#show-maps")
    _draw(page, [[(70, 70), (210, 70), (120, 230)]])  # a 7: the bar, then the stem
    page.wait_for_function("document.getElementById('top-class').textContent !== ''")
    page.wait_for_timeout(500)  # the last request of the stroke, sent after the mouse went up
    expected = _server_answer(page, server)
    shown = _shown(page)
    assert page.inner_text("#top-class") == expected["top"][0]["class"]
    assert [c for c, _ in shown] == [t["class"] for t in expected["top"]]
    np.testing.assert_allclose([p for _, p in shown], [t["probability"] for t in expected["top"]],
                               atol=1e-9)
    assert abs(sum(expected["probabilities"]) - 1) < 1e-5
    # the small test model reads a clearly drawn 7 as a 7 (what the "done" asks)
    assert expected["top"][0]["class"] == "7", expected["top"]
    page.wait_for_function("document.querySelectorAll('#maps canvas').length >= 8")
    assert page.inner_text("#error") == ""


def test_the_prediction_follows_the_drawing_as_it_changes(page, server):
    page.goto(server + "/")
    page.wait_for_selector("body[data-ready='1']")
    _draw(page, [[(140, 50), (140, 230)]])  # a vertical stroke
    page.wait_for_function("document.getElementById('top-class').textContent !== ''")
    page.wait_for_timeout(500)
    first = _server_answer(page, server)
    assert page.inner_text("#top-class") == first["top"][0]["class"]
    _draw(page, [[(60, 140), (220, 140)]])  # a cross: the picture, so the answer, changes
    page.wait_for_timeout(800)
    second = _server_answer(page, server)
    assert second["probabilities"] != first["probabilities"]
    assert [c for c, _ in _shown(page)] == [t["class"] for t in second["top"]]
    page.click("#clear")
    assert page.inner_text("#top-class") == ""


def test_uploading_a_picture_and_a_bad_file(page, server, runs_root, tmp_path):  # noqa: F811
    good = tmp_path / "three.png"
    good.write_bytes(render_digit_png(3))
    expected = predict_files(str(runs_root / "mini"), [good])["predictions"][0]["top"]
    page.goto(server + "/")
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#upload", str(good))
    page.wait_for_function("document.querySelectorAll('#upload-predictions tr').length === 3")
    first = page.locator("#upload-predictions tr").first
    assert first.locator("td").first.inner_text() == expected[0]["class"]
    assert float(first.get_attribute("data-probability")) == pytest.approx(expected[0]["probability"], abs=1e-6)
    bad = tmp_path / "notes.png"
    bad.write_text("these are notes, not a picture")
    page.set_input_files("#upload", str(bad))
    page.wait_for_function("document.getElementById('error').textContent !== ''")
    assert "Expected PNG or JPEG" in page.inner_text("#error")


def test_dashboard_sorts_shows_live_progress_and_links_to_a_run(page, server, runs_root):  # noqa: F811
    page.goto(server + "/dashboard")
    page.wait_for_selector("tr[data-run='mini']")
    mini = page.locator("tr[data-run='mini'] td")
    assert [mini.nth(i).inner_text() for i in range(4)] == ["mini", "finished", "mnist-sample", "2"]
    live = page.locator("tr[data-run='live'] td.progress")
    assert live.inner_text().startswith("epoch 2/5, step 10/125")
    # training moves on: the page shows it without a reload
    (runs_root / "live" / "progress.json").write_text(json.dumps(
        {"epoch": 3, "epochs": 5, "step": 60, "steps": 125, "logs": {"loss": 0.25}}))
    page.wait_for_function("document.querySelector(\"tr[data-run='live'] td.progress\")"
                           ".textContent.startsWith('epoch 3/5, step 60/125')", timeout=10_000)
    names = lambda: page.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.run)")  # noqa: E731
    page.click("th[data-key='name']")   # already by name: descending now
    assert names() == sorted(names(), reverse=True)
    page.click("th[data-key='name']")
    assert names() == sorted(names())
    page.click("tr[data-run='mini'] a >> text=mini")
    page.wait_for_url("**/run/mini")
    assert page.inner_text("h1") == "Run mini"
    page.wait_for_function("[...document.images].every(i => i.complete && i.naturalWidth > 0)")
    assert page.locator(".curves img").count() == 2
