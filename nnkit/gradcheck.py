"""Gradient checking: compare a backward pass with central differences (CS231n's method).

A backward pass returns a vector–Jacobian product: given an upstream gradient G = ∂ℒ/∂out it
returns ∂ℒ/∂x = Σ_j G_j ∂out_j/∂x. Central differences estimate the same thing from the
forward pass alone,

    ∂ℒ/∂x_i ≈ ( Σ_j G_j out_j(x + h e_i) − Σ_j G_j out_j(x − h e_i) ) / 2h,

with an error of order h² (truncation) plus ε·|out|/h (rounding, ε ≈ 1e-16 in float64). With
h = 1e-6 a correct backward agrees to about 1e-9 relative; a wrong one is off by far more
than the tolerance 1e-7. Always check in float64: float32 has only about 7 digits.

    >>> import nnkit as nk
    >>> report = nk.gradcheck.check_module(nk.Linear(3, 2, rng=0), x, rng=0)
    >>> report.assert_ok()          # AssertionError naming the worst element if a gradient is wrong

Relative error (one number per checked quantity, ``relative_error``)::

    max_i |a_i − b_i|  /  max( max_i (|a_i| + |b_i|), tiny )

the worst element's error measured against the size of the whole quantity. A per-element
ratio |a_i − b_i| / (|a_i| + |b_i|) would flag elements that are zero up to rounding (where
central differences only resolve about 1e-10 absolutely), so it cannot be held to 1e-7.

When a gradient is small next to the function's values (a saturated softmax), the numerical
gradient itself is uncertain beyond 1e-7 relative. A quantity that misses the tolerance is
therefore re-estimated with step 2h; if the difference lies within 10× that uncertainty (or
the rounding error ε·Σ|out ⊙ G|/h), the tolerance is raised accordingly, marked ``*`` in the
report. A gradient so small that central differences see nothing (≈ 1e-20) fails, and the
report says why.

Randomness: a forward pass that draws random numbers (Dropout's mask) is re-run with the same
draws at every evaluation, see ``check_module``.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ._random import get_rng

__all__ = [
    "Comparison",
    "GradcheckReport",
    "check_loss",
    "check_module",
    "numerical_gradient",
    "relative_error",
]

TINY = np.finfo(np.float64).tiny
EPS = np.finfo(np.float64).eps
#: a difference within this many times the numerical gradient's own uncertainty is no evidence of a bug
NOISE_MARGIN = 10.0


# --- the two formulas ----------------------------------------------------------------------
def numerical_gradient(f: Callable, x: np.ndarray, dout=None, h: float = 1e-5) -> np.ndarray:
    """Central-difference gradient of ``Σ f(x) ⊙ dout`` with respect to the float64 array ``x``.

    ``f(x)`` returns an array (or a number); ``dout`` is the upstream gradient, of ``f(x)``'s
    shape (default: ones, i.e. the gradient of the sum). ``x`` is perturbed *in place*, one
    element at a time, and restored afterwards, so ``f`` may also ignore its argument and read
    ``x`` through a closure — that is how to differentiate with respect to a parameter array::

        dW = numerical_gradient(lambda _: layer.forward(x), layer.weight.data, dout)

    Returns an array of ``x``'s shape.
    """
    if not isinstance(x, np.ndarray) or x.dtype != np.float64:
        raise TypeError(
            f"numerical_gradient perturbs x in place, so x must be a float64 numpy array, got {_describe(x)}; "
            "pass x.astype(np.float64)"
        )
    if not x.flags.writeable:
        raise ValueError("numerical_gradient: x is read-only; pass a writable copy, e.g. x.copy()")
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.array(f(x), dtype=np.float64)  # a copy: f may return a view of x
        x[i] = old - h
        minus = np.array(f(x), dtype=np.float64)
        x[i] = old
        step = (old + h) - (old - h)  # the step actually taken, after rounding
        diff = plus - minus  # outputs x_i does not affect cancel exactly
        grad[i] = (diff.sum() if dout is None else np.sum(diff * dout)) / step
    return grad


def relative_error(a, b) -> float:
    """max_i |a_i − b_i| / max(max_i (|a_i| + |b_i|), tiny): the worst element, against the scale.

    0 when the arrays are equal (also when both are zero); about 1 when they have nothing in
    common; inf when the shapes differ.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        worst = np.max(np.abs(a - b))
        scale = np.max(np.abs(a) + np.abs(b))
    if np.isnan(worst) or np.isnan(scale):
        # NaN in one array only (or in different places) is a failure; NaN in both at the same places is not
        same = np.array_equal(np.isnan(a), np.isnan(b))
        if not same:
            return float("inf")
        finite = ~np.isnan(a)
        return relative_error(a[finite], b[finite])
    if np.isinf(scale):
        same = np.array_equal(a, b)
        return 0.0 if same else float("inf")
    return float(worst / max(scale, TINY))


def _describe(x) -> str:
    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    return f"{type(x).__name__}" if shape is None else f"shape {tuple(shape)} {dtype}"


# --- reports -------------------------------------------------------------------------------
@dataclass
class Comparison:
    """One checked quantity: two arrays ``a`` (what is tested) and ``b`` (the reference)."""

    name: str
    a: np.ndarray
    b: np.ndarray
    tol: float
    error: float = field(init=False)
    index: tuple = field(init=False)
    a_value: float = field(init=False)
    b_value: float = field(init=False)
    where: str = ""
    #: how far ``b`` itself may be off, absolutely (set by the gradient checks; 0: exact)
    noise: float = 0.0

    def __post_init__(self):
        self.a = np.asarray(self.a)
        self.b = np.asarray(self.b)
        self.error = relative_error(self.a, self.b)
        if self.a.shape != self.b.shape or self.a.size == 0:
            self.index, self.a_value, self.b_value = (), float("nan"), float("nan")
            return
        with np.errstate(invalid="ignore"):
            diff = np.abs(self.a.astype(np.float64) - self.b.astype(np.float64))
        diff = np.where(np.isnan(diff), np.inf, diff)
        self.index = tuple(int(i) for i in np.unravel_index(int(np.argmax(diff)), self.a.shape))
        self.a_value, self.b_value = float(self.a[self.index]), float(self.b[self.index])

    @property
    def limit(self) -> float:
        """The tolerance applied: ``tol``, or more where ``b``'s own uncertainty is larger (×10)."""
        if not self.noise or self.a.shape != self.b.shape:
            return self.tol
        scale = float(np.max(np.abs(self.a) + np.abs(self.b)))
        return max(self.tol, NOISE_MARGIN * self.noise / scale) if scale > 0 else self.tol

    @property
    def noise_limited(self) -> bool:
        return self.limit > self.tol

    @property
    def ok(self) -> bool:
        return bool(self.error <= self.limit)

    @property
    def shape(self) -> str:
        if self.a.shape != self.b.shape:
            return f"{self.a.shape} vs {self.b.shape}"
        return str(self.a.shape)


class _Report:
    """A table of comparisons with a verdict; prints as text, shows as HTML in a notebook."""

    a_label, b_label = "a", "b"

    def __init__(self, rows: list[Comparison], header: str, columns_where: bool = False):
        self.rows = rows
        self.header = header
        self._columns_where = columns_where

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rows)

    @property
    def errors(self) -> dict[str, float]:
        """Relative error of every quantity, by name (with the device when there are several)."""
        return {self._key(r): r.error for r in self.rows}

    def __getitem__(self, name: str) -> Comparison:
        for r in self.rows:
            if self._key(r) == name or r.name == name:
                return r
        raise KeyError(f"{name!r}; the report has {[self._key(r) for r in self.rows]}")

    def _key(self, r: Comparison) -> str:
        return f"{r.where}:{r.name}" if self._columns_where else r.name

    def failures(self) -> list[Comparison]:
        return [r for r in self.rows if not r.ok]

    def _table(self) -> tuple[list[str], list[list[str]]]:
        head = (["device"] if self._columns_where else []) + [
            "quantity", "shape", "rel. error", "tolerance", "", "worst at", self.a_label, self.b_label]
        body = []
        for r in self.rows:
            body.append(([r.where] if self._columns_where else []) + [
                r.name, r.shape, f"{r.error:.1e}", f"{r.limit:.0e}" + ("*" if r.noise_limited else ""),
                "ok" if r.ok else "FAIL",
                str(list(r.index)) if r.index else "-", f"{r.a_value:.10g}", f"{r.b_value:.10g}"])
        return head, body

    def verdict(self) -> str:
        if self.ok:
            return "OK"
        names = ", ".join(self._key(r) for r in self.failures())
        return f"FAILED ({names})"

    def __str__(self) -> str:
        head, body = self._table()
        widths = [max(len(row[k]) for row in [head] + body) for k in range(len(head))]
        fmt = lambda row: "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
        lines = [f"{self.header}: {self.verdict()}", fmt(head)] + [fmt(row) for row in body]
        lines += [f"  {h}" for h in self.notes() + self.hints()]
        return "\n".join(lines)

    def notes(self) -> list[str]:
        if not any(r.noise_limited for r in self.rows):
            return []
        return [f"* tolerance raised to {NOISE_MARGIN:g}× the uncertainty of the numerical gradient (rounding, and the "
                "change from step h to 2h): the gradient is small next to the function's values; a larger h or a "
                "less saturated input checks it more tightly"]

    __repr__ = __str__

    def _repr_html_(self) -> str:
        head, body = self._table()
        colour = "#1a7f37" if self.ok else "#cf222e"
        rows = "".join(
            "<tr>" + "".join(
                f"<td style='color:{'#cf222e' if c == 'FAIL' else 'inherit'}'>{html.escape(c)}</td>" for c in row
            ) + "</tr>"
            for row in body
        )
        hints = "".join(f"<li>{html.escape(h)}</li>" for h in self.notes() + self.hints())
        return (
            f"<div><b>{html.escape(self.header)}: <span style='color:{colour}'>{html.escape(self.verdict())}</span></b>"
            f"<table><thead><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr></thead>"
            f"<tbody>{rows}</tbody></table>" + (f"<ul>{hints}</ul>" if hints else "") + "</div>"
        )

    def hints(self) -> list[str]:
        """One sentence per failing quantity about what the numbers suggest."""
        return [f"{self._key(r)}: {_hint(r.a, r.b, self.a_label, self.b_label)}" for r in self.failures()]

    def assert_ok(self) -> "_Report":
        """Raise AssertionError with the whole table if any quantity is off; return self otherwise."""
        if not self.ok:
            raise AssertionError(str(self))
        return self


def _hint(a: np.ndarray, b: np.ndarray, a_label: str, b_label: str) -> str:
    if a.shape != b.shape:
        if a.shape[::-1] == b.shape:
            return f"{a_label} has the transposed shape of {b_label}"
        return f"{a_label} has shape {a.shape}, {b_label} has shape {b.shape}"
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if not np.all(np.isfinite(a64)):
        return f"{a_label} contains NaN or inf"
    if not np.any(a64) and np.any(b64):
        return f"{a_label} is all zeros: was the gradient computed and stored (p.grad += ...)?"
    if np.max(np.abs(a64) + np.abs(b64)) < 1e-8:
        return ("the gradient is vanishingly small here (largest element "
                f"{np.max(np.abs(a64) + np.abs(b64)):.1e}): central differences cannot check it; "
                "try an input where the function is not saturated")
    big = np.abs(b64) > 1e-3 * np.max(np.abs(b64))
    if np.any(big):
        ratio = a64[big] / b64[big]
        if np.allclose(ratio, ratio[0], rtol=1e-4):
            k = ratio[0]
            if np.isclose(k, 1, rtol=1e-4, atol=0):
                return f"{a_label} and {b_label} agree to 4 digits everywhere: a tiny error, or noise in {b_label}"
            if np.isclose(k, -1):
                return f"{a_label} = −{b_label}: a sign error"
            return f"{a_label} = {k:.6g} × {b_label} everywhere: a missing or extra constant factor (batch size? 2?)"
    if a.ndim == 2 and a.shape[0] == a.shape[1] and np.allclose(a64, b64.T, rtol=1e-5, atol=0):
        return f"{a_label} equals the transpose of {b_label}"
    wrong = np.abs(a64 - b64) > 1e-3 * np.max(np.abs(a64) + np.abs(b64))
    return f"{int(wrong.sum())} of {a.size} elements differ by more than 0.1 % of the largest"


class GradcheckReport(_Report):
    """Analytic (backward) against numerical (central differences) gradients of each quantity.

    ``ok``; ``errors`` (relative error by quantity); ``report["∂ℒ/∂x"]`` → a ``Comparison`` with
    ``error``, ``index`` of the worst element, ``a_value`` (analytic) and ``b_value`` (numerical),
    ``tol``; ``assert_ok()``.
    """

    a_label, b_label = "analytic", "numerical"


# --- checkers ------------------------------------------------------------------------------
def _generators(module) -> list[np.random.Generator]:
    """Every random generator a forward pass of ``module`` may draw from (e.g. Dropout's mask).

    The default generator (``nk.manual_seed``) is always included; so is any Generator stored
    as an attribute of the module or of one of its submodules.
    """
    gens = {id(get_rng(None)): get_rng(None)}
    modules = module.modules() if hasattr(module, "modules") else [module]
    for m in modules:
        for value in vars(m).values():
            if isinstance(value, np.random.Generator):
                gens[id(value)] = value
    return list(gens.values())


class _FrozenRandomness:
    """Re-run a forward with the same random draws: every evaluation restarts each generator from
    the state it had before the first forward, so Dropout draws the same mask every time."""

    def __init__(self, module):
        self.gens = _generators(module)
        self.start = [g.bit_generator.state for g in self.gens]

    def rewind(self) -> None:
        for g, s in zip(self.gens, self.start):
            g.bit_generator.state = s


def _float64_parameters(obj, who: str) -> list[tuple[str, object]]:
    params = list(obj.named_parameters()) if hasattr(obj, "named_parameters") else []
    bad = {name: str(p.data.dtype) for name, p in params if p.data.dtype != np.float64}
    if bad:
        raise TypeError(
            f"{who}: gradient checks need float64, but parameters have dtypes {bad}; "
            "call module.to(np.float64) first (central differences in float32 resolve only ~3 digits)"
        )
    return params


def _short(m) -> str:
    """``Sequential(Linear(3→4), Sigmoid())``: a module and its layers on one line."""
    children = list(m.children()) if hasattr(m, "children") else []
    if children:
        return f"{type(m).__name__}({', '.join(_short(c) for c in children)})"
    return m.extra_repr_name() if hasattr(m, "extra_repr_name") else type(m).__name__


def _label(obj) -> str:
    if getattr(obj, "_qualname", "") and hasattr(obj, "label"):
        return obj.label()
    return _short(obj)


def check_module(module, x, dout=None, rng=None, h: float = 1e-6, tol: float = 1e-7) -> GradcheckReport:
    """Check ``module.backward`` against central differences: ∂ℒ/∂x and every parameter's gradient.

    ``L = Σ module(x) ⊙ dout``; ``dout`` defaults to a standard normal array drawn from ``rng``
    (a seed or Generator; a random upstream gradient catches more bugs than ones). Works for
    any nnkit Module, including a whole ``Sequential``.

    Randomness: a module that draws random numbers in forward (Dropout) is evaluated with the
    *same* draws every time — each generator is rewound to its state before the first forward
    — so the mask is fixed and the function being differentiated is well defined. Training and
    evaluation mode are left as they are. The module is left as it was found, except that its
    caches hold the forward of ``x`` and its generators have advanced by one forward.

    Points where the function has a kink (ReLU at 0) or a jump (Step at 0) within ``h`` of an
    input give a meaningless numerical gradient there; keep inputs away from them.
    """
    from .losses import Loss

    if isinstance(module, Loss):
        raise TypeError(f"{_label(module)} is a loss: use check_loss(loss, pred, target)")
    params = _float64_parameters(module, f"check_module({_label(module)})")
    x = np.array(x, dtype=np.float64)  # a private copy: it is perturbed in place
    frozen = _FrozenRandomness(module)
    saved_grads = [p.grad.copy() for _, p in params]

    out = np.asarray(module.forward(x))
    if dout is None:
        dout = get_rng(rng).standard_normal(out.shape)
    dout = np.asarray(dout, dtype=np.float64)
    after_one_forward = [g.bit_generator.state for g in frozen.gens]

    def f(_):
        frozen.rewind()
        return module.forward(x)

    numerical = {"∂ℒ/∂x": numerical_gradient(f, x, dout, h)}
    for name, p in params:
        numerical[f"∂ℒ/∂{name}"] = numerical_gradient(f, p.data, dout, h)

    # the analytic gradients, from one clean forward and backward
    frozen.rewind()
    for _, p in params:
        p.grad = np.zeros_like(p.data)
    module.forward(x)
    analytic = {"∂ℒ/∂x": np.asarray(module.backward(dout.copy()))}
    for name, p in params:
        analytic[f"∂ℒ/∂{name}"] = p.grad.copy()
    for (_, p), g in zip(params, saved_grads):
        p.grad = g

    rows = [Comparison(k, analytic[k], numerical[k], tol) for k in numerical]
    arrays = {"∂ℒ/∂x": x, **{f"∂ℒ/∂{name}": p.data for name, p in params}}
    off = [row for row in rows if not row.ok]
    for row in off:  # is the difference more than the numerical gradient's own uncertainty?
        row.noise = _uncertainty(f, arrays[row.name], dout, h, row.b, out)
    if off:  # leave the caches holding the forward of x
        f(x)
    for g, s in zip(frozen.gens, after_one_forward):
        g.bit_generator.state = s
    mode = "training" if getattr(module, "training", False) else "eval"
    return GradcheckReport(rows, f"gradcheck of {_label(module)} (float64, h={h:g}, {mode} mode)")


def check_loss(loss, pred, target, dout=None, rng=None, h: float = 1e-6, tol: float = 1e-7) -> GradcheckReport:
    """Check ``loss.backward`` (∂ℒ/∂pred) against central differences of ``loss.forward(pred, target)``.

    For ``reduction='none'`` the per-element losses are weighted by ``dout`` (default: standard
    normal from ``rng``) and ``loss.backward(dout)`` is checked; otherwise ``loss.backward()``
    (or ``loss.backward(dout)`` for a number ``dout``). Keep the probabilities given to
    ``BCELoss`` at least ``h`` inside (0, 1).
    """
    pred = np.array(pred, dtype=np.float64)  # a private copy: it is perturbed in place
    value = np.asarray(loss.forward(pred, target))
    if value.ndim:  # reduction='none': one loss per element, weighted by an upstream gradient
        dout = get_rng(rng).standard_normal(value.shape) if dout is None else np.asarray(dout, dtype=np.float64)
    else:
        dout = 1.0 if dout is None else float(dout)

    def f(p):
        return loss.forward(p, target)

    numerical = numerical_gradient(f, pred, dout, h)
    loss.forward(pred, target)
    analytic = np.asarray(loss.backward(dout))
    row = Comparison("∂ℒ/∂pred", analytic, numerical, tol)
    if not row.ok:
        row.noise = _uncertainty(f, pred, dout, h, numerical, value)
    loss.forward(pred, target)
    header = f"gradcheck of {_label(loss)} (float64, h={h:g})"
    return GradcheckReport([row], header)


def _uncertainty(f, x, dout, h, numerical, out) -> float:
    """How far a central-difference gradient may be off, absolutely: the larger of its rounding
    error ε·Σ|out ⊙ dout|/h and its change when the step is doubled (rounding and truncation)."""
    doubled = numerical_gradient(f, x, dout, 2 * h)
    rounding = EPS * float(np.sum(np.abs(np.asarray(out, dtype=np.float64) * dout))) / h
    return max(rounding, float(np.max(np.abs(doubled - numerical))))
