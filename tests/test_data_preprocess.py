"""Preprocessing as in the lecture: shapes for the model (uint8 views), /255, one-hot labels."""
from __future__ import annotations

import numpy as np
import pytest

from cnnlab.data.preprocess import prepare_images, scale_images, to_categorical
from cnnlab.errors import DataError

X = np.arange(4 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(4, 28, 28)


@pytest.mark.parametrize("input_shape, expected", [
    ((28, 28, 1), (4, 28, 28, 1)),     # the lecture's Conv2D input
    ((784,), (4, 784)),                # an MLP spec
    ((28, 28), (4, 28, 28)),
    ((None, None, 1), (4, 28, 28, 1)),
    ((1, 28, 28), (4, 1, 28, 28)),     # sizes match: reshaped
])
def test_prepare_images_reshapes_without_copying_or_scaling(input_shape, expected):
    out = prepare_images(X, input_shape)
    assert out.shape == expected and out.dtype == np.uint8
    assert np.shares_memory(out, X)
    assert np.array_equal(out.reshape(4, -1), X.reshape(4, -1))


def test_prepare_images_mismatch_names_both_shapes():
    with pytest.raises(DataError) as info:
        prepare_images(X, (32, 32, 3))
    assert str(info.value) == ("The data does not fit the model's input. Expected images of shape "
                               "(32, 32, 3) (3072 values). Received images of shape (28, 28) "
                               "(784 values).")


def test_prepare_images_wants_uint8():
    with pytest.raises(DataError, match="Expected uint8 pixels .* Received dtype float32."):
        prepare_images(X.astype(np.float32), (28, 28, 1))


def test_scale_images_is_the_lectures_division():
    out = scale_images(np.array([0, 51, 255], np.uint8))
    assert out.dtype == np.float32 and np.allclose(out, [0, 0.2, 1])


def test_to_categorical_keras_semantics():
    out = to_categorical([0, 2, 1])
    assert out.dtype == np.float32 and out.tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert to_categorical(np.array([[1], [0]]), 3).shape == (2, 3)       # (N, 1) column
    assert to_categorical(np.array([[1, 0], [0, 1]]), 2).shape == (2, 2, 2)
    assert to_categorical(2, 4).tolist() == [0, 0, 1, 0]
    assert to_categorical(np.array([1.0, 0.0]), 2).tolist() == [[0, 1], [1, 0]]
    assert to_categorical(np.array([], np.int64), 3).shape == (0, 3)
    assert to_categorical(np.array([3, 1], np.uint8), 10).sum() == 2


@pytest.mark.parametrize("y, n, message", [
    ([0, 10], 10, "Expected labels in [0, 9]. Received labels in [0, 10]."),
    ([-1, 2], None, "Expected labels in [0, 2]. Received labels in [-1, 2]."),
    ([0.5], None, "Expected integers. Received non-integer values such as [0.5]."),
    ([], None, "pass num_classes"),
    ([0], 0, "Expected a strictly positive integer. Received num_classes=0."),
])
def test_to_categorical_errors(y, n, message):
    with pytest.raises(DataError) as info:
        to_categorical(np.asarray(y), n)
    assert message in str(info.value)
