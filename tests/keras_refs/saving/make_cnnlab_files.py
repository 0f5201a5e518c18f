"""Step 1 of the saving references: .keras files written by cnnlab, for real Keras to open.

    PYTHONPATH=src /work/main/.venv/bin/python tests/keras_refs/saving/make_cnnlab_files.py
    KERAS_BACKEND=torch /work/refenv/bin/python tests/keras_refs/saving/make_keras_refs.py

This writes cnnlab_written/<name>.keras plus <name>.input.npy (a fixed batch);
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


def fake_functional(rng):
    """The hand-built graph spec of tests/fake_graph.py (no graph builder needed), with
    layer objects that hold seeded weights: the functional writer checked by Keras itself."""
    import sys
    from types import SimpleNamespace
    sys.path.insert(0, str(OUT.parents[2]))
    from fake_graph import residual_spec
    spec = residual_spec()
    shapes = {"image": [], "a": [(3, 3, 2, 4), (4,)], "b": [(1, 1, 2, 4), (4,)], "add": [],
              "shared": [(1, 1, 4, 4), (4,)]}
    layers = [SimpleNamespace(name=n, weights=[rng.normal(size=s).astype("float32") for s in ss])
              for n, ss in shapes.items()]
    for layer in layers:
        layer.get_weights = lambda layer=layer: layer.weights
    return SimpleNamespace(layers=layers, to_spec=lambda: spec), spec


def write_fake_functional(rng):
    from cnnlab.saving.keras_format import save_keras
    model, _ = fake_functional(rng)
    save_keras(model, OUT / "fake_functional.keras")
    np.savez(OUT / "fake_functional.weights.npz",
             **{f"{l.name}_{i}": w for l in model.layers for i, w in enumerate(l.weights)})


def main():
    OUT.mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    for name, model in models():
        weights = [rng.normal(size=w.shape).astype("float32") for w in model.get_weights()]
        for i, w in enumerate(model.get_weights()):  # BatchNormalization's variance must stay > 0
            if name == "seq_all_layers" and i == 5:
                weights[i] = (np.abs(weights[i]) + 0.5).astype("float32")
        model.set_weights(weights)
        shape = model.to_spec().input_shape
        np.save(OUT / f"{name}.input.npy", rng.normal(size=(4, *shape)).astype("float32"))
        model.save(OUT / f"{name}.keras")
        if name == "seq_gap":  # Keras 3's legacy .h5 too
            model.save(OUT / f"{name}_legacy.h5")
        print(f"wrote {OUT / name}.keras")
    write_fake_functional(np.random.default_rng(8))


if __name__ == "__main__":
    main()
