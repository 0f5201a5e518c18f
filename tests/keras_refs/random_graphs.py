"""Random graph models in cnnlab's YAML graph form, for the Keras references.

    >>> specs = random_graphs(seed=0, count=24)   # {name: spec dict}

Each graph draws inputs (images or vectors), then layers reading earlier tensors:
Conv2D, MaxPooling2D, Flatten, Dense, every merge layer, Concatenate, and a
second call of a layer (shared weights). Tensors nothing reads are joined into
one or two softmax heads, so every layer leads to an output.
"""
import numpy as np

MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
ACTS = ("relu", "tanh", "sigmoid", None)


def _graph(rng, name):
    inputs, tensors, layers, read = [], [], [], set()
    for k in range(int(rng.integers(1, 3))):
        shape = ([int(rng.choice([4, 5, 6])), int(rng.choice([4, 6])), int(rng.integers(1, 4))]
                 if rng.random() < 0.6 else [int(rng.integers(2, 7))])
        inputs.append({"name": f"in{k}", "shape": shape})
        tensors.append((f"in{k}", tuple(shape)))
    shareable = []  # (layer name, input shape): output shape == input shape, so it can chain

    def add(kind, args, srcs, out_shape):
        nm = f"{kind.lower()}_{len(layers)}"
        entry = dict(args, name=nm, inbound=srcs[0] if len(srcs) == 1 else list(srcs))
        entry = {k: v for k, v in entry.items() if v is not None or k == "activation"}
        layers.append({kind: entry})
        read.update(srcs)
        tensors.append((nm, tuple(out_shape)))
        return nm

    for _ in range(int(rng.integers(3, 10))):
        images = [t for t in tensors if len(t[1]) == 3]
        vectors = [t for t in tensors if len(t[1]) == 1]
        same = {}
        for ref, shape in tensors:
            same.setdefault(shape, []).append(ref)
        groups = [refs for refs in same.values() if len(refs) >= 2]
        r = rng.random()
        if images and r < 0.25:
            ref, shape = images[int(rng.integers(len(images)))]
            f = int(rng.integers(1, 5))
            act = ACTS[int(rng.integers(len(ACTS)))]
            nm = add("Conv2D", {"filters": f, "kernel_size": int(rng.choice([1, 3])),
                                "padding": "same", "activation": act}, [ref], (*shape[:2], f))
            if f == shape[2]:
                shareable.append((nm, shape))
        elif images and r < 0.32:
            ref, shape = images[int(rng.integers(len(images)))]
            add("MaxPooling2D", {"pool_size": 2, "padding": "same"}, [ref],
                (-(-shape[0] // 2), -(-shape[1] // 2), shape[2]))
        elif images and r < 0.4:
            ref, shape = images[int(rng.integers(len(images)))]
            add("Flatten", {}, [ref], (int(np.prod(shape)),))
        elif vectors and r < 0.6:
            ref, shape = vectors[int(rng.integers(len(vectors)))]
            units = int(rng.choice([shape[0], 3, 5]))
            act = ACTS[int(rng.integers(len(ACTS)))]
            nm = add("Dense", {"units": units, "activation": act}, [ref], (units,))
            if units == shape[0]:
                shareable.append((nm, shape))
        elif groups and r < 0.78:
            refs = groups[int(rng.integers(len(groups)))]
            kind = MERGES[int(rng.integers(len(MERGES)))]
            n = 2 if kind == "Subtract" else int(rng.integers(2, len(refs) + 1))
            pick = [str(x) for x in rng.choice(refs, size=n, replace=False)]
            add(kind, {}, pick, dict(tensors)[pick[0]])
        elif shareable and r < 0.9:
            nm, shape = shareable[int(rng.integers(len(shareable)))]
            fits = [ref for ref, s in tensors if s == shape]
            src = fits[int(rng.integers(len(fits)))]
            calls = sum(1 for e in layers if "Call" in e and e["Call"]["layer"] == nm)
            layers.append({"Call": {"layer": nm, "inbound": src}})
            read.add(src)
            tensors.append((f"{nm}@{calls + 1}", shape))
        elif len(vectors) >= 2:
            pick = [str(x) for x in rng.choice([v[0] for v in vectors], size=2, replace=False)]
            add("Concatenate", {}, pick, (sum(dict(tensors)[p][0] for p in pick),))
    loose = [(ref, s) for ref, s in tensors if ref not in read]
    flat = []
    for ref, s in loose:
        flat.append(add("Flatten", {}, [ref], (int(np.prod(s)),)) if len(s) == 3 else ref)
    heads = [flat] if len(flat) == 1 or rng.random() < 0.7 else [flat[:1], flat[1:]]
    outputs = []
    for group in heads:
        x = group[0] if len(group) == 1 else add(
            "Concatenate", {}, group, (sum(dict(tensors)[g][0] for g in group),))
        outputs.append(add("Dense", {"units": 3, "activation": "softmax"}, [x], (3,)))
    return {"name": name, "inputs": inputs, "layers": layers, "outputs": outputs}


def random_graphs(seed: int = 0, count: int = 24) -> dict:
    rng = np.random.default_rng(seed)
    return {f"random_{i:02d}": _graph(rng, f"random_{i:02d}") for i in range(count)}
