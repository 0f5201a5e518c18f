"""A functional spec shaped as docs GRAPH.md describes (inputs, nodes, outputs), built by hand.

Lets the saving and plotting code for graphs be tested without the graph builder:
image -> a, b; add = a + b; `shared` called on add and again on a (ref "shared@1").
"""
from types import SimpleNamespace as NS

from cnnlab import layers as L


def _node(layer, name, k, inbound, in_shapes, out_shape):
    return NS(layer=layer, layer_name=name, call_index=k, inbound=tuple(inbound),
              ref=name if k == 0 else f"{name}@{k}", input_shapes=tuple(in_shapes),
              output_shape=out_shape)


def residual_spec():
    a, b, shared = L.Conv2D(4, 3, padding="same"), L.Conv2D(4, 1), L.Conv2D(4, 1)
    add = NS(keras_name="Add", multi_input=True, config={}, trainable=True)
    nodes = (_node(a, "a", 0, ["image"], [(6, 6, 2)], (6, 6, 4)),
             _node(b, "b", 0, ["image"], [(6, 6, 2)], (6, 6, 4)),
             _node(add, "add", 0, ["a", "b"], [(6, 6, 4), (6, 6, 4)], (6, 6, 4)),
             _node(shared, "shared", 0, ["add"], [(6, 6, 4)], (6, 6, 4)),
             _node(shared, "shared", 1, ["a"], [(6, 6, 4)], (6, 6, 4)))
    return NS(is_sequential=False, name="graph", inputs=(NS(name="image", shape=(6, 6, 2)),),
              nodes=nodes, outputs=("shared", "shared@1"), layers=(a, b, add, shared))
