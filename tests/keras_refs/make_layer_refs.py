"""Generate the Keras reference fixtures for the layers of issue 15 item 4.

Like make_refs.py (whose helpers it reuses, and whose README applies), but it reads
specs_layers.yaml and writes only its own files, so the original fixtures stay
byte for byte as they were:

* refs_layers.json - the same record as refs.json, per spec of specs_layers.yaml;
* layers_forward_<name>.npz - one forward fixture per valid spec (same keys as
  forward_<name>.npz).

Run once, with real Keras (not by the test suite)::

    KERAS_BACKEND=torch /work/refenv/bin/python tests/keras_refs/make_layer_refs.py

Differences from make_refs.py: `InputLayer` entries count as inputs (not model
layers) like `Input`; every list in the arguments is passed as a tuple (Keras
reads padding and cropping pairs either way); the weight rules cover
`depthwise_kernel` and `pointwise_kernel`; no JAX cross-check (no jax here).
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"  # Keras messages print sets: reproducible refs
    os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]])

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

import make_refs as base  # noqa: E402

SPECS = HERE / "specs_layers.yaml"
REFS = HERE / "refs_layers.json"
PREFIX = "layers_forward_"
INPUTS = ("Input", "InputLayer")


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, list) else v


def build(spec: dict):
    """make_refs.build, with InputLayer as an input entry and lists passed as tuples."""
    return base.build(spec, kwargs_of=lambda raw: {k: _tuples(v) for k, v in (raw or {}).items()},
                      inputs=INPUTS)


_random_weight = base.random_weight


def random_weight(rng, name, shape):
    """make_refs's rules; the separable kernels are drawn as kernels (N(0, 1/sqrt(fan_in)))."""
    if name in ("depthwise_kernel", "pointwise_kernel"):
        name = "kernel"
    return _random_weight(rng, name, shape)


def make_forward(name: str, model) -> dict:
    """make_refs.make_forward (same seeds and keys), written under this file set's prefix."""
    with tempfile.TemporaryDirectory() as tmp:
        base.HERE = Path(tmp)
        try:
            record = base.make_forward(name, model)
        finally:
            base.HERE = HERE
        target = HERE / f"{PREFIX}{name}.npz"
        shutil.move(os.path.join(tmp, record["file"]), target)
    record["file"] = target.name
    return record


def main() -> None:
    if keras.backend.backend() != "torch":
        raise SystemExit("run with KERAS_BACKEND=torch")
    base.random_weight = random_weight
    data = yaml.safe_load(SPECS.read_text(encoding="utf-8"))
    for old in HERE.glob(f"{PREFIX}*.npz"):
        old.unlink()
    specs_out, invalid_out = {}, {}
    for entry in data["specs"]:
        name = entry["name"]
        try:
            model, mapping = build(entry["spec"])
            model(np.zeros((2,) + tuple(int(d) for d in model.inputs[0].shape[1:]), np.float32))
        except base.Refused as r:
            raise SystemExit(f"valid spec {name!r} refused by Keras at {r.stage}: "
                             f"{base.clean_message(r.exc)}")
        record = {"spec": entry["spec"], **base.summarize(model, mapping)}
        record["forward"] = make_forward(name, model)
        specs_out[name] = record
        print(f"{name:45s} params={record['total_params']:>7,d}  out={record['output_shape']}")
    for entry in data.get("invalid", []):
        name = entry["name"]
        try:
            build(entry["spec"])
        except base.Refused as r:
            invalid_out[name] = {"spec": entry["spec"], "error_type": type(r.exc).__name__,
                                 "error": base.clean_message(r.exc), "stage": r.stage,
                                 "spec_layer_index": r.spec_index}
            print(f"{name:45s} refused at {r.stage}: {type(r.exc).__name__}")
            continue
        raise SystemExit(f"invalid spec {name!r} was accepted by Keras")

    import torch  # only for the version record

    refs = {
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "generated_by": "tests/keras_refs/make_layer_refs.py",
        "notes": "as refs.json (see README.md); forward files are layers_forward_<name>.npz",
        "specs": specs_out,
        "invalid": invalid_out,
    }
    REFS.write_text(json.dumps(refs, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {REFS.name}: {len(specs_out)} specs, {len(invalid_out)} invalid")


if __name__ == "__main__":
    main()
