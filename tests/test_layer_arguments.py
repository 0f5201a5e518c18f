"""Bad arguments of the tutorial layers fail at construction (or when the input shape is
known) with Keras-style messages, pinned here; Keras 2 spellings still work, with a notice."""
import json
import re
import warnings
from pathlib import Path

import pytest

from cnnlab import layers as L
from cnnlab.errors import SpecError
from cnnlab.spec import ModelSpec

INVALID = json.loads((Path(__file__).parent / "keras_refs" / "refs_layers.json")
                     .read_text())["invalid"]


@pytest.mark.parametrize("name", sorted(INVALID))
def test_what_keras_refuses_is_refused(name):
    """Each spec Keras refused (refs_layers.json 'invalid') fails here, on the same layer."""
    with pytest.raises(SpecError, match=rf"^Layer {INVALID[name]['spec_layer_index']} "):
        ModelSpec.from_dict(INVALID[name]["spec"])


BAD = [  # (make, message)
    (lambda: L.ReLU(max_value=-1.0), "Invalid value for argument `max_value`. Expected a number "
                                     ">= 0 or None. Received max_value=-1.0."),
    (lambda: L.ReLU(negative_slope=-0.5), "Invalid value for argument `negative_slope`. "
                                          "Expected a number >= 0. Received negative_slope=-0.5."),
    (lambda: L.ReLU(threshold="1"), "Invalid value for argument `threshold`. Expected a number "
                                    ">= 0. Received threshold='1'."),
    (lambda: L.LeakyReLU(-0.1), "Invalid value for argument `negative_slope`. Expected a number "
                                ">= 0. Received negative_slope=-0.1."),
    (lambda: L.ELU(alpha=None), "Invalid value for argument `alpha`. Expected a number. "
                                "Received alpha=None."),
    (lambda: L.Softmax(axis=1.5), "Invalid value for argument `axis`. Expected an integer or a "
                                  "list of distinct integers. Received axis=1.5."),
    (lambda: L.Rescaling(), "Missing required argument `scale` for Rescaling."),
    (lambda: L.Rescaling("a"), "Invalid value for argument `scale`. Expected a number or a list "
                               "of numbers. Received scale='a'."),
    (lambda: L.ZeroPadding2D((1, 2, 3)), "Invalid value for argument `padding`. Expected a "
     "non-negative integer, a pair of them (symmetric height, width) or a pair of pairs "
     "((top, bottom), (left, right)). Received padding=(1, 2, 3)."),
    (lambda: L.Cropping2D(-1), "Invalid value for argument `cropping`. Expected a non-negative "
                               "integer"),
    (lambda: L.UpSampling2D(interpolation="bicubic"), "Invalid value for argument "
     "`interpolation`. Expected one of 'nearest', 'bilinear'. Received interpolation='bicubic'."),
    (lambda: L.UpSampling2D(size=0), "Invalid value for argument `size`. Expected a strictly "
                                     "positive integer or a pair of them. Received size=0."),
    (lambda: L.SpatialDropout2D(1.5), "Invalid value for argument `rate`. Expected a number in "
                                      "[0, 1]. Received rate=1.5."),
    (lambda: L.Conv2DTranspose(0, 3), "Invalid value for argument `filters`. Expected a strictly "
                                      "positive integer. Received filters=0."),
    (lambda: L.Conv2DTranspose(2, 3, padding="full"), "Invalid value for argument `padding`. "
     "Expected one of 'valid', 'same'. Received padding='full'."),
    (lambda: L.Conv2DTranspose(2, 3, strides=2, output_padding=2), "Invalid value for argument "
     "`output_padding`. Expected None, or a non-negative integer (or pair) strictly less than "
     "strides=[2, 2]. Received output_padding=2."),
    (lambda: L.DepthwiseConv2D(3, depth_multiplier=0), "Invalid value for argument "
     "`depth_multiplier`. Expected a strictly positive integer. Received depth_multiplier=0."),
    (lambda: L.SeparableConv2D(4, 3, pointwise_initializer="foo"), "Unknown initializer 'foo'. "
                                                                   "Expected one of: glorot_normal"),
    (lambda: L.DepthwiseConv2D(3, kernel_initializer="ones"), "Unknown argument "
     "`kernel_initializer` for DepthwiseConv2D. Expected one of: activation, bias_initializer"),
    (lambda: L.InputLayer(), "InputLayer: missing argument `shape`. Expected `shape` (such as "
                             "[28, 28, 1]) or `batch_shape` (such as [None, 28, 28, 1])."),
    (lambda: L.InputLayer(shape=(3,), batch_shape=(None, 3)),
     "InputLayer: you cannot pass both `shape` and `batch_shape`. Expected one of them."),
    (lambda: L.get("Conv2DTransposed"), "Unknown layer 'Conv2DTransposed'. Expected one of: "
                                        "Activation, Add, Average, AveragePooling2D"),
]


@pytest.mark.parametrize("make,message", BAD)
def test_bad_arguments_are_refused_with_keras_style_messages(make, message):
    with pytest.raises(SpecError, match="^" + re.escape(message)):
        make()


@pytest.mark.parametrize("layer,shape,message", [
    (L.Softmax(axis=4), (3, 3, 2), "Layer 0 (Softmax): Invalid value for argument `axis`. "
                                   "Expected an axis in [-4, 3] for an input of rank 4. "
                                   "Received axis=4."),
    (L.Rescaling([1.0, 2.0]), (3, 3, 3), "Layer 0 (Rescaling): Invalid value for argument "
     "`scale`. Expected a number or a list of 3 numbers (one per channel of the input "
     "(None, 3, 3, 3)). Received scale=[1.0, 2.0]."),
    (L.Cropping2D(((2, 2), (0, 0))), (4, 6, 1), "Layer 0 (Cropping2D): Cropping2D: `cropping` "
     "[[2, 2], [0, 0]] removes every row or column of its input (None, 4, 6, 1). Expected each "
     "pair to sum to less than the height and width."),
    (L.ZeroPadding2D(), (4,), "Layer 0 (ZeroPadding2D): ZeroPadding2D expects images of shape "
                              "(height, width, channels) (rank 3 without the batch axis). "
                              "Received input shape (None, 4)."),
    (L.SeparableConv2D(2, 5), (4, 4, 1), "Layer 0 (SeparableConv2D): SeparableConv2D: "
                                         "kernel_size (5, 5) is larger than its input"),
])
def test_shape_errors_name_the_layer(layer, shape, message):
    with pytest.raises(SpecError, match="^" + re.escape(message)):
        ModelSpec.from_layers([layer], input_shape=shape)


def test_keras2_alpha_of_leaky_relu_works_with_a_notice_naming_negative_slope():
    with pytest.warns(FutureWarning, match=r"^LeakyReLU: argument `alpha` is deprecated "
                                           r"\(Keras 2\)\. Use `negative_slope` instead\.$"):
        layer = L.LeakyReLU(alpha=0.1)
    assert layer.config["negative_slope"] == 0.1
    assert layer.get_config() == {"negative_slope": 0.1}  # written back in Keras 3's spelling
    with pytest.raises(SpecError, match="Expected only one of `alpha`"):
        L.LeakyReLU(alpha=0.1, negative_slope=0.2)


def test_keras3_defaults():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no notice without a Keras 2 spelling
        assert L.LeakyReLU().config["negative_slope"] == 0.3  # Keras 3 (Keras 2: 0.3 as well)
    assert L.ReLU().config == {"max_value": None, "negative_slope": 0.0, "threshold": 0.0}
    assert L.ZeroPadding2D().config["padding"] == ((1, 1), (1, 1))
    assert L.UpSampling2D().config == {"size": (2, 2), "interpolation": "nearest"}
    assert L.Conv2DTranspose(2, 3).config["output_padding"] is None


def test_input_layer_forms_give_the_same_model():
    shapes = [ModelSpec.from_layers([first, L.Flatten()]).input_shape for first in (
        L.InputLayer(shape=(5, 4, 1)), L.InputLayer(batch_shape=(None, 5, 4, 1)),
        L.InputLayer((5, 4, 1)), L.Input((5, 4, 1)))]
    assert shapes == [(5, 4, 1)] * 4
    with pytest.warns(FutureWarning, match="Use `shape` instead"):
        assert L.InputLayer(input_shape=(5, 4, 1)).config["shape"] == (5, 4, 1)
