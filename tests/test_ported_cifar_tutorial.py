"""TensorFlow's CIFAR-10 CNN tutorial (tensorflow.org/tutorials/images/cnn) and its data
augmentation tutorial's layers, ported by changing only the imports, on fixture CIFAR-10
archives (tests/test_cifar.py) instead of the 163 MB download."""
from __future__ import annotations

import numpy as np

from test_cifar import ARCHIVES, env, write_tree  # noqa: F401  (env: the shrunk catalog)


def test_tensorflow_cnn_tutorial_on_cifar10(env, monkeypatch, capsys):  # noqa: F811
    write_tree(env / "data", {"cifar-10-python.tar.gz": ARCHIVES["cifar-10-python.tar.gz"]})
    monkeypatch.setenv("CNNLAB_DATA", str(env / "data"))
    # --- the tutorial, imports changed: import tensorflow as tf; from tensorflow.keras ...
    import cnnlab as tf
    from cnnlab import datasets, layers, models

    (train_images, train_labels), (test_images, test_labels) = datasets.cifar10.load_data()
    train_images, test_images = train_images / 255.0, test_images / 255.0
    model = models.Sequential()
    model.add(layers.Conv2D(32, (3, 3), activation='relu', input_shape=(32, 32, 3)))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation='relu'))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation='relu'))
    model.add(layers.Flatten())
    model.add(layers.Dense(64, activation='relu'))
    model.add(layers.Dense(10))
    model.summary()
    assert "Total params: 122,570" in capsys.readouterr().out  # the tutorial's (Keras's) count
    model.compile(optimizer='adam',
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    history = model.fit(train_images, train_labels, epochs=2,
                        validation_data=(test_images, test_labels), verbose=0)
    test_loss, test_acc = model.evaluate(test_images, test_labels, verbose=0)
    assert set(history.history) >= {"accuracy", "loss", "val_accuracy", "val_loss"}
    assert np.isfinite(test_loss) and 0 <= test_acc <= 1
    assert train_labels.shape == (20, 1) and train_labels.dtype == np.uint8


def test_tensorflow_augmentation_tutorial_layers(env, monkeypatch):  # noqa: F811
    """tensorflow.org/tutorials/images/data_augmentation: resize_and_rescale, then a
    data_augmentation Sequential in front of the model."""
    write_tree(env / "data", {"cifar-10-binary.tar.gz": ARCHIVES["cifar-10-binary.tar.gz"]})
    monkeypatch.setenv("CNNLAB_DATA", str(env / "data"))
    import cnnlab as tf
    from cnnlab import layers

    (x, y), _ = tf.datasets.cifar10.load_data()
    IMG_SIZE = 24
    resize_and_rescale = tf.Sequential([
        layers.Resizing(IMG_SIZE, IMG_SIZE),
        layers.Rescaling(1. / 255)
    ])
    data_augmentation = tf.Sequential([
        layers.RandomFlip("horizontal_and_vertical"),
        layers.RandomRotation(0.2),
    ])
    result = resize_and_rescale(x[:4])
    assert tuple(result.shape) == (4, 24, 24, 3) and float(result.max()) <= 1.0
    augmented = data_augmentation(result)  # the tutorial shows augmented images this way
    assert tuple(augmented.shape) == (4, 24, 24, 3)
    assert not np.allclose(augmented.numpy(), result.numpy())  # it augments outside fit too
    model = tf.Sequential([
        tf.Input((32, 32, 3)),
        resize_and_rescale,
        data_augmentation,
        layers.Conv2D(16, 3, padding='same', activation='relu'),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(10),
    ])
    model.compile(optimizer='adam',
                  loss=tf.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=['accuracy'])
    model.fit(x, y, epochs=1, verbose=0)
    assert model.predict(x[:3], verbose=0).shape == (3, 10)
