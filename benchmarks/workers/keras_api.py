"""The lecture's code, run through any library with Keras's API.

tf.keras, Keras 3 (JAX or torch backend) and cnnlab all take this same code:
`keras` below is the module (`tensorflow.keras`, `keras`, or `cnnlab`), and it
needs `Sequential`, `layers.{Conv2D,MaxPooling2D,Flatten,Dense}` and
`callbacks.Callback`, used exactly as the lecture uses them.

    import keras, common, keras_api
    keras_api.train_and_measure(keras, result, args)
"""
from __future__ import annotations

import time

import numpy as np

import common
import lecture
import variant_model


def build_model(keras):
    """The lecture's model, line for line."""
    layers = keras.layers
    model = keras.Sequential()
    model.add(layers.Conv2D(32, (3, 3), activation="relu", input_shape=lecture.INPUT_SHAPE))
    model.add(layers.MaxPooling2D((2, 2)))
    model.add(layers.Conv2D(64, (3, 3), activation="relu"))
    model.add(layers.MaxPooling2D((2, 2), padding="same"))
    model.add(layers.Flatten())
    model.add(layers.Dense(64, activation="relu"))
    model.add(layers.Dense(lecture.NUM_CLASSES, activation="softmax"))
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def timing_callback(keras, clock: common.EpochClock):
    """A Keras callback that drives `clock` (defined here: its base class is the library's)."""

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            clock.begin()

        def on_epoch_end(self, epoch, logs=None):
            clock.end()

    return EpochTimer()


def _param_count(model):
    count = getattr(model, "count_params", None)
    return int(count()) if callable(count) else None


def _history(history, key):
    values = getattr(history, "history", {}).get(key) if history is not None else None
    return [float(v) for v in values] if values else None


def keras_call(keras):
    """`call(model, one)`: a direct `model(x)`, to numpy (waits for JAX's async result)."""
    return lambda model, one: keras.ops.convert_to_numpy(model(one, training=False))


def train_and_measure(keras, result: dict, args, fit=None, call=None) -> None:
    """Build, train and (in epoch mode) measure serving; fill `result` in place.

    `fit(model, x, y_onehot, callbacks)` replaces `model.fit` when given: the
    cnnlab worker passes its fast recipe here. `call(model, one)`, when given,
    is also timed on single images (`call_latency_ms`): calling a Keras model
    directly skips predict()'s per-call setup, and Keras recommends it for
    single images.
    """
    data = common.load_data(args)
    x, y = data["x_train"], common.one_hot(data["y_train"])
    if args.mode == "variant":  # an improve.yaml variant: its model, optimizer, batch size
        recipe = variant_model.load(args.variant_file, args.variant)
        x = x.reshape(len(x), *recipe["input_shape"])
        args.batch_size = recipe["batch_size"]
        model = variant_model.keras_model(keras, recipe)
    else:
        model = build_model(keras)

    def predict(images: np.ndarray, batch: int = 1000) -> np.ndarray:
        return np.asarray(model.predict(images, batch_size=batch, verbose=0))

    clock = common.EpochClock(predict, data.get("x_val"), data.get("y_val"))
    callbacks = [timing_callback(keras, clock)]
    t0 = time.perf_counter()
    if fit is None:
        history = model.fit(x, y, batch_size=args.batch_size, epochs=args.epochs,
                            verbose=0, callbacks=callbacks)
    else:
        history = fit(model, x, y, callbacks)
    fit_wall_s = time.perf_counter() - t0

    result.update(clock.as_dict(), fit_wall_s=fit_wall_s,
                  train_loss=_history(history, "loss"),
                  train_accuracy=_history(history, "accuracy"),
                  params=_param_count(model))
    if args.mode != "epoch":
        return
    common.measure_serving(result, args, x, lambda b: predict(b, args.inference_batch),
                           lambda one: predict(one, 1))
    if call is not None:
        result["call_latency_ms"] = common.latency_ms(lambda one: call(model, one), x, args.latency_calls)
