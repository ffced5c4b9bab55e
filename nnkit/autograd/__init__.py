"""A scalar reverse-mode automatic differentiation engine, small enough to read in one sitting.

    from nnkit.autograd import Value, draw_graph
    x, y, z = Value(-2.0, label="x"), Value(5.0, label="y"), Value(-4.0, label="z")
    f = (x + y) * z          # the lecture's example: f = −12
    f.backward()             # x.grad = −4, y.grad = −4, z.grad = 3
    draw_graph(f)            # the graph, each node with its value and gradient

``engine`` holds ``Value`` (the operations and ``backward``), ``nn`` a micrograd-style
``Neuron``/``Layer``/``MLP`` made of Values, and ``draw`` the matplotlib drawing of a graph.
"""
from .draw import draw_graph
from .engine import Value
from .nn import MLP, Layer, Neuron

__all__ = ["Value", "draw_graph", "Neuron", "Layer", "MLP"]
