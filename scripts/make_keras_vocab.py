"""Write src/cnnlab/saving/keras_vocab.json from real Keras 3: how Keras spells each config.

Run once with Keras 3 (torch backend), never at test or run time:

    KERAS_BACKEND=torch /work/refenv/bin/python scripts/make_keras_vocab.py

The file holds, for each Keras layer class cnnlab may support, the config Keras
writes for a default instance (its `get_config()`, name removed), the serialized
form of every initializer and regularizer cnnlab knows, and the dtype policy.
cnnlab's .keras writer starts from these defaults, and its reader accepts a key
cnnlab has no argument for only when its value is Keras's default.
"""
import json
import os
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")
import keras  # noqa: E402
from keras.saving import serialize_keras_object  # noqa: E402

L = keras.layers
# Minimal arguments for each layer class; required ones are always overwritten by cnnlab's.
LAYERS = {
    "Conv2D": lambda: L.Conv2D(1, 1), "Dense": lambda: L.Dense(1),
    "MaxPooling2D": L.MaxPooling2D, "AveragePooling2D": lambda: L.AveragePooling2D(2),
    "GlobalAveragePooling2D": L.GlobalAveragePooling2D, "GlobalMaxPooling2D": L.GlobalMaxPooling2D,
    "Flatten": L.Flatten, "Dropout": lambda: L.Dropout(0.5), "Activation": lambda: L.Activation("linear"),
    "Reshape": lambda: L.Reshape((-1,)), "BatchNormalization": L.BatchNormalization,
    "Softmax": L.Softmax, "ReLU": L.ReLU, "LeakyReLU": L.LeakyReLU, "ELU": L.ELU,
    "Rescaling": lambda: L.Rescaling(1.0), "ZeroPadding2D": L.ZeroPadding2D,
    "Cropping2D": L.Cropping2D, "SpatialDropout2D": lambda: L.SpatialDropout2D(0.5),
    "Conv2DTranspose": lambda: L.Conv2DTranspose(1, 1), "UpSampling2D": L.UpSampling2D,
    "SeparableConv2D": lambda: L.SeparableConv2D(1, 1), "DepthwiseConv2D": lambda: L.DepthwiseConv2D(1),
    "Add": L.Add, "Subtract": L.Subtract, "Multiply": L.Multiply, "Average": L.Average,
    "Maximum": L.Maximum, "Minimum": L.Minimum, "Concatenate": L.Concatenate,
    "RandomFlip": L.RandomFlip, "RandomRotation": lambda: L.RandomRotation(0.1),
    "RandomZoom": lambda: L.RandomZoom(0.1), "RandomTranslation": lambda: L.RandomTranslation(0.1, 0.1),
    "RandomContrast": lambda: L.RandomContrast(0.1), "RandomBrightness": lambda: L.RandomBrightness(0.1),
    "RandomCrop": lambda: L.RandomCrop(2, 2, seed=0), "Resizing": lambda: L.Resizing(2, 2),
    "CenterCrop": lambda: L.CenterCrop(2, 2),
}
MERGE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")
INITIALIZERS = ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
                "lecun_normal", "zeros", "ones"]


def main():
    layers, built = {}, []
    image = keras.Input((4, 4, 2))
    for name, make in LAYERS.items():
        layer = make()
        config = layer.get_config()
        config.pop("name")
        layers[name] = config
        layer([image, image] if name in MERGE else image)  # Keras writes build_config for some
        if "build_config" in serialize_keras_object(layer):
            built.append(name)
    vocab = {
        "keras_version": keras.__version__,
        "dtype_policy": serialize_keras_object(keras.DTypePolicy("float32")),
        "layers": layers,
        "build_config_layers": built,
        "initializers": {n: serialize_keras_object(keras.initializers.get(n)) for n in INITIALIZERS},
        "regularizers": {
            "l1": serialize_keras_object(keras.regularizers.L1(0.5)),
            "l2": serialize_keras_object(keras.regularizers.L2(0.5)),
            "l1_l2": serialize_keras_object(keras.regularizers.L1L2(0.5, 0.5)),
        },
    }
    out = Path(__file__).resolve().parents[1] / "src/cnnlab/saving/keras_vocab.json"
    out.write_text(json.dumps(vocab, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
