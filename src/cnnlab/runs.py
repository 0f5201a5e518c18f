"""Run directories: create (never overwrite), find by name or path, list, load.

    runs/<name>/
      config.yaml  summary.txt  history.csv  history.json  metrics.json
      weights/final.safetensors  weights/best.safetensors  checkpoint.safetensors
      accuracy.png  loss.png

    >>> model = cnnlab.load("runs/lecture-1")       # ready for predict / evaluate
"""
from __future__ import annotations

import csv
import io
import json
import os
import time
from pathlib import Path

from .errors import DiskError, RunError
from .guard import check_name, make_owned_dir
from .io import atomic_write, disk_error
from .tolerant import check_metrics, run_file

DEFAULT_ROOT = Path("runs")


def create_run_dir(root, name: str | None = None, prefix: str = "run") -> Path:
    """A new, empty run directory; an existing run is never reused."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DiskError(f"Could not create the runs folder {root}: it is a file. Expected a "
                        "folder (--out).") from None
    except OSError as err:
        raise disk_error(root, err) from None
    if name is not None:
        path = root / check_name(name)
        try:
            make_owned_dir(path)
        except FileExistsError:
            raise RunError(f"A run named {name!r} already exists in {root}. Choose another "
                           f"--name, or resume it with --resume {path}.") from None
        except OSError as err:
            raise disk_error(path, err) from None
        return path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        path = root / (f"{prefix}-{stamp}" + (f"-{i}" if i else ""))
        try:
            return make_owned_dir(path)
        except FileExistsError:
            continue
        except OSError as err:
            raise disk_error(path, err) from None
    raise RunError(f"Could not create a new run directory in {root}.")


def find_run(ref, root=DEFAULT_ROOT) -> Path:
    """RUN as a path to a run directory, or a name under the runs folder."""
    ref = str(ref)
    candidates = (Path(ref), Path(root) / ref)
    for path in candidates:
        if path.is_dir() and (path / "config.yaml").is_file():
            return path
    for path in candidates:
        if path.is_dir():
            raise RunError(f"{path} is not a cnnlab run: it has no config.yaml. "
                           "`cnnlab runs` lists the runs.")
    raise RunError(f"No run found at {ref!r} (looked for a run directory with config.yaml at "
                   f"{ref} and {Path(root) / ref}). `cnnlab runs` lists the runs.")


def read_json(path, default=None):
    """The JSON in a regular file of bounded size; `default` if there is none; RunError if
    it cannot be read or parsed."""
    from .bounded import MAX_JSON_BYTES, read_bytes
    if not os.path.lexists(path):
        return default
    try:
        return json.loads(read_bytes(path, "run file", MAX_JSON_BYTES, RunError))
    except (ValueError, RecursionError) as err:
        raise RunError(f"Cannot read {path}: {err}.") from None


def write_json(path, data) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_history(run_dir: Path, history: dict) -> None:
    write_json(run_dir / "history.json", history)
    keys = list(history)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["epoch", *keys])
    n = max((len(v) for v in history.values()), default=0)
    for i in range(n):
        w.writerow([i + 1, *(history[k][i] if i < len(history[k]) else "" for k in keys)])
    atomic_write(run_dir / "history.csv", buf.getvalue())


def list_runs(root=DEFAULT_ROOT, _base=None) -> list[dict]:
    """One row per run (sorted by time): name, status, epochs, final/best val accuracy."""
    root = Path(root)
    base = root if _base is None else _base
    rows = []
    if not root.is_dir():
        return rows
    for path in sorted(root.iterdir(), key=_mtime):
        if path.is_symlink() and not (path / "config.yaml").is_file():
            continue  # never descend through links: a link to a parent would never end
        if not (path / "config.yaml").is_file():
            if path.is_dir() and _holds_runs(path):
                rows.extend(list_runs(path, base))  # an experiment folder
            continue
        m, damaged = run_file(path / "metrics.json", check_metrics, {})
        rows.append({"name": str(path.relative_to(base)),
                     "path": str(path),
                     "status": "damaged" if damaged else (m or {}).get("status", "unknown"),
                     "epochs": m.get("epochs_done"), "val_accuracy": m.get("final_val_accuracy"),
                     "best_val_accuracy": m.get("best_val_accuracy"),
                     "data": (m.get("data") or {}).get("name"),
                     "seconds": m.get("train_seconds")})
    return rows


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # a broken link, or a file removed meanwhile
        return 0.0


def _holds_runs(path: Path) -> bool:
    try:
        return any((path / c / "config.yaml").is_file() for c in os.listdir(path)
                   if (path / c).is_dir())
    except OSError:
        return False


def format_runs(rows: list[dict]) -> str:
    if not rows:
        return "No runs yet. Start one with `cnnlab train`."
    head = f"{'run':40} {'status':12} {'epochs':>6} {'val_acc':>8} {'best':>8}  data"
    lines = [head, "-" * len(head)]

    def pct(v):
        return f"{v:.4f}" if isinstance(v, (int, float)) else "-"
    for r in rows:
        lines.append(f"{r['name'][:40]:40} {r['status']:12} {str(r['epochs'] or '-'):>6} "
                     f"{pct(r['val_accuracy']):>8} {pct(r['best_val_accuracy']):>8}  {r['data'] or '-'}")
    return "\n".join(lines)


def load(run, root=DEFAULT_ROOT, weights: str = "final"):
    """The run's model, compiled as it was trained, with its weights loaded."""
    from .config import RunConfig
    from .models import Sequential
    path = find_run(run, root)
    cfg = RunConfig.load(path / "config.yaml")
    model = Sequential.from_spec(cfg.spec)
    model.compile(loss=cfg.train["loss"], optimizer=cfg.train["optimizer"],
                  metrics=cfg.train["metrics"], device="cpu")
    wpath = path / "weights" / f"{weights}.safetensors"
    if not wpath.is_file():
        status = (read_json(path / "metrics.json", {}) or {}).get("status")
        if status == "finished":
            hint = "the run finished, but the file has been removed"
        elif weights == "final":
            hint = f"it has not finished: resume it with `cnnlab train --resume {path}`"
        else:
            hint = "it has not finished an epoch with validation yet"
        raise RunError(f"Run {path} has no {weights} weights ({wpath} is missing): {hint}.")
    model.load_weights(wpath)
    model.run_dir = path
    model.run_config = cfg
    return model
