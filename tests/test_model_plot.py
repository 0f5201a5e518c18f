"""plot_model: the model's graph as a PNG drawn with matplotlib (no Graphviz)."""
import pytest
from PIL import Image

import cnnlab
from cnnlab import layers as L
from cnnlab.errors import ConfigError
from cnnlab.model_plot import _box_sizes, _place, _routes, graph_of, layout



def residual_spec():
    """image -> a, b; add = a + b; `shared` called on add and again on a."""
    x = cnnlab.Input(shape=(6, 6, 2), name="image")
    a = L.Conv2D(4, 3, padding="same", name="a")(x)
    s = L.Add(name="add")([a, L.Conv2D(4, 1, name="b")(x)])
    shared = L.Conv2D(4, 1, name="shared")
    return cnnlab.Model(x, L.Concatenate(name="cat")([shared(s), shared(a)])).to_spec()

PNG = b"\x89PNG\r\n\x1a\n"


def chain():
    return cnnlab.models.Sequential([L.Conv2D(3, 3, input_shape=(8, 8, 1)), L.MaxPooling2D(),
                                     L.Flatten(), L.Dense(2, activation="softmax")])


def test_sequential_plot_is_a_png_column(tmp_path):
    path = tmp_path / "model.png"
    assert cnnlab.utils.plot_model(chain(), to_file=str(path), show_shapes=True, dpi=50) is None
    assert path.read_bytes()[:8] == PNG
    width, height = Image.open(path).size
    assert height > 2 * width  # five boxes stacked top to bottom
    boxes, edges = graph_of(chain().to_spec())
    assert [b.cls for b in boxes] == ["InputLayer", "Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    assert edges == [("input_layer", "conv2d"), ("conv2d", "max_pooling2d"),
                     ("max_pooling2d", "flatten"), ("flatten", "dense")]
    assert layout(boxes, edges)["dense"] == (4, 0)


def test_left_to_right_plot_is_wide(tmp_path):
    cnnlab.utils.plot_model(chain(), to_file=tmp_path / "m.png", rankdir="LR", dpi=50)
    width, height = Image.open(tmp_path / "m.png").size
    assert width > 2 * height


def test_labels_follow_keras_options():
    from cnnlab.model_plot import _label
    boxes, _ = graph_of(chain().to_spec())
    dense = boxes[-1]
    assert _label(dense, False, False, False, False, False) == ("Dense", [])
    title, lines = _label(dense, True, True, True, True, False)
    assert title == "dense (Dense)"
    assert lines == ["Activation: softmax", "Input shape: (None, 27)",
                     "Output shape: (None, 2)", "Trainable: True"]


def test_branches_stand_side_by_side_and_skips_go_around():
    boxes, edges = graph_of(residual_spec())
    assert [b.name for b in boxes] == ["image", "a", "b", "add", "shared", "cat"]
    # the shared layer is one box with one arrow per call
    assert edges == [("image", "a"), ("image", "b"), ("a", "add"), ("b", "add"),
                     ("add", "shared"), ("a", "shared"), ("shared", "cat")]
    pos = layout(boxes, edges)
    assert pos == {"image": (0, 0), "a": (1, 0), "b": (1, 1), "add": (2, 0), "shared": (3, 0),
                   "cat": (4, 0)}
    labels = {b.name: (b.name, []) for b in boxes}
    centre, ext, ranks, step = _place(pos, _box_sizes(labels), "TB")
    assert centre["a"][0] == centre["b"][0] and centre["a"][1] < centre["b"][1]
    routes = _routes(edges, pos, centre, ext, ranks, step)
    skip = routes[edges.index(("a", "shared"))]
    add_left = centre["add"][1] - ext["add"][1] / 2
    assert len(skip) == 6 and skip[2][1] < add_left  # runs beside `add`, not through it


def test_graph_plot_writes_png(tmp_path):
    from cnnlab.model_plot import plot_model
    plot_model(residual_spec(), tmp_path / "g.png", show_shapes=True, show_layer_names=True,
               dpi=40)
    assert (tmp_path / "g.png").read_bytes()[:8] == PNG


@pytest.mark.parametrize("kwargs, message", [
    ({"to_file": "m.svg"}, "plot_model writes PNG files. Expected `to_file` ending in .png. "
                           "Received to_file='m.svg'."),
    ({"rankdir": "BT"}, "Invalid value for argument `rankdir`. Expected 'TB' or 'LR'. "
                        "Received rankdir='BT'."),
    ({"show_shapes": "yes"}, "Invalid value for argument `show_shapes`. Expected True or "
                             "False. Received show_shapes='yes'."),
    ({"layout": "dot"}, "Invalid kwargs: ['layout']"),
])
def test_bad_arguments(kwargs, message, tmp_path):
    kwargs.setdefault("to_file", tmp_path / "m.png")
    with pytest.raises(ConfigError) as err:
        cnnlab.utils.plot_model(chain(), **kwargs)
    assert str(err.value) == message
