"""Keras programs ported by changing only the imports (`keras` -> `cnnlab`), on tiny data.

Each test is written the way the Keras examples and the TensorFlow tutorials write it
(generators, PyDataset, DataLoader, class_weight, validation_split, callbacks, evaluate,
predict), on a few hundred digits of the bundled MNIST sample, and checks what the
program would print or rely on.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import cnnlab as keras
from cnnlab import layers

N_TRAIN, N_TEST = 600, 200


@pytest.fixture(scope="module")
def mnist():
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    x_train, x_test = x_train[:N_TRAIN] / 255.0, x_test[:N_TEST] / 255.0
    return (x_train, y_train[:N_TRAIN]), (x_test, y_test[:N_TEST])


def test_tensorflow_quickstart_order(mnist):
    """TensorFlow's beginner quickstart, in its order: the untrained model (with Dropout) is
    called and its loss computed before compile; then fit, evaluate and a probability model.
    (`tf.nn.softmax` is TensorFlow's, not Keras's: NumPy's softmax stands in for it.)"""
    (x_train, y_train), (x_test, y_test) = mnist
    keras.utils.set_random_seed(0)
    model = keras.models.Sequential([
        layers.Flatten(input_shape=(28, 28)),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.2),
        layers.Dense(10),
    ])
    predictions = model(x_train[:1]).numpy()
    probabilities = np.exp(predictions) / np.exp(predictions).sum()
    assert predictions.shape == (1, 10) and np.isclose(probabilities.sum(), 1.0)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    untrained_loss = float(loss_fn(y_train[:1], predictions).numpy())
    np.testing.assert_allclose(untrained_loss, -np.log(probabilities[0, y_train[0]]), rtol=1e-5)
    model.compile(optimizer="adam", loss=loss_fn, metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=3, verbose=0)
    loss, acc = model.evaluate(x_test, y_test, verbose=2)
    assert history.history["loss"][-1] < history.history["loss"][0] and acc > 0.6
    probability_model = keras.Sequential([model, layers.Softmax()])
    np.testing.assert_allclose(probability_model(x_test[:5]).numpy().sum(axis=1), 1.0, rtol=1e-5)


def test_calling_or_predicting_before_compile_changes_nothing(mnist):
    """model(x) and predict before compile leave the weights and the training as they were."""
    (x_train, y_train), _ = mnist

    def trained(call_first):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([layers.Flatten(input_shape=(28, 28, 1)),
                                  layers.Dropout(0.3), layers.Dense(10, activation="softmax")])
        w0 = model.get_weights()
        if call_first:
            model(x_train[:4])
            model.predict(x_train[:8], verbose=0)
            for a, b in zip(w0, model.get_weights()):
                np.testing.assert_array_equal(a, b)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x_train, y_train, batch_size=64, epochs=1, verbose=0, seed=3)
        return model.get_weights()

    for a, b in zip(trained(False), trained(True)):
        np.testing.assert_array_equal(a, b)


def test_generator_with_steps_per_epoch_and_validation_steps(mnist):
    """The classic `while True` batch generator of Keras 2 era tutorials."""
    (x_train, y_train), (x_test, y_test) = mnist

    def batch_generator(x, y, batch_size):
        while True:
            idx = np.random.randint(0, len(x), batch_size)
            yield x[idx].reshape(-1, 28, 28, 1), keras.utils.to_categorical(y[idx], 10)

    model = keras.Sequential([layers.Conv2D(8, (3, 3), activation="relu", input_shape=(28, 28, 1)),
                              layers.MaxPooling2D((2, 2)), layers.Flatten(),
                              layers.Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(batch_generator(x_train, y_train, 32), steps_per_epoch=10, epochs=3,
                        validation_data=batch_generator(x_test, y_test, 50),
                        validation_steps=2, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss", "val_accuracy", "val_loss"]
    assert len(history.history["loss"]) == 3 and history.params["steps"] == 10
    assert history.history["loss"][-1] < history.history["loss"][0]


class DigitsDataset(keras.utils.PyDataset):
    """Keras 3's PyDataset example: batches by index, shuffled at each epoch's end."""

    def __init__(self, x, y, batch_size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.batch_size = x, y, batch_size
        self.epochs_seen = 0

    def __len__(self):
        return math.ceil(len(self.x) / self.batch_size)

    def __getitem__(self, idx):
        low = idx * self.batch_size
        high = min(low + self.batch_size, len(self.x))
        return self.x[low:high], self.y[low:high]

    def on_epoch_end(self):
        self.epochs_seen += 1


def test_pydataset_fit_evaluate_predict(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    train_ds = DigitsDataset(x_train, y_train, 64, workers=2, use_multiprocessing=False)
    val_ds = DigitsDataset(x_test, y_test, 100)
    model = keras.Sequential([keras.Input(shape=(28, 28)), layers.Flatten(),
                              layers.Dense(32, activation="relu"),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(train_ds, epochs=2, validation_data=val_ds, verbose=0)
    assert history.params["steps"] == len(train_ds) == 10
    assert train_ds.epochs_seen == 2 and val_ds.epochs_seen == 2
    loss, acc = model.evaluate(val_ds, verbose=0)
    np.testing.assert_allclose([loss, acc], model.evaluate(x_test, y_test, verbose=0), rtol=1e-5)
    np.testing.assert_allclose(model.predict(val_ds), model.predict(x_test), rtol=1e-5)


def test_torch_dataloader(mnist):
    (x_train, y_train), (x_test, y_test) = mnist
    ds = torch.utils.data.TensorDataset(torch.tensor(x_train, dtype=torch.float32),
                                        torch.tensor(y_train))
    loader = torch.utils.data.DataLoader(ds, batch_size=50, shuffle=True)
    model = keras.Sequential([layers.Flatten(input_shape=(28, 28)),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(loader, epochs=2, verbose=0)
    assert history.params["steps"] == 12 and len(history.history["accuracy"]) == 2
    assert model.evaluate(x_test, y_test, verbose=0)[1] > 0.5


def test_imbalanced_classification_with_class_weight(mnist):
    """Keras's imbalanced-classification example: a rare class weighted up by its count."""
    (x_train, y_train), _ = mnist
    y = (y_train == 7).astype("float32")  # about 10% positives
    counts = np.bincount(y.astype(int))
    class_weight = {0: 1.0 / counts[0], 1: 1.0 / counts[1]}
    model = keras.Sequential([layers.Flatten(input_shape=(28, 28)),
                              layers.Dense(16, activation="relu"),
                              layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    keras.utils.set_random_seed(0)
    model.fit(x_train, y, batch_size=128, epochs=5, verbose=0, class_weight=class_weight)
    recall = (model.predict(x_train, verbose=0)[:, 0] > 0.5)[y == 1].mean()
    assert recall > 0.8  # the weighted loss does not ignore the rare class


def test_validation_split_callbacks_and_history(mnist, tmp_path):
    (x_train, y_train), (x_test, y_test) = mnist
    model = keras.Sequential([layers.Flatten(input_shape=(28, 28)),
                              layers.Dense(32, activation="relu"),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = [keras.callbacks.EarlyStopping(monitor="val_loss", patience=1),
                 keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))]
    history = model.fit(x_train, y_train, batch_size=32, epochs=4, validation_split=0.2,
                        callbacks=callbacks, verbose=0)
    assert history.params["steps"] == math.ceil(N_TRAIN * 0.8 / 32)
    assert set(history.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len((tmp_path / "log.csv").read_text().splitlines()) == len(history.epoch) + 1
    predictions = model.predict(x_test, verbose=0)
    assert (predictions.argmax(axis=1) == y_test).mean() > 0.5


def test_initial_epoch_and_verbose_2(mnist, capsys):
    """Training continued with initial_epoch, as the Keras guides do after a restart."""
    (x_train, y_train), _ = mnist
    model = keras.Sequential([layers.Flatten(input_shape=(28, 28)),
                              layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=2, verbose=0)
    history = model.fit(x_train, y_train, epochs=4, initial_epoch=2, verbose=2, shuffle="batch")
    out = capsys.readouterr().out.splitlines()
    assert history.epoch == [2, 3] and len(history.history["loss"]) == 2
    assert out[0] == "Epoch 3/4" and out[1].startswith("19/19 - ") and out[2] == "Epoch 4/4"
    assert "[=" not in "".join(out)  # verbose=2: no bar
