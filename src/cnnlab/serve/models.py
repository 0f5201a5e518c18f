"""The models a server holds: a run loaded once, its facts, and how requests become arrays.

    >>> served = load_served(["runs/lecture-1"])        # {"lecture-1": ServedModel}
    >>> batch = served["lecture-1"].from_image_bytes(png_bytes)   # uint8 (1, *input_shape)
    >>> served["lecture-1"].predict(batch)                         # probabilities (1, classes)

Images go through `cnnlab.images` (`read_image`, `prepare_image`), and arrays through
the model's own `predict`, exactly as `cnnlab predict RUN IMAGE` does, so the server
and the command line give the same probabilities for the same file.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, RunError
from ..images import prepare_image, read_image


@dataclass
class ServedModel:
    name: str
    model: object            # a cnnlab Sequential/Model with the run's final weights
    run_dir: Path
    version: str             # the first 12 hex digits of the weights file's SHA-256
    class_names: list
    input_shape: tuple
    info: dict = field(default_factory=dict)  # spec, summary, metrics: GET /v1/models/{name}

    def from_image_bytes(self, data: bytes, label: str, max_pixels: int) -> np.ndarray:
        """One PNG/JPEG -> uint8 (1, *input_shape), as `cnnlab predict` prepares a file."""
        img = read_image(data, name=label, max_pixels=max_pixels)
        return prepare_image(img, self.input_shape)[None]

    def from_pixels(self, pixels) -> np.ndarray:
        """A JSON array of grey levels 0..255, shaped input_shape (one image) or
        (N, *input_shape) (a batch) -> uint8 (N, *input_shape)."""
        try:
            arr = np.asarray(pixels, dtype=np.float64)
        except (TypeError, ValueError):
            raise DataError("Invalid value for `pixels`. Expected a (nested) array of numbers "
                            f"shaped {list(self.input_shape)} or [N, {', '.join(map(str, self.input_shape))}]. "
                            "Received a ragged array or one holding non-numbers.") from None
        if arr.shape == self.input_shape:
            arr = arr[None]
        if arr.ndim != len(self.input_shape) + 1 or arr.shape[1:] != self.input_shape:
            raise DataError("Invalid value for `pixels`. Expected an array shaped "
                            f"{list(self.input_shape)} or [N, {', '.join(map(str, self.input_shape))}]. "
                            f"Received shape {list(arr.shape)}.")
        if arr.shape[0] == 0:
            raise DataError("Invalid value for `pixels`. Expected at least one image. Received "
                            "an empty batch.")
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 255:
            raise DataError("Invalid value for `pixels`. Expected grey levels from 0 to 255. "
                            f"Received values from {np.nanmin(arr):g} to {np.nanmax(arr):g}"
                            + ("" if np.isfinite(arr).all() else " and NaN or infinite values") + ".")
        return np.rint(arr).astype(np.uint8)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """uint8 (N, *input_shape) -> float32 probabilities (N, classes). Not thread-safe:
        the batcher calls it from its one worker thread."""
        return self.model.predict(batch, batch_size=max(1, len(batch)), verbose=0)

    def top(self, probs: np.ndarray, k: int) -> list[dict]:
        order = np.argsort(-probs, kind="stable")[:k]
        return [{"class": self.class_names[i], "index": int(i), "probability": float(probs[i])}
                for i in order]


def load_served(runs, root="runs", names=None) -> dict[str, ServedModel]:
    """Load each run once; the model's name in URLs is its run directory's name, or
    `names[i]` for `runs[i]`."""
    from ..evaluate import class_names_of
    from ..runs import find_run, load, read_json
    from ..summary import summary_json, summary_text
    out: dict[str, ServedModel] = {}
    for i, ref in enumerate(runs):
        path = find_run(ref, root)
        name = names[i] if names is not None else path.name
        if name in out:
            raise ConfigError(f"Two runs named {name!r} were given ({out[name].run_dir} and {path}). "
                              "Expected runs with different directory names: a model's name in the "
                              "URL is its run's.")
        model = load(path, root)
        spec = model.to_spec()
        if len(spec.inputs) != 1 or len(spec.outputs) != 1 or len(spec.output_shape) != 1:
            raise RunError(f"Run {path} cannot be served: expected a classifier with one image "
                           f"input and one vector output. Received inputs {len(spec.inputs)}, "
                           f"output shape {spec.output_shape}.")
        n = int(spec.output_shape[0])
        metrics = read_json(path / "metrics.json", {}) or {}
        out[name] = ServedModel(
            name=name, model=model, run_dir=path, version=_weights_digest(path),
            class_names=class_names_of(model, n), input_shape=tuple(int(d) for d in spec.input_shape),
            info={"spec": spec.to_dict(), "summary": summary_text(spec),
                  "parameters": summary_json(spec).get("total_params"),
                  "metrics": {k: v for k, v in metrics.items() if k != "environment"}})
    return out


def servable_runs(root) -> tuple[list[Path], list[str]]:
    """Every run under `root` that has final weights, and its name: a run of an experiment
    folder is `experiment.variant` (two experiments may both have a `baseline`)."""
    from ..runs import list_runs
    rows = [r for r in list_runs(root) if (Path(r["path"]) / "weights" / "final.safetensors").is_file()]
    return [Path(r["path"]) for r in rows], [r["name"].replace("/", ".") for r in rows]


def _weights_digest(run_dir: Path) -> str:
    digest = hashlib.sha256()
    with open(run_dir / "weights" / "final.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]
