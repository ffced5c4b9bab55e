"""Known wrong answers for problem set 2 (computational graphs) and the feedback each must get.

``MUTATIONS[question] = [(bug class, full source of the planted solution cell, phrase the
feedback must contain), ...]``. The framework (tests/test_assignments.py) plants each into a copy
of the solution, autogrades it with nbgrader, and checks that only this question loses its points
and that its feedback names the bug.
"""

_TOPOLOGICAL = '''
def backprop(root):
    order, visited = [], set()

    def visit(node):
        if {key} not in visited:
            visited.add({key})
{visit}
    visit(root)
{seed}    for node in {walk}:
        node._backward()
'''


def _topological(key: str = "node", pre_order: bool = False, seed: str = "    root.grad = 1.0\n",
                 walk: str = "reversed(order)") -> str:
    """backprop over a depth-first topological order, with one piece changed: what the visited set holds,
    a node appended before its inputs, how the root is seeded, which nodes run in which order."""
    append = "            order.append(node)\n"
    inputs = "            for child in node._prev:\n                visit(child)\n"
    return _TOPOLOGICAL.format(key=key, visit=append + inputs if pre_order else inputs + append, seed=seed,
                               walk=walk)


MUTATIONS = {
    "add_backward": [
        ("no accumulation under fan-out", '''
def add_backward(a, b, out):
    """Overwrites instead of adding: x + x gets one contribution."""
    a.grad = out.grad
    b.grad = out.grad
''', "no accumulation under fan-out"),
        ("sign flip", '''
def add_backward(a, b, out):
    a.grad -= out.grad
    b.grad -= out.grad
''', "sign flip"),
        ("wrong rule", '''
def add_backward(a, b, out):
    """The multiply rule where the add rule belongs."""
    a.grad += b.data * out.grad
    b.grad += a.data * out.grad
''', "wrong rule"),
        ("returns the gradients", '''
def add_backward(a, b, out):
    return out.grad, out.grad
''', "gradients not written into .grad"),
        ("local derivative only", '''
def add_backward(a, b, out):
    a.grad += 1.0
    b.grad += 1.0
''', "missing upstream gradient out.grad"),
        ("b forgotten", '''
def add_backward(a, b, out):
    a.grad += out.grad
''', "gradient for only one input"),
    ],
    "mul_backward": [
        ("wrong rule", '''
def mul_backward(a, b, out):
    """Each input multiplied by its own value instead of the other's."""
    a.grad += a.data * out.grad
    b.grad += b.data * out.grad
''', "wrong rule"),
        ("no accumulation under fan-out", '''
def mul_backward(a, b, out):
    a.grad = b.data * out.grad
    b.grad = a.data * out.grad
''', "no accumulation under fan-out"),
        ("sign flip", '''
def mul_backward(a, b, out):
    a.grad -= b.data * out.grad
    b.grad -= a.data * out.grad
''', "sign flip"),
        ("missing upstream gradient", '''
def mul_backward(a, b, out):
    a.grad += b.data
    b.grad += a.data
''', "missing upstream gradient out.grad"),
        ("returns the gradients", '''
def mul_backward(a, b, out):
    return b.data * out.grad, a.data * out.grad
''', "gradients not written into .grad"),
        ("b forgotten", '''
def mul_backward(a, b, out):
    a.grad += b.data * out.grad
''', "gradient for only one input"),
        ("out.grad left out of one term", '''
def mul_backward(a, b, out):
    a.grad += b.data * out.grad
    b.grad += a.data
''', "missing upstream gradient out.grad"),
        ("copy-paste: b's own value", '''
def mul_backward(a, b, out):
    a.grad += b.data * out.grad
    b.grad += b.data * out.grad
''', "wrong rule"),
    ],
    "function_rules": [
        ("wrong rule", '''
def sigmoid_backward(a, out):
    """σ′ evaluated at the input instead of the output."""
    a.grad += a.data * (1.0 - a.data) * out.grad


def log_backward(a, out):
    a.grad += out.grad / a.data
''', "wrong rule"),
        ("sign flip", '''
def sigmoid_backward(a, out):
    a.grad += out.data * (1.0 - out.data) * out.grad


def log_backward(a, out):
    a.grad -= out.grad / a.data
''', "sign flip"),
        ("no accumulation", '''
def sigmoid_backward(a, out):
    a.grad = out.data * (1.0 - out.data) * out.grad


def log_backward(a, out):
    a.grad = out.grad / a.data
''', "no accumulation under fan-out"),
        ("log divides by its output", '''
def sigmoid_backward(a, out):
    a.grad += out.data * (1.0 - out.data) * out.grad


def log_backward(a, out):
    a.grad += out.grad / out.data
''', "wrong rule"),
        ("sigmoid without out.grad", '''
def sigmoid_backward(a, out):
    a.grad += out.data * (1.0 - out.data)


def log_backward(a, out):
    a.grad += out.grad / a.data
''', "missing upstream gradient out.grad"),
        ("σ where σ′ belongs", '''
def sigmoid_backward(a, out):
    a.grad += out.data * out.grad


def log_backward(a, out):
    a.grad += out.grad / a.data
''', "wrong rule"),
        ("log returns its gradient", '''
def sigmoid_backward(a, out):
    a.grad += out.data * (1.0 - out.data) * out.grad


def log_backward(a, out):
    return out.grad / a.data
''', "gradients not written into .grad"),
    ],
    "backprop": [
        ("visited set keyed by the node's value", _topological(key="node.data"), "a node's _backward never called", "same value as a node that did run"),
        ("pre-order depth-first walk", _topological(pre_order=True, walk="order"), "wrong order", "which uses it, had added its contribution"),
        ("resets every gradient first", _topological(seed="    for node in order:\n        node.grad = 0.0\n    root.grad = 1.0\n"), "gradients reset"),
        ("no accumulation under fan-out", '''
def backprop(root):
    """Walks every path separately: a shared node passes its gradient on once per path."""
    root.grad = 1.0

    def walk(node):
        node._backward()
        for child in node._prev:
            walk(child)

    walk(root)
''', "no accumulation under fan-out"),
        ("wrong order", _topological(walk="order"), "wrong order"),
        ("root not seeded", _topological(seed=""), "root gradient not seeded"),
        ("no visited set", '''
def backprop(root):
    order = []

    def visit(node):
        for child in node._prev:
            visit(child)
        order.append(node)

    visit(root)
    root.grad = 1.0
    for node in reversed(order):
        node._backward()
''', "no accumulation under fan-out"),
        ("breadth-first", '''
def backprop(root):
    root.grad = 1.0
    queue, seen = [root], {root}
    while queue:
        node = queue.pop(0)
        node._backward()
        for child in node._prev:
            if child not in seen:
                seen.add(child)
                queue.append(child)
''', "wrong order"),
        ("root's rule skipped", _topological(walk="reversed(order[:-1])"), "a node's _backward never called"),
    ],
    "l_x": [
        ("sign flip", '''
def l_x(w, x):
    s = w[0] * x[0]
    for wi, xi in zip(w[1:], x[1:]):
        s = s + wi * xi
    return s.sigmoid().log()
''', "sign flip"),
        ("graph broken", '''
import math

def l_x(w, x):
    """Computes the dot product on plain numbers: no gradient reaches w."""
    z = sum(wi.data * xi for wi, xi in zip(w, x))
    s = Value(z) if not hasattr(w[0], "label") else type(w[0])(z)
    return -(s.sigmoid().log())
''', "graph broken"),
        ("wrong rule", '''
def l_x(w, x):
    s = w[0] * x[0]
    for wi, xi in zip(w[1:], x[1:]):
        s = s + wi * xi
    return -((-s).sigmoid().log())
''', "wrong rule"),
        ("loop index off by one", '''
def l_x(w, x):
    s = w[0] * x[0]
    for i in range(len(w) - 1):
        s = s + w[i] * x[i]
    return -(s.sigmoid().log())
''', "w·x with a term missing or repeated"),
        ("first term left out", '''
def l_x(w, x):
    s = w[1] * x[1]
    for i in range(2, len(w) - 1):
        s = s + w[i] * x[i]
    return -(s.sigmoid().log())
''', "w·x with a term missing or repeated"),
    ],
}

# Answers that get their result from a shipped reference instead of computing it: each scores 0
# for its question, with the remark "not accepted: the answer calls …".
DELEGATIONS = {
    "add_backward": [
        ("the engine's backward", '''
def add_backward(a, b, out):
    """Rebuilds a + b with the library's Value and lets its backward fill the gradients."""
    x, y = nk.autograd.Value(a.data), nk.autograd.Value(b.data)
    (x + y).backward(out.grad)
    a.grad += x.grad
    b.grad += y.grad
''', "not accepted"),
    ],
    "mul_backward": [
        ("autograd", '''
import torch


def mul_backward(a, b, out):
    x = torch.tensor(a.data, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(b.data, dtype=torch.float64, requires_grad=True)
    (x * y).backward(torch.tensor(out.grad, dtype=torch.float64))
    a.grad += x.grad.item()
    b.grad += y.grad.item()
''', "not accepted"),
    ],
    "function_rules": [
        ("the engine's backward in a helper", '''
def _engine_grad(x, op, g):
    v = nk.autograd.Value(x)
    getattr(v, op)().backward(g)
    return v.grad


def sigmoid_backward(a, out):
    a.grad += _engine_grad(a.data, "sigmoid", out.grad)


def log_backward(a, out):
    a.grad += _engine_grad(a.data, "log", out.grad)
''', "not accepted"),
    ],
    "backprop": [
        ("the engine's backward", '''
def backprop(root):
    root.backward()
''', "not accepted"),
    ],
    "l_x": [
        ("autograd", '''
import torch


def l_x(w, x):
    """−log σ(w·x) and its gradient from PyTorch, returned as a Value with that value and gradient."""
    wt = torch.tensor([wi.data for wi in w], dtype=torch.float64, requires_grad=True)
    loss = -torch.nn.functional.logsigmoid(wt @ torch.tensor(x, dtype=torch.float64))
    loss.backward()
    g = [float(gi) for gi in wt.grad]
    out = w[0] * g[0] + (float(loss) - g[0] * w[0].data)
    for wi, gi in zip(w[1:], g[1:]):
        out = out + wi * gi - gi * wi.data
    return out
''', "not accepted"),
    ],
}
for _question, _entries in DELEGATIONS.items():
    MUTATIONS[_question] = MUTATIONS[_question] + _entries
