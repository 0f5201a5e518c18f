"""The Keras examples and guides, ported by changing only the import lines.

Each program below is written as keras.io and the TensorFlow tutorials write it
(`import keras` -> `import cnnlab as keras`, `from keras import layers` -> `from cnnlab
import layers`), on a few hundred digits of the bundled MNIST sample or tiny random
images, and runs to its end: summary, compile, fit, evaluate, predict, save and load.
"""
from __future__ import annotations

import numpy as np
import pytest

import cnnlab as keras
from cnnlab import layers

N = 256


@pytest.fixture(scope="module")
def digits():
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    return (x_train[:N], y_train[:N]), (x_test[:N // 2], y_test[:N // 2])


def test_simple_mnist_convnet(digits, capsys):
    """keras.io/examples/vision/mnist_convnet: Sequential with keras.Input, Dropout,
    to_categorical, validation_split, evaluate."""
    num_classes = 10
    input_shape = (28, 28, 1)
    (x_train, y_train), (x_test, y_test) = digits
    x_train = x_train.astype("float32") / 255
    x_test = x_test.astype("float32") / 255
    x_train = np.expand_dims(x_train, -1)
    x_test = np.expand_dims(x_test, -1)
    y_train = keras.utils.to_categorical(y_train, num_classes)
    y_test = keras.utils.to_categorical(y_test, num_classes)
    model = keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ])
    model.summary()
    assert "Total params: 34,826" in capsys.readouterr().out  # Keras's count for this model
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=128, epochs=2, validation_split=0.1, verbose=0)
    score = model.evaluate(x_test, y_test, verbose=0)
    assert len(score) == 2 and 0 <= score[1] <= 1 and np.isfinite(score[0])


def test_functional_api_guide_mnist_model_save_and_load(digits, tmp_path):
    """keras.io/guides/functional_api: Input(784), Dense stack to logits,
    SparseCategoricalCrossentropy(from_logits=True), RMSprop, save/load_model."""
    inputs = keras.Input(shape=(784,))
    dense = layers.Dense(64, activation="relu")
    x = dense(inputs)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(10)(x)
    model = keras.Model(inputs=inputs, outputs=outputs, name="mnist_model")
    assert x.shape == (None, 64) and model.name == "mnist_model"
    keras.utils.plot_model(model, str(tmp_path / "my_first_model.png"), show_shapes=True)
    assert (tmp_path / "my_first_model.png").stat().st_size > 0

    (x_train, y_train), (x_test, y_test) = digits
    x_train = x_train.reshape(len(x_train), 784).astype("float32") / 255
    x_test = x_test.reshape(len(x_test), 784).astype("float32") / 255
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=keras.optimizers.RMSprop(), metrics=["accuracy"])
    history = model.fit(x_train, y_train, batch_size=64, epochs=2, validation_split=0.2,
                        verbose=0)
    assert list(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"] or \
        set(history.history) == {"accuracy", "loss", "val_accuracy", "val_loss"}
    test_scores = model.evaluate(x_test, y_test, verbose=0)
    model.save(tmp_path / "my_model.keras")
    del model
    model = keras.models.load_model(tmp_path / "my_model.keras")
    again = model.evaluate(x_test, y_test, verbose=0)
    np.testing.assert_allclose(again, test_scores, rtol=1e-5)


def test_functional_api_guide_autoencoder_models_are_callable():
    """The guide's encoder/decoder, each a Model, called like layers in a third model."""
    encoder_input = keras.Input(shape=(28, 28, 1), name="original_img")
    x = layers.Conv2D(16, 3, activation="relu")(encoder_input)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.Conv2D(16, 3, activation="relu")(x)
    encoder_output = layers.GlobalMaxPooling2D()(x)
    encoder = keras.Model(encoder_input, encoder_output, name="encoder")

    decoder_input = keras.Input(shape=(16,), name="encoded_img")
    x = layers.Reshape((4, 4, 1))(decoder_input)
    x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
    x = layers.Conv2DTranspose(32, 3, activation="relu")(x)
    x = layers.UpSampling2D(3)(x)
    x = layers.Conv2DTranspose(16, 3, activation="relu")(x)
    decoder_output = layers.Conv2DTranspose(1, 3, activation="relu")(x)
    decoder = keras.Model(decoder_input, decoder_output, name="decoder")

    autoencoder_input = keras.Input(shape=(28, 28, 1), name="img")
    encoded_img = encoder(autoencoder_input)
    decoded_img = decoder(encoded_img)
    autoencoder = keras.Model(autoencoder_input, decoded_img, name="autoencoder")
    lines = []
    autoencoder.summary(print_fn=lines.append)
    # Keras's numbers for the guide's models
    assert encoder.count_params() == 18672 and decoder.count_params() == 9569
    assert "Total params: 28,241" in lines[0]
    assert [l.name for l in autoencoder.layers] == ["img", "encoder", "decoder"]
    x = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype("float32")
    out = autoencoder.predict(x, verbose=0)
    assert out.shape == (2, 28, 28, 1)
    np.testing.assert_allclose(out, decoder.predict(encoder.predict(x)), atol=1e-5)


def test_functional_api_guide_toy_resnet():
    """The guide's toy ResNet for CIFAR-10: residual Add blocks, metrics=["acc"],
    CategoricalCrossentropy(from_logits=True)."""
    inputs = keras.Input(shape=(32, 32, 3), name="img")
    x = layers.Conv2D(32, 3, activation="relu")(inputs)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    block_1_output = layers.MaxPooling2D(3)(x)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_1_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_2_output = layers.add([x, block_1_output]) if hasattr(layers, "add") else \
        layers.Add()([x, block_1_output])
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(block_2_output)
    x = layers.Conv2D(64, 3, activation="relu", padding="same")(x)
    block_3_output = layers.Add()([x, block_2_output])
    x = layers.Conv2D(64, 3, activation="relu")(block_3_output)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(256, activation="relu")(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(10)(x)
    model = keras.Model(inputs, outputs, name="toy_resnet")
    assert model.count_params() == 223242  # Keras's count in the guide
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, (32, 32, 32, 3)).astype("uint8")
    y_train = rng.integers(0, 10, (32, 1))
    x_train = x_train.astype("float32") / 255.0
    y_train = keras.utils.to_categorical(y_train, 10)
    model.compile(optimizer=keras.optimizers.RMSprop(1e-3),
                  loss=keras.losses.CategoricalCrossentropy(from_logits=True), metrics=["acc"])
    history = model.fit(x_train, y_train, batch_size=16, epochs=1, validation_split=0.25,
                        verbose=0)
    assert set(history.history) == {"loss", "acc", "val_loss", "val_acc"}


def test_tensorflow_cnn_tutorial_with_softmax_probability_model(digits):
    """tensorflow.org/tutorials/images/cnn's pattern (Sequential.add, input_shape, logits,
    SparseCategoricalCrossentropy(from_logits=True), history keys), then the
    classification tutorial's probability model: Sequential([model, layers.Softmax()])."""
    (x_train, y_train), (x_test, y_test) = digits
    train_images, test_images = x_train[..., None] / 255.0, x_test[..., None] / 255.0
    model = keras.models.Sequential()
    model.add(layers.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(layers.Flatten())
    model.add(layers.Dense(64, activation="relu"))
    model.add(layers.Dense(10))
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    history = model.fit(train_images, y_train, epochs=2,
                        validation_data=(test_images, y_test), verbose=0)
    assert len(history.history["val_accuracy"]) == 2
    test_loss, test_acc = model.evaluate(test_images, y_test, verbose=0)
    probability_model = keras.Sequential([model, layers.Softmax()])
    predictions = probability_model.predict(test_images)
    np.testing.assert_allclose(predictions.sum(axis=1), 1.0, atol=1e-5)
    assert np.argmax(predictions[0]) == np.argmax(model.predict(test_images[:1])[0])
    assert np.mean(np.argmax(predictions, 1) == y_test) == pytest.approx(test_acc, abs=1e-6)
