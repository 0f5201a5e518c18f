"""The web pages and what they read: the draw page, the runs dashboard, a run's page.

    GET /                     draw a digit, upload a picture (static/index.html)
    GET /dashboard            every run of the runs folder, sortable, live (static/dashboard.html)
    GET /api/runs             the dashboard's rows: `cnnlab runs` plus progress.json while training
    GET /run/{name}           a run's page: headline figures, curves, summary, files
    GET /files/{name}/{file}  a file of the runs folder (curves, reports, metrics), read-only

Plain HTML and a little JavaScript in static/, no build step, nothing from a CDN.
Files are served only from inside the runs folder and only with the suffixes listed
in `SERVED_SUFFIXES`.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from ..runs import list_runs, read_json
from .limits import Refusal

STATIC = Path(__file__).parent / "static"
SERVED_SUFFIXES = {".png": "image/png", ".html": "text/html", ".md": "text/plain",
                   ".csv": "text/csv", ".json": "application/json", ".txt": "text/plain",
                   ".yaml": "text/plain"}
CURVES = ("accuracy.png", "loss.png")


def add_pages(app: FastAPI, runs_dir) -> None:
    root = Path(runs_dir)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard():
        return FileResponse(STATIC / "dashboard.html")

    @app.get("/api/runs", tags=["runs"])
    async def runs():
        return {"runs": run_rows(root), "reports": reports(root)}

    @app.get("/run/{name:path}", include_in_schema=False)
    async def run_page(name: str):
        return HTMLResponse(render_run(root, name))

    @app.get("/files/{path:path}", include_in_schema=False)
    async def files(path: str):
        return FileResponse(inside(root, path), media_type=SERVED_SUFFIXES[Path(path).suffix])


def run_rows(root: Path) -> list[dict]:
    rows = list_runs(root)
    for row in rows:
        path = Path(row["path"])
        row["progress"] = read_json(path / "progress.json", None) if row["status"] == "running" else None
        row["curves"] = [f"/files/{row['name']}/{c}" for c in CURVES if (path / c).is_file()]
        row.pop("path")
    return rows


def reports(root: Path) -> list[dict]:
    """Experiment and comparison reports: a folder of the runs folder holding report.html."""
    if not root.is_dir():
        return []
    return [{"name": p.parent.name, "url": f"/files/{p.parent.name}/report.html"}
            for p in sorted(root.glob("*/report.html"))]


def inside(root: Path, relative: str) -> Path:
    """`relative` as a file inside the runs folder, or a 404 (never a file outside it)."""
    path = (root / relative).resolve()
    base = root.resolve()
    if (base not in path.parents or path.suffix not in SERVED_SUFFIXES or not path.is_file()):
        raise Refusal(404, f"No file {relative!r} in the runs folder. Expected a run's curve, "
                           "report, metrics or history file.")
    return path


def render_run(root: Path, name: str) -> str:
    run = inside(root, f"{name}/config.yaml").parent
    m = read_json(run / "metrics.json", {}) or {}
    e = html.escape
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(_fmt(m.get(k)))}</td></tr>" for k in (
        "status", "epochs_done", "final_val_accuracy", "best_val_accuracy", "best_epoch",
        "final_accuracy", "final_val_loss", "train_seconds", "params"))
    data = e(json.dumps(m.get("data", {}).get("name")))
    curves = "".join(f'<img src="/files/{e(name)}/{c}" alt="{c}">' for c in CURVES
                     if (run / c).is_file())
    summary = (run / "summary.txt").read_text() if (run / "summary.txt").is_file() else ""
    links = "".join(f'<li><a href="/files/{e(name)}/{p.name}">{e(p.name)}</a></li>'
                    for p in sorted(run.iterdir()) if p.suffix in SERVED_SUFFIXES)
    return (f'<!doctype html><html><head><meta charset="utf-8"><title>{e(name)}</title>'
            '<link rel="stylesheet" href="/static/style.css"></head><body>'
            '<nav><a href="/">Draw</a> <a href="/dashboard">Runs</a></nav>'
            f'<h1>Run {e(name)}</h1><p>data: {data}</p><table id="run-metrics">{rows}</table>'
            f'<h2>Curves</h2><div class="curves">{curves or "<p>No curves yet.</p>"}</div>'
            f'<h2>Model</h2><pre>{e(summary)}</pre><h2>Files</h2><ul>{links}</ul></body></html>')


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4f}"
    return "-" if v is None else str(v)
