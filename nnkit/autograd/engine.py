"""``Value``: a scalar that remembers how it was computed, and reverse-mode differentiation.

Every operation on Values builds a node of a computational graph. The node keeps its inputs
(``_prev``), the name of the operation (``_op``) and a small function ``_backward`` that applies
the chain rule for that one operation: given ``out.grad`` = ∂f/∂out it *adds* the local
derivative times ``out.grad`` into each input's ``.grad``. The local derivative is written right
beside the forward formula, so each operator reads as "what it computes, how it differentiates".

The lecture's four rules of reverse-mode AD appear here as code:

* add       ``out = a + b``      → a.grad += out.grad, b.grad += out.grad
* multiply  ``out = a * b``      → a.grad += b · out.grad, b.grad += a · out.grad
* function  ``out = g(a)``       → a.grad += g′(a) · out.grad
* branch    a value used twice  → its gradients from both uses are *summed* (the ``+=``)

``backward()`` visits the nodes in reverse topological order, so a node passes its gradient on
only after every use of it has contributed. The sort is iterative: a chain of 100 000 operations
needs no recursion.

Errors are raised where the mathematics has no answer (log of a non-positive number, division
by zero, 0 to a negative power, a result that overflows float64), naming the values involved:
the engine never produces a silent NaN or infinity, in a value or in a gradient.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Callable

__all__ = ["Value"]


def _noop() -> None:
    pass


class Value:
    """A scalar (Python float, i.e. float64) with a gradient and the graph that produced it.

    >>> x, y, z = Value(-2.0, label="x"), Value(5.0, label="y"), Value(-4.0, label="z")
    >>> f = (x + y) * z
    >>> f.backward()
    >>> f.data, x.grad, y.grad, z.grad
    (-12.0, -4.0, -4.0, 3.0)

    Plain numbers may appear on either side of ``+ - * / **``; they become constant leaves of
    the graph (``**`` with a number exponent stores the exponent inside the operation instead).
    """

    __slots__ = ("data", "grad", "label", "_prev", "_op", "_backward")

    def __init__(self, data: float, _children: tuple["Value", ...] = (), _op: str = "", label: str = ""):
        if isinstance(data, Value):
            raise TypeError(f"Value() got a Value ({data!r}); pass its number, value.data")
        if not isinstance(data, Real):
            raise TypeError(f"Value() needs a real number, got {type(data).__name__} {data!r}")
        data = float(data)
        if not math.isfinite(data):
            if _op:
                inputs = ", ".join(_describe(c) for c in _children)
                raise OverflowError(f"'{_op}' of {inputs} gives {data}: the result does not fit in a float64")
            raise ValueError(f"Value({data}): the data must be a finite number")
        self.data: float = data
        self.grad: float = 0.0  # ∂(root)/∂(this value), filled by root.backward()
        self.label: str = label
        self._prev: tuple[Value, ...] = tuple(_children)
        self._op: str = _op
        self._backward: Callable[[], None] = _noop

    # --- the operations: forward formula, then the local chain rule -------------------------
    def __add__(self, other) -> "Value":
        other = _as_value(other)
        out = Value(self.data + other.data, (self, other), "+")

        def _backward():  # add: both inputs receive the upstream gradient unchanged
            self.grad += out.grad
            other.grad += out.grad

        out._backward = _backward
        return out

    def __mul__(self, other) -> "Value":
        other = _as_value(other)
        out = Value(self.data * other.data, (self, other), "*")

        def _backward():  # multiply: each input receives the *other* input times the upstream gradient
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = _backward
        return out

    def __sub__(self, other) -> "Value":
        other = _as_value(other)
        out = Value(self.data - other.data, (self, other), "-")

        def _backward():
            self.grad += out.grad
            other.grad -= out.grad

        out._backward = _backward
        return out

    def __neg__(self) -> "Value":
        out = Value(-self.data, (self,), "neg")

        def _backward():
            self.grad -= out.grad

        out._backward = _backward
        return out

    def __truediv__(self, other) -> "Value":
        other = _as_value(other)
        if other.data == 0.0:
            raise ZeroDivisionError(f"division by zero: {_describe(self)} / {_describe(other)}")
        out = Value(self.data / other.data, (self, other), "/")

        def _backward():  # d(a/b)/da = 1/b,  d(a/b)/db = −a/b²
            self.grad += out.grad / other.data
            other.grad -= out.data / other.data * out.grad

        out._backward = _backward
        return out

    def __pow__(self, exponent) -> "Value":
        if isinstance(exponent, Value):
            return _power_of_values(self, exponent)
        if not isinstance(exponent, Real):
            return NotImplemented
        k = float(exponent)
        x = self.data
        if x == 0.0 and k < 0:
            raise ZeroDivisionError(f"0 cannot be raised to a negative power: {_describe(self)} ** {k:g}")
        if x < 0.0 and not k.is_integer():
            raise ValueError(
                f"a negative number to a non-integer power is not a real number: {_describe(self)} ** {k:g}"
            )
        out = Value(_pow(x, k, self), (self,), f"**{k:g}")

        def _backward():  # d(x^k)/dx = k x^(k−1)   (0 when k = 0: x⁰ = 1 is constant)
            if k == 0.0:
                return
            if x == 0.0 and k < 1:
                raise ZeroDivisionError(
                    f"the derivative of x**{k:g} at x = 0 is infinite ({_describe(self)}); "
                    "backward cannot pass a finite gradient through it"
                )
            self.grad += k * _pow(x, k - 1, self) * out.grad

        out._backward = _backward
        return out

    def __rpow__(self, base) -> "Value":  # number ** Value
        if not isinstance(base, Real):
            return NotImplemented
        return _power_of_values(Value(base), self)

    def exp(self) -> "Value":
        try:
            e = math.exp(self.data)
        except OverflowError:  # beyond x ≈ 709.78, eˣ exceeds the largest float64
            raise OverflowError(f"exp({_describe(self)}) does not fit in a float64 (largest is about e^709.78)") from None
        out = Value(e, (self,), "exp")

        def _backward():  # (eˣ)′ = eˣ
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> "Value":
        if self.data <= 0.0:
            raise ValueError(f"log of a non-positive number is undefined: log({_describe(self)})")
        out = Value(math.log(self.data), (self,), "log")

        def _backward():  # (log x)′ = 1/x
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def tanh(self) -> "Value":
        out = Value(math.tanh(self.data), (self,), "tanh")

        def _backward():  # tanh′ = 1 − tanh²
            self.grad += (1.0 - out.data * out.data) * out.grad

        out._backward = _backward
        return out

    def relu(self) -> "Value":
        out = Value(self.data if self.data > 0 else 0.0, (self,), "ReLU")

        def _backward():  # ReLU′(x) = 1 if x > 0 else 0   (0 at x = 0, as PyTorch)
            if self.data > 0:
                self.grad += out.grad

        out._backward = _backward
        return out

    def sigmoid(self) -> "Value":
        x = self.data
        if x >= 0:  # stable: never evaluates e^{|x|}, which overflows for |x| > 709
            s = 1.0 / (1.0 + math.exp(-x))
        else:
            e = math.exp(x)
            s = e / (1.0 + e)
        out = Value(s, (self,), "σ")

        def _backward():  # σ′ = σ(1 − σ)
            self.grad += out.data * (1.0 - out.data) * out.grad

        out._backward = _backward
        return out

    # numbers on the left-hand side: 2 + v, 2 - v, 2 * v, 2 / v
    def __radd__(self, other) -> "Value":
        return _as_value(other) + self

    def __rsub__(self, other) -> "Value":
        return _as_value(other) - self

    def __rmul__(self, other) -> "Value":
        return _as_value(other) * self

    def __rtruediv__(self, other) -> "Value":
        return _as_value(other) / self

    # --- reverse mode ---------------------------------------------------------------------
    def backward(self, gradient: float = 1.0) -> None:
        """Add ∂self/∂v to ``v.grad`` for every node v of the graph that produced ``self``.

        The root is seeded with ``gradient`` (1 by default: ∂f/∂f = 1). Gradients *accumulate*:
        calling ``backward()`` twice adds the same gradients a second time, as PyTorch does with
        ``retain_graph=True``; call ``zero_grad()`` (on this root, or on the model's parameters)
        before the next step. A second root that shares nodes with this graph adds its own
        gradients to the shared nodes: the gradient of a sum of losses.
        """
        if not isinstance(gradient, Real) or not math.isfinite(gradient):
            raise ValueError(f"backward: the seed gradient must be a finite number, got {gradient!r}")
        order = self.topological_order()
        # Each pass computes its own gradients from zero, then adds them to what was there before,
        # so that an intermediate node passes on only this pass's gradient (not the running total).
        before = [v.grad for v in order]
        for v in order:
            v.grad = 0.0
        self.grad = float(gradient)
        try:
            for v in reversed(order):  # the key step: a node is visited after every node that uses it
                if not math.isfinite(v.grad):
                    raise OverflowError(f"backward: the gradient reaching {_describe(v)} is {v.grad}")
                v._backward()
        except Exception:
            for v, g in zip(order, before):  # leave the gradients as they were before this call
                v.grad = g
            raise
        for v, g in zip(order, before):
            v.grad += g

    def zero_grad(self) -> None:
        """Set ``grad`` to 0 for every node of the graph that produced this value (itself included)."""
        for v in self.topological_order():
            v.grad = 0.0

    def topological_order(self) -> list["Value"]:
        """Every node of the graph, each after all of its inputs (leaves first, ``self`` last).

        Iterative depth-first search: each node is pushed once to be *expanded* (its inputs are
        pushed) and once more to be *emitted*, after everything pushed above it is done.
        """
        order: list[Value] = []
        visited: set[Value] = set()
        stack: list[tuple[Value, bool]] = [(self, False)]
        while stack:
            node, inputs_done = stack.pop()
            if inputs_done:
                order.append(node)
                continue
            if node in visited:
                continue
            visited.add(node)
            stack.append((node, True))
            stack.extend((child, False) for child in node._prev if child not in visited)
        return order

    # --- display ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        label = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data!r}, grad={self.grad!r}{label})"

    def __float__(self) -> float:
        return self.data

    def draw(self, ax=None, **kwargs):
        """The graph that produced this value, with values and gradients (see ``draw_graph``)."""
        from .draw import draw_graph

        return draw_graph(self, ax=ax, **kwargs)


# --- helpers ------------------------------------------------------------------------------
def _as_value(x) -> Value:
    if isinstance(x, Value):
        return x
    if isinstance(x, Real):
        return Value(x)
    raise TypeError(f"cannot combine a Value with a {type(x).__name__} ({x!r}); use a number or a Value")


def _describe(v: Value) -> str:
    """How messages name a node: ``x = 2.0`` if it has a label, else ``Value(2.0)`` or its op."""
    if v.label:
        return f"{v.label} = {v.data!r}"
    if v._op:
        return f"the result of '{v._op}' = {v.data!r}"
    return f"Value({v.data!r})"


def _pow(x: float, k: float, node: Value) -> float:
    try:
        return x**k
    except OverflowError:
        raise OverflowError(f"{_describe(node)} ** {k:g} does not fit in a float64") from None


def _power_of_values(base: Value, exponent: Value) -> Value:
    """b ** e with a Value exponent, defined as exp(e · log b): needs a positive base."""
    b, e = base.data, exponent.data
    if b <= 0.0:
        raise ValueError(
            f"a Value exponent needs a positive base (b ** e = exp(e·log b)); got base {_describe(base)} "
            f"and exponent {_describe(exponent)}. For a constant exponent use a number: x ** 2"
        )
    out = Value(_pow(b, e, base), (base, exponent), "**")

    def _backward():  # ∂(bᵉ)/∂b = e·b^(e−1),  ∂(bᵉ)/∂e = bᵉ·log b
        base.grad += e * _pow(b, e - 1, base) * out.grad
        exponent.grad += out.data * math.log(b) * out.grad

    out._backward = _backward
    return out
