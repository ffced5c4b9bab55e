"""Checks for problem set 2, *computational graphs*: the rules of reverse-mode AD on scalars.

The student completes a small ``Value`` class through free functions that the class calls:

==================  ======================================================  ==================
question (grade_id)  what the student writes                                 reference
==================  ======================================================  ==================
``add_backward``     ``add_backward(a, b, out)``: the add rule               ``nk.autograd.Value``
``mul_backward``     ``mul_backward(a, b, out)``: the multiply rule          and ``torch.autograd``
``function_rules``   ``sigmoid_backward(a, out)``, ``log_backward(a, out)``
``backprop``         ``backprop(root)``: topological order, walked backwards
``l_x``              ``l_x(w, x)``: the graph of −log σ(w·x) (seed 001)
==================  ======================================================  ==================

Each check builds its nodes with the reference engine ``nnkit.autograd.Value`` (same attribute
names as the notebook's class: ``data``, ``grad``, ``_prev``, ``_backward``), so a question is
graded on its own: ``backprop`` is run on graphs whose local rules are the reference ones, and
``l_x`` is called with reference Values, whatever the student's rules do. Expected gradients
come from the reference engine and from ``torch.autograd`` on every available device.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .core import (
    NO_ACCUMULATION,
    SIGN_FLIP,
    WRONG_TYPE,
    Feedback,
    Probe,
    call,
    check_against_torch,
    check_array,
    close,
    numerical_gradient,
    quiet,
    seeded,
)
from .remote import type_name

#: central differences (ε = 1e-6, float64) are accurate to about 1e-9; compared with this tolerance
NUM_RTOL, NUM_ATOL = 1e-5, 1e-7

__all__ = [
    "check_add_backward", "check_mul_backward", "check_function_rules", "check_backprop", "check_l_x",
    "WRONG_RULE", "NOT_IN_PLACE", "ROOT_NOT_SEEDED", "WRONG_ORDER", "BROKEN_GRAPH", "MISSING_UPSTREAM",
    "ONE_INPUT", "NODE_SKIPPED", "GRADIENTS_RESET", "DOT_TERMS",
]

WRONG_RULE = "wrong rule"
#: what an answer may call from nnkit (see nnkit.course.delegation): l_x builds its graph with
#: the engine's Value operations; the backward rules and backprop must not call the engine's own
MAY_USE = {"check_l_x": ("nnkit.autograd",)}

NOT_IN_PLACE = "gradients not written into .grad"
MISSING_UPSTREAM = "missing upstream gradient out.grad"
ROOT_NOT_SEEDED = "root gradient not seeded"
WRONG_ORDER = "wrong order"
BROKEN_GRAPH = "graph broken"
ONE_INPUT = "gradient for only one input"
NODE_SKIPPED = "a node's _backward never called"
GRADIENTS_RESET = "gradients reset"
DOT_TERMS = "w·x with a term missing or repeated"

def _pre(shape) -> np.ndarray:
    """Gradients the probes put on the nodes before a rule runs (as if from other uses)."""
    return seeded(26).uniform(0.5, 1.5, shape)


_ACCUMULATE_HINT = ("a node that is used twice (x*x, a+a, or a value read by two operations) receives one "
                    "contribution per use; add them with `+=` instead of overwriting with `=`")


def _Value():
    from nnkit.autograd import Value  # noqa: PLC0415 - imported when a check runs

    return Value


# --------------------------------------------------------------------------------------------
# Running one local rule on reference nodes
# --------------------------------------------------------------------------------------------
class EngineRuleCalled(Exception):
    """A backward rule under test called ``out._backward()``: the engine's rule, not its own."""


def _engine_rule():
    raise EngineRuleCalled("out._backward() is the engine's own rule for this node; "
                           "the rule you write computes the gradients itself")


def _binary(op: str, a: float, b: float, g: float, pre: tuple[float, float] = (0.0, 0.0), same: bool = False):
    """Reference nodes for ``out = a op b`` with ``out.grad = g`` (``same``: out = a op a)."""
    V = _Value()
    va = V(float(a))
    vb = va if same else V(float(b))
    out = va + vb if op == "+" else va * vb
    va.grad = float(pre[0])
    if not same:
        vb.grad = float(pre[1])
    out.grad = float(g)
    return va, vb, out


def _run_binary(rule: Callable, op: str, cases: np.ndarray, *, same: bool = False, pre=None,
                reference: bool = False) -> np.ndarray:
    """Gradients after applying ``rule`` (or the reference rule) to each case (a, b, g).

    Returns shape (k, 2) with the grads of a and b, or (k,) for ``same`` (out = a op a).
    """
    rows = []
    for i, (a, b, g) in enumerate(np.asarray(cases, dtype=float)):
        p = (0.0, 0.0) if pre is None else pre[i]
        va, vb, out = _binary(op, a, b, g, p, same)
        if reference:
            out._backward()
        else:
            out._backward = _engine_rule  # the rule under test must not call the engine's own
            with quiet():
                rule(va, vb, out)
        rows.append(va.grad if same else (va.grad, vb.grad))
    return np.asarray(rows, dtype=float)


def _probe_binary(rule, op, cases, expected_fn, **kw) -> bool:
    try:
        return close(_run_binary(rule, op, cases, **kw), expected_fn())
    except Exception:  # noqa: BLE001 - a probe that raises means "not this bug"
        return False


def _columns_like(got, right: np.ndarray, buggy: Sequence[np.ndarray]) -> bool:
    """Each column (a.grad, b.grad) of ``got`` is the right one or one of the ``buggy`` versions of
    that column, and at least one column is a buggy one."""
    try:
        got = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        return False
    if got.shape != right.shape:
        return False
    wrong = 0
    for k in range(right.shape[1]):
        if close(got[:, k], right[:, k]):
            continue
        if not any(close(got[:, k], bug[:, k]) for bug in buggy):
            return False
        wrong += 1
    return wrong > 0


def _binary_probes(rule: Callable, op: str, cases: np.ndarray) -> list[Probe]:
    a, b, g = cases[:, 0], cases[:, 1], cases[:, 2]
    zeros = np.zeros((len(cases), 2))
    right = np.stack([g, g], 1) if op == "+" else np.stack([b * g, a * g], 1)
    local = np.stack([np.ones_like(a), np.ones_like(b)], 1) if op == "+" else np.stack([b, a], 1)
    pre = _pre((len(cases), 2))

    def run(**kw) -> np.ndarray | None:
        try:
            return _run_binary(rule, op, cases, **kw)
        except Exception:  # noqa: BLE001 - a probe that raises means "not this bug"
            return None

    def untouched(columns_like_zero: bool) -> bool:
        """The gradients the rule left at 0 stay what they were when they start elsewhere: the rule
        never wrote them (rather than adding a contribution that happens to be 0 here)."""
        fresh, started = run(), run(pre=pre)
        if fresh is None or started is None:
            return False
        if not columns_like_zero:
            return close(fresh, zeros) and close(started, pre)
        return _columns_like(fresh, right, [zeros]) and _columns_like(started, right + pre, [pre])

    probes = [
        Probe(NOT_IN_PLACE, lambda: untouched(False),
              "a.grad and b.grad stay as they were after your rule: it must add its contributions into them "
              "(the nodes are changed in place; what the function returns is ignored)"),
        Probe(ONE_INPUT, lambda: untouched(True),
              "one input's gradient is left as it was: the rule must add a contribution to a.grad and to b.grad"),
        Probe(MISSING_UPSTREAM, lambda: _columns_like(run(), right, [local]),
              "the chain rule multiplies the local derivative by the upstream gradient out.grad"),
    ]
    if op == "+":
        probes.append(Probe(WRONG_RULE, lambda: _columns_like(run(), right, [np.stack([b * g, a * g], 1)]),
                            "that is the multiply rule; for out = a + b both inputs receive out.grad unchanged"))
    else:
        probes += [
            Probe(WRONG_RULE, lambda: _columns_like(run(), right, [np.stack([a * g, b * g], 1)]),
                  "each input's gradient is the *other* input's value times out.grad: "
                  "∂(ab)/∂a = b, ∂(ab)/∂b = a"),
            Probe(WRONG_RULE, lambda: _probe_binary(rule, op, cases, lambda: np.stack([g, g], 1)),
                  "that is the add rule; for out = a·b, a receives b·out.grad and b receives a·out.grad"),
        ]
    return probes


def _fanout_probes(rule: Callable, op: str, cases: np.ndarray) -> list[Probe]:
    a, g = cases[:, 0], cases[:, 2]
    single = (lambda: g) if op == "+" else (lambda: a * g)
    return [Probe(NO_ACCUMULATION, lambda: _probe_binary(rule, op, cases, single, same=True), _ACCUMULATE_HINT)]


def _torch_binary(op: str, same: bool = False):
    def run(x):  # x: (k, 3) tensor of (a, b, g) rows; returns the grads the rule must produce
        import torch  # noqa: PLC0415

        a = x[:, 0].detach().clone().requires_grad_(True)
        b = a if same else x[:, 1].detach().clone().requires_grad_(True)
        out = a + b if op == "+" else a * b
        (out * x[:, 2].detach()).sum().backward()  # a vector-Jacobian product (cheaper than backward(g))
        return a.grad if same else torch.stack([a.grad, b.grad], 1)

    return run


def _check_binary_rule(question: str, rule: Callable, op: str, *, hidden: bool) -> None:
    __tracebackhide__ = True
    fb = Feedback(question, hidden=hidden)
    formula = "a + b" if op == "+" else "a * b"
    rng = seeded(21 if op == "+" else 22)
    if hidden:
        cases = np.column_stack([rng.uniform(-3, 3, 12), rng.uniform(-3, 3, 12), rng.uniform(-2, 2, 12)])
        cases[5, 1] = 0.0
    else:
        cases = np.array([[2.0, -3.0, 1.5], [0.5, 4.0, -1.0], [0.0, 2.5, 1.0]])   # an input of 0 too
    probes = _binary_probes(rule, op, cases)

    # 1. two distinct inputs, fresh gradients: the local rule itself
    got = call(fb, lambda c: _run_binary(rule, op, c), cases, name=f"{question}(a, b, out) for out = {formula}")
    expected = _run_binary(None, op, cases, reference=True)
    check_array(fb, f"[a.grad, b.grad] after {question} for out = {formula} with out.grad = g", got, expected,
                probes=probes, shape_hint="one row (a.grad, b.grad) per case")
    check_against_torch(fb, f"[a.grad, b.grad] for out = {formula}", lambda c: _run_binary(rule, op, c),
                        _torch_binary(op), [cases], probes=probes)

    # 2. the same node on both sides (fan-out): both contributions must add up
    expected = _run_binary(None, op, cases, same=True, reference=True)
    got = call(fb, lambda c: _run_binary(rule, op, c, same=True), cases,
               name=f"{question}(x, x, out) for out = {formula.replace('b', 'a')}")
    check_array(fb, f"x.grad after {question} for out = {formula.replace('b', 'a')} (x used twice)", got,
                expected, probes=_fanout_probes(rule, op, cases) + probes)
    check_against_torch(fb, f"x.grad for out = {formula.replace('b', 'a')}",
                        lambda c: _run_binary(rule, op, c, same=True), _torch_binary(op, same=True), [cases],
                        probes=_fanout_probes(rule, op, cases))

    # 3. gradients already present (from other uses of a and b) must be kept and added to
    pre = seeded(23).uniform(-1, 1, (len(cases), 2))
    expected = _run_binary(None, op, cases, pre=pre, reference=True)
    got = call(fb, lambda c: _run_binary(rule, op, c, pre=pre), cases, name=f"{question}(a, b, out)")
    check_array(fb, "[a.grad, b.grad] when a.grad and b.grad already hold gradients from other uses", got,
                expected, probes=[_dropped_probe(got, expected, pre)])
    fb.passed(f"the {'add' if op == '+' else 'multiply'} rule, alone, with fan-out, and accumulating")


def _dropped_probe(got, expected: np.ndarray, pre: np.ndarray) -> Probe:
    """The gradients already present were overwritten: the answer is what it would be without them."""
    def dropped() -> bool:
        try:
            got_ = np.asarray(got, dtype=float)
        except (TypeError, ValueError):
            return False
        wrong = ~np.isclose(got_, expected) if got_.shape == expected.shape else None
        return wrong is not None and bool(wrong.any()) and close(got_[wrong], (expected - pre)[wrong])

    return Probe(NO_ACCUMULATION, dropped, _ACCUMULATE_HINT)


def check_add_backward(add_backward: Callable, *, hidden: bool = False) -> None:
    """``add_backward(a, b, out)`` adds ∂out/∂a · out.grad = out.grad into a.grad and b.grad."""
    __tracebackhide__ = True
    _check_binary_rule("add_backward", add_backward, "+", hidden=hidden)


def check_mul_backward(mul_backward: Callable, *, hidden: bool = False) -> None:
    """``mul_backward(a, b, out)`` adds b·out.grad into a.grad and a·out.grad into b.grad."""
    __tracebackhide__ = True
    _check_binary_rule("mul_backward", mul_backward, "*", hidden=hidden)


# --------------------------------------------------------------------------------------------
# Function application: sigmoid and log
# --------------------------------------------------------------------------------------------
def _run_unary(rule: Callable | None, fn: str, cases: np.ndarray, pre: np.ndarray | None = None) -> np.ndarray:
    V = _Value()
    grads = []
    for i, (x, g) in enumerate(np.asarray(cases, dtype=float)):
        a = V(float(x))
        out = getattr(a, fn)()
        a.grad = 0.0 if pre is None else float(pre[i])
        out.grad = float(g)
        if rule is None:
            out._backward()
        else:
            out._backward = _engine_rule  # the rule under test must not call the engine's own
            with quiet():
                rule(a, out)
        grads.append(a.grad)
    return np.asarray(grads, dtype=float)


def _torch_unary(fn: str):
    def run(x):
        a = x[:, 0].detach().clone().requires_grad_(True)
        (getattr(a, fn)() * x[:, 1].detach()).sum().backward()
        return a.grad

    return run


def _unary_probes(rule: Callable, fn: str, cases: np.ndarray) -> list[Probe]:
    x, g = cases[:, 0], cases[:, 1]

    def same(expected):
        def test():
            return close(_run_unary(rule, fn, cases), expected)
        return test

    def untouched() -> bool:
        pre = _pre(len(cases))
        return same(np.zeros_like(x))() and close(_run_unary(rule, fn, cases, pre), pre)

    if fn == "sigmoid":
        s = 0.5 * (1.0 + np.tanh(x / 2))   # σ(x), free of overflow
        return [
            Probe(NOT_IN_PLACE, untouched, "add the contribution into a.grad (in place)"),
            Probe(MISSING_UPSTREAM, same(s * (1 - s)), "multiply σ′(a) by the upstream gradient out.grad"),
            Probe(WRONG_RULE, same(x * (1 - x) * g),
                  "σ′ = σ(1 − σ) is evaluated at the output: use out.data, not a.data"),
            Probe(WRONG_RULE, same(s * g), "σ′(a) = σ(a)(1 − σ(a)), not σ(a)"),
        ]
    return [
        Probe(NOT_IN_PLACE, untouched, "add the contribution into a.grad (in place)"),
        Probe(MISSING_UPSTREAM, same(1.0 / x), "multiply 1/a by the upstream gradient out.grad"),
        Probe(WRONG_RULE, same(g / np.log(x)), "d(log a)/da = 1/a: divide by a.data, not by out.data"),
        Probe(WRONG_RULE, same(g * x), "d(log a)/da = 1/a: divide by a.data, do not multiply"),
    ]


def check_function_rules(sigmoid_backward: Callable, log_backward: Callable, *, hidden: bool = False) -> None:
    """``sigmoid_backward(a, out)`` adds σ′(a)·out.grad into a.grad; ``log_backward`` adds out.grad/a."""
    __tracebackhide__ = True
    fb = Feedback("function_rules", hidden=hidden)
    rng = seeded(24)
    for fn, rule, low, high in (("sigmoid", sigmoid_backward, -4.0, 4.0), ("log", log_backward, 0.2, 5.0)):
        name = f"{fn}_backward"
        if hidden:
            cases = np.column_stack([rng.uniform(low, high, 12), rng.uniform(-2, 2, 12)])
        else:
            cases = np.array([[0.5, 1.0], [low + 0.3, -2.0], [high - 0.5, 0.7]])
        if fn == "sigmoid":  # far out, where e^{-a} overflows: the rule reads σ(a) from out.data
            cases = np.vstack([cases, [[-1000.0, 1.0], [1000.0, -1.0]]])
        probes = _unary_probes(rule, fn, cases)
        got = call(fb, lambda c: _run_unary(rule, fn, c), cases, name=f"{name}(a, out)")
        check_array(fb, f"a.grad after {name}(a, out) with out = a.{fn}() and out.grad = g", got,
                    _run_unary(None, fn, cases), probes=probes)
        check_against_torch(fb, f"a.grad for out = {fn}(a)", lambda c: _run_unary(rule, fn, c),
                            _torch_unary(fn), [cases], probes=probes)
        f = (lambda a: 0.5 * (1.0 + np.tanh(a / 2))) if fn == "sigmoid" else np.log   # σ, free of overflow
        x, g, h = cases[:, 0], cases[:, 1], 1e-6
        check_array(fb, f"a.grad for out = {fn}(a) against central differences g·({fn}(a + ε) − {fn}(a − ε))/2ε",
                    got, g * (f(x + h) - f(x - h)) / (2 * h), rtol=NUM_RTOL, atol=NUM_ATOL, probes=probes)
        pre = seeded(25).uniform(-1, 1, len(cases))
        got = call(fb, lambda c: _run_unary(rule, fn, c, pre), cases, name=f"{name}(a, out)")
        expected = _run_unary(None, fn, cases, pre)
        check_array(fb, f"a.grad after {name} when a.grad already holds a gradient from another use", got,
                    expected, probes=[_dropped_probe(got, expected, pre)])
    fb.passed("the function-application rules for sigmoid and log")


# --------------------------------------------------------------------------------------------
# backprop(root): the whole backward pass
# --------------------------------------------------------------------------------------------
# Graph builders work on nnkit Values and on torch tensors alike (+, *, unary minus, .sigmoid(),
# .log()), so the same code gives the reference engine's graph and PyTorch's.
def _g_seed_example(x, y, z):
    return (x + y) * z  # f(x, y, z) = (x + y)z, the notes' example


def _g_tree(a, b, c):
    return (a * b + c).sigmoid() * (c + 2.0)  # every intermediate node used once (c is a leaf)


def _g_fanout(x, y):
    p = x * y  # p is used three times, x twice
    q = p + x
    r = p * q
    return r + p * p + q


def _g_l_x(w1, w2, w3):
    return -((w1 * 1.0 + w2 * 1.0 + w3 * 1.0).sigmoid().log())


def _g_chain(x, y):
    v = x
    for _ in range(40):  # a long chain; x and y are read at every step
        v = (v * 0.9 + y * 0.05).tanh() * 1.5 + x * 0.01
    return v


_TREE_AT = (0.5, -1.5, 0.25)
GRAPHS: dict[str, tuple[Callable, Sequence[float]]] = {
    "f(x, y, z) = (x + y)·z": (_g_seed_example, (-2.0, 5.0, -4.0)),
    "σ(a·b + c)·(c + 2)": (_g_tree, _TREE_AT),
    "a graph where x and p = x·y are used several times": (_g_fanout, (0.7, -1.2)),
    "l = −log σ(w·x) with x = (1, 1, 1)": (_g_l_x, (1.0, 1.0, -1.5)),
}
HIDDEN_GRAPHS: dict[str, tuple[Callable, Sequence[float]]] = {
    "f(x, y, z) = (x + y)·z at other inputs": (_g_seed_example, (1.5, -0.5, 3.0)),
    "a graph with fan-out at other inputs": (_g_fanout, (-0.3, 0.9)),
    "a 40-step chain with a branch at every step": (_g_chain, (0.3, -0.8)),
}


def _evaluate(builder: Callable, values: np.ndarray) -> float:
    """The root's value for these leaf values (the forward pass only)."""
    V = _Value()
    return builder(*[V(float(v)) for v in values]).data


def _leaf_grads(builder: Callable, values: Sequence[float], backprop: Callable | None,
                pre: Sequence[float] | None = None) -> np.ndarray:
    """Gradients of the graph's leaves after the student's ``backprop(root)`` (or the reference);
    ``pre``: gradients the leaves already hold (from other uses, as the caller left them)."""
    V = _Value()
    leaves = [V(float(v), label=f"x{i}") for i, v in enumerate(values)]
    root = builder(*leaves)
    for leaf, g in zip(leaves, pre if pre is not None else ()):
        leaf.grad = float(g)
    if backprop is None:
        root.backward()
    else:
        with quiet():
            backprop(root)
    return np.array([leaf.grad for leaf in leaves] + [root.grad], dtype=float)


def _torch_graph(builder: Callable):
    def run(x):
        leaves = [x[i].detach().clone().requires_grad_(True) for i in range(x.shape[0])]
        root = builder(*leaves)
        root.backward()
        import torch  # noqa: PLC0415

        return torch.stack([leaf.grad for leaf in leaves] + [torch.ones_like(root)])

    return run


# Buggy backward passes the probes compare the student's with (run on reference nodes).
def _bp_forward_order(root) -> None:
    root.grad = 1.0
    for v in root.topological_order():
        v._backward()


def _bp_unseeded(root) -> None:
    for v in reversed(root.topological_order()):
        v._backward()


def _bp_per_path(root) -> None:
    root.grad = 1.0

    def walk(v):  # every path walked separately: a shared node passes its gradient on once per path
        v._backward()
        for child in v._prev:
            walk(child)

    walk(root)


def _bp_no_visited_set(root) -> None:
    order = []

    def build(v):
        for child in v._prev:
            build(child)
        order.append(v)  # no visited set: a shared node appears once per path

    build(root)
    root.grad = 1.0
    for v in reversed(order):
        v._backward()


def _bp_breadth_first(root) -> None:
    root.grad = 1.0
    queue, seen = [root], {root}
    while queue:  # breadth-first: a shared node may run before every node that uses it has added to it
        v = queue.pop(0)
        v._backward()
        for child in v._prev:
            if child not in seen:
                seen.add(child)
                queue.append(child)


def _bp_root_skipped(root) -> None:
    order = root.topological_order()
    root.grad = 1.0
    for v in reversed(order[:-1]):  # the root (last) never runs its _backward
        v._backward()


@dataclass(frozen=True)
class Trace:
    """When each operation node of a graph ran its ``_backward`` during the student's backprop."""

    ops: list[str]                 # the nodes' operations, in a topological order (inputs first)
    values: list[float]
    users: list[list[int]]         # users[k]: the nodes computed from node k
    runs: list[list[int]]          # runs[k]: the steps at which node k's _backward ran

    def operation_nodes(self) -> list[int]:
        return [k for k, op in enumerate(self.ops) if op]

    def skipped(self) -> list[int]:
        return [k for k in self.operation_nodes() if not self.runs[k]]

    def repeated(self) -> list[int]:
        return [k for k in self.operation_nodes() if len(self.runs[k]) > 1]

    def too_early(self) -> list[tuple[int, int]]:
        """(node, user): the node ran before a node computed from it had run."""
        return [(k, u) for k in self.operation_nodes() for u in self.users[k]
                if self.runs[k] and self.runs[u] and self.runs[k][0] < self.runs[u][-1]]

    def node(self, k: int) -> str:
        return f"the ‘{self.ops[k]}’ node" + (" (the root)" if k == len(self.ops) - 1 else "")


def _recording(node, rule: Callable, clock: list) -> Callable[[], None]:
    """``node._backward`` that first writes the step it runs at into the node's label."""
    def _backward():
        clock[0] += 1
        node.label = f"{node.label},{clock[0]}"
        rule()

    return _backward


def _trace(builder: Callable, values: Sequence[float], backprop: Callable) -> Trace | None:
    """Run the student's backprop on a graph whose nodes record when their ``_backward`` runs (in
    their labels, which a graded run mirrors back like any attribute); None if it raises."""
    V = _Value()
    root = builder(*[V(float(v)) for v in values])
    nodes = root.topological_order()
    index = {id(n): k for k, n in enumerate(nodes)}
    clock = [0]
    for n in nodes:
        n.label = ""
        n._backward = _recording(n, n._backward, clock)
    try:
        with quiet():
            backprop(root)
    except Exception:  # noqa: BLE001 - a trace that raises tells nothing
        return None
    users: list[list[int]] = [[] for _ in nodes]
    for k, n in enumerate(nodes):
        for child in n._prev:
            users[index[id(child)]].append(k)
    runs = [[int(t) for t in str(n.label).split(",") if t.strip().isdigit()] for n in nodes]
    return Trace([n._op for n in nodes], [float(n.data) for n in nodes], users, runs)


def _trace_probes(builder: Callable, values: Sequence[float], backprop: Callable) -> list[Probe]:
    """What the recorded runs show: a node never run, run twice, or run before a node that uses it.
    The traced run is made once, and only when a failure asks the probes."""
    trace = functools.cache(lambda: _trace(builder, values, backprop))

    def skipped() -> str | None:
        t = trace()
        if t is None or not t.skipped():
            return None
        k = t.skipped()[0]
        same = any(t.values[j] == t.values[k] and t.runs[j] for j in t.operation_nodes())
        why = (": it has the same value as a node that did run — a visited set must hold the nodes "
               "themselves, not their values" if same else ": every node must pass its gradient on once")
        return f"{t.node(k)} never ran its _backward{why}"

    def repeated() -> str | None:
        t = trace()
        if t is None or not t.repeated():
            return None
        k = t.repeated()[0]
        return (f"{t.node(k)} ran its _backward {len(t.runs[k])} times, passing its gradient on once per use: "
                "each node must run its _backward exactly once (keep a visited set)")

    def too_early() -> str | None:
        t = trace()
        if t is None or not t.too_early():
            return None
        k, u = t.too_early()[0]
        return (f"{t.node(k)} ran its _backward before {t.node(u)}, which uses it, had added its contribution: "
                "visit the nodes in reverse topological order (a depth-first search that appends a node after "
                "its inputs, then reversed)")

    return [Probe(NODE_SKIPPED, skipped), Probe(NO_ACCUMULATION, repeated), Probe(WRONG_ORDER, too_early)]


def _like_on_fanout(backprop: Callable, buggy: Callable) -> bool:
    """The student's backprop gives what ``buggy`` gives on the fan-out graph, where that is wrong."""
    at = (0.7, -1.2)
    want = _leaf_grads(_g_fanout, at, buggy)
    return not close(want, _leaf_grads(_g_fanout, at, None)) and close(_leaf_grads(_g_fanout, at, backprop), want)


def _backprop_probes(backprop: Callable, builder: Callable, values: Sequence[float]) -> list[Probe]:
    def like(buggy: Callable) -> Callable[[], bool]:
        return lambda: close(_leaf_grads(builder, values, backprop), _leaf_grads(builder, values, buggy))

    ref = _leaf_grads(builder, values, None)
    return [
        Probe(ROOT_NOT_SEEDED, like(_bp_unseeded),
              "start the backward pass from root.grad = 1 (∂f/∂f = 1) before calling the nodes' _backward"),
        Probe(WRONG_ORDER, like(_bp_forward_order),
              "call each node's _backward in *reverse* topological order: from the root towards the leaves"),
        Probe(NODE_SKIPPED, like(_bp_root_skipped),
              "every gradient stays 0 below the root: the root's own _backward is never called (check the "
              "range of your loop over the nodes)"),
        Probe(NO_ACCUMULATION, like(_bp_per_path),
              "a node used twice passed its gradient on once per path: each node must run its _backward exactly "
              "once, after every node that uses it has added its contribution (topological order, visited set)"),
        Probe(NO_ACCUMULATION, like(_bp_no_visited_set),
              "your topological order lists a shared node more than once: keep a visited set so each node "
              "appears once, after every node that uses it"),
        Probe(WRONG_ORDER, lambda: _like_on_fanout(backprop, _bp_breadth_first),
              "your gradients are those of a breadth-first walk, which can run a shared node before every node "
              "that uses it has added its contribution: use reverse topological order"),
        Probe(SIGN_FLIP, lambda: close(_leaf_grads(builder, values, backprop)[:-1], -ref[:-1]),
              "the gradients are the negatives of the right ones"),
        *_trace_probes(builder, values, backprop),
    ]


def check_backprop(backprop: Callable, *, hidden: bool = False) -> None:
    """``backprop(root)`` sets root.grad = 1 and calls every node's ``_backward`` in reverse topological order.

    Run on graphs made of reference Values (their local rules are right), compared with the
    reference engine's ``backward()`` and with ``torch.autograd``.
    """
    __tracebackhide__ = True
    fb = Feedback("backprop", hidden=hidden)
    graphs = HIDDEN_GRAPHS if hidden else GRAPHS
    for label, (builder, values) in graphs.items():
        values = np.asarray(values, dtype=float)
        n = len(values)
        leaves = ", ".join(f"x{i}" for i in range(n))
        name = f"[{leaves}].grad and root.grad after backprop(root) for {label}"
        probes = _backprop_probes(backprop, builder, values)
        got = call(fb, lambda v: _leaf_grads(builder, v, backprop), values, name=f"backprop(root) for {label}")
        check_array(fb, name, got, _leaf_grads(builder, values, None), probes=probes,
                    shape_hint="the leaves' gradients, then the root's")
        check_against_torch(fb, name, lambda v: _leaf_grads(builder, v, backprop), _torch_graph(builder),
                            [values], probes=probes)
        numeric = numerical_gradient(lambda v: _evaluate(builder, v), values.copy())
        check_array(fb, f"[{leaves}].grad after backprop(root) for {label}, against central differences", got[:n],
                    numeric, rtol=NUM_RTOL, atol=NUM_ATOL, probes=probes)
    _check_gradients_kept(fb, backprop, *graphs[next(iter(graphs))])
    fb.passed("backprop on the notes' example, a tree, a graph with fan-out and the l_x(w) graph")


def _check_gradients_kept(fb: Feedback, backprop: Callable, builder: Callable, values: Sequence[float]) -> None:
    """The leaves already hold gradients (the caller resets them, not backprop): they are added to."""
    __tracebackhide__ = True
    pre = _pre(len(values))
    got = call(fb, lambda v: _leaf_grads(builder, v, backprop, pre), np.asarray(values, dtype=float),
               name="backprop(root) when the leaves already hold gradients")
    fresh = _leaf_grads(builder, values, None)
    reset = Probe(GRADIENTS_RESET, lambda: close(got, fresh),
                  "backprop adds to the gradients the nodes already hold: do not reset them (the caller does, "
                  "as zero_grad() does in PyTorch)")
    check_array(fb, "the leaves' gradients and root.grad after backprop(root) when the leaves already hold "
                    "gradients from earlier uses", got, _leaf_grads(builder, values, None, pre), probes=[reset])


# --------------------------------------------------------------------------------------------
# l_x(w) = −log σ(w·x): the exercise of seed 001
# --------------------------------------------------------------------------------------------
def _run_l_x(l_x: Callable, w: np.ndarray, x: np.ndarray, *, fb: Feedback | None = None) -> np.ndarray:
    """[l, ∂l/∂w_1 … ∂l/∂w_n] from the student's graph, differentiated by the reference engine."""
    V = _Value()
    ws = [V(float(wi), label=f"w{i + 1}") for i, wi in enumerate(w)]
    xs = [float(xi) for xi in x]
    with quiet():
        root = l_x(ws, xs)
    if not (isinstance(root, V) or type_name(root) == "Value"):  # a Remote in a graded run
        if fb is None:
            raise TypeError("not a Value")
        fb.fail(WRONG_TYPE, f"l_x(w, x) returned a {type_name(root)}; it must return the Value at the root "
                            "of the graph (built from the Values in w with +, *, .sigmoid(), .log(), unary −)",
                hint="keep every step a Value operation, so that backward can follow it")
    root.backward()
    return np.array([root.data] + [wi.grad for wi in ws], dtype=float)


def _reference_l_x(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The reference engine's value and gradient of −log σ(w·x)."""
    V = _Value()
    ws = [V(float(wi)) for wi in w]
    s = ws[0] * float(x[0])
    for wi, xi in zip(ws[1:], x[1:]):
        s = s + wi * float(xi)
    root = -(s.sigmoid().log())
    root.backward()
    return np.array([root.data] + [wi.grad for wi in ws], dtype=float)


def _torch_l_x(w, x):
    import torch  # noqa: PLC0415

    w = w.detach().clone().requires_grad_(True)
    loss = -torch.nn.functional.logsigmoid(w @ x)
    loss.backward()
    return torch.cat([loss.detach().reshape(1), w.grad])


def _dot_terms_wrong(got: np.ndarray, w: np.ndarray, x: np.ndarray) -> bool:
    """True when [l, ∂l/∂w] is −log σ(Σ cᵢ wᵢ xᵢ) and its gradient for counts cᵢ in {0, 1, 2}, not all 1."""
    loss, grad = float(got[0]), np.asarray(got[1:], dtype=float)
    s = math.exp(-loss)  # σ(z′) of the student's z′
    if not 0.0 < s < 1.0 or np.any(x == 0):
        return False
    counts = grad / (-(1.0 - s) * x)
    whole = np.round(counts)
    z = math.log(s / (1.0 - s))
    return bool(np.allclose(counts, whole, atol=1e-6) and np.all((whole >= 0) & (whole <= 2))
                and np.any(whole != 1) and abs(float(np.sum(whole * w * x)) - z) < 1e-6 * max(1.0, abs(z)))


def check_l_x(l_x: Callable, *, hidden: bool = False) -> None:
    """``l_x(w, x)`` builds −log σ(w·x) from the Values in ``w`` (a list) and the numbers in ``x``."""
    __tracebackhide__ = True
    fb = Feedback("l_x", hidden=hidden)
    if hidden:
        rng = seeded(26)
        cases = [(rng.uniform(-2, 2, n), rng.uniform(-2, 2, n)) for n in (2, 4, 5)]
    else:
        cases = [(np.array([1.0, 1.0, -1.5]), np.array([1.0, 1.0, 1.0]))]  # the notes' exercise
    for w, x in cases:
        name = f"[l, ∂l/∂w] for w of length {len(w)}" + ("" if hidden else " (the notes' w and x)")
        expected = _reference_l_x(w, x)

        def run(w_, x_=x):
            return _run_l_x(l_x, w_, x_, fb=fb)

        def same(target) -> Callable[[], bool]:
            return lambda: close(_run_l_x(l_x, w, x), target)

        z = float(w @ x)
        s = 1.0 / (1.0 + math.exp(-z))
        probes = [
            Probe(SIGN_FLIP, same(np.concatenate([[-expected[0]], -expected[1:]])),
                  "l = −log σ(w·x): the minus sign makes the loss positive, and flips the gradient"),
            Probe(BROKEN_GRAPH, lambda: _run_l_x(l_x, w, x)[0] == expected[0] and not np.any(_run_l_x(l_x, w, x)[1:]),
                  "the value is right but no gradient reaches w: some step was computed on plain numbers "
                  "(.data, math.exp, math.log) instead of with Value operations"),
            Probe(WRONG_RULE, same(np.concatenate([[-math.log(1 - s)], s * x])),
                  "that is −log(1 − σ(w·x)) = −log σ(−w·x); the exercise has σ(w·x)"),
            Probe(WRONG_RULE, same(np.concatenate([[-z], -x])),
                  "the sigmoid is missing: l = −log σ(w·x), not −w·x"),
            Probe(DOT_TERMS, lambda: _dot_terms_wrong(_run_l_x(l_x, w, x), w, x),
                  "your value and gradient are those of −log σ(Σ cᵢ wᵢ xᵢ) with some cᵢ 0 or 2: a term of w·x "
                  "is left out or counted twice (check the range of your loop)"),
        ]
        got = call(fb, run, w, name="l_x(w, x)")
        check_array(fb, name, got, expected, probes=probes, shape_hint="the loss, then one gradient per weight")
        check_against_torch(fb, name, run, _torch_l_x, [w, x], probes=probes)
        numeric = numerical_gradient(lambda ww, x=x: float(np.logaddexp(0.0, -(ww @ x))), w.copy())  # −log σ(w·x)
        check_array(fb, f"∂l/∂w for w of length {len(w)} against central differences", got[1:], numeric,
                    rtol=NUM_RTOL, atol=NUM_ATOL, probes=probes[:2])
    fb.passed("l_x(w) = −log σ(w·x): its value and its gradient")
