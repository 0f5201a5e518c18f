"""One variant of examples/improve.yaml, built by the same Keras code in any Keras library,
and by plain PyTorch eager as pytorch/examples would port it.

The driver (`epoch_time.py --variants`) resolves improve.yaml with cnnlab's own variant
rules and writes each variant as a recipe, data only:

    {"input_shape": [28, 28, 1], "batch_size": 128,
     "layers": [["Conv2D", {"filters": 32, "kernel_size": [3, 3], "activation": "relu"}], ...],
     "optimizer": {"name": "adam", "learning_rate": 0.001}}

Keras libraries (tf.keras, cnnlab) build it with `keras_model(keras, recipe)`: each entry
is `keras.layers.<Kind>(**args)`, exactly what a reader types. PyTorch eager builds it with
`torch_model(torch, recipe)`: NCHW, `nn.Sequential`, the activation as its own module, the
regularizers' penalty added to the loss by hand, `torch.optim.Adam`/`SGD`. Standard library
only here, so that it imports in every venv.

    recipe = variant_model.load(path, "batchnorm")
    model = variant_model.keras_model(tf.keras, recipe)          # compiled, ready to fit
"""
from __future__ import annotations

import json
import math


def load(path: str, name: str) -> dict:
    recipes = json.loads(open(path).read())
    if name not in recipes:
        raise ValueError(f"Unknown variant {name!r}. Expected one of {', '.join(recipes)}.")
    return recipes[name]


def _keras_args(keras, kind: str, args: dict) -> dict:
    out = {}
    for key, value in args.items():
        if key.endswith("_regularizer") and isinstance(value, dict):
            (which, factor), = value.items()  # {"l2": 0.001} -> keras.regularizers.l2(0.001)
            value = getattr(keras.regularizers, which)(factor)
        elif isinstance(value, list):
            value = tuple(value)
        out[key] = value
    return out


def keras_model(keras, recipe: dict):
    """The variant as a reader writes it in Keras: Sequential, add, compile."""
    model = keras.Sequential()
    for i, (kind, args) in enumerate(recipe["layers"]):
        kwargs = _keras_args(keras, kind, args)
        if i == 0:
            kwargs["input_shape"] = tuple(recipe["input_shape"])
        model.add(getattr(keras.layers, kind)(**kwargs))
    opt = dict(recipe["optimizer"])
    name = opt.pop("name")
    optimizer = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}[name](**opt)
    model.compile(loss="categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    return model


# --- plain PyTorch eager ------------------------------------------------------------

def _same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding (before, after) along one axis."""
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def torch_model(torch, recipe: dict):
    """(model, regularized): nn.Sequential on NCHW input, logits out (softmax in the loss);
    `regularized` lists (weight, kind, factor) for the penalty the loop adds to the loss."""
    nn = torch.nn
    acts = {"relu": nn.ReLU, "elu": nn.ELU, "selu": nn.SELU, "tanh": nn.Tanh,
            "leaky_relu": lambda: nn.LeakyReLU(0.2),  # Keras's default negative slope
            "sigmoid": nn.Sigmoid}
    shape = list(recipe["input_shape"])  # (H, W, C) or (features,)
    mods, regularized = [], []
    last = len(recipe["layers"]) - 1
    for i, (kind, a) in enumerate(recipe["layers"]):
        if kind == "Conv2D":
            h, w, c = shape
            k = a["kernel_size"]
            k = (k, k) if isinstance(k, int) else tuple(k)
            s = a.get("strides", (1, 1))
            s = (s, s) if isinstance(s, int) else tuple(s)
            if a.get("padding", "valid") == "same":
                (t, b), (l, r) = _same_pads(h, k[0], s[0]), _same_pads(w, k[1], s[1])
                if t == b and l == r:
                    conv = nn.Conv2d(c, a["filters"], k, s, padding=(t, l))
                else:
                    mods.append(nn.ZeroPad2d((l, r, t, b)))
                    conv = nn.Conv2d(c, a["filters"], k, s)
                h, w = math.ceil(h / s[0]), math.ceil(w / s[1])
            else:
                conv = nn.Conv2d(c, a["filters"], k, s)
                h, w = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
            mods.append(conv)
            shape = [h, w, a["filters"]]
            layer = conv
        elif kind == "MaxPooling2D":
            h, w, c = shape
            p = tuple(a.get("pool_size", (2, 2)))
            same = a.get("padding", "valid") == "same"
            mods.append(nn.MaxPool2d(p, ceil_mode=same))  # ceil_mode: TF's 'same' windows here
            f = math.ceil if same else (lambda v: v)
            shape = [int(f(h / p[0])) if same else h // p[0],
                     int(f(w / p[1])) if same else w // p[1], c]
            continue
        elif kind == "Flatten":
            mods.append(nn.Flatten())
            shape = [math.prod(shape)]
            continue
        elif kind == "Dropout":
            mods.append(nn.Dropout(a["rate"]))
            continue
        elif kind == "BatchNormalization":
            bn = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            mods.append(bn(shape[-1], eps=1e-3, momentum=0.01))  # Keras's 0.99 in torch's terms
            continue
        elif kind == "Dense":
            layer = nn.Linear(shape[-1], a["units"])
            mods.append(layer)
            shape = [a["units"]]
        else:
            raise ValueError(f"torch-eager port: unsupported layer {kind}")
        reg = a.get("kernel_regularizer")
        if reg:
            (which, factor), = reg.items()
            regularized.append((layer.weight, which, factor))
        act = a.get("activation")
        if act and act != "linear" and not (i == last and act == "softmax"):
            mods.append(acts[act]())
    return nn.Sequential(*mods), regularized


def torch_optimizer(torch, recipe: dict, params):
    opt = dict(recipe["optimizer"])
    name = opt.pop("name")
    lr = opt.pop("learning_rate")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr, momentum=opt.get("momentum", 0.0))


def penalty(regularized):
    """Keras's L1/L2 penalty: l1 * sum|w|, l2 * sum w^2."""
    total = 0.0
    for w, which, factor in regularized:
        total = total + factor * (w.abs().sum() if which == "l1" else w.square().sum())
    return total
