"""Step 2 of the saving references, run once with real Keras 3 (torch backend):

    KERAS_BACKEND=torch /work/refenv/bin/python tests/keras_refs/saving/make_keras_refs.py

1. keras_saved/<name>.keras: models saved by Keras itself, with <name>.npz holding
   a fixed input `x` and Keras's predictions `y` (cnnlab must load them and agree);
   keras_saved/graphs/: the named graphs of tests/keras_refs/graph_specs.yaml, likewise.
2. keras2/<name>.h5: full-model files in Keras 2's HDF5 layout (tf-keras 2.x is not
   installable here), written with h5py as tf.keras's save_model_to_hdf5 wrote them,
   then opened by Keras 3's own legacy loader, whose predictions go to <name>.npz:
   so the fixture's format is the one Keras reads, not one cnnlab invented.
3. cnnlab_written/<name>.keras and <name>_legacy.h5 (made by make_cnnlab_files.py): opened with
   keras.models.load_model; Keras's predictions on <name>.input.npy are stored
   as <name>.keras_pred.npy, with Keras's summary of the file.
4. refused/: a Lambda model and an unsupported layer, for the error tests.
"""
import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

L = keras.layers
HERE = Path(__file__).resolve().parent
RNG = np.random.default_rng(11)


def randomize(model):
    weights = []
    for w, v in zip(model.get_weights(), model.weights):
        a = RNG.normal(size=w.shape).astype("float32")
        if "variance" in v.path:
            a = np.abs(a) + 0.5
        weights.append(a)
    model.set_weights(weights)
    return model


def keras_models():
    yield "seq_all_layers", keras.Sequential([
        keras.Input((8, 8, 2)),
        L.Conv2D(4, 3, activation="relu", padding="same", kernel_regularizer=keras.regularizers.l2(1e-3)),
        L.AveragePooling2D(2), L.BatchNormalization(momentum=0.9), L.Conv2D(3, 2, use_bias=False),
        L.MaxPooling2D(padding="same"), L.Activation("tanh"), L.Reshape((4, 1, 3)),
        L.GlobalMaxPooling2D(), L.Dropout(0.3), L.Flatten(), L.Dense(6, activation="gelu"),
        L.Dense(4, activation="softmax", name="probs")], name="keras_seq")
    yield "seq_gap", keras.Sequential([keras.Input((6, 6, 1)), L.Conv2D(2, 3, name="c"),
                                       L.GlobalAveragePooling2D(), L.Dense(3)])
    yield "seq_new_layers", keras.Sequential([
        keras.Input((8, 8, 2)), L.Rescaling(0.5, offset=0.1), L.ZeroPadding2D(1),
        L.Conv2D(4, 3, activation="relu"), L.Cropping2D(((1, 0), (0, 1))),
        L.SeparableConv2D(4, 3, padding="same"), L.LeakyReLU(), L.DepthwiseConv2D(3, padding="same"),
        L.ELU(), L.SpatialDropout2D(0.2), L.Conv2DTranspose(3, 3, strides=2), L.UpSampling2D(),
        L.ReLU(), L.GlobalAveragePooling2D(), L.Dense(4), L.Softmax()])
    # functional: residual Add, Concatenate branches, a shared layer, a nested Sequential
    x = keras.Input((6, 6, 2), name="image")
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="a")(x)
    b = L.Conv2D(4, 1, name="b")(x)
    s = L.Add(name="add")([a, b])
    shared = L.Conv2D(4, 1, name="shared")
    c = L.Concatenate(name="cat")([shared(s), shared(a)])
    inner = keras.Sequential([keras.Input((6, 6, 8)), L.GlobalAveragePooling2D(), L.Dense(5)],
                             name="head")
    out = L.Activation("softmax", name="out")(inner(c))
    yield "functional_graph", keras.Model(x, out, name="graph")


def save_keras_refs():
    d = HERE / "keras_saved"
    d.mkdir(exist_ok=True)
    for name, model in keras_models():
        randomize(model)
        x = RNG.normal(size=(3, *model.input_shape[1:])).astype("float32")
        model.save(d / f"{name}.keras")
        np.savez(d / f"{name}.npz", x=x, y=model.predict(x, verbose=0))


# -- Keras 2 HDF5 files ------------------------------------------------------------

def k2_layer(cls, name, config, inbound=None, batch_input_shape=None):
    config = {"name": name, "trainable": True, "dtype": "float32", **config}
    if batch_input_shape:
        config["batch_input_shape"] = batch_input_shape
    entry = {"class_name": cls, "config": config}
    if inbound is not None:
        entry.update(name=name, inbound_nodes=inbound)
    return entry


def k2_weighted(act="linear", **kw):
    return {"activation": act, "use_bias": True,
            "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
            "bias_initializer": {"class_name": "Zeros", "config": {}},
            "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
            "kernel_constraint": None, "bias_constraint": None, **kw}


def k2_conv(filters, k, act="linear", padding="valid"):
    return k2_weighted(act, filters=filters, kernel_size=[k, k], strides=[1, 1], padding=padding,
                       data_format="channels_last", dilation_rate=[1, 1], groups=1)


def write_k2(path, config, weights, training_config=None):
    """tf.keras's save_model_to_hdf5: JSON attributes, then the model_weights group."""
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = "2.4.0"
        f.attrs["backend"] = "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        if training_config:
            f.attrs["training_config"] = json.dumps(training_config)
        g = f.create_group("model_weights")
        g.attrs["keras_version"] = b"2.4.0"
        g.attrs["backend"] = b"tensorflow"
        g.attrs["layer_names"] = np.array([n.encode() for n, _ in weights])
        for lname, ws in weights:
            lg = g.create_group(lname)
            lg.attrs["weight_names"] = np.array([f"{lname}/{w}:0".encode() for w, _ in ws])
            for w, a in ws:
                lg.create_dataset(f"{lname}/{w}:0", data=a)


def rnd(*shape):
    return RNG.normal(size=shape).astype("float32")


def keras2_files():
    d = HERE / "keras2"
    d.mkdir(exist_ok=True)
    # a tf.keras 2.x Sequential: its InputLayer entry named after the first layer
    seq = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": [None, 8, 8, 1],
                                                "dtype": "float32", "sparse": False,
                                                "ragged": False, "name": "conv2d_input"}},
        k2_layer("Conv2D", "conv2d", k2_conv(3, 3, "relu")),
        k2_layer("MaxPooling2D", "max_pooling2d", {"pool_size": [2, 2], "padding": "valid",
                                                    "strides": [2, 2], "data_format": "channels_last"}),
        k2_layer("BatchNormalization", "batch_normalization", {
            "axis": [3], "momentum": 0.99, "epsilon": 0.001, "center": True, "scale": True,
            "beta_initializer": {"class_name": "Zeros", "config": {}},
            "gamma_initializer": {"class_name": "Ones", "config": {}},
            "moving_mean_initializer": {"class_name": "Zeros", "config": {}},
            "moving_variance_initializer": {"class_name": "Ones", "config": {}},
            "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
            "gamma_constraint": None}),
        k2_layer("Flatten", "flatten", {"data_format": "channels_last"}),
        k2_layer("Dropout", "dropout", {"rate": 0.5, "noise_shape": None, "seed": None}),
        k2_layer("Dense", "dense", k2_weighted("softmax", units=4))]}}
    weights = [("conv2d", [("kernel", rnd(3, 3, 1, 3)), ("bias", rnd(3))]),
               ("max_pooling2d", []),
               ("batch_normalization", [("gamma", rnd(3)), ("beta", rnd(3)),
                                        ("moving_mean", rnd(3)),
                                        ("moving_variance", np.abs(rnd(3)) + 0.5)]),
               ("flatten", []), ("dropout", []),
               ("dense", [("kernel", rnd(27, 4)), ("bias", rnd(4))])]
    training = {"loss": "categorical_crossentropy", "metrics": ["accuracy"],
                "weighted_metrics": None, "loss_weights": None,
                "optimizer_config": {"class_name": "Adam", "config": {"name": "Adam",
                                                                      "learning_rate": 0.002}}}
    write_k2(d / "sequential.h5", seq, weights, training)
    # a tf.keras 2 functional model: inbound_nodes as [[name, node, tensor, kwargs]]
    inp = [None, 6]
    fun = {"class_name": "Functional", "config": {"name": "model", "layers": [
        {"class_name": "InputLayer", "config": {"batch_input_shape": inp, "dtype": "float32",
                                                "sparse": False, "ragged": False, "name": "input_1"},
         "name": "input_1", "inbound_nodes": []},
        k2_layer("Dense", "dense", k2_weighted("relu", units=5), [[["input_1", 0, 0, {}]]]),
        k2_layer("Dense", "dense_1", k2_weighted("linear", units=5), [[["input_1", 0, 0, {}]]]),
        k2_layer("Add", "add", {}, [[["dense", 0, 0, {}], ["dense_1", 0, 0, {}]]]),
        k2_layer("Dense", "dense_2", k2_weighted("sigmoid", units=2), [[["add", 0, 0, {}]]])],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense_2", 0, 0]]}}
    fweights = [("input_1", []), ("dense", [("kernel", rnd(6, 5)), ("bias", rnd(5))]),
                ("dense_1", [("kernel", rnd(6, 5)), ("bias", rnd(5))]), ("add", []),
                ("dense_2", [("kernel", rnd(5, 2)), ("bias", rnd(2))])]
    write_k2(d / "functional.h5", fun, fweights)
    for name, shape in (("sequential", (8, 8, 1)), ("functional", (6,))):
        model = keras.models.load_model(d / f"{name}.h5")  # compiles from training_config
        x = rnd(3, *shape)
        np.savez(d / f"{name}.npz", x=x, y=model.predict(x, verbose=0))


def keras_open_cnnlab_files():
    d = HERE / "cnnlab_written"
    for path in sorted(d.glob("*.keras")):
        model = keras.models.load_model(path)
        x = np.load(d / f"{path.stem}.input.npy")
        np.save(d / f"{path.stem}.keras_pred.npy", model.predict(x, verbose=0))
        lines = []
        model.summary(print_fn=lambda s, line_break=None: lines.append(s))
        (d / f"{path.stem}.keras_summary.txt").write_text("\n".join(lines) + "\n")
        print(f"Keras opened {path.name}")
    for path in sorted(d.glob("*_legacy.h5")):
        model = keras.models.load_model(path)
        x = np.load(d / f"{path.stem.removesuffix('_legacy')}.input.npy")
        np.save(d / f"{path.stem}.keras_pred.npy", model.predict(x, verbose=0))
        print(f"Keras opened {path.name}")


def keras_open_cnnlab_graphs():
    """Every graph spec written by cnnlab: Keras's predictions and the config it read."""
    import hashlib
    import zipfile
    d = HERE / "cnnlab_written" / "graphs"
    out, shas = {}, {}
    for path in sorted(d.glob("*.keras")):
        name = path.stem
        inputs = np.load(d / f"{name}.inputs.npz")
        xs = [inputs[f"arr_{i}"] for i in range(len(inputs.files))]
        y = keras.models.load_model(path).predict(xs if len(xs) > 1 else xs[0], verbose=0)
        for i, part in enumerate(y if isinstance(y, list) else [y]):
            out[f"{name}/y{i}"] = part
        shas[name] = hashlib.sha256(zipfile.ZipFile(path).read("config.json")).hexdigest()
    np.savez(HERE / "cnnlab_written" / "graphs_keras_pred.npz", **out)
    (HERE / "cnnlab_written" / "graphs_config_sha.json").write_text(json.dumps(shas, indent=1))
    print(f"Keras opened {len(shas)} cnnlab graphs")


def keras_saved_graphs():
    """The named graphs of tests/keras_refs/graph_specs.yaml, built and saved by Keras."""
    import sys
    import yaml
    sys.path.insert(0, str(HERE.parent))
    from make_graph_refs import build
    d = HERE / "keras_saved" / "graphs"
    d.mkdir(exist_ok=True)
    for name, spec in yaml.safe_load((HERE.parent / "graph_specs.yaml").read_text()).items():
        keras.backend.clear_session()
        model = randomize(build(dict(spec)))
        inputs = model.inputs
        xs = [RNG.normal(size=(3, *t.shape[1:])).astype("float32") for t in inputs]
        y = model.predict(xs if len(xs) > 1 else xs[0], verbose=0)
        model.save(d / f"{name}.keras")
        np.savez(d / f"{name}.npz", *xs, **{f"y{i}": v for i, v in
                                             enumerate(y if isinstance(y, list) else [y])})


def refused_files():
    d = HERE / "refused"
    d.mkdir(exist_ok=True)
    keras.Sequential([keras.Input((4,)), L.Lambda(lambda t: t * 2.0, name="double"),
                      L.Dense(2)]).save(d / "lambda.keras")
    keras.Sequential([keras.Input((4,)), L.LayerNormalization(name="norm"),
                      L.Dense(2)]).save(d / "unsupported_layer.keras")
    keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(2, 3, dilation_rate=2, name="dil")]).save(
        d / "unsupported_setting.keras")


if __name__ == "__main__":
    save_keras_refs()
    keras_saved_graphs()
    keras2_files()
    keras_open_cnnlab_files()
    keras_open_cnnlab_graphs()
    refused_files()
    print("Keras", keras.__version__)
