"""fit's mistakes are errors with Keras-style messages, never a silent zero loss."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import cnnlab
from cnnlab import layers
from cnnlab.errors import ConfigError, DataError

rng = np.random.default_rng(0)
X = rng.random((12, 6, 6, 1)).astype(np.float32)
Y = rng.integers(0, 3, 12)


def model(loss="sparse_categorical_crossentropy"):
    m = cnnlab.models.Sequential([layers.Flatten(input_shape=(6, 6, 1)),
                                  layers.Dense(3, activation="softmax")])
    m.compile(loss=loss, optimizer="adam", metrics=["accuracy"], device="cpu")
    return m


def batches(n=3):
    for i in range(n):
        yield X[i * 2:i * 2 + 2], Y[i * 2:i * 2 + 2]


def forever():
    while True:
        yield X[:4], Y[:4]


CASES = [
    ("empty data", lambda m: m.fit(X[:0], Y[:0], verbose=0), DataError,
     "Expected at least one training sample. Received x with 0 samples (shape (0, 6, 6, 1))."),
    ("mismatched lengths", lambda m: m.fit(X, Y[:7], verbose=0), DataError,
     "Data cardinality is ambiguous. Make sure all arrays contain the same number of samples. "
     "'x' sizes: 12, 'y' sizes: 7 (training labels)."),
    ("class id >= units", lambda m: m.fit(X, np.full(12, 3), verbose=0), DataError,
     "Training labels out of range: expected class indices 0..2 for a model with 3 output "
     "units. Received values from 3 to 3."),
    ("one-hot width, sparse loss", lambda m: m.fit(X, np.eye(5)[Y], verbose=0), DataError,
     "Expected training labels as class indices of shape (12,) or one-hot rows of shape "
     "(12, 3). Received shape (12, 5), dtype float64."),
    ("one-hot width", lambda m: model("categorical_crossentropy").fit(X, np.eye(5)[Y], verbose=0),
     DataError, "Expected training labels with 3 columns to match the model's 3 output units. Received "
     "shape (12, 5)."),
    ("validation labels", lambda m: m.fit(X, Y, validation_data=(X, np.full(12, 7)), verbose=0),
     DataError, "Validation labels out of range: expected class indices 0..2"),
    ("validation_split with a generator", lambda m: m.fit(batches(), validation_split=0.2),
     DataError, "Argument `validation_split` is only supported for tensors or NumPy arrays. "
     "Found incompatible type in the input: generator. Pass validation_data instead."),
    ("infinite generator without steps_per_epoch", lambda m: m.fit(forever(), verbose=0),
     DataError, "The training generator never ends (it has no return), so an epoch would "
     "never end. Pass `steps_per_epoch`, the number of batches that make one epoch."),
    ("itertools.cycle without steps_per_epoch",
     lambda m: m.fit(itertools.cycle([(X[:4], Y[:4])]), verbose=0), DataError,
     "The training generator never ends"),
    ("infinite validation generator", lambda m: m.fit(X, Y, validation_data=forever(),
                                                      verbose=0), DataError,
     "The validation generator never ends (it has no return). Pass `validation_steps`"),
    ("generator that yields nothing", lambda m: m.fit(batches(0), verbose=0), DataError,
     "Expected at least one training batch. Received a generator that yielded none."),
    ("batch of the wrong structure", lambda m: m.fit((X[:4] for _ in range(2)), verbose=0),
     DataError, "Expected each training batch to be a tuple (x, y) or (x, y, sample_weight). "
     "Received a ndarray at batch 0."),
    ("y with a generator", lambda m: m.fit(batches(), Y, verbose=0), DataError,
     "Argument `y` is not supported when `x` is a Python generator"),
    ("class_weight and sample_weight", lambda m: m.fit(X, Y, class_weight={0: 2.0},
                                                       sample_weight=np.ones(12), verbose=0),
     DataError, "You cannot `class_weight` and `sample_weight` at the same time."),
    ("class_weight not a dict", lambda m: m.fit(X, Y, class_weight=[1.0, 2.0], verbose=0),
     DataError, "Invalid value for argument `class_weight`. Expected a dict mapping class "
     "indices (integers) to weights. Received class_weight=[1.0, 2.0]."),
    ("sample_weight shape", lambda m: m.fit(X, Y, sample_weight=np.ones(5), verbose=0),
     DataError, "Invalid value for argument `sample_weight`. Expected one number per training "
     "sample, shape (12,). Received shape (5,), dtype float64."),
    ("validation_split leaves nothing", lambda m: m.fit(X[:1], Y[:1], validation_split=0.5,
                                                        verbose=0), DataError,
     "Expected at least one training sample after validation_split=0.5."),
    ("shuffle", lambda m: m.fit(X, Y, shuffle="yes", verbose=0), ConfigError,
     "Invalid value for argument `shuffle`. Expected True, False or 'batch'. Received "
     "shuffle='yes'."),
    ("verbose", lambda m: m.fit(X, Y, verbose="loud"), ConfigError,
     "Invalid value for argument `verbose`. Expected 'auto', 0 (silent), 1 (progress bar) or "
     "2 (one line per epoch). Received verbose='loud'."),
    ("steps_per_epoch", lambda m: m.fit(batches(), steps_per_epoch=0, verbose=0), ConfigError,
     "Invalid value for argument `steps_per_epoch`. Expected a strictly positive integer or "
     "None. Received steps_per_epoch=0."),
    ("initial_epoch", lambda m: m.fit(X, Y, initial_epoch=-1, verbose=0), ConfigError,
     "Invalid value for argument `initial_epoch`. Expected an integer >= 0. Received "
     "initial_epoch=-1."),
    ("x missing", lambda m: m.fit(None, Y, verbose=0), DataError,
     "Expected training data as x (images) and y (labels). Received x=None."),
    ("evaluate on empty data", lambda m: m.evaluate(X[:0], Y[:0], verbose=0), DataError,
     "Expected at least one evaluation sample."),
]


@pytest.mark.parametrize("name, call, error, message", CASES, ids=[c[0] for c in CASES])
def test_fit_error_messages(name, call, error, message):
    m = model()
    before = [w.copy() for w in m.get_weights()]
    with pytest.raises(error) as err:
        call(m)
    assert str(err.value).startswith(message), str(err.value)
    for a, b in zip(before, m.get_weights()):  # refused before any step
        np.testing.assert_array_equal(a, b)


def test_generator_spent_after_one_epoch_warns_and_stops(capsys):
    """A finite generator without steps_per_epoch is spent by its first epoch: Keras warns
    and stops training rather than running empty epochs."""
    h = model().fit(batches(), epochs=3, verbose=0)
    assert len(h.history["loss"]) == 1
    assert "Your input ran out of data; interrupting training" in capsys.readouterr().err


def test_steps_per_epoch_runs_on_across_epochs_until_the_data_runs_out(capsys):
    h = model().fit(batches(5), steps_per_epoch=2, epochs=4, verbose=0)
    # 5 batches: epochs of 2, 2 and 1 (the data ran out mid-epoch 3), then stop
    assert len(h.history["loss"]) == 3
    assert "ran out of data" in capsys.readouterr().err


def test_fit_before_compile():
    m = cnnlab.models.Sequential([layers.Flatten(input_shape=(6, 6, 1)), layers.Dense(3)])
    with pytest.raises(cnnlab.errors.RunError, match=r"You must call compile\(\) before fit\(\)"):
        m.fit(X, Y)


def test_evaluate_before_compile_refused_and_changes_nothing():
    """As Keras: evaluate needs a compiled model; refusing it leaves the model trainable."""
    m = cnnlab.models.Sequential([layers.Flatten(input_shape=(6, 6, 1)), layers.Dropout(0.5),
                                  layers.Dense(3, activation="softmax")])
    before = m.get_weights()
    with pytest.raises(cnnlab.errors.RunError, match=r"You must call compile\(\) before evaluate"):
        m.evaluate(X, Y)
    m.predict(X, verbose=0)
    for a, b in zip(before, m.get_weights()):
        np.testing.assert_array_equal(a, b)
    m.compile(loss="sparse_categorical_crossentropy", optimizer="adam", device="cpu")
    assert len(m.fit(X, Y, epochs=1, verbose=0).history["loss"]) == 1


def test_predict_refuses_a_generator_that_never_ends():
    with pytest.raises(DataError, match="The prediction generator never ends"):
        model().predict(forever())
    assert model().predict(forever(), steps=2).shape == (8, 3)


def test_progress_of_data_without_length_shows_the_count_after_one_epoch():
    """Keras's bar: `2/Unknown` during the first epoch, then the count it learnt."""
    import io

    from cnnlab.train.progress import ProgressBar

    class Batches:  # re-iterable, no __len__
        def __iter__(self):
            return batches(3)
    out = io.StringIO()
    h = model().fit(Batches(), epochs=2, verbose=0,
                    callbacks=[ProgressBar(stream=out, live=True, refresh_s=0)])
    first, second = out.getvalue().split("Epoch 2/2")
    assert "2/Unknown" in first and "3/3 [" in first.splitlines()[-1]
    assert "1/3 [" in second and len(h.history["loss"]) == 2
