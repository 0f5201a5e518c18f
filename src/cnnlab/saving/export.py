"""A run's model as a file other tools open: `cnnlab export RUN --format keras|onnx|torchscript`.

    >>> export_run("runs/lecture-1")                        # -> runs/lecture-1/model.keras
    >>> export_run("lecture-1", output="m.keras", weights="best")
    >>> export_run("lecture-1", "onnx")                     # -> runs/lecture-1/model.onnx

The run is loaded as `cnnlab.load` does (spec, compile settings, weights), then
written with `model.save`, so the file opens in `keras.models.load_model`;
ONNX and TorchScript files are written by `saving.portable`.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError

FORMATS = {"keras": ".keras", "onnx": ".onnx", "torchscript": ".pt"}


def export_run(run, fmt: str = "keras", output=None, root="runs", weights: str = "final") -> Path:
    if fmt not in FORMATS:
        raise ConfigError(f"Unknown export format {fmt!r}. Expected one of: "
                          f"{', '.join(FORMATS)}.")
    from ..runs import load
    model = load(run, root, weights=weights)
    path = Path(output) if output is not None else model.run_dir / f"model{FORMATS[fmt]}"
    if not str(path).endswith(FORMATS[fmt]):
        raise ConfigError(f"The output file for --format {fmt} must end in {FORMATS[fmt]}. "
                          f"Received {path}.")
    if fmt == "keras":
        model.save(path)
    else:
        from . import portable
        {"onnx": portable.write_onnx, "torchscript": portable.write_torchscript}[fmt](model, path)
    return path
