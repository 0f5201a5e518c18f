"""Step 1 of the saving references: .keras files written by cnnlab, for real Keras to open.

    PYTHONPATH=src /work/main/.venv/bin/python tests/keras_refs/saving/make_cnnlab_files.py
    KERAS_BACKEND=torch /work/refenv/bin/python tests/keras_refs/saving/make_keras_refs.py

This writes cnnlab_written/<name>.keras plus <name>.input.npy (a fixed batch), and
cnnlab_written/graphs/ (not committed): every graph spec of tests/keras_refs as a .keras
file, for which Keras records its predictions and the hash of the config it read;
make_keras_refs.py then loads each file with keras.models.load_model and stores
Keras's predictions next to it (<name>.keras_pred.npy). test_saving.py checks
that cnnlab's predictions on the same file equal Keras's, and that cnnlab still
writes the same config.json Keras was given.
"""
from pathlib import Path

import numpy as np

import cnnlab
from cnnlab import layers as L

OUT = Path(__file__).resolve().parent / "cnnlab_written"


def models():
    yield "seq_all_layers", cnnlab.models.Sequential([
        L.Conv2D(4, 3, input_shape=(8, 8, 2), activation="relu", padding="same",
                 kernel_regularizer={"l2": 0.001}, kernel_initializer="he_normal"),
        L.AveragePooling2D(pool_size=2), L.BatchNormalization(momentum=0.9),
        L.Conv2D(3, (2, 2), strides=(1, 1), use_bias=False), L.MaxPooling2D(pool_size=(2, 2), padding="same"),
        L.Activation("tanh"), L.Reshape((4, 1, 3)), L.GlobalMaxPooling2D(), L.Dropout(0.3),
        L.Dense(6, activation="elu", bias_regularizer={"l1": 0.01, "l2": 0.02}), L.Dense(4, activation="softmax"),
    ], name="all_layers")
    compiled = cnnlab.models.Sequential([
        L.Input((6, 6, 1)), L.Conv2D(2, 3), L.GlobalAveragePooling2D(), L.Dense(3)])
    compiled.compile(loss="categorical_crossentropy", optimizer=cnnlab.optimizers.Adam(0.003),
                     metrics=["accuracy"])
    yield "seq_gap", compiled
    yield "seq_new_layers", cnnlab.models.Sequential([
        L.Input((8, 8, 2)), L.Rescaling(0.5, offset=0.1), L.ZeroPadding2D(1),
        L.Conv2D(4, 3, activation="relu"), L.Cropping2D(((1, 0), (0, 1))),
        L.SeparableConv2D(4, 3, padding="same"), L.LeakyReLU(), L.DepthwiseConv2D(3, padding="same"),
        L.ELU(), L.SpatialDropout2D(0.2), L.Conv2DTranspose(3, 3, strides=2), L.UpSampling2D(),
        L.ReLU(), L.GlobalAveragePooling2D(), L.Dense(4), L.Softmax()], name="new_layers")


def functional_models():
    """Graphs: residual Add, a shared layer called twice, Concatenate, a nested Sequential;
    and a functional model nested in a Sequential."""
    x = cnnlab.Input(shape=(6, 6, 2), name="image")
    a = L.Conv2D(4, 3, padding="same", activation="relu", name="a")(x)
    b = L.Conv2D(4, 1, name="b")(x)
    s = L.Add(name="add")([a, b])
    shared = L.Conv2D(4, 1, name="shared")
    c = L.Concatenate(name="cat")([shared(s), shared(a)])
    head = cnnlab.models.Sequential([L.Input((6, 6, 8)), L.GlobalAveragePooling2D(),
                                     L.Dense(5)], name="head")
    out = L.Activation("softmax", name="out")(head(c))
    yield "functional_graph", cnnlab.Model(x, out, name="graph")
    inp = cnnlab.Input(shape=(5, 5, 1))
    features = cnnlab.Model(inp, L.Flatten()(L.Conv2D(2, 3, activation="tanh")(inp)),
                            name="features")
    yield "nested_in_sequential", cnnlab.models.Sequential(
        [features, L.Dropout(0.2), L.Dense(3, activation="softmax")], name="outer")


GRAPHS = OUT / "graphs"   # not committed: Keras's predictions and the configs' hashes are


def graph_specs() -> dict:
    """Every graph of tests/keras_refs (the lead's 7 named graphs and 40 random ones)."""
    import yaml
    refs = OUT.parents[1]
    return {**yaml.safe_load((refs / "graph_specs.yaml").read_text()),
            **yaml.safe_load((refs / "graph_specs_random.yaml").read_text())}


def graph_model(name, d):
    """The model of graph `name` with weights and inputs seeded by its name."""
    import zlib
    from cnnlab.spec import ModelSpec
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    model = cnnlab.Model.from_spec(ModelSpec.from_dict(d))
    model.set_weights([(rng.normal(size=w.shape) * 0.5).astype("float32")
                       for w in model.get_weights()])
    xs = [rng.normal(size=(3, *i.shape)).astype("float32") for i in model.to_spec().inputs]
    return model, xs


def config_sha(path) -> str:
    import hashlib
    import zipfile
    return hashlib.sha256(zipfile.ZipFile(path).read("config.json")).hexdigest()


def write_graphs():
    GRAPHS.mkdir(exist_ok=True)
    for name, d in graph_specs().items():
        model, xs = graph_model(name, d)
        model.save(GRAPHS / f"{name}.keras")
        np.savez(GRAPHS / f"{name}.inputs.npz", *xs)
    print(f"wrote {len(graph_specs())} graphs to {GRAPHS}")


def main():
    OUT.mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    for name, model in [*models(), *functional_models()]:
        weights = [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
        for i, w in enumerate(model.weights):  # BatchNormalization's variance must stay > 0
            if w.path.endswith("moving_variance"):
                weights[i] = (np.abs(weights[i]) + 0.5).astype("float32")
        model.set_weights(weights)
        shape = model.to_spec().input_shape
        np.save(OUT / f"{name}.input.npy", rng.normal(size=(4, *shape)).astype("float32"))
        model.save(OUT / f"{name}.keras")
        if name == "seq_gap":  # Keras 3's legacy .h5 too
            model.save(OUT / f"{name}_legacy.h5")
        print(f"wrote {OUT / name}.keras")
    write_graphs()


if __name__ == "__main__":
    main()
