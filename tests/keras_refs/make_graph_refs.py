"""Make the graph (functional) references from Keras 3 itself: run once, commit the output.

    KERAS_BACKEND=torch python tests/keras_refs/make_graph_refs.py

For each model in graph_specs.yaml (cnnlab's YAML graph form), and 40 random
graphs (random_graphs.py, written to graph_specs_random.yaml), it builds the same
model with Keras's functional API, and writes graph_refs.json (summary rows with
`Connected to`, totals) and graph_arrays.npz (per model: the weights of every layer
by name, a random input batch, and Keras's outputs). The test suite reads only these files.
"""
import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

HERE = Path(__file__).parent
RANDOM_GRAPHS = 40


def keras_layer(kind, args):
    args = dict(args)
    if kind in ("Sequential", "Functional"):
        return build(dict(args, _kind=kind))
    return getattr(keras.layers, kind)(**args)


def build(d):
    """A Keras model from cnnlab's spec dict (sequential or graph form)."""
    kind = d.pop("_kind", None)
    if "inputs" not in d:  # sequential form
        layers = [keras.Input(shape=d["input_shape"])]
        for entry in d["layers"]:
            (k, args), = entry.items()
            layers.append(keras_layer(k, args))
        return keras.Sequential(layers, name=d.get("name", "sequential"))
    tensors, objects, calls = {}, {}, {}
    ins = []
    for i in d["inputs"]:
        t = keras.Input(shape=i["shape"], name=i["name"])
        tensors[i["name"]] = t
        ins.append(t)
    last = ins[0]
    for entry in d["layers"]:
        (k, args), = entry.items()
        args = dict(args)
        inbound = args.pop("inbound", None)
        if k == "Call":
            layer = objects[args["layer"]]
        else:
            layer = keras_layer(k, args)
        src = last if inbound is None else (
            tensors[inbound] if isinstance(inbound, str) else [tensors[r] for r in inbound])
        out = layer(src)
        n = calls.get(layer.name, 0)
        calls[layer.name] = n + 1
        objects[layer.name] = layer
        tensors[layer.name if n == 0 else f"{layer.name}@{n}"] = out
        last = out
    outs = [tensors[r] for r in d["outputs"]]
    return keras.Model(ins, outs[0] if len(outs) == 1 else outs, name=d["name"])


def connected(layer):
    out = []
    for node in layer._inbound_nodes:
        for t in node.input_tensors:
            h = t._keras_history
            out.append(f"{h.operation.name}[{h.node_index}][{h.tensor_index}]")
    return out


def main():
    from random_graphs import random_graphs
    random = random_graphs(seed=0, count=RANDOM_GRAPHS)
    (HERE / "graph_specs_random.yaml").write_text(
        "# Made by make_graph_refs.py from random_graphs.py (seed 0): do not edit.\n"
        + yaml.safe_dump(random, sort_keys=False))
    specs = {**yaml.safe_load((HERE / "graph_specs.yaml").read_text()), **random}
    refs, arrays = {}, {}
    rng = np.random.default_rng(0)
    for name, d in specs.items():
        keras.backend.clear_session()  # names restart: conv2d, conv2d_1, ... as in a fresh session
        model = build(dict(d))
        rows = []
        for layer in model.layers:
            shape = layer.output.shape
            rows.append({"name": layer.name, "type": type(layer).__name__,
                         "output_shape": list(shape[1:]), "params": layer.count_params(),
                         "connected_to": connected(layer) if type(layer).__name__ != "InputLayer"
                         else []})
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        total = model.count_params()
        refs[name] = {"rows": rows, "total_params": total, "trainable_params": trainable,
                      "non_trainable_params": total - trainable}
        for layer in model.layers:
            for i, w in enumerate(layer.get_weights()):
                arrays[f"{name}/w:{layer.name}:{i}"] = w
        xs = [rng.uniform(-1, 1, (3, *i["shape"])).astype("float32") for i in d["inputs"]]
        for k, x in enumerate(xs):
            arrays[f"{name}/x:{k}"] = x
        y = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        arrays[f"{name}/y"] = np.asarray(y)
    np.savez_compressed(HERE / "graph_arrays.npz", **arrays)
    (HERE / "graph_refs.json").write_text(json.dumps(
        {"keras_version": keras.__version__, "backend": keras.backend.backend(), "models": refs},
        indent=1) + "\n")


if __name__ == "__main__":
    main()
