"""Self-checks for the exercises in the lecture notebooks: the reader's answer in, one line out.

An exercise cell in a lecture looks like::

    answer = None          # ← your prediction
    nk.exercises.check("2.3", answer)

and prints one line, in the style of the assignment checks:

    [Exercise 2.3] not answered yet: replace None with your answer and run the cell again.
    [Exercise 2.3] right: 0.25.
    [Exercise 2.3] not right: you answered 0.5. Hint: ...

``check`` never raises, so a notebook whose exercises are unanswered still runs top to bottom.
It returns ``True`` (right), ``False`` (not right) or ``None`` (not answered).

Each exercise is one entry of ``EXERCISES``: the expected value (a number, an array, a word
from a short list) with a tolerance, or, for a coding task, a reference function and the
inputs to try the reader's function on. Numbers are compared with a relative tolerance
(``rel``) plus an absolute one (``abs_tol``) for values near zero; arrays additionally by shape.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["EXERCISES", "Exercise", "check"]


@dataclass(frozen=True)
class Exercise:
    """One exercise: what a right answer is, and what to say when it is not."""

    expected: Any = None                      # number, array, tuple, or a word (str)
    hint: str = ""
    rel: float = 1e-3                         # relative tolerance for numbers
    abs_tol: float = 1e-9                     # absolute tolerance, for answers near zero
    reference: Callable | None = None         # coding task: the reference function ...
    inputs: Callable[[], Sequence[tuple]] | None = None   # ... and the argument tuples to try
    choices: tuple[str, ...] = ()             # a word answer: the accepted words
    note: str = field(default="")             # said after a right answer


def _l1_grad(w, lam):
    return lam * np.sign(w)


def _clip(g, max_norm):
    norm = np.linalg.norm(g)
    return g * (max_norm / norm) if norm > max_norm else g


def _momentum_step(w, v, g, lr, beta):
    v = beta * v + g
    return w - lr * v, v


def _linear_backward(dZ, A_prev, W):
    return dZ.T @ A_prev, dZ.sum(axis=0), dZ @ W


def _leaky_relu_prime(z, alpha=0.1):
    return np.where(z > 0, 1.0, alpha)


def _logsumexp(z):
    m = np.max(z)
    return m + np.log(np.sum(np.exp(z - m)))


def _collapse(W1, b1, W2, b2):
    return W2 @ W1, W2 @ b1 + b2


def _maxpool2x2_backward(a, dout):
    """∂ℒ/∂a for a 2×2 max-pool with stride 2 over a 2-D array ``a``; ``dout`` has the pooled shape."""
    da = np.zeros_like(a)
    for i in range(dout.shape[0]):
        for j in range(dout.shape[1]):
            block = a[2 * i:2 * i + 2, 2 * j:2 * j + 2]
            r, c = np.unravel_index(np.argmax(block), block.shape)
            da[2 * i + r, 2 * j + c] += dout[i, j]
    return da


def _rng_inputs(make):
    def inputs():
        rng = np.random.default_rng(2024)
        return [make(rng) for _ in range(3)]
    return inputs


EXERCISES: dict[str, Exercise] = {
    # --- Lecture 1 -----------------------------------------------------------------------
    "1.1": Exercise(expected=1.0, hint="compute z = w·x + b first; the step function outputs 1 when z > 0."),
    "1.2": Exercise(expected=3, rel=0, hint="try a few lines on the four XOR points: can one line put (0,1) and (1,0) "
                    "on one side and (0,0), (1,1) on the other?"),
    "1.3": Exercise(reference=_collapse, hint="substitute z¹ = W¹x + b¹ into W²z¹ + b²; the result is W x + b with "
                    "W = W²W¹ (shape d₂×d₀).",
                    inputs=_rng_inputs(lambda r: (r.standard_normal((4, 3)), r.standard_normal(4),
                                                  r.standard_normal((2, 4)), r.standard_normal(2)))),
    "1.4": Exercise(expected=26, rel=0, hint="a Linear(n_in, n_out) layer has n_out·n_in weights and n_out biases."),
    "1.5": Exercise(expected="wide", choices=("deep", "wide"),
                    hint="count with count_parameters: 784→512→10 against 784→64→64→64→10."),
    # --- Lecture 2 -----------------------------------------------------------------------
    "2.1": Exercise(expected=0.6, hint="J'(w) = 2(w − 3); at w = 0 that is −6, and the step is w − η·J'(w)."),
    "2.2": Exercise(expected=0.25, hint="J''(w) = 2a = 8; divergence starts at η = 2/J''."),
    "2.3": Exercise(expected=100, rel=0, hint="1000/40 minibatches per epoch, times the number of epochs."),
    "2.4": Exercise(reference=_momentum_step, hint="first v ← βv + g, then w ← w − ηv (the new v).",
                    inputs=_rng_inputs(lambda r: (r.standard_normal(3), r.standard_normal(3),
                                                  r.standard_normal(3), 0.1, 0.9))),
    "2.5": Exercise(expected=10.0, rel=1e-9, hint="with a constant gradient g the velocity approaches g/(1 − β)."),
    # --- Lecture 3 -----------------------------------------------------------------------
    "3.1": Exercise(expected=-2.0, hint="a is used twice (branch rule): ∂(a·b)/∂a = b, ∂a/∂a = 1; add them."),
    "3.2": Exercise(expected=0.9276705118714869, rel=1e-6,
                    hint="build x·σ(x) with Value, call backward() and read x.grad; or σ(x) + x σ(x)(1 − σ(x))."),
    "3.3": Exercise(expected=1000, rel=0, hint="forward mode gives the derivative along one input direction per pass."),
    "3.4": Exercise(expected=200, rel=0, hint="a central difference evaluates f at w + h eᵢ and at w − h eᵢ, for each i."),
    # --- Lecture 4 -----------------------------------------------------------------------
    "4.1": Exercise(expected=(3, 5), rel=0, hint="∂ℒ/∂W has the shape of W, (out, in), whatever the batch size."),
    "4.2": Exercise(expected=-0.125, rel=1e-9, hint="δ = (a − y)·σ'(z) with a = σ(0) = ½ and σ'(0) = ¼."),
    "4.3": Exercise(reference=_linear_backward, hint="dW = dZᵀ A_prev, db = the column sums of dZ, dA_prev = dZ W.",
                    inputs=_rng_inputs(lambda r: (r.standard_normal((7, 3)), r.standard_normal((7, 5)),
                                                  r.standard_normal((3, 5))))),
    "4.4": Exercise(expected=0.1 / 4.1, rel=1e-9, hint="max_i |aᵢ − bᵢ| divided by max_i (|aᵢ| + |bᵢ|)."),
    # --- Lecture 5 -----------------------------------------------------------------------
    "5.1": Exercise(expected=1.0, rel=1e-9, hint="tanh'(z) = 1 − tanh²(z), and tanh(0) = 0."),
    "5.2": Exercise(expected=np.array([-2 / 3, 1 / 3, 1 / 3]), rel=1e-6,
                    hint="δ = p − y; with equal logits every pᵢ is 1/3, and y is one-hot on class 0."),
    "5.3": Exercise(expected=0.25 ** 10, rel=1e-6, hint="each sigmoid layer multiplies by at most σ'(0) = 1/4."),
    "5.4": Exercise(reference=_leaky_relu_prime, hint="the slope is 1 for z > 0 and α = 0.1 otherwise.",
                    inputs=_rng_inputs(lambda r: (r.standard_normal(10) * 3,))),
    "5.5": Exercise(reference=_logsumexp, hint="subtract m = max(z) before exp, then add m back outside the log.",
                    inputs=lambda: [(np.array([1000.0, 0.0, -1000.0]),), (np.array([1.0, 2.0, 3.0]),),
                                    (np.array([-800.0, -801.0]),)]),
    # --- Lecture 6 -----------------------------------------------------------------------
    "6.1": Exercise(expected=1 / math.sqrt(3 * 256), rel=1e-4, hint="U[−c, c] has variance c²/3; here c = 1/√256."),
    "6.2": Exercise(reference=_l1_grad, hint="the derivative of λ|w| is λ·sign(w) (take 0 at w = 0).",
                    inputs=_rng_inputs(lambda r: (r.standard_normal(6), 0.01))),
    "6.3": Exercise(expected=120, rel=0, hint="any ordering of the 5 hidden units gives the same function: 5!."),
    "6.4": Exercise(reference=_clip, hint="leave g alone if ‖g‖ ≤ max_norm, else rescale it to length max_norm.",
                    inputs=lambda: [(np.array([3.0, 4.0]), 1.0), (np.array([0.3, 0.4]), 1.0),
                                    (np.array([[6.0, 8.0], [0.0, 0.0]]), 5.0)]),
    "6.5": Exercise(expected=0.99 ** 100, rel=1e-4, hint="each of the m = 100 draws misses the example with "
                    "probability 1 − 1/m."),
    # --- Lecture 7 -----------------------------------------------------------------------
    "7.1": Exercise(expected=np.array([-1.0, -1.0, -1.0, -1.0]), rel=1e-9,
                    hint="z_i = x_i w_1 + x_{i+1} w_2: slide the kernel, do not flip it."),
    "7.2": Exercise(expected=14, rel=0, hint="⌊(H + 2P − K)/S⌋ + 1 with H = 32, K = 5, P = 0, S = 2."),
    "7.3": Exercise(expected=51328, rel=0, hint="128 filters, each 16·5·5 weights, plus one bias per filter."),
    "7.4": Exercise(reference=_maxpool2x2_backward,
                    hint="each output's gradient goes to the one input that was the maximum of its block; "
                         "all other inputs get 0.",
                    inputs=_rng_inputs(lambda r: (r.standard_normal((4, 4)), r.standard_normal((2, 2))))),
}


def _say(exercise: str, text: str) -> None:
    print(f"[Exercise {exercise}] {text}")


def _fmt(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=6, separator=", ")
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def _same(got: Any, expected: Any, rel: float, abs_tol: float) -> tuple[bool, str]:
    """Whether ``got`` matches ``expected``; if not, a reason (empty if the values just differ)."""
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)) or len(got) != len(expected):
            return False, f"a tuple of {len(expected)} entries is expected"
        return all(_same(g, e, rel, abs_tol)[0] for g, e in zip(got, expected)), ""
    if isinstance(expected, np.ndarray) or isinstance(got, np.ndarray):
        try:
            got = np.asarray(got, dtype=np.float64)
        except (TypeError, ValueError):
            return False, "the answer is not an array of numbers"
        expected = np.asarray(expected, dtype=np.float64)
        if got.shape != expected.shape:
            return False, f"your answer has shape {got.shape}, expected shape {expected.shape}"
        return bool(np.allclose(got, expected, rtol=rel, atol=abs_tol)), ""
    try:
        g = float(got)
    except (TypeError, ValueError):
        return False, "a number is expected"
    if rel == 0:
        return g == float(expected), ""
    return math.isclose(g, float(expected), rel_tol=rel, abs_tol=abs_tol), ""


def _check_function(ex: Exercise, exercise: str, fn: Callable) -> bool | None:
    for args in ex.inputs():
        copies = tuple(np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args)
        try:
            got = fn(*copies)
        except NotImplementedError:
            _say(exercise, "not answered yet: write the function's body and run the cell again.")
            return None
        except Exception as exc:  # the reader's code: report, never raise
            _say(exercise, f"your function raised {type(exc).__name__}: {exc}. Hint: {ex.hint}")
            return False
        if got is None:
            _say(exercise, "not answered yet: your function returns None; write its body and run the cell again.")
            return None
        expected = ex.reference(*args)
        if isinstance(expected, tuple):
            expected = tuple(np.asarray(e, dtype=np.float64) for e in expected)
        else:
            expected = np.asarray(expected, dtype=np.float64)
        ok, why = _same(got, expected, 1e-9, 1e-12)
        if not ok:
            shapes = ", ".join(f"{np.shape(a)}" for a in args)
            _say(exercise, f"not right on inputs of shapes {shapes}"
                           f"{': ' + why if why else ''}. Hint: {ex.hint}")
            return False
    _say(exercise, f"right: your function agrees with the reference on {len(ex.inputs())} inputs." +
         (f" {ex.note}" if ex.note else ""))
    return True


def check(exercise: str, answer: Any) -> bool | None:
    """Print a one-line verdict on ``answer`` to lecture exercise ``exercise`` ("2.3"); never raises.

    Returns True (right), False (not right) or None (not answered: ``answer`` is None, or a
    function that returns None or raises NotImplementedError).
    """
    ex = EXERCISES.get(exercise)
    if ex is None:
        _say(exercise, f"there is no such exercise (known: {', '.join(EXERCISES)}).")
        return False
    if answer is None:
        _say(exercise, "not answered yet: replace None with your answer and run the cell again.")
        return None
    if ex.reference is not None:
        if not callable(answer):
            _say(exercise, "a function is expected: pass the function itself, without calling it.")
            return False
        return _check_function(ex, exercise, answer)
    if ex.choices:
        word = str(answer).strip().lower()
        if word not in ex.choices:
            _say(exercise, f"answer with one of {', '.join(repr(c) for c in ex.choices)}; you wrote {answer!r}.")
            return False
        if word == ex.expected:
            _say(exercise, f"right: {word}." + (f" {ex.note}" if ex.note else ""))
            return True
        _say(exercise, f"not right: you answered {word!r}. Hint: {ex.hint}")
        return False
    ok, why = _same(answer, ex.expected, ex.rel, ex.abs_tol)
    if ok:
        _say(exercise, f"right: {_fmt(answer)}." + (f" {ex.note}" if ex.note else ""))
        return True
    _say(exercise, f"not right: you answered {_fmt(answer)}{' (' + why + ')' if why else ''}. Hint: {ex.hint}")
    return False
