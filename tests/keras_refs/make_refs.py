"""Generate Keras reference fixtures for cnnlab's parity tests.

This script needs real Keras and is NOT run by the test suite; the tests only
read what it writes (refs.json and forward_<name>.npz in this folder).  Run it
in a separate virtual environment outside the repository::

    python3 -m venv /tmp/kvenv
    /tmp/kvenv/bin/pip install torch==2.13.0 keras numpy pyyaml "jax[cpu]"
    KERAS_BACKEND=torch /tmp/kvenv/bin/python tests/keras_refs/make_refs.py

(``torch==2.13.0`` must stay pinned: an unpinned torch pulls a CUDA build.
``jax`` is optional: with it, every spec is rebuilt under Keras's JAX backend,
whose conv/pool semantics are TensorFlow's, and the results are compared with
the torch-backend ones; see README.md.)

Input: specs.yaml beside this file.  Output, beside this file:

* refs.json - per valid spec: Keras's layer names, types, output shapes and
  parameter counts, totals, the spec-index -> Keras-layer-index mapping and
  (for ``forward: true`` specs) a description of the npz; per invalid spec:
  the exception Keras raises.
* forward_<name>.npz - for ``forward: true`` specs: ``input`` (float32, Keras
  layout N,H,W,C or N,D, batch 4), ``output`` (``model(x, training=False)``),
  ``w{k}_{j}`` = ``model.layers[k].get_weights()[j]`` and ``a{k}`` = the
  output of ``model.layers[k]`` (inference mode) for each Keras layer k whose
  output is small enough (refs.json lists which were kept); where the JAX
  backend disagrees with the torch one, also ``output_jax`` and ``a{k}_jax``.

Internal mode ``--crosscheck OUT.npz`` (run by the main mode in a subprocess
with KERAS_BACKEND=jax) rebuilds every spec and writes its own results there.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    # Some Keras messages print Python sets; fix the hash seed so that
    # refs.json is byte-for-byte reproducible.
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]])

import numpy as np  # noqa: E402
import yaml  # noqa: E402

import keras  # noqa: E402

HERE = Path(__file__).resolve().parent
SPECS = HERE / "specs.yaml"
REFS = HERE / "refs.json"
BATCH = 4
# per-layer outputs a{k} larger than this many elements are not stored (size)
MAX_ACTIVATION_ELEMENTS = 16384
# keys whose list values Keras expects as tuples
TUPLE_KEYS = {"kernel_size", "pool_size", "strides", "target_shape", "input_shape", "shape"}
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Refused(Exception):
    """Keras refused a spec; carries where."""

    def __init__(self, exc: BaseException, stage: str, spec_index: int | None):
        super().__init__(str(exc))
        self.exc = exc
        self.stage = stage
        self.spec_index = spec_index


def _kwargs(raw: dict | None) -> dict:
    out = {}
    for key, value in (raw or {}).items():
        out[key] = tuple(value) if key in TUPLE_KEYS and isinstance(value, list) else value
    return out


def build(spec: dict, kwargs_of=_kwargs, inputs=("Input",)):
    """Build the Keras Sequential model for a spec in a fresh Keras session.

    `kwargs_of` turns a layer's YAML arguments into Keras's; `inputs` are the class names
    that stand for the model's input (make_layer_refs.py adds InputLayer).

    Layers are added one at a time so that a refusal can be pinned to the
    spec layer that caused it.  Returns (model, mapping) where mapping[i] is
    the index in model.layers of spec layer i (None for an ``Input`` entry).
    """
    keras.backend.clear_session()  # fresh auto names: conv2d, conv2d_1, ...
    model = keras.Sequential()
    if "input_shape" in spec:
        model.add(keras.Input(shape=tuple(spec["input_shape"])))
    mapping: list[int | None] = []
    next_index = 0
    for i, entry in enumerate(spec.get("layers") or []):
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(f"spec layer {i} is not a one-key mapping: {entry!r}")
        ((cls_name, raw),) = entry.items()
        kwargs = kwargs_of(raw)
        try:
            if cls_name == "Input":
                obj = keras.Input(**kwargs)
            else:
                obj = getattr(keras.layers, cls_name)(**kwargs)
        except Exception as exc:  # noqa: BLE001 - we record what Keras says
            raise Refused(exc, "construct", i) from exc
        try:
            model.add(obj)
        except Exception as exc:  # noqa: BLE001
            raise Refused(exc, "build", i) from exc
        if cls_name in inputs:
            mapping.append(None)
        else:
            mapping.append(next_index)
            next_index += 1
    try:
        model.count_params()
    except Exception as exc:  # noqa: BLE001
        raise Refused(exc, "count_params", None) from exc
    return model, mapping


def clean_message(exc: BaseException) -> str:
    """Keras's message without ANSI codes and without the call-context wrapper."""
    text = ANSI.sub("", str(exc)).strip()
    m = re.match(r"Exception encountered when calling .*?\n\n(.*?)(\n\nArguments received by.*)?$", text, re.S)
    if m:
        text = m.group(1).strip()
    return text


def _shape(shape) -> list:
    return [None if d is None else int(d) for d in shape]


def _count(weights) -> int:
    return int(sum(math.prod(int(d) for d in w.shape) for w in weights))


def summarize(model, mapping: list) -> dict:
    inverse = {k: i for i, k in enumerate(mapping) if k is not None}
    layers = []
    for k, layer in enumerate(model.layers):
        layers.append(
            {
                "index": k,
                "spec_index": inverse.get(k),
                "name": layer.name,
                "type": type(layer).__name__,
                "output_shape": _shape(layer.output.shape),
                "params": int(layer.count_params()),
                "trainable": _count(layer.trainable_weights),
                "non_trainable": _count(layer.non_trainable_weights),
                "weights": [
                    {"name": w.name, "shape": _shape(w.shape), "trainable": bool(w.trainable)}
                    for w in layer.weights
                ],
            }
        )
    return {
        "input_shape": _shape(model.inputs[0].shape),
        "output_shape": _shape(model.outputs[0].shape),
        "layers": layers,
        "total_params": int(model.count_params()),
        "trainable_params": _count(model.trainable_weights),
        "non_trainable_params": _count(model.non_trainable_weights),
        "spec_to_keras_layer_index": mapping,
    }


def seed_for(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


def random_weight(rng: np.random.Generator, name: str, shape: tuple) -> np.ndarray:
    if name == "kernel":
        fan_in = math.prod(shape[:-1])
        value = rng.normal(0.0, 1.0 / math.sqrt(fan_in), shape)
    elif name == "bias":
        value = rng.normal(0.0, 0.1, shape)
    elif name == "gamma":
        value = rng.uniform(0.5, 1.5, shape)
    elif name == "beta":
        value = rng.normal(0.0, 0.1, shape)
    elif name == "moving_mean":
        value = rng.normal(0.0, 0.5, shape)
    elif name == "moving_variance":
        value = rng.uniform(0.5, 2.0, shape)
    else:
        raise ValueError(f"no rule for a weight named {name!r}")
    return value.astype(np.float32)


def to_numpy(t) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(t))


def run_forward(model, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """model(x, training=False) and every layer's own output, chained."""
    out = to_numpy(model(x, training=False))
    acts = []
    h = keras.ops.convert_to_tensor(x)
    for layer in model.layers:
        h = layer(h, training=False)
        acts.append(to_numpy(h))
    np.testing.assert_allclose(acts[-1], out, rtol=0, atol=1e-6)
    return out, acts


def make_forward(name: str, model) -> dict:
    """Seed the weights, run a seeded batch, write forward_<name>.npz."""
    rng = np.random.default_rng(seed_for(name))
    arrays: dict[str, np.ndarray] = {}
    weight_keys = {}
    for k, layer in enumerate(model.layers):
        if not layer.weights:
            continue
        layer.set_weights([random_weight(rng, w.name, tuple(int(d) for d in w.shape)) for w in layer.weights])
        keys = []
        for j, value in enumerate(layer.get_weights()):
            key = f"w{k}_{j}"
            arrays[key] = np.asarray(value, dtype=np.float32)
            keys.append({"key": key, "name": layer.weights[j].name, "shape": list(value.shape)})
        weight_keys[str(k)] = keys
    in_shape = tuple(int(d) for d in model.inputs[0].shape[1:])
    x = rng.standard_normal((BATCH,) + in_shape).astype(np.float32)
    out, acts = run_forward(model, x)
    arrays["input"] = x
    arrays["output"] = out.astype(np.float32)
    stored_acts = []
    for k, a in enumerate(acts):
        if a.size <= MAX_ACTIVATION_ELEMENTS or k == len(acts) - 1:
            arrays[f"a{k}"] = a.astype(np.float32)
            stored_acts.append(f"a{k}")
    path = HERE / f"forward_{name}.npz"
    np.savez_compressed(path, **arrays)
    return {
        "file": path.name,
        "seed": seed_for(name),
        "batch": BATCH,
        "input_shape": list(x.shape),
        "output_shape": list(out.shape),
        "weights": weight_keys,
        "activations": stored_acts,
    }


def load_specs() -> dict:
    with open(SPECS, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    names = [s["name"] for s in data["specs"]] + [s["name"] for s in data.get("invalid", [])]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise SystemExit(f"duplicate spec names: {sorted(dupes)}")
    return data


# --------------------------------------------------------------- crosscheck
def crosscheck_mode(out_path: str) -> None:
    """Rebuild every spec under the current backend; dump results to out_path."""
    data = load_specs()
    result: dict = {"backend": keras.backend.backend(), "summaries": {}, "refused": {}}
    arrays: dict[str, np.ndarray] = {}
    for entry in data["specs"]:
        name = entry["name"]
        model, mapping = build(entry["spec"])
        result["summaries"][name] = summarize(model, mapping)
        if entry.get("forward"):
            with np.load(HERE / f"forward_{name}.npz") as z:
                for k, layer in enumerate(model.layers):
                    if layer.weights:
                        layer.set_weights([z[f"w{k}_{j}"] for j in range(len(layer.weights))])
                x = z["input"]
            out, acts = run_forward(model, x)
            arrays[f"{name}/output"] = out
            for k, a in enumerate(acts):
                arrays[f"{name}/a{k}"] = a
    for entry in data.get("invalid", []):
        try:
            build(entry["spec"])
            result["refused"][entry["name"]] = None
        except Refused as r:
            result["refused"][entry["name"]] = {"error_type": type(r.exc).__name__, "stage": r.stage}
    arrays["__json__"] = np.frombuffer(json.dumps(result).encode("utf-8"), dtype=np.uint8)
    np.savez(out_path, **arrays)


def run_crosscheck(python: str) -> tuple[dict, dict] | None:
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "crosscheck.npz")
        subprocess.run([python, __file__, "--crosscheck", out], check=True, env=env)
        with np.load(out) as z:
            result = json.loads(bytes(z["__json__"]).decode("utf-8"))
            arrays = {k: z[k] for k in z.files if k != "__json__"}
    return result, arrays


# --------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--crosscheck", metavar="OUT", help=argparse.SUPPRESS)
    parser.add_argument("--no-crosscheck", action="store_true", help="skip the JAX-backend comparison")
    args = parser.parse_args()
    if args.crosscheck:
        crosscheck_mode(args.crosscheck)
        return
    if keras.backend.backend() != "torch":
        raise SystemExit("run with KERAS_BACKEND=torch (the refs are made with the torch backend)")

    data = load_specs()
    for old in HERE.glob("forward_*.npz"):
        old.unlink()
    specs_out: dict = {}
    for entry in data["specs"]:
        name = entry["name"]
        try:
            model, mapping = build(entry["spec"])
            model(np.zeros((2,) + tuple(int(d) for d in model.inputs[0].shape[1:]), np.float32), training=False)
        except Refused as r:
            raise SystemExit(f"valid spec {name!r} refused by Keras at {r.stage}: {clean_message(r.exc)}")
        record = {"spec": entry["spec"], **summarize(model, mapping), "forward": None}
        if entry.get("forward"):
            record["forward"] = make_forward(name, model)
        specs_out[name] = record
        print(f"{name:40s} params={record['total_params']:>9,d}  out={record['output_shape']}")

    invalid_out: dict = {}
    for entry in data.get("invalid", []):
        name = entry["name"]
        try:
            build(entry["spec"])
        except Refused as r:
            invalid_out[name] = {
                "spec": entry["spec"],
                "error_type": type(r.exc).__name__,
                "error": clean_message(r.exc),
                "stage": r.stage,
                "spec_layer_index": r.spec_index,
            }
            print(f"{name:40s} refused at {r.stage}: {type(r.exc).__name__}")
            continue
        raise SystemExit(f"invalid spec {name!r} was accepted by Keras")

    crosscheck: dict = {"backend": None}
    if args.no_crosscheck or importlib.util.find_spec("jax") is None:
        print("JAX not installed (or --no-crosscheck): skipping the backend cross-check")
    else:
        result, arrays = run_crosscheck(sys.executable)
        crosscheck = {"backend": result["backend"], "summary_mismatches": [], "forward": {}}
        for name, rec in specs_out.items():
            theirs = result["summaries"][name]
            mine = {k: v for k, v in rec.items() if k not in ("spec", "forward")}
            if theirs != mine:
                crosscheck["summary_mismatches"].append(name)
            if rec["forward"] is None:
                continue
            path = HERE / rec["forward"]["file"]
            with np.load(path) as z:
                stored = {k: z[k] for k in z.files}
            diff = float(np.max(np.abs(arrays[f"{name}/output"] - stored["output"])))
            act_diff = max(
                float(np.max(np.abs(arrays[f"{name}/{key}"] - stored[key]))) for key in rec["forward"]["activations"]
            )
            crosscheck["forward"][name] = {"output_max_abs_diff": diff, "activations_max_abs_diff": act_diff}
            if diff > 1e-5:
                # keep the TF-semantics (JAX backend) results beside Keras-torch's
                stored["output_jax"] = arrays[f"{name}/output"].astype(np.float32)
                for key in rec["forward"]["activations"]:
                    stored[f"{key}_jax"] = arrays[f"{name}/{key}"].astype(np.float32)
                np.savez_compressed(path, **stored)
                rec["forward"]["backend_divergence"] = {
                    "output_max_abs_diff": diff,
                    "jax_arrays": ["output_jax"] + [f"{key}_jax" for key in rec["forward"]["activations"]],
                }
        for name, refused in result["refused"].items():
            if refused is None:
                crosscheck.setdefault("accepted_by_jax_only", []).append(name)
        print("cross-check:", json.dumps(crosscheck, indent=1))

    import torch  # only for the version record

    refs = {
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "generated_by": "tests/keras_refs/make_refs.py",
        "notes": {
            "names": "Keras auto names, each model built after keras.backend.clear_session()",
            "output_shape": "batch dimension is null",
            "spec_to_keras_layer_index": "index i of spec['layers'] -> index in model.layers (null for an Input entry)",
            "forward": "npz: input, output, w{k}_{j} = model.layers[k].get_weights()[j], a{k} = output of model.layers[k] (only those listed in forward.activations); training=False",
        },
        "crosscheck": crosscheck,
        "specs": specs_out,
        "invalid": invalid_out,
    }
    with open(REFS, "w", encoding="utf-8") as fh:
        json.dump(refs, fh, indent=1)
        fh.write("\n")
    total = sum(p.stat().st_size for p in HERE.glob("forward_*.npz"))
    print(f"wrote {REFS.name}: {len(specs_out)} specs, {len(invalid_out)} invalid; npz total {total / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
