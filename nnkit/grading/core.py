"""The check-and-report machinery that assignment test cells call.

A test cell of an nbgrader assignment calls one ``check_<question>`` function (in
``nnkit.grading.mlp`` and its siblings); those are built from the pieces here:

``call(fb, fn, *args)``
    runs the student's function on copies of the inputs, silences warnings (any stderr output
    in a test cell scores 0) and turns an exception into a one-line ``AssertionError``.
``check_array(fb, name, got, expected, ...)``
    type, shape, finiteness and values against the reference, with a stated tolerance;
    recognises the classic bugs from the arrays alone (sign flip, transposed, a factor of the
    batch size) and from ``probes`` that re-run the student's code on crafted inputs. A cause
    is named only on such evidence; otherwise the message says what was observed: which axis
    is missing or extra, which entries are inf/nan, the pattern of the wrong entries
    (``pattern``: one factor for all, only some rows, only some columns).
``check_layers(fb, symbol, got, expected, ...)``
    per-layer lists such as δ¹ … δᴸ, checked from the output layer down, so the message says
    "δ² is wrong; δ³ was right".
``check_against_torch(fb, name, student_fn, torch_fn, inputs, ...)``
    the same computation in PyTorch on every available device (float64 on CPU; float32 with
    TF32 off on CUDA), with the tolerance in the message.
``numerical_gradient(f, x)``
    central differences, the oracle for anything with a gradient.
``reference_bindings(fn, name=ref, ...)``
    while testing a later question, temporarily bind reference versions of earlier functions
    the student's function calls, so that each question is graded on its own.

Every failure goes through a ``Feedback`` and becomes ``AssertionError("[question] ...")`` —
one sentence a teaching assistant would say. It is a ``CheckFailed`` (``nnkit.grading.report``)
that also carries what the check learned: a notebook shows it as compact HTML (the steps that
passed, the first wrong layer or entry) with the sentence alone in place of a traceback, and a
plain script that fails a check prints the sentence alone. In a *hidden* check the message gives the
category, the shapes and how many entries are wrong, never an expected value nor a magnitude
one could be read from (no error size); a visible check may show the largest error and the
first wrong entry. A passing visible check prints "visible checks passed", never
"all tests passed" (the hidden tests have not run yet).

Usage in a test cell::

    from nnkit.grading import mlp as G
    G.check_sigmoid_prime(sigmoid_prime)                # visible
    ### BEGIN HIDDEN TESTS
    G.check_sigmoid_prime(sigmoid_prime, hidden=True)
    ### END HIDDEN TESTS

Writing a new check::

    def check_relu(relu, *, hidden=False):
        fb = Feedback("relu", hidden=hidden)
        z = np.linspace(-3, 3, 13)
        got = call(fb, relu, z, name="relu(z)")
        check_array(fb, "relu(z)", got, np.maximum(z, 0), probes=[
            Probe(SIGN_FLIP, lambda: np.allclose(call(fb, relu, z), np.maximum(-z, 0)),
                  "relu(z) must keep the positive inputs"),
        ])
        fb.passed()
"""
from __future__ import annotations

import contextlib
import contextvars
import copy
import dataclasses
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from nnkit.gradcheck import relative_error  # the course's one definition, documented there

from . import global_rng, wire
from .report import ASPECTS, CheckFailed, Comparison, Report, Step, install_excepthook

install_excepthook()  # a plain script that fails a check prints the message, not the grader's frames

# --- bug classes: the phrases feedback uses (mutation tables match on them) ------------------
WRONG_SHAPE = "wrong shape"
WRONG_VALUES = "wrong values"
WRONG_TYPE = "wrong type"
NOT_IMPLEMENTED = "not implemented"
RAISED = "raised an exception"
NON_FINITE = "inf/nan"
UNSTABLE = "numerically unstable"            # inf/nan (or overflow) on large inputs
TRANSPOSED_W = "transposed W"
TRANSPOSED = "transposed"
MISSING_FPRIME = "missing f′(z) factor"
BATCH_FACTOR = "factor of the batch size"
SIGN_FLIP = "sign flip"
NO_ACCUMULATION = "no accumulation under fan-out"
DROPOUT_MASK_NOT_REUSED = "dropout mask not reused"
DROPOUT_NOT_RESCALED = "dropout not rescaled"
MODIFIES_INPUT = "modifies its input"
NOT_REPRODUCIBLE = "not reproducible with the same seed"
IGNORES_SEED = "ignores the generator it is given"
GLOBAL_RNG = "changes numpy's global random state"
PYTHON_RNG = "changes Python's global random state"
TORCH_RNG = "changes PyTorch's global random state"

#: default tolerances, stated in every message: student (float64) vs nnkit reference (float64)
RTOL, ATOL = 1e-7, 1e-10
#: student (float64) vs PyTorch float64 on CPU, and float32 vs PyTorch float32 (TF32 off) on CUDA
TORCH_TOL = {"cpu": (1e-7, 1e-10), "cuda": (2e-4, 1e-5)}

_SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")


def sup(n: int) -> str:
    """3 → '³' (how messages write layer indices: δ³, W²)."""
    return str(n).translate(_SUPERSCRIPT)


def shape_of(x) -> str:
    """'(4, 3)' for an array, 'a float' for a Python number, 'a list' for a list of arrays."""
    if isinstance(x, np.ndarray):
        return str(tuple(x.shape))
    if isinstance(x, (list, tuple)):
        return f"a {type(x).__name__} of {len(x)}"
    return f"a {type(x).__name__}"


# --- feedback --------------------------------------------------------------------------------
class Feedback:
    """Builds the one-line messages of one question's check and raises them.

    ``question`` is the question's id (the nbgrader ``grade_id`` of its solution cell); every
    message starts with it. ``hidden=True`` selects the hidden-test rules: no array values in
    any message. ``steps`` records what passed so far (``step``), for the report a failure
    carries (``nnkit.grading.report``).
    """

    def __init__(self, question: str, *, hidden: bool = False):
        self.question = question
        self.hidden = bool(hidden)
        self.steps: list[Step] = []

    def step(self, subject: str, *aspects: str) -> None:
        """Record that ``aspects`` of ``subject`` passed (e.g. "values" of "δ³")."""
        self.steps += [Step(subject, aspect) for aspect in aspects]

    def fail(self, category: str, detail: str, *, likely: str | None = None, hint: str | None = None,
             compared: Comparison | None = None):
        """Raise ``AssertionError('[question] category: detail. Likely bug: likely — hint')``.

        It is a ``CheckFailed`` carrying a ``Report``: the steps passed so far and ``compared``,
        what the failed comparison looked at (its arrays are dropped in a hidden check)."""
        __tracebackhide__ = True
        where = "hidden check" if self.hidden else "check"
        msg = f"[{self.question}] {where} failed, {category}: {detail.rstrip('.')}."
        if likely:
            msg += f" Likely bug: {likely}"
            msg += f" — {hint.rstrip('.')}." if hint else "."
        elif hint:
            msg += f" {hint[:1].upper()}{hint[1:].rstrip('.')}."
        msg = msg.replace("\n", " ")
        if compared is not None and self.hidden:
            compared = Comparison(compared.subject, compared.aspect)
        report = Report(self.question, msg, category, hidden=self.hidden, passed=list(self.steps), compared=compared)
        raise CheckFailed(msg, report) from None

    def passed(self, what: str = "") -> None:
        """Print that the visible checks passed (hidden checks pass silently)."""
        if not self.hidden:
            print(f"[{self.question}] visible checks passed{': ' + what if what else ''}. "
                  "More checks run when the assignment is graded.")

    def values(self, text: str) -> str:
        """``text`` in a visible message, '' in a hidden one (for anything that shows values)."""
        return "" if self.hidden else text


# --- running the student's code --------------------------------------------------------------
@contextlib.contextmanager
def quiet():
    """No warnings and no floating-point error messages (stderr in a test cell scores 0)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with np.errstate(all="ignore"):
            yield


def _copy(x):
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, (list, tuple, dict)):
        return copy.deepcopy(x)
    return x


def _unchanged(before, after) -> bool:
    """True when ``after`` still equals ``before`` (arrays, and lists, tuples and dicts of them;
    other objects are not compared)."""
    if isinstance(before, np.ndarray):
        if not isinstance(after, np.ndarray) or after.shape != before.shape:
            return False
        try:
            return bool(np.array_equal(before, after, equal_nan=before.dtype.kind in "fc"))
        except (TypeError, ValueError):
            return bool(np.array_equal(before, after))
    if isinstance(before, (list, tuple)):
        return isinstance(after, (list, tuple)) and len(after) == len(before) and \
            all(_unchanged(b, a) for b, a in zip(before, after))
    if isinstance(before, dict):
        return isinstance(after, dict) and after.keys() == before.keys() and \
            all(_unchanged(before[k], after[k]) for k in before)
    return True


def _argument_names(label: str, count: int) -> list[str | None]:
    """The parameter names a label such as 'delta_hidden(delta_next, W_next, Z) for …' gives the
    positional arguments ([None, ...] when it names none or a different number)."""
    import re  # noqa: PLC0415

    found = re.match(r"[\w.]+\(([^()]*)\)", label.strip())
    if found and found.group(1).strip():
        names = [part.split("=")[0].strip() for part in found.group(1).split(",")]
        if len(names) == count and all(n.isidentifier() for n in names):
            return list(names)
    return [None] * count


def call(fb: Feedback, fn: Callable, *args, name: str | None = None, copy_inputs: bool = True,
         probes: Sequence[Probe] = (), may_modify: bool | Iterable[int | str] = (),
         arg_names: Sequence[str | None] | None = None, **kwargs):
    """``fn(*args, **kwargs)`` on copies of the inputs, quietly; an exception becomes a failure.

    NotImplementedError (the released stub) says the question is not answered yet; any other
    exception is reported with its type, its message and the shapes of the inputs, and the
    ``probes`` are asked for the likely bug (a transposed W usually shows up as a shape error).

    Side effects: after the call the arguments the function was handed (arrays, and lists,
    tuples and dicts of arrays) are compared with the originals; an answer that changed one
    fails with ``MODIFIES_INPUT``, naming the argument by position and by name (from
    ``arg_names``, or from a ``name`` such as ``"f(X, W)"``). ``may_modify`` lists the
    positions (0-based) or keyword names a question allows to be updated in place (True: all).
    In a graded run the arrays changed in the student's kernel are copied back onto the ones
    handed over, so the comparison sees them.
    """
    __tracebackhide__ = True
    label = name or f"{getattr(fn, '__name__', 'your function')}(...)"
    if not callable(fn):
        fb.fail(WRONG_TYPE, f"{label}: expected a function, got {type(fn).__name__}")
    if copy_inputs:
        originals = (args, kwargs)
        args = tuple(_copy(a) for a in args)
        kwargs = {k: _copy(v) for k, v in kwargs.items()}
    else:
        originals = (tuple(_copy(a) for a in args), {k: _copy(v) for k, v in kwargs.items()})
    items = [_items(a) for a in args]   # which objects the handed lists and dicts held
    try:
        with quiet():
            result = fn(*args, **kwargs)
    except NotImplementedError:
        fb.fail(NOT_IMPLEMENTED, f"{label} is not implemented yet (it raises NotImplementedError)",
                hint="replace the stub `raise NotImplementedError()` with your code")
    except AssertionError:
        raise
    except Exception as err:  # noqa: BLE001 - any error in student code is reported, not raised
        shapes = ", ".join(shape_of(a) for a in args)
        text = str(err).splitlines()[0] if str(err) else ""
        probe = diagnose(probes)
        fb.fail(RAISED, f"{label} with inputs of shape {shapes} raised {type(err).__name__}: {text}",
                likely=probe.bug if probe else None, hint=probe.hint if probe else None)
    if may_modify is not True:
        _check_unchanged(fb, label, originals, (args, kwargs), set(may_modify or ()), arg_names, result, items)
    return result


def _items(x) -> list | dict | None:
    return type(x)(x) if type(x) in wire.CONTAINERS else None


def _check_unchanged(fb: Feedback, label: str, originals, handed, allowed: set, arg_names, result,
                     items=()) -> None:
    __tracebackhide__ = True
    (args0, kwargs0), (args, kwargs) = originals, handed
    names = list(arg_names) if arg_names is not None else _argument_names(label, len(args))
    names += [None] * (len(args) - len(names))
    positions = [i for i in range(len(args)) if i not in allowed and (names[i] is None or names[i] not in allowed)
                 and not _unchanged(args0[i], args[i])]
    changed = [f"argument {i + 1}" + (f" `{names[i]}`" if names[i] else "") for i in positions]
    changed += [f"argument `{k}`" for k in kwargs if k not in allowed and not _unchanged(kwargs0[k], kwargs[k])]
    if not changed:
        return
    said = f"{label} changed its {' and '.join(changed)} in place"
    returned = " and returned None" if result is None else ""
    replaced = [i for i in positions if i < len(items) and items[i] is not None
                and wire.items_replaced(items[i], args[i])]
    if replaced:
        kind = "list" if type(args[replaced[0]]) is list else "dict"
        fb.fail(MODIFIES_INPUT, f"{said}: it put other objects in the caller's {kind}{returned}",
                hint=f"the caller's {kind} must stay as it was: build a new one "
                     "(`new = [p - lr * g for p, g in zip(params, grads)]`) instead of assigning "
                     "to `params[i]`, appending or adding keys")
    fb.fail(MODIFIES_INPUT, said + returned,
            hint="the caller's arrays must stay as they were: compute into new arrays "
                 "(e.g. `Z = Z * s` instead of `Z *= s`, or work on `x.copy()`)")


def try_call(fn: Callable, *args, **kwargs):
    """``fn(*args)`` quietly on copies of the inputs; None if it raises (used by probes)."""
    try:
        with quiet():
            return fn(*(_copy(a) for a in args), **kwargs)
    except Exception:  # noqa: BLE001
        return None


@contextlib.contextmanager
def reference_bindings(fn: Callable, **refs):
    """Temporarily bind ``name=reference`` in the namespace ``fn`` looks its globals up in.

    A notebook's functions share the notebook's globals; binding the reference ``sigmoid``
    there while ``forward`` is checked means a wrong ``sigmoid`` cannot cost the ``forward``
    question its points. The student's own functions are restored afterwards.
    """
    from .remote import is_remote  # noqa: PLC0415

    if is_remote(fn):  # a graded run: the names are bound in the student's kernel
        with fn._bind(refs):
            yield
        return
    namespace = getattr(fn, "__globals__", None)
    if namespace is None:
        yield
        return
    missing = object()
    saved = {name: namespace.get(name, missing) for name in refs}
    namespace.update(refs)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is missing:
                namespace.pop(name, None)
            else:
                namespace[name] = value


# --- diagnosis -------------------------------------------------------------------------------
@dataclass
class Probe:
    """A known bug and a test that recognises it by re-running the student's code.

    ``test()`` returns True when the student's code behaves exactly as the buggy version would
    (e.g. its output on crafted inputs equals the reference computed with Wᵀ). It should use
    ``try_call`` so that an exception inside a probe just means "not this bug". A test that can
    say what it found (which node, which step) returns that sentence instead of True: it becomes
    the hint.
    """

    bug: str
    test: Callable[[], bool | str | None]
    hint: str = ""


def diagnose(probes: Iterable[Probe]) -> Probe | None:
    """The first probe whose test says yes, else None (a failing probe counts as no); a test that
    returned a sentence gives the probe that hint."""
    for probe in probes or ():
        try:
            with quiet():
                found = probe.test()
        except Exception:  # noqa: BLE001
            continue
        if found:
            return dataclasses.replace(probe, hint=found) if isinstance(found, str) else probe
    return None


def close(got, expected, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """Same shape and values within tolerance (nan never equals anything)."""
    try:
        got = np.asarray(got, dtype=float)
    except (TypeError, ValueError):
        return False
    expected = np.asarray(expected, dtype=float)
    return got.shape == expected.shape and bool(np.allclose(got, expected, rtol=rtol, atol=atol))


def relation(got: np.ndarray, expected: np.ndarray, *, batch_size: int | None = None,
             rtol: float = RTOL, atol: float = ATOL) -> str | None:
    """Recognise a wrong answer from the arrays alone: sign flip, transposed, batch-size factor."""
    if not np.any(expected):
        return None
    if close(got, -expected, rtol, atol):
        return SIGN_FLIP
    if expected.ndim == 2 and expected.shape[0] == expected.shape[1] and close(got, expected.T, rtol, atol) \
            and not close(expected, expected.T, rtol, atol):
        return TRANSPOSED
    if batch_size and batch_size > 1:
        for factor in (batch_size, 1.0 / batch_size):
            if close(got, expected * factor, rtol, atol):
                return BATCH_FACTOR
    if batch_size and close(got, expected * batch_size / 2, rtol, atol):
        return None   # N/2 (2 at N = 4): the 2/N of a mean's gradient dropped, or a factor 2? the arrays can't tell
    if close(got, 2 * expected, rtol, atol) or close(got, expected / 2, rtol, atol):
        return "factor of 2"
    return None


_RELATION_HINTS = {
    SIGN_FLIP: "your result is exactly the negative of the right one",
    TRANSPOSED: "your result is exactly the transpose of the right one",
}


def _relation_hint(likely: str | None, got: np.ndarray, expected: np.ndarray, batch_size: int | None,
                   rtol: float, atol: float) -> str | None:
    """What ``relation`` saw, in words: which way a factor goes (the arrays show it)."""
    if likely == BATCH_FACTOR:
        if close(got, expected * batch_size, rtol, atol):
            return (f"your result is N = {batch_size} (the batch size) times the right one; "
                    "check where the loss averages over the batch")
        return (f"your result is the right one divided by N = {batch_size} (the batch size); "
                "check where the loss averages over the batch")
    if likely == "factor of 2":
        return "your result is twice the right one" if close(got, 2 * expected, rtol, atol) else \
            "your result is half the right one"
    return _RELATION_HINTS.get(likely)


def _indices(idx: Sequence[int], what: str, plural: str = "") -> str:
    """'row 0', 'rows 0, 2 and 3'."""
    idx = [int(i) for i in idx]
    if len(idx) == 1:
        return f"{what} {idx[0]}"
    return f"{plural or what + 's'} {', '.join(str(i) for i in idx[:-1])} and {idx[-1]}"


def pattern(got: np.ndarray, expected: np.ndarray, rtol: float = RTOL, atol: float = ATOL, *,
            hidden: bool = False) -> str | None:
    """An observed pattern of the difference, in words, or None: all entries off by one factor or
    one amount (its value only in a visible check), only some rows wrong, the wrong entries all
    in some columns, only a few entries wrong. A description of the arrays, never a cause."""
    with quiet():
        got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
        if got.shape != expected.shape or got.size < 2 or not np.all(np.isfinite(got)):
            return None
        bad = ~np.isclose(got, expected, rtol=rtol, atol=atol)
        if bad.all() and np.all(expected != 0):
            ratio = got / expected
            if np.allclose(ratio, ratio.flat[0], rtol=1e-6, atol=0):
                return "all entries are off by the same factor" + ("" if hidden else f" {ratio.flat[0]:.3g}")
        if bad.all():
            diff = got - expected
            if np.allclose(diff, diff.flat[0], rtol=1e-6, atol=atol):
                return "all entries differ by the same amount" + ("" if hidden else f" {diff.flat[0]:.3g}")
        if bad.all():
            return None
        if got.ndim == 2:
            rows, cols = np.flatnonzero(bad.any(axis=1)), np.flatnonzero(bad.any(axis=0))
            if len(rows) < got.shape[0] and len(rows) <= 3:
                verb = "is" if len(rows) == 1 else "are"
                return f"only {_indices(rows, 'row')} {verb} wrong; the other rows are right"
            if len(cols) < got.shape[1] and len(cols) <= 3:
                return f"the wrong entries are all in {_indices(cols, 'column')}"
        if got.ndim == 1 and bad.sum() <= 3:
            wrong = np.flatnonzero(bad)
            return f"only the {_indices(wrong, 'entry', 'entries')} {'is' if len(wrong) == 1 else 'are'} wrong"
        return None


def _shape_difference(got: np.ndarray, expected: np.ndarray) -> str:
    """How the student's shape differs from the expected one, in words (from the shapes and,
    where it decides, the values)."""
    g, e = tuple(got.shape), tuple(expected.shape)
    if len(g) == len(e) + 1:
        for k in range(len(g)):
            if g[:k] + g[k + 1:] == e:
                text = f"your result has shape {g} where {e} was expected: it has an extra axis {k} of length {g[k]}"
                with quiet():
                    if close(got.sum(axis=k), expected):
                        text += "; summed over that axis it would be right"
                return text
    if len(e) == len(g) + 1:
        for k in range(len(e)):
            if e[:k] + e[k + 1:] == g:
                return (f"your result has shape {g} where {e} was expected: the axis {k} of length {e[k]} "
                        "is missing")
    if got.size == expected.size:
        with quiet():
            same = close(got.reshape(e), expected)
        if same:
            return f"your entries are right but arranged in shape {g} instead of {e}"
        if len(g) == len(e) == 2 and g == e[::-1]:
            return f"your result has the axes in the reverse order: shape {g} where {e} was expected"
        return f"your result has the right number of entries, {got.size}, in shape {g} instead of {e}"
    if len(g) == len(e):
        axes = [k for k in range(len(e)) if g[k] != e[k]]
        return "; ".join(f"axis {k} has length {g[k]} where {e[k]} was expected" for k in axes)
    return f"your result has {len(g)} axes where {len(e)} were expected"


def _positions(mask: np.ndarray, inputs: np.ndarray | None, hidden: bool, limit: int = 4) -> str:
    """Where ``mask`` is true: the indices, and in a visible check the inputs there."""
    idx = [tuple(int(i) for i in ix) for ix in np.argwhere(mask)]
    shown = []
    for ix in idx[:limit]:
        text = f"index {ix if len(ix) != 1 else ix[0]}" if ix else "the one entry"
        if inputs is not None and not hidden:
            text += f" (input {inputs[ix]:.6g})"
        shown.append(text)
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return ", ".join(shown) + more


#: |input| from which an entry counts as a large input (e^{20} ≈ 5e8: formulas that exponentiate
#: such inputs are the ones that overflow a few steps later)
LARGE_INPUT = 20.0


def _non_finite(fb: Feedback, name: str, got: np.ndarray, expected: np.ndarray, bad: np.ndarray, inputs,
                rtol: float, atol: float) -> tuple[str, str, str | None, str | None]:
    """inf/nan where the answer is finite: which entries, and UNSTABLE only on evidence — every such
    entry is at a large input (element-wise ``inputs``) and every other entry is right."""
    if inputs is not None:
        try:
            inputs = np.broadcast_to(np.asarray(inputs, dtype=float), expected.shape)
        except ValueError:
            inputs = None
    with quiet():
        rest_ok = bool(np.allclose(got[~bad], expected[~bad], rtol=rtol, atol=atol, equal_nan=True))
    detail = (f"{name} contains inf or nan in {int(bad.sum())} of {got.size} entries where the right answer is "
              f"finite, at {_positions(bad, inputs, fb.hidden)}")
    detail += "; the other entries are right" if rest_ok else "; other entries are wrong too"
    if inputs is not None and rest_ok and np.all(np.abs(inputs[bad]) >= LARGE_INPUT):
        return (NON_FINITE, detail, UNSTABLE,
                f"inf/nan appear only for inputs of magnitude {LARGE_INPUT:g} or more and everything else is "
                "right: an intermediate value overflows there (e^{x} for large x); rewrite the formula so that "
                "it never exponentiates a large positive number")
    return NON_FINITE, detail, None, None


def _error_size(got: np.ndarray, expected: np.ndarray, rtol: float = RTOL, atol: float = ATOL, *,
                hidden: bool = False) -> str:
    """How many entries are wrong; in a visible check also the largest error (a hidden one shows
    no magnitude: for a one-number result the error would give the expected value away)."""
    with quiet():
        diff = np.abs(got.astype(float) - expected.astype(float))
        abs_err = float(np.max(diff)) if diff.size else 0.0
        n_bad = int(np.sum(~np.isclose(got, expected, rtol=rtol, atol=atol)))
    text = f"{n_bad} of {expected.size} entries differ"
    return text if hidden else f"{text}; largest error {abs_err:.2g}"


def _first_wrong(got: np.ndarray, expected: np.ndarray, rtol: float, atol: float) -> str:
    bad = np.argwhere(~np.isclose(got, expected, rtol=rtol, atol=atol, equal_nan=False))
    if not len(bad):
        return ""
    idx = tuple(int(i) for i in bad[0])
    where = f" at index {idx}" if got.ndim else ""
    return f"first wrong entry{where}: expected {expected[idx]:.6g}, got {got[idx]:.6g}"


def as_array(fb: Feedback, name: str, got, *, dtype=None) -> np.ndarray:
    """The student's result as a float array, or a failure that says what came back instead."""
    __tracebackhide__ = True
    if got is None:
        fb.fail(WRONG_TYPE, f"{name} returned None", hint="did you forget the `return` statement?")
    if isinstance(got, (list, tuple)) and any(isinstance(g, np.ndarray) and g.ndim > 0 for g in got) and \
            len({np.shape(g) for g in got}) > 1:
        fb.fail(WRONG_TYPE, f"{name} returned {shape_of(got)} arrays of different shapes where one array "
                            "was expected")
    try:
        arr = np.asarray(got, dtype=dtype)
        if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
            raise TypeError
        return arr.astype(float) if dtype is None and not np.issubdtype(arr.dtype, np.floating) else arr
    except (TypeError, ValueError):
        fb.fail(WRONG_TYPE, f"{name} returned a {type(got).__name__}; expected a numpy array")


def mismatch(fb: Feedback, name: str, got: np.ndarray, expected: np.ndarray, *, rtol: float = RTOL,
             atol: float = ATOL, batch_size: int | None = None, shape_hint: str | None = None,
             relations: bool = True, inputs=None) -> tuple[str, str, str | None, str | None] | None:
    """What is wrong with ``got`` against ``expected``: (category, detail, likely bug, hint), or None.

    A likely bug is named only from evidence in the arrays: the result equals the right one
    transposed, negated or scaled (``relation``), or — with ``inputs``, the element-wise inputs the
    entries were computed from — it is inf/nan exactly at large inputs and right everywhere else
    (UNSTABLE). Otherwise the detail says what was observed: which axis is missing or extra, which
    entries are inf/nan, the pattern of the wrong entries (``pattern``).
    """
    expected = np.asarray(expected)
    if got.shape != expected.shape:
        detail = f"{name} should have shape {tuple(expected.shape)}, got {tuple(got.shape)}"
        if shape_hint:
            detail += f" ({shape_hint})"
        likely = None
        if got.ndim == 2 and got.shape == expected.shape[::-1] and close(got.T, expected, rtol, atol) \
                and got.shape[0] != got.shape[1]:
            likely, hint = TRANSPOSED, "your result is exactly the transpose of the right one"
        else:
            hint = _shape_difference(got, expected)
        return WRONG_SHAPE, detail, likely, hint
    bad = ~np.isfinite(got) & np.isfinite(expected)
    if np.any(bad):
        return _non_finite(fb, name, got, expected, bad, inputs, rtol, atol)
    with quiet():
        ok = np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True)
    if ok:
        return None
    detail = f"{name} has wrong values ({_error_size(got, expected, rtol, atol, hidden=fb.hidden)}; " \
             f"tolerance rtol={rtol:g}, atol={atol:g})"
    first = fb.values(_first_wrong(got, expected, rtol, atol))
    if first:
        detail += f"; {first}"
    likely = relation(got, expected, batch_size=batch_size, rtol=rtol, atol=atol) if relations else None
    if likely is None:
        seen = pattern(got, expected, rtol, atol, hidden=fb.hidden)
        if seen:
            detail += f"; {seen}"
    return WRONG_VALUES, detail, likely, _relation_hint(likely, got, expected, batch_size, rtol, atol)


def _compared(name: str, category: str, got, expected, rtol: float, atol: float) -> Comparison:
    """What a failed ``mismatch`` looked at, for the report: which of ``ASPECTS`` failed, the arrays."""
    aspect = {WRONG_TYPE: "type", WRONG_SHAPE: "shape", NON_FINITE: "finite"}.get(category, "values")
    try:
        got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    except (TypeError, ValueError):
        got = expected = None
    return Comparison(name, aspect, got, expected, rtol, atol)


def check_array(fb: Feedback, name: str, got, expected, *, rtol: float = RTOL, atol: float = ATOL,
                probes: Sequence[Probe] = (), batch_size: int | None = None, shape_hint: str | None = None,
                relations: bool = True, inputs=None,
                observe: Callable[[np.ndarray, np.ndarray], str] | None = None) -> np.ndarray:
    """Compare the student's ``got`` with the reference ``expected``; fail with a diagnosis.

    Order of the checks: type, shape (with ``shape_hint`` saying what the axes mean), inf/nan,
    values within ``|got − expected| ≤ atol + rtol·|expected|``. When something is wrong, the
    ``probes`` are tried first (they re-run the student's code on crafted inputs), then the
    relations between the two arrays (sign flip, transposed, batch-size factor). ``inputs``: the
    element-wise inputs of the entries, where there are such (lets inf/nan be called UNSTABLE when
    they appear only at large inputs, see ``mismatch``). ``observe(got, expected)``: when finite
    values are wrong and neither a probe nor a relation names a bug, the message's hint is what it
    returns — what the wrong entries have in common (which step, only where z < 0 …), an
    observation and not a cause; '' adds nothing.
    Returns ``got`` as an array when it passes.
    """
    __tracebackhide__ = True
    got = as_array(fb, name, got)
    found = mismatch(fb, name, got, expected, rtol=rtol, atol=atol, batch_size=batch_size,
                     shape_hint=shape_hint, relations=relations, inputs=inputs)
    if found is not None:
        category, detail, likely, hint = found
        probe = diagnose(probes)
        if probe is not None:
            likely, hint = probe.bug, probe.hint
        elif likely is None and observe is not None and category == WRONG_VALUES and isfinite_all(got):
            hint = observe(got, np.asarray(expected, dtype=float)) or hint
        fb.fail(category, detail, likely=likely, hint=hint,
                compared=_compared(name, category, got, expected, rtol, atol))
    fb.step(name, *ASPECTS)
    return got


def check_layers(fb: Feedback, symbol: str, got: Sequence, expected: Sequence, *, first_layer: int = 1,
                 rtol: float = RTOL, atol: float = ATOL, probes: Sequence[Probe] = (),
                 batch_size: int | None = None) -> None:
    """Check per-layer arrays (e.g. δ¹ … δᴸ) from the last layer down.

    The message names the first wrong layer met going backwards and the layer after it that was
    right — "δ² is wrong; δ³ was right" — which is where the student's recursion broke.
    """
    __tracebackhide__ = True
    span = f"{symbol}{sup(first_layer)} … {symbol}{sup(first_layer + len(expected) - 1)}"
    if not isinstance(got, (list, tuple)):
        fb.fail(WRONG_TYPE, f"expected a list of {len(expected)} arrays {span}, got {type(got).__name__}")
    if len(got) != len(expected):
        probe = diagnose(probes)
        fb.fail(WRONG_SHAPE, f"expected {len(expected)} arrays {span} (one per layer), got {len(got)}",
                likely=probe.bug if probe else None, hint=probe.hint if probe else None)
    right_after: int | None = None
    for i in reversed(range(len(expected))):
        layer = first_layer + i
        name = f"{symbol}{sup(layer)}"
        if got[i] is None:
            probe = diagnose(probes)
            fb.fail(WRONG_TYPE, f"{name} is None where an array was expected"
                    + (f"; {symbol}{sup(right_after)} was right" if right_after is not None else ""),
                    likely=probe.bug if probe else None, hint=probe.hint if probe else None)
        arr = as_array(fb, name, got[i])
        found = mismatch(fb, name, arr, np.asarray(expected[i]), rtol=rtol, atol=atol, batch_size=batch_size)
        if found is not None:
            _, detail, likely, hint = found
            context = f"{name} is wrong; " + (f"{symbol}{sup(right_after)} was right" if right_after is not None
                                               else "it is the output layer's")
            probe = diagnose(probes)
            if probe is not None:
                likely, hint = probe.bug, probe.hint
            fb.fail(context, detail, likely=likely, hint=hint,
                    compared=_compared(name, found[0], arr, expected[i], rtol, atol))
        fb.step(name, *ASPECTS)
        right_after = layer


# --- gradients -------------------------------------------------------------------------------
def numerical_gradient(f: Callable[[np.ndarray], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """∂f/∂x by central differences (f(x + ε e_i) − f(x − ε e_i)) / 2ε, in float64.

    Error O(ε²): with ε = 1e-6 expect a relative error around 1e-8 to 1e-10 on smooth functions.
    ``x`` is restored after each perturbation.
    """
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = float(f(x))
        flat[i] = old - eps
        minus = float(f(x))
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


# --- PyTorch on every device -----------------------------------------------------------------
def available_devices() -> list[str]:
    """'cpu', plus 'cuda' when PyTorch sees a GPU (``nk.parity.available_devices`` when present)."""
    try:
        from nnkit import parity  # noqa: PLC0415

        return list(parity.available_devices())
    except (ImportError, AttributeError):
        pass
    import torch  # noqa: PLC0415

    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


#: set by the judge while it runs an answer again without the references it may not call: that
#: run only asks whether the answer still works, so the comparisons with PyTorch are skipped
WITHOUT_TORCH: contextvars.ContextVar[bool] = contextvars.ContextVar("nnkit_grading_without_torch", default=False)


def torch_enabled() -> bool:
    """False when the environment sets ``NNKIT_GRADING_TORCH=0``: comparisons with PyTorch are skipped.

    Importing PyTorch costs seconds per notebook. The pipeline tests set this for the planted-bug
    submissions only (the nnkit checks must catch those bugs on their own); every real grading
    run, and the solution submissions in the tests, compare with PyTorch.
    """
    import os  # noqa: PLC0415

    return os.environ.get("NNKIT_GRADING_TORCH", "1") != "0" and not WITHOUT_TORCH.get()


def _to_torch(x, device: str, dtype, requires_grad: bool):
    import torch  # noqa: PLC0415

    if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating):
        return torch.tensor(x, dtype=dtype, device=device, requires_grad=requires_grad)
    if isinstance(x, np.ndarray):
        return torch.tensor(x, device=device)
    return x


def check_against_torch(fb: Feedback, name: str, student_fn: Callable, torch_fn: Callable,
                        inputs: Sequence, *, requires_grad: bool = False,
                        tolerances: dict[str, tuple[float, float]] | None = None,
                        probes: Sequence[Probe] = (), batch_size: int | None = None) -> list[str]:
    """Run ``student_fn(*inputs)`` (numpy) and ``torch_fn(*tensors)`` on every device and compare.

    On CPU the inputs are float64 and so is PyTorch; on CUDA both sides are float32 (the
    student's numpy code receives float32 inputs) and TF32 is switched off, so the comparison
    is about the formula, not the hardware's rounding shortcuts. ``torch_fn`` returns a tensor
    or a tuple of tensors (it may call ``.backward()``; set ``requires_grad`` for the inputs).
    Returns the devices checked ([] when ``NNKIT_GRADING_TORCH=0``, see ``torch_enabled``).
    """
    __tracebackhide__ = True
    if not torch_enabled():
        return []
    import torch  # noqa: PLC0415

    tolerances = {**TORCH_TOL, **(tolerances or {})}
    devices = available_devices()
    for device in devices:
        kind = device.split(":")[0]
        np_dtype, t_dtype = (np.float64, torch.float64) if kind == "cpu" else (np.float32, torch.float32)
        rtol, atol = tolerances.get(kind, tolerances["cuda"])
        cast = [x.astype(np_dtype) if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.floating) else x
                for x in inputs]
        saved_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        try:
            with quiet():
                tensors = [_to_torch(x, device, t_dtype, requires_grad) for x in cast]
                ref = torch_fn(*tensors)
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved_tf32
        refs = ref if isinstance(ref, (tuple, list)) else (ref,)
        refs = [r.detach().to("cpu").double().numpy() if hasattr(r, "detach") else np.asarray(r) for r in refs]
        got = call(fb, student_fn, *cast, name=name)
        gots = got if isinstance(ref, (tuple, list)) else (got,)
        if len(gots) != len(refs):
            fb.fail(WRONG_TYPE, f"{name} returned {len(gots)} values, expected {len(refs)}")
        for i, (g, r) in enumerate(zip(gots, refs)):
            label = f"{name}" + (f"[{i}]" if len(refs) > 1 else "") + f" against PyTorch on {device} " \
                    f"({'float64' if kind == 'cpu' else 'float32, TF32 off'})"
            check_array(fb, label, np.asarray(g, dtype=np.float64), r, rtol=rtol, atol=atol,
                        probes=probes, batch_size=batch_size)
    return devices


def check_uses_generator(fb: Feedback, what: str, run: Callable[[Any], Any], seeds: Sequence = (0, 1), *,
                         differ: str = "the results") -> None:
    """A graded function that is given a generator or a seed must use it, and only it.

    ``run(seed)`` calls the student's code with a fresh generator (or the seed itself, as the
    question passes it) and returns what it made (arrays, or lists, tuples, dicts of them).
    Three runs: ``seeds[0]`` twice, with numpy's global state set to different values before
    each (and, in a graded run, already moved on by the first run in the student's kernel), and
    ``seeds[1]`` once. The global generators (numpy's, Python's ``random``, PyTorch's) must be
    left alone — in this process, or, in a graded run, in the student's kernel, which reports
    the ones that moved during a call — the same seed must give the same result, and the other
    seed a different one (``differ`` says what should differ).
    """
    __tracebackhide__ = True
    saved = np.random.get_state()
    try:
        from .remote import watching_global_rng  # noqa: PLC0415

        np.random.seed(20240101)
        before = global_rng.states()
        with watching_global_rng() as moved:  # a graded run: the kernel says which moved
            first = run(seeds[0])
        moved += [name for name in global_rng.moved(before, global_rng.states()) if name not in moved]
        _fail_on_global_generators(fb, what, moved)
        np.random.seed(19700101)
        again = run(seeds[0])
        if not _unchanged(first, again):
            fb.fail(NOT_REPRODUCIBLE, f"{what} gave different results when run twice with the same seed",
                    hint="every random number must come from the generator it is given")
        other = run(seeds[1])
        if _unchanged(first, other):
            fb.fail(IGNORES_SEED, f"{what} gave the same results for two different seeds: {differ} should "
                                  "depend on the generator it is given",
                    hint="use the generator (or seed) that is passed in")
    finally:
        np.random.set_state(saved)


def _fail_on_global_generators(fb: Feedback, what: str, moved: list[str]) -> None:
    __tracebackhide__ = True
    if not moved:
        return
    name = next(n for n in global_rng.NAMES if n in moved)   # numpy's first: the course's own library
    cls = {"numpy": GLOBAL_RNG, "random": PYTHON_RNG, "torch": TORCH_RNG}[name]
    fb.fail(cls, f"{what} draws from or reseeds {global_rng.NAMES[name]} global generator "
                 f"({global_rng.EXAMPLES[name]})",
            hint="draw every random number from the generator it is given, e.g. rng.random(shape), "
                 "rng.permutation(n); a seed becomes a generator with np.random.default_rng(seed)")


def seeded(seed: int) -> np.random.Generator:
    """The generator every check draws its crafted inputs from (fixed seeds: reproducible grading)."""
    return np.random.default_rng(seed)


def isfinite_all(*arrays: Any) -> bool:
    return all(np.all(np.isfinite(np.asarray(a, dtype=float))) for a in arrays)


__all__ = [
    "ATOL", "BATCH_FACTOR", "DROPOUT_MASK_NOT_REUSED", "DROPOUT_NOT_RESCALED", "Feedback", "GLOBAL_RNG",
    "IGNORES_SEED", "MISSING_FPRIME", "MODIFIES_INPUT", "NON_FINITE", "NOT_IMPLEMENTED", "NOT_REPRODUCIBLE",
    "NO_ACCUMULATION", "PYTHON_RNG", "Probe", "RAISED", "RTOL", "SIGN_FLIP", "TORCH_RNG", "TORCH_TOL", "TRANSPOSED",
    "TRANSPOSED_W",
    "UNSTABLE", "WRONG_SHAPE", "WRONG_TYPE", "WRONG_VALUES", "as_array", "mismatch", "available_devices", "call",
    "check_against_torch", "check_array", "check_layers", "check_uses_generator", "close", "diagnose",
    "isfinite_all", "numerical_gradient", "pattern", "quiet", "reference_bindings", "relation", "relative_error",
    "seeded", "shape_of", "sup", "torch_enabled", "try_call",
]

