"""nnkit.autograd: the scalar engine against torch.autograd (float64), the lecture's examples,
deep graphs, accumulation, error cases, the drawing and the Value-based MLP."""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import nnkit as nk
from nnkit.autograd import MLP, Layer, Neuron, Value, draw_graph
from nnkit.autograd.draw import NODE_GID, OP_GID

REL, ABS = 1e-12, 1e-14  # engine vs PyTorch on CPU, both float64


def close(a: float, b: float, rel: float = REL, abs_: float = ABS) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def tensor(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=True)


def torch_grad(t: torch.Tensor) -> float:
    return 0.0 if t.grad is None else t.grad.item()


def mirror(fn, *inputs: float):
    """Evaluate ``fn`` once on Values and once on float64 tensors; return both (value, grads)."""
    vs = [Value(x) for x in inputs]
    out = fn(*vs)
    out.backward()
    ts = [tensor(x) for x in inputs]
    t_out = fn(*ts)
    t_out.backward()
    return (out.data, [v.grad for v in vs]), (t_out.item(), [torch_grad(t) for t in ts])


def assert_mirror(fn, *inputs: float, rel: float = REL):
    (val, grads), (t_val, t_grads) = mirror(fn, *inputs)
    assert close(val, t_val, rel), f"value at {inputs}: engine {val!r}, torch {t_val!r}"
    for i, (g, tg) in enumerate(zip(grads, t_grads)):
        assert close(g, tg, rel), f"∂/∂input{i} at {inputs}: engine {g!r}, torch {tg!r}"


def finite(lo: float, hi: float):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


# --- one table of operations, each with the inputs where it is defined --------------------
# The same lambda runs on Values and on torch tensors: they share the method names.
UNARY = {
    "neg": (lambda x: -x, finite(-1e3, 1e3)),
    "exp": (lambda x: x.exp(), finite(-30, 30)),
    "log": (lambda x: x.log(), finite(1e-6, 1e6)),
    "tanh": (lambda x: x.tanh(), finite(-20, 20)),
    "relu": (lambda x: x.relu(), finite(-10, 10)),
    "sigmoid": (lambda x: x.sigmoid(), finite(-700, 700)),
    "x**2": (lambda x: x**2, finite(-1e3, 1e3)),
    "x**3": (lambda x: x**3, finite(-1e2, 1e2)),
    "x**-1": (lambda x: x**-1, finite(0.01, 1e3) | finite(-1e3, -0.01)),
    "x**0.5": (lambda x: x**0.5, finite(1e-6, 1e6)),
    "x**-2.5": (lambda x: x**-2.5, finite(0.05, 1e2)),
    "x**0": (lambda x: x**0, finite(-1e3, 1e3)),
    "2**x": (lambda x: 2**x, finite(-50, 50)),
    "3+x": (lambda x: 3 + x, finite(-1e3, 1e3)),
    "x+3": (lambda x: x + 3, finite(-1e3, 1e3)),
    "3-x": (lambda x: 3 - x, finite(-1e3, 1e3)),
    "x-3": (lambda x: x - 3, finite(-1e3, 1e3)),
    "3*x": (lambda x: 3 * x, finite(-1e3, 1e3)),
    "x*3": (lambda x: x * 3, finite(-1e3, 1e3)),
    "3/x": (lambda x: 3 / x, finite(0.01, 1e3) | finite(-1e3, -0.01)),
    "x/3": (lambda x: x / 3, finite(-1e3, 1e3)),
}
nonzero = finite(0.01, 1e3) | finite(-1e3, -0.01)
BINARY = {
    "+": (lambda a, b: a + b, finite(-1e3, 1e3), finite(-1e3, 1e3)),
    "-": (lambda a, b: a - b, finite(-1e3, 1e3), finite(-1e3, 1e3)),
    "*": (lambda a, b: a * b, finite(-1e3, 1e3), finite(-1e3, 1e3)),
    "/": (lambda a, b: a / b, finite(-1e3, 1e3), nonzero),
    "**": (lambda a, b: a**b, finite(1e-3, 1e2), finite(-3, 3)),
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_operations_match_torch(name):
    fn, values = UNARY[name]

    @settings(max_examples=40, deadline=None)
    @given(values)
    def check(x):
        assert_mirror(fn, x)

    check()


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_operations_match_torch(name):
    fn, left, right = BINARY[name]

    @settings(max_examples=40, deadline=None)
    @given(left, right)
    def check(a, b):
        assert_mirror(fn, a, b)

    check()


@pytest.mark.parametrize("x", [-800.0, -40.0, 0.0, 40.0, 800.0])
def test_sigmoid_is_stable_at_large_inputs(x):
    assert_mirror(lambda v: v.sigmoid(), x)
    out = Value(x).sigmoid()
    assert 0.0 <= out.data <= 1.0


@pytest.mark.parametrize("fn, x", [(lambda v: v.relu(), 0.0), (lambda v: v**0, 0.0), (lambda v: v**2, 0.0)])
def test_derivatives_at_zero_follow_pytorch(fn, x):
    assert_mirror(fn, x)


def composite(x, y, z):
    """Shared sub-expressions (s, q), a value used many times, numbers on both sides."""
    s = x * y  # used three times
    q = (s + x.tanh()) * (y - z).sigmoid()
    r = (x * x).exp() / (1 + z * z) + (1 + s * s).log()
    t = (1 + q * q) ** (0.5 * y.tanh()) - 2 ** z.tanh() + (s - 1).relu()
    return q * r + t / (2 + s.sigmoid()) - x


@settings(max_examples=60, deadline=None)
@given(finite(-2, 2), finite(-2, 2), finite(-2, 2))
def test_composite_expression_with_fan_out_matches_torch(x, y, z):
    assert_mirror(composite, x, y, z, rel=1e-11)


# Random programs: each step applies a bounded operation to earlier nodes drawn with
# replacement, so nodes are reused (fan-out) in ways no hand-written test anticipates.
PROGRAM_OPS = {
    "add": (2, lambda a, b: a + b),
    "sub": (2, lambda a, b: a - b),
    "mul": (2, lambda a, b: a * b.tanh()),
    "div": (2, lambda a, b: a / (1 + b * b)),
    "pow": (2, lambda a, b: (1 + a * a) ** b.tanh()),
    "exp": (1, lambda a: a.tanh().exp()),
    "log": (1, lambda a: (1 + a * a).log()),
    "sigmoid": (1, lambda a: a.sigmoid()),
    "relu": (1, lambda a: a.relu()),
    "neg": (1, lambda a: -a),
    "square": (1, lambda a: a.tanh() ** 2),
}


@st.composite
def programs(draw):
    n_inputs = draw(st.integers(1, 4))
    inputs = draw(st.lists(finite(-2, 2), min_size=n_inputs, max_size=n_inputs))
    steps = []
    for i in range(draw(st.integers(1, 14))):
        name = draw(st.sampled_from(sorted(PROGRAM_OPS)))
        arity = PROGRAM_OPS[name][0]
        steps.append((name, [draw(st.integers(0, n_inputs + i - 1)) for _ in range(arity)]))
    return inputs, steps


def run_program(steps, nodes):
    nodes = list(nodes)
    for name, args in steps:
        nodes.append(PROGRAM_OPS[name][1](*(nodes[k] for k in args)))
    return nodes[-1]


@settings(max_examples=150, deadline=None)
@given(programs())
def test_random_programs_match_torch(program):
    inputs, steps = program
    assert_mirror(lambda *vs: run_program(steps, vs) + 0 * vs[0], *inputs, rel=1e-11)


# --- the lecture notes' examples -----------------------------------------------------------
def test_notes_example_x_plus_y_times_z():
    x, y, z = Value(-2.0, label="x"), Value(5.0, label="y"), Value(-4.0, label="z")
    f = (x + y) * z
    f.backward()
    tx, ty, tz = tensor(-2.0), tensor(5.0), tensor(-4.0)
    tf = (tx + ty) * tz
    tf.backward()
    assert f.data == tf.item()
    assert [x.grad, y.grad, z.grad] == [tx.grad.item(), ty.grad.item(), tz.grad.item()]
    # the notes' figure (small integers: exact in float64)
    assert f.data == -12.0 and (x.grad, y.grad, z.grad) == (-4.0, -4.0, 3.0)
    # the intermediate q = x + y: value 3, gradient z = -4 (the "add" rule passes it on)
    q = f._prev[0]
    assert (q._op, q.data, q.grad) == ("+", 3.0, -4.0)


def loss_lx(w, x):
    """l_x(w) = −log σ(w·x), written as the notes' computational graph."""
    s = w[0] * x[0]
    for wi, xi in zip(w[1:], x[1:]):
        s = s + wi * xi
    return -(s.sigmoid().log())


def test_notes_exercise_logistic_loss():
    x = (1.0, 1.0, 1.0)
    w = [Value(1.0, label="w1"), Value(1.0, label="w2"), Value(-1.5, label="w3")]
    loss = loss_lx(w, x)
    loss.backward()
    tw = [tensor(1.0), tensor(1.0), tensor(-1.5)]
    t_loss = loss_lx(tw, [torch.tensor(xi, dtype=torch.float64) for xi in x])
    t_loss.backward()
    assert close(loss.data, t_loss.item())
    assert all(close(wi.grad, ti.grad.item()) for wi, ti in zip(w, tw))
    # the same loss as −log(1/(1 + e^{−w·x})), the notes' second form
    w2 = [Value(1.0), Value(1.0), Value(-1.5)]
    dot = w2[0] * x[0] + w2[1] * x[1] + w2[2] * x[2]
    loss2 = -((1 / (1 + (-dot).exp())).log())
    loss2.backward()
    assert close(loss2.data, loss.data) and all(close(a.grad, b.grad) for a, b in zip(w2, w))
    # the notes print six decimals: 0.474077 and −0.377541·(1, 1, 1)
    assert loss.data == pytest.approx(0.474077, abs=5e-7)
    assert [wi.grad for wi in w] == pytest.approx([-0.377541] * 3, abs=5e-7)


# --- the graph -------------------------------------------------------------------------------
def test_nodes_record_operation_parents_and_float64_data():
    x, y = Value(2, label="x"), Value(np.float32(0.5))
    assert type(x.data) is float and type(y.data) is float and x.label == "x"
    for out, op in [(x + y, "+"), (x * y, "*"), (x - y, "-"), (x / y, "/"), (x**y, "**")]:
        assert out._op == op and out._prev == (x, y)
    for out, op in [(x.exp(), "exp"), (x.log(), "log"), (x.tanh(), "tanh"), (x.relu(), "ReLU"),
                    (x.sigmoid(), "σ"), (-x, "neg"), (x**2, "**2")]:
        assert out._op == op and out._prev == (x,)
    c = 3 * x  # a number becomes a constant leaf
    assert c._prev[1] is x and c._prev[0].data == 3.0 and c._prev[0]._prev == ()
    assert repr(x) == "Value(data=2.0, grad=0.0, label='x')"


@pytest.mark.parametrize("build, expected", [
    (lambda x: x * x, lambda x: 2 * x),
    (lambda x: x + x, lambda x: 2.0),
    (lambda x: x * x * x, lambda x: 3 * x * x),
    (lambda x: (x + 1) * (x + 1) + x, lambda x: 2 * (x + 1) + 1),
])
def test_branch_rule_sums_gradients_of_every_use(build, expected):
    x = Value(1.5)
    build(x).backward()
    assert close(x.grad, expected(1.5))


def test_topological_order_puts_every_input_before_its_users():
    x, y = Value(1.0), Value(2.0)
    s = x * y
    f = (s + x).tanh() * s + y
    order = f.topological_order()
    assert order[-1] is f and len(order) == len(set(order))
    position = {v: i for i, v in enumerate(order)}
    assert all(position[p] < position[v] for v in order for p in v._prev)
    assert {x, y, s} <= set(order)


def test_a_deep_chain_of_100000_operations():
    x = Value(0.5, label="x")
    y = x
    for _ in range(100_000):
        y = y + x  # y = 100 001·x, each step uses x again
    order = y.topological_order()
    assert len(order) == 100_001 and order[0] is x and order[-1] is y
    y.backward()
    assert x.grad == 100_001.0 and y.data == 0.5 * 100_001
    y.zero_grad()
    assert x.grad == 0.0 and y.grad == 0.0
    assert repr(y).startswith("Value(data=50000.5")
    fig = draw_graph(y, max_nodes=30)
    assert sum(t.get_gid() == NODE_GID for t in fig.axes[0].texts) == 30


# --- calling backward more than once, and zeroing --------------------------------------------
def test_second_backward_adds_the_gradients_again_like_pytorch():
    x, y, z = Value(-2.0), Value(5.0), Value(-4.0)
    q = x + y
    f = q * z
    f.backward()
    first = [v.grad for v in (x, y, z, q)]
    f.backward()
    assert [v.grad for v in (x, y, z, q)] == [2 * g for g in first]
    assert f.grad == 2.0 and f.data == -12.0
    tx, ty, tz = tensor(-2.0), tensor(5.0), tensor(-4.0)
    tf = (tx + ty) * tz
    tf.backward(retain_graph=True)
    tf.backward()
    assert [x.grad, y.grad, z.grad] == [t.grad.item() for t in (tx, ty, tz)]


def test_two_roots_sharing_inputs_add_their_gradients():
    x, y = Value(3.0), Value(-0.5)
    (x * y).backward()
    (x + y.tanh()).backward()
    tx, ty = tensor(3.0), tensor(-0.5)
    (tx * ty).backward()
    (tx + ty.tanh()).backward()
    assert close(x.grad, tx.grad.item()) and close(y.grad, ty.grad.item())


def test_zero_grad_zeroes_every_node_of_the_graph():
    x, y = Value(0.3), Value(-1.2)
    f = (x * y).sigmoid() + x
    f.backward()
    assert any(v.grad != 0 for v in f.topological_order())
    f.zero_grad()
    assert all(v.grad == 0.0 for v in f.topological_order())
    f.backward()  # after zeroing, one backward gives the plain gradients again
    _, (_, expected) = mirror(lambda a, b: (a * b).sigmoid() + a, 0.3, -1.2)
    assert close(x.grad, expected[0]) and close(y.grad, expected[1])


def test_backward_with_an_explicit_seed_scales_every_gradient():
    x = Value(0.7)
    f = x.tanh() * x
    f.backward(2.5)
    g = x.grad
    f.zero_grad()
    f.backward()
    assert close(g, 2.5 * x.grad)
    with pytest.raises(ValueError, match="seed gradient"):
        f.backward(float("nan"))


# --- where the mathematics has no answer: clear errors, never a NaN --------------------------
def test_log_of_non_positive_numbers_raises_naming_the_value():
    with pytest.raises(ValueError, match=r"log.*x = 0\.0"):
        Value(0.0, label="x").log()
    with pytest.raises(ValueError, match=r"log.*-1\.5"):
        Value(-1.5).log()


def test_division_by_zero_raises():
    with pytest.raises(ZeroDivisionError, match="division by zero.*d = 0.0"):
        Value(1.0) / Value(0.0, label="d")
    with pytest.raises(ZeroDivisionError):
        Value(1.0) / 0
    with pytest.raises(ZeroDivisionError):
        2 / Value(0.0)


def test_zero_to_a_negative_power_raises():
    with pytest.raises(ZeroDivisionError, match="negative power"):
        Value(0.0) ** -1
    with pytest.raises(ZeroDivisionError):
        Value(0.0) ** -0.5


def test_infinite_derivative_raises_in_backward_and_leaves_gradients_unchanged():
    x = Value(0.0, label="x")
    f = x**0.5 + x
    assert f.data == 0.0  # √0 is fine; its derivative is not
    with pytest.raises(ZeroDivisionError, match="infinite"):
        f.backward()
    assert x.grad == 0.0 and f.grad == 0.0


def test_negative_base_with_fractional_power_raises():
    with pytest.raises(ValueError, match="not a real number"):
        Value(-8.0) ** (1 / 3)
    assert (Value(-2.0) ** 3).data == -8.0  # integer powers of negative numbers are fine


@pytest.mark.parametrize("base", [0.0, -2.0])
def test_value_exponent_needs_a_positive_base(base):
    with pytest.raises(ValueError, match="positive base"):
        Value(base) ** Value(2.0)
    with pytest.raises(ValueError, match="positive base"):
        base ** Value(2.0)


def test_overflow_raises_instead_of_inf():
    with pytest.raises(OverflowError, match="exp"):
        Value(1000.0).exp()
    with pytest.raises(OverflowError, match=r"'\*'"):
        Value(1e200) * Value(1e200)
    with pytest.raises(OverflowError):
        Value(1e200) ** 2
    x = Value(1e-310, label="x")  # log is finite, its derivative 1/x is not
    f = x.log()
    with pytest.raises(OverflowError, match="gradient reaching x"):
        f.backward()
    assert x.grad == 0.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "1.0", None, [1.0]])
def test_value_accepts_only_finite_real_numbers(bad):
    with pytest.raises((TypeError, ValueError)):
        Value(bad)
    with pytest.raises(TypeError):
        Value(Value(1.0))


def test_combining_with_a_non_number_raises_type_error():
    with pytest.raises(TypeError):
        Value(1.0) + "a"
    with pytest.raises(TypeError):
        Value(1.0) ** "a"


def test_importing_the_engine_loads_neither_torch_nor_matplotlib():
    import subprocess
    import sys

    code = "import sys, nnkit.autograd; print(sorted({'torch', 'matplotlib'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- drawing ---------------------------------------------------------------------------------
def node_texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == NODE_GID]


def op_texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == OP_GID]


def test_draw_the_notes_example_headless():
    x, y, z = Value(-2.0, label="x"), Value(5.0, label="y"), Value(-4.0, label="z")
    f = (x + y) * z
    f.label = "f"
    f.backward()
    fig = draw_graph(f)
    texts = node_texts(fig)
    assert len(texts) == 5
    assert sorted(op_texts(fig)) == ["*", "+"]
    assert "x\ndata -2\ngrad -4" in texts and "f\ndata -12\ngrad 1" in texts
    assert "data 3\ngrad -4" in texts  # the unlabelled intermediate x + y
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")  # renders
    assert buffer.getvalue()[:4] == b"\x89PNG"
    assert fig._repr_png_()[:4] == b"\x89PNG"  # a notebook shows it even without pyplot


def test_draw_a_thirty_node_graph_and_into_a_given_axes():
    neuron = Neuron(6, "tanh", rng=0)
    out = neuron([0.5, -1.0, 2.0, 0.1, 0.3, -0.7]) * Value(2.0) + Value(1.0)
    out.backward()
    nodes = out.topological_order()
    assert 25 <= len(nodes) <= 35
    fig = draw_graph(out)
    assert len(node_texts(fig)) == len(nodes)
    assert len(op_texts(fig)) == sum(1 for v in nodes if v._prev)
    fig.savefig(io.BytesIO(), format="png")
    from matplotlib.figure import Figure

    given = Figure()
    ax = given.add_subplot()
    assert draw_graph(out, ax=ax) is given and len(node_texts(given)) == len(nodes)
    assert out.draw() is not None


def test_draw_does_not_register_figures_with_pyplot():
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    draw_graph(Value(1.0) * Value(2.0))
    assert plt.get_fignums() == before


# --- Neuron, Layer, MLP ----------------------------------------------------------------------
def linear_grads(mlp: MLP):
    """Each layer's parameter gradients as nk.Linear stores them: (weight (out, in), bias (out,))."""
    return [(np.array([[w.grad for w in n.w] for n in layer.neurons]),
             None if layer.neurons[0].b is None else np.array([n.b.grad for n in layer.neurons]))
            for layer in mlp.layers]


def test_mlp_matches_nnkit_layers_with_the_same_weights(rng):
    g = np.random.default_rng(7)
    seq = nk.Sequential(nk.Linear(3, 5, rng=g), nk.Tanh(), nk.Linear(5, 4, rng=g), nk.Tanh(), nk.Linear(4, 2, rng=g))
    mlp = MLP(3, [5, 4, 2], rng=7)  # the same draws in the same order: the same weights
    for layer, lin in zip(mlp.layers, seq[::2]):
        assert np.array_equal([[w.data for w in n.w] for n in layer.neurons], lin.weight.data)
        assert np.array_equal([n.b.data for n in layer.neurons], lin.bias.data)

    X, T = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))
    criterion = nk.MSELoss()
    loss_nk = criterion.forward(seq.forward(X), T)
    seq.backward(criterion.backward())

    outputs = [mlp(list(x)) for x in X]
    loss = sum((o - t) ** 2 for out, target in zip(outputs, T) for o, t in zip(out, target)) / T.size
    loss.backward()
    assert all(close(o.data, v, 1e-12, 1e-12) for out, row in zip(outputs, seq.forward(X)) for o, v in zip(out, row))
    assert close(loss.data, loss_nk, 1e-12, 1e-12)
    for (dW, db), lin in zip(linear_grads(mlp), seq[::2]):
        np.testing.assert_allclose(dW, lin.weight.grad, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(db, lin.bias.grad, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("act_layer, act", [(nk.ReLU, "relu"), (nk.Sigmoid, "sigmoid"), (nk.Identity, "linear")])
def test_mlp_from_nnkit_copies_weights_and_activations(act_layer, act, rng):
    seq = nk.Sequential(nk.Linear(2, 3, rng=rng), act_layer(), nk.Linear(3, 1, bias=False, rng=rng), nk.Sigmoid())
    mlp = MLP.from_nnkit(seq)
    assert [layer.activation for layer in mlp.layers] == [act, "sigmoid"]
    assert len(mlp.parameters()) == 2 * 3 + 3 + 3  # the second Linear has no bias
    x = rng.normal(size=2)
    out = mlp(list(x))
    out.backward()
    y = seq.forward(x[None])
    seq.backward(np.ones_like(y))
    assert close(out.data, y[0, 0], 1e-12, 1e-12)
    (dW1, db1), (dW2, db2) = linear_grads(mlp)
    np.testing.assert_allclose(dW1, seq[0].weight.grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(db1, seq[0].bias.grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dW2, seq[2].weight.grad, rtol=1e-12, atol=1e-12)
    assert db2 is None


def test_mlp_from_nnkit_rejects_layers_it_cannot_express(rng):
    with pytest.raises(TypeError, match="Softmax"):
        MLP.from_nnkit(nk.Sequential(nk.Linear(2, 2, rng=rng), nk.Softmax()))
    with pytest.raises(TypeError, match="Linear"):
        MLP.from_nnkit(nk.Sequential(nk.Tanh()))


def test_seeded_initialisation_is_reproducible():
    data = lambda m: [p.data for p in m.parameters()]  # noqa: E731
    assert data(MLP(2, [4, 1], rng=3)) == data(MLP(2, [4, 1], rng=np.random.default_rng(3)))
    assert data(MLP(2, [4, 1], rng=3)) != data(MLP(2, [4, 1], rng=4))
    nk.manual_seed(11)
    first = data(Layer(3, 2))
    nk.manual_seed(11)
    assert data(Layer(3, 2)) == first
    assert all(abs(w) <= 1 / math.sqrt(3) for w in first)  # U[−1/√n, 1/√n]


def test_neuron_checks_its_input_length_and_activation():
    n = Neuron(3, rng=0)
    with pytest.raises(ValueError, match="expected 3 inputs, got 2"):
        n([1.0, 2.0])
    with pytest.raises(ValueError, match="activation"):
        Neuron(3, "softmax", rng=0)
    layer = MLP(3, [2, 1], rng=0).layers[0]
    with pytest.raises(ValueError, match="layer 1 unit 0"):
        layer([1.0])


def test_training_an_mlp_of_values_reduces_the_loss():
    gen = np.random.default_rng(0)
    X = gen.normal(size=(16, 2))
    y = np.where(X[:, 0] * X[:, 1] > 0, 1.0, -1.0)  # XOR-like quadrants
    model = MLP(2, [8, 1], rng=0)

    def loss_fn():
        scores = [model(list(x)) for x in X]
        return sum((1 + -yi * s).relu() for yi, s in zip(y, scores)) / len(y)  # hinge loss

    losses = []
    for _ in range(40):
        loss = loss_fn()
        model.zero_grad()
        loss.backward()
        for p in model.parameters():
            p.data -= 0.3 * p.grad
        losses.append(loss.data)
    assert losses[-1] < 0.6 * losses[0]
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())
