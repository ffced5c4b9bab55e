"""Checks for problem set 4, *activations, losses and stability*.

==================== ==================================================== =============================
question (grade_id)  what the student writes                              reference
==================== ==================================================== =============================
``relu_prime``        ReLU′(z) (0 at z = 0, as PyTorch)                    ``nk.ReLU``, torch autograd
``leaky_relu_prime``  LeakyReLU′(z) (the negative slope at z ≤ 0)          ``nk.LeakyReLU``
``tanh_prime``        tanh′(z) = 1 − tanh²(z)                              ``nk.Tanh``
``softmax``           stable softmax along the last axis                   ``nk.functional.softmax``
``log_softmax``       stable log-softmax along the last axis               ``nk.functional.log_softmax``
``cross_entropy``     mean LogSoftmax + NLL and its gradient (p − y)/N     ``nk.CrossEntropyLoss``
``bce_with_logits``   mean BCE on logits and its gradient (σ(z) − y)/N     ``nk.BCEWithLogitsLoss``
``toy_gradients``     ∂ℒ/∂z of MSE and of cross entropy, seed 003's toy    ``nk.Sigmoid`` + losses
==================== ==================================================== =============================

Every check compares with the nnkit reference (float64, rtol 1e-7) and with PyTorch on every
available device. Edge inputs: every activation, loss and the toy problem also get inputs of size
10³, where a formula that exponentiates large numbers returns inf or nan (when the answer is right on
ordinary inputs the message then says "numerically unstable"); softmax and log-softmax also get
integer logits, BCE integer targets; hidden checks add a batch of one and odd 3-d shapes. When no
probe reproduces the student's output from a known bug, a message says what the wrong entries have
in common (only at z = 0, one factor, one constant per row), never a guessed cause.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .core import (
    ATOL,
    BATCH_FACTOR,
    MISSING_FPRIME,
    RTOL,
    SIGN_FLIP,
    UNSTABLE,
    WRONG_SHAPE,
    WRONG_TYPE,
    Feedback,
    Probe,
    as_array,
    call,
    check_against_torch,
    check_array,
    close,
    numerical_gradient,
    reference_bindings,
    seeded,
    try_call,
)

#: what an answer may call from nnkit (see nnkit.course.delegation): σ from problem set 1 is a
#: building block of the losses on logits
MAY_USE = {
    "check_bce_with_logits": ("nnkit.functional.activations.sigmoid",),
    "check_toy_gradients": ("nnkit.functional.activations.sigmoid",),
}

__all__ = [
    "check_relu_prime", "check_leaky_relu_prime", "check_tanh_prime", "check_softmax", "check_log_softmax",
    "check_cross_entropy", "check_bce_with_logits", "check_toy_gradients",
    "DERIVATIVE_AT_ZERO", "WRONG_SLOPE", "FUNCTION_NOT_DERIVATIVE", "WRONG_AXIS", "WRONG_DERIVATIVE",
    "MISSING_KEEPDIMS", "MAX_NOT_ADDED_BACK", "INTEGER_INPUT", "ONE_HOT_TARGETS", "TARGET_COLUMNS",
    "MEAN_OVER_CLASSES", "MEAN_OVER_ROWS", "FACTOR_OF_2", "D_WRT_W",
]

DERIVATIVE_AT_ZERO = "wrong derivative at 0"
WRONG_SLOPE = "wrong slope"
FUNCTION_NOT_DERIVATIVE = "the function instead of its derivative"
WRONG_DERIVATIVE = "wrong derivative"
WRONG_AXIS = "wrong axis"
D_WRT_W = "∂ℒ/∂w instead of ∂ℒ/∂z"
MISSING_KEEPDIMS = "missing keepdims"
MAX_NOT_ADDED_BACK = "the maximum subtracted but not added back"
INTEGER_INPUT = "integer input not converted to float"
ONE_HOT_TARGETS = "targets taken as one-hot vectors"
TARGET_COLUMNS = "targets picked with [:, y]"
MEAN_OVER_CLASSES = "averaged over the classes too"
MEAN_OVER_ROWS = "divided by the number of rows, not of entries"
FACTOR_OF_2 = "factor of 2"

#: central differences (ε = 1e-6, float64) are accurate to about 1e-9; compared with this tolerance
NUM_RTOL, NUM_ATOL = 1e-5, 1e-7


# --------------------------------------------------------------------------------------------
# Reference values: nnkit's layers and losses
# --------------------------------------------------------------------------------------------
def _layer_derivative(layer, z: np.ndarray) -> np.ndarray:
    """f′(z) from an nnkit activation layer: backward of an upstream gradient of ones."""
    layer.forward(z)
    return layer.backward(np.ones_like(z))


def _torch_derivative(fn_name: str, **kw):
    def run(z):
        import torch  # noqa: PLC0415

        fn = getattr(torch.nn.functional, fn_name) if fn_name != "tanh" else torch.tanh
        fn(z, **kw).sum().backward()
        return z.grad

    return run


def _derivative_inputs(hidden: bool, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """(ordinary inputs, inputs of size up to 10³): small ones with exact zeros (visible), or larger
    random ones with zeros, a batch of one and an odd 3-d shape (hidden)."""
    large = np.array([[-1000.0, -710.0, -50.0, 0.0], [50.0, 710.0, 1000.0, -0.0]])
    if not hidden:
        return [np.array([-2.0, -0.5, 0.0, 0.5, 3.0]),
                np.array([[-1.5, 0.0, 2.0], [0.25, -0.75, 0.0]])], large
    rng = seeded(seed)
    z = rng.normal(0, 3, (16, 9))
    z[rng.random(z.shape) < 0.15] = 0.0
    z[0, :3] = [-50.0, 50.0, 0.0]
    return [z, rng.normal(0, 2, (3, 4, 5)), rng.normal(0, 1, (1, 7))], rng.permutation(large.ravel()).reshape(4, 2)


def _where_wrong(fb: Feedback, got: np.ndarray, expected: np.ndarray, z: np.ndarray | None = None) -> str:
    """What the wrong entries have in common, as an observation (no cause): only at z = 0, only where
    z < 0 or z > 0, every entry off by one factor, every row off by one constant. '' if nothing stands out."""
    if got.shape != expected.shape or not np.all(np.isfinite(got)):
        return ""
    bad = ~np.isclose(got, expected, rtol=RTOL, atol=ATOL)
    if not np.any(bad):
        return ""
    if z is not None and z.shape == got.shape:
        for part, where in ((z == 0, "at z = 0"), (z < 0, "where z < 0"), (z > 0, "where z > 0"),
                            (z <= 0, "where z ≤ 0"), (z >= 0, "where z ≥ 0")):
            if np.all(part[bad]) and not np.all(part):
                return f"every wrong entry is {where}; all the others are right"
    ratio = got[expected != 0] / expected[expected != 0]
    if ratio.size > 1 and np.all(np.abs(expected) > ATOL) and np.allclose(ratio, ratio[0], rtol=1e-9):
        return "every entry is the right one times the same factor" + fb.values(f" ({ratio[0]:.4g})")
    if got.ndim >= 1 and got.shape[-1] > 1:
        shift = got - expected
        if np.allclose(shift, shift[..., :1], rtol=1e-9, atol=ATOL):
            return "within each row every entry is off by the same constant (the term subtracted from the row)"
    return ""


def _close_where(got, target: np.ndarray, where: np.ndarray) -> bool:
    """``got`` has ``target``'s shape and equals it on the entries ``where`` (at least one)."""
    return got is not None and np.shape(got) == target.shape and bool(np.any(where)) and \
        close(np.asarray(got, dtype=float)[where], target[where])


def _check_derivative(fb: Feedback, name: str, student: Callable, reference: Callable, torch_fn: Callable,
                      inputs: tuple[list[np.ndarray], np.ndarray], probes_for: Callable[[np.ndarray], list[Probe]],
                      function: Callable | None = None) -> None:
    """Reference, PyTorch and (for a smooth ``function``) central differences (f(z + ε) − f(z − ε))/2ε,
    on the ordinary inputs, then on inputs of size up to 10³ (where the derivative must stay finite)."""
    __tracebackhide__ = True
    ordinary, large = inputs
    right_on_ordinary = Probe(UNSTABLE, lambda: all(close(try_call(student, z), reference(z)) for z in ordinary),
                              "right on ordinary inputs, wrong on inputs of size 10³: a formula that exponentiates "
                              "|z| overflows there (e^710 is inf in float64); use np.tanh, or exponentials of −|z| "
                              "only")
    for z in ordinary + [large]:
        probes = probes_for(z) + ([right_on_ordinary] if z is large else [])
        got = call(fb, student, z, name=f"{name}(z)", arg_names=("z",), probes=probes)
        what = f"z of shape {z.shape}" + (" with entries of size up to 10³" if z is large else "")
        got = check_array(fb, f"{name}(z) for {what}", got, reference(z), observe=lambda g, e: _where_wrong(fb, g, e, z),
                          probes=probes, shape_hint="the same shape as z: one derivative per entry")
        check_against_torch(fb, f"{name}(z)", student, torch_fn, [z], requires_grad=True, probes=probes)
        if function is not None:
            h = 1e-6
            check_array(fb, f"{name}(z) against central differences (f(z + ε) − f(z − ε))/2ε, ε = {h:g}", got,
                        (function(z + h) - function(z - h)) / (2 * h), rtol=NUM_RTOL, atol=NUM_ATOL, probes=probes)


def check_relu_prime(relu_prime: Callable, *, hidden: bool = False) -> None:
    """``relu_prime(z)`` = 1 where z > 0, else 0 (PyTorch's choice at z = 0), elementwise."""
    __tracebackhide__ = True
    import nnkit as nk  # noqa: PLC0415

    fb = Feedback("relu_prime", hidden=hidden)

    def ref(z):
        return _layer_derivative(nk.ReLU(), z)

    def probes(z):
        return [
            Probe(DERIVATIVE_AT_ZERO, lambda: close(try_call(relu_prime, z), (z >= 0).astype(float)),
                  "ReLU′(0) is taken as 0 (as in PyTorch and nnkit): use z > 0, not z >= 0"),
            Probe(FUNCTION_NOT_DERIVATIVE, lambda: close(try_call(relu_prime, z), np.maximum(z, 0)),
                  "that is ReLU(z) itself; its derivative is 1 for z > 0 and 0 otherwise"),
        ]

    _check_derivative(fb, "relu_prime", relu_prime, ref, _torch_derivative("relu"),
                      _derivative_inputs(hidden, 41), probes)
    fb.passed("ReLU′ on negative, zero and positive inputs")


def check_leaky_relu_prime(leaky_relu_prime: Callable, *, hidden: bool = False) -> None:
    """``leaky_relu_prime(z, negative_slope=0.01)`` = 1 where z > 0, else ``negative_slope``."""
    __tracebackhide__ = True
    import nnkit as nk  # noqa: PLC0415

    fb = Feedback("leaky_relu_prime", hidden=hidden)
    for slope in ((0.01, 0.2) if not hidden else (0.01, 0.1, 0.3)):
        def student(z, slope=slope):
            return leaky_relu_prime(z) if slope == 0.01 else leaky_relu_prime(z, negative_slope=slope)

        def ref(z, slope=slope):
            return _layer_derivative(nk.LeakyReLU(slope), z)

        def probes(z, slope=slope):
            pos = (z > 0).astype(float)
            return [
                Probe(DERIVATIVE_AT_ZERO, lambda: close(try_call(student, z), np.where(z >= 0, 1.0, slope)),
                      "at z = 0 PyTorch and nnkit take the negative slope: use z > 0, not z >= 0"),
                Probe(WRONG_SLOPE, lambda: close(try_call(student, z), pos),
                      "for z < 0 the derivative is the negative slope, not 0 (that is ReLU′)"),
                Probe(WRONG_SLOPE, lambda: slope != 0.01 and close(try_call(student, z), np.where(z > 0, 1.0, 0.01)),
                      "the negative_slope argument is ignored: use it instead of the default"),
                Probe(WRONG_SLOPE, lambda: _close_where(try_call(student, z), np.where(z > 0, slope, 1.0), z != 0),
                      "the slopes are swapped: 1 for z > 0, negative_slope for z ≤ 0"),
                Probe(FUNCTION_NOT_DERIVATIVE, lambda: close(try_call(student, z), np.where(z > 0, z, slope * z)),
                      "that is LeakyReLU(z) itself, not its derivative"),
            ]

        # a hidden check names no hidden slope: "the default", "another negative_slope"
        label = f"negative_slope={slope}" if not hidden else \
            "default negative_slope" if slope == 0.01 else "another negative_slope"
        _check_derivative(fb, f"leaky_relu_prime[{label}]", student, ref,
                          _torch_derivative("leaky_relu", negative_slope=slope), _derivative_inputs(hidden, 42),
                          probes)
    fb.passed("LeakyReLU′ with the default and other negative slopes")


def check_tanh_prime(tanh_prime: Callable, *, hidden: bool = False) -> None:
    """``tanh_prime(z)`` = 1 − tanh²(z)."""
    __tracebackhide__ = True
    import nnkit as nk  # noqa: PLC0415

    fb = Feedback("tanh_prime", hidden=hidden)

    def ref(z):
        return _layer_derivative(nk.Tanh(), z)

    def probes(z):
        t = np.tanh(z)
        with np.errstate(over="ignore"):
            s = 1.0 / (1.0 + np.exp(-z))
        return [
            Probe(WRONG_DERIVATIVE, lambda: close(try_call(tanh_prime, z), 1.0 - z * z),
                  "1 − z² applies the formula to z; it is 1 − tanh(z)²"),
            Probe(WRONG_DERIVATIVE, lambda: close(try_call(tanh_prime, z), 1.0 - t),
                  "the square is missing: 1 − tanh(z)²"),
            Probe(WRONG_DERIVATIVE, lambda: close(try_call(tanh_prime, z), (1.0 - t) ** 2),
                  "the square belongs to tanh alone: 1 − tanh(z)², not (1 − tanh(z))²"),
            Probe(WRONG_DERIVATIVE, lambda: close(try_call(tanh_prime, z), t * (1.0 - t)),
                  "t(1 − t) is the sigmoid's pattern σ(1 − σ); tanh′ = 1 − tanh²"),
            Probe(WRONG_DERIVATIVE, lambda: close(try_call(tanh_prime, z), s * (1 - s)),
                  "that is the sigmoid's derivative σ(1 − σ); tanh′ = 1 − tanh²"),
            Probe(FUNCTION_NOT_DERIVATIVE, lambda: close(try_call(tanh_prime, z), t),
                  "that is tanh(z) itself, not its derivative"),
        ]

    _check_derivative(fb, "tanh_prime", tanh_prime, ref, _torch_derivative("tanh"), _derivative_inputs(hidden, 43),
                      probes, function=np.tanh)
    fb.passed("tanh′")


# --------------------------------------------------------------------------------------------
# softmax and log-softmax
# --------------------------------------------------------------------------------------------
def _logit_cases(hidden: bool, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(ordinary logits, large logits). Ordinary first, so axis bugs are named before stability; the
    ordinary ones end with integer logits (a caller may pass them: the result is still a float array)."""
    rng = seeded(seed)
    if not hidden:
        ordinary = [rng.normal(0, 1, (3, 4)), np.array([0.5, -1.0, 2.0]), np.array([[1, 2, 3], [0, 0, 5]])]
        large = [np.array([[1000.0, 999.0, 0.0], [0.0, -1000.0, 1.0]])]
    else:
        ordinary = [rng.normal(0, 2, (7, 5)), rng.normal(0, 1, (2, 3, 4)), rng.normal(0, 1, (1, 6)),
                    rng.integers(-5, 6, (4, 3))]
        big = rng.normal(0, 1, (6, 5)) * 400.0
        big[0] = [800.0, 799.0, -800.0, 0.0, 1.0]
        big[1] = [-800.0, -801.0, -805.0, -1000.0, -790.0]  # every logit very negative: a global max fails
        large = [big]
    return ordinary, large


def _no_keepdims(z: np.ndarray, log: bool, max_kept: bool, sum_kept: bool) -> np.ndarray:
    """(log-)softmax of a square ``z`` with the row maximum and/or the row sum reduced without keepdims:
    broadcast along the wrong axis (over a non-square z the same code raises)."""
    m = z.max(axis=-1)
    m = m[:, None] if max_kept else m[None, :]
    e = np.exp(z - m)
    total = e.sum(axis=-1)
    total = total[:, None] if sum_kept else total[None, :]
    return z - m - np.log(total) if log else e / total


def _softmax_probes(fn: Callable, z: np.ndarray, log: bool) -> list[Probe]:
    from nnkit.functional import log_softmax, softmax  # noqa: PLC0415

    f = log_softmax if log else softmax
    probes = []
    for axis in range(z.ndim - 1):
        probes.append(Probe(WRONG_AXIS, lambda axis=axis: close(try_call(fn, z), f(z, axis=axis)),
                            "normalise each row (example) over its classes: the last axis, axis=-1 with "
                            f"keepdims=True; your result is normalised along axis {axis}"))
    probes.append(Probe(WRONG_AXIS, lambda: close(try_call(fn, z), f(z.ravel()).reshape(z.shape)) and z.ndim > 1,
                        "you normalised over all entries at once; normalise along the last axis only"))
    square = seeded(49).normal(0, 1, (4, 4))
    probes.append(Probe(MISSING_KEEPDIMS, lambda: any(
        close(try_call(fn, square), _no_keepdims(square, log, mk, sk)) for mk, sk in ((0, 0), (0, 1), (1, 0))),
        "a row's maximum or sum, reduced without keepdims=True, broadcasts along the wrong axis (on a square input; "
        "on others it raises): keep the reduced axis so each row is combined with its own value"))
    probes.append(Probe(INTEGER_INPUT, lambda: np.issubdtype(np.asarray(z).dtype, np.integer)
                        and close(try_call(fn, z.astype(float)), f(z.astype(float))),
                        "right on the same logits as floats: an array made with zeros_like/empty_like of an integer "
                        "z, or an operation with out=z, keeps the integer dtype; convert with z.astype(float)"))
    if log:
        probes.append(Probe(FUNCTION_NOT_DERIVATIVE, lambda: close(try_call(fn, z), softmax(z)),
                            "that is the softmax; log-softmax is its logarithm, z − log Σ e^z"))
        probes.append(Probe(MAX_NOT_ADDED_BACK, lambda: close(try_call(fn, z), f(z) + z.max(axis=-1, keepdims=True)),
                            "each row is off by its maximum m: log Σ e^z = m + log Σ e^{z−m}, so the result is "
                            "z − m − log Σ e^{z−m}"))
    return probes


def _check_softmax_like(question: str, fn: Callable, *, log: bool, hidden: bool) -> None:
    __tracebackhide__ = True
    from nnkit.functional import log_softmax, softmax  # noqa: PLC0415

    fb = Feedback(question, hidden=hidden)
    ref = log_softmax if log else softmax
    ordinary, large = _logit_cases(hidden, 44 if log else 45)

    def torch_fn(z):
        import torch  # noqa: PLC0415

        z = z if z.is_floating_point() else z.to(torch.float64)
        return (torch.log_softmax if log else torch.softmax)(z, dim=-1)

    refs = {"softmax": softmax} if log else {}
    with reference_bindings(fn, **refs):
        for z in ordinary:
            probes = _softmax_probes(fn, z, log)
            got = call(fb, fn, z, name=f"{question}(z)", probes=probes)
            kind = "integer " if np.issubdtype(z.dtype, np.integer) else ""
            check_array(fb, f"{question}(z) for {kind}z of shape {z.shape}", got, ref(z),
                        observe=lambda g, e: _where_wrong(fb, g, e), probes=probes,
                        shape_hint="the same shape as z", relations=False)
            check_against_torch(fb, f"{question}(z)", fn, torch_fn, [z], probes=probes)
        for z in large:
            # Right on ordinary logits, wrong here: the formula is not stable.
            probes = [Probe(UNSTABLE, lambda: True,
                            "right on small logits, wrong on logits of size 10³: subtract the row maximum "
                            "m = max_j z_j first (e^{z−m} never overflows)"
                            + ("; and compute log p as z − m − log Σ e^{z−m}, never log of a probability "
                               "that has underflowed to 0" if log else ""))]
            got = call(fb, fn, z, name=f"{question}(z) with logits of size 10³")
            check_array(fb, f"{question}(z) on large logits (shape {z.shape}, |z| up to {np.abs(z).max():.0f})",
                        got, ref(z), probes=probes, relations=False)
            check_against_torch(fb, f"{question}(z) on large logits", fn, torch_fn, [z], probes=probes)
    fb.passed(f"{'log-' if log else ''}softmax on small and large logits")


def check_softmax(softmax: Callable, *, hidden: bool = False) -> None:
    """``softmax(z)``: e^{z_j} / Σ_k e^{z_k} along the last axis, finite for logits of any size."""
    __tracebackhide__ = True
    _check_softmax_like("softmax", softmax, log=False, hidden=hidden)


def check_log_softmax(log_softmax: Callable, *, hidden: bool = False) -> None:
    """``log_softmax(z)``: z_j − log Σ_k e^{z_k} along the last axis, finite for logits of any size.

    While it is checked, the notebook's ``softmax`` is the reference one (graded on its own).
    """
    __tracebackhide__ = True
    _check_softmax_like("log_softmax", log_softmax, log=True, hidden=hidden)


# --------------------------------------------------------------------------------------------
# Losses that return (loss, gradient)
# --------------------------------------------------------------------------------------------
def _split_pair(fb: Feedback, name: str, result) -> tuple:
    __tracebackhide__ = True
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        fb.fail(WRONG_TYPE, f"{name} must return a pair (loss, gradient), got {type(result).__name__}"
                + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""),
                hint="end with `return loss, dz`")
    loss, grad = result
    if np.ndim(loss) != 0:
        fb.fail(WRONG_SHAPE, f"{name}: the loss must be one number (the mean over the batch), got shape "
                             f"{np.shape(loss)}", hint="average the per-example losses with .mean()")
    return float(np.asarray(loss, dtype=float)), grad


def _loss_check(fb: Feedback, question: str, fn: Callable, ref_loss, make_torch: Callable,
                z: np.ndarray, y: np.ndarray, *, label: str, n: int, extra_probes: list[Probe] = ()) -> None:
    """Loss value and gradient against nnkit (float64) and PyTorch (every device)."""
    __tracebackhide__ = True
    loss_value = ref_loss.forward(z, y)
    dz_ref = ref_loss.backward()
    result = call(fb, fn, z, y, name=f"{question}(z, y)", probes=extra_probes)
    loss, dz = _split_pair(fb, f"{question}(z, y)", result)

    def grad_of(zz, yy):
        return try_call(lambda a, b: _split_pair(Feedback(question, hidden=True), "", fn(a, b))[1], zz, yy)

    grad_probes = list(extra_probes) + [
        Probe(BATCH_FACTOR, lambda: close(grad_of(z, y), dz_ref * n),
              f"the gradient of the *mean* loss has a factor 1/N (N = {n} here): divide by the batch size"),
        Probe(SIGN_FLIP, lambda: close(grad_of(z, y), -dz_ref),
              "∂ℒ/∂z = (p − y)/N: prediction minus target, so that gradient descent lowers the loss"),
    ]
    loss_probes = list(extra_probes) + [
        Probe(BATCH_FACTOR, lambda: close(loss, loss_value * n),
              f"the loss is the *mean* over the batch: divide the sum by N = {n}"),
        Probe(SIGN_FLIP, lambda: close(loss, -loss_value), "the loss is −log p of the target: mind the minus sign"),
    ]
    check_array(fb, f"the loss returned by {question}(z, y) {label}", loss, loss_value, probes=loss_probes,
                relations=False)
    dz = check_array(fb, f"∂ℒ/∂z returned by {question}(z, y) {label}", dz, dz_ref,
                     observe=lambda g, e: _where_wrong(fb, g, e), probes=grad_probes,
                     relations=False, shape_hint="one entry per logit: the shape of z")
    if z.size <= 256 and np.abs(z).max() < 100:  # the loss's own derivative, by central differences
        numeric = numerical_gradient(lambda zz: float(type(ref_loss)().forward(zz, y)), z.copy())
        check_array(fb, f"∂ℒ/∂z returned by {question}(z, y) {label} against central differences of the loss",
                    dz, numeric, rtol=NUM_RTOL, atol=NUM_ATOL, probes=grad_probes, relations=False)

    def student(zz, yy):
        return _split_pair(fb, f"{question}(z, y)", fn(zz, yy))

    check_against_torch(fb, f"[loss, ∂ℒ/∂z] of {question}(z, y) {label}", student, make_torch, [z, y],
                        requires_grad=True, probes=grad_probes)


def _pair(fn: Callable, z: np.ndarray, y: np.ndarray) -> tuple | None:
    """(loss, gradient) from the student's loss on copies of z, y; None if it raises or returns something else."""
    result = try_call(fn, z, y)
    if not isinstance(result, (tuple, list)) or len(result) != 2 or np.ndim(result[0]) != 0:
        return None
    return result


def _cross_entropy_probes(fn: Callable, z: np.ndarray, y: np.ndarray) -> list[Probe]:
    """Bugs in how the targets are used and what the mean runs over, each reproduced on (z, y)."""
    import nnkit as nk  # noqa: PLC0415
    from nnkit.functional import log_softmax  # noqa: PLC0415

    n, c = z.shape
    ref = nk.CrossEntropyLoss()
    loss, dz = ref.forward(z, y), ref.backward()
    onehot = np.eye(c)[y]

    def loss_is(target) -> Callable[[], bool]:
        return lambda: (r := _pair(fn, z, y)) is not None and close(r[0], target)

    return [
        Probe(ONE_HOT_TARGETS, lambda: (r := _pair(fn, z, onehot)) is not None and close(r[0], loss)
              and close(r[1], dz),
              "right when y is given as one-hot rows, but y holds class indices (shape (N,)): pick the target's "
              "log-probability with logp[np.arange(N), y]"),
        Probe(TARGET_COLUMNS, lambda: n > 1 and loss_is(-np.mean(log_softmax(z)[:, y]))(),
              "logp[:, y] is an N × N array (every example at every target); logp[np.arange(N), y] takes one entry "
              "per example"),
        Probe(MEAN_OVER_CLASSES, lambda: c > 1 and (loss_is(loss / c)() or
                                                     close((_pair(fn, z, y) or (None, None))[1], dz / c)),
              "np.mean over the N × C array also divides by the number of classes C: sum over the classes, "
              "average over the batch only"),
    ]


def _unstable_probe(fn: Callable, moderate: tuple[np.ndarray, np.ndarray], ref_loss) -> Probe:
    z, y = moderate

    def right_on_moderate() -> bool:
        result = try_call(fn, z, y)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            return False
        value = ref_loss.forward(z, y)
        return close(result[0], value) and close(result[1], ref_loss.backward())

    return Probe(UNSTABLE, right_on_moderate,
                 "right on small logits, wrong on logits of size 10³: the formula exponentiates large numbers or "
                 "takes the log of a probability that rounded to 0")


def _torch_cross_entropy(z, y):
    import torch  # noqa: PLC0415

    loss = torch.nn.functional.cross_entropy(z, y.long())
    loss.backward()
    return loss.detach(), z.grad


def check_cross_entropy(cross_entropy: Callable, *, hidden: bool = False) -> None:
    """``cross_entropy(z, y)`` → (mean of −log softmax(z)_{i, y_i}, ∂ℒ/∂z = (p − onehot(y))/N).

    While it is checked, the notebook's ``softmax`` and ``log_softmax`` are the reference ones.
    """
    __tracebackhide__ = True
    import nnkit as nk  # noqa: PLC0415
    from nnkit.functional import log_softmax, softmax  # noqa: PLC0415

    fb = Feedback("cross_entropy", hidden=hidden)
    rng = seeded(46)
    sizes = [(5, 3)] if not hidden else [(8, 4), (1, 10), (32, 7)]
    cases = []
    for n, c in sizes:
        cases.append((rng.normal(0, 1.5, (n, c)), rng.integers(0, c, n), "on small logits"))
    moderate = cases[0][:2]
    big = rng.normal(0, 1, (4, 3)) * (300.0 if hidden else 1.0)
    big[0] = [1000.0, -1000.0, 0.0]
    big[1] = [-1000.0, 1000.0, 999.0]
    cases.append((big, np.array([1, 2, 0, 1]), "on logits of size 10³"))
    with reference_bindings(cross_entropy, softmax=softmax, log_softmax=log_softmax):
        for z, y, label in cases:
            extra = [_unstable_probe(cross_entropy, moderate, nk.CrossEntropyLoss())] if "10³" in label else []
            extra += _cross_entropy_probes(cross_entropy, z, y)
            _loss_check(fb, "cross_entropy", cross_entropy, nk.CrossEntropyLoss(), _torch_cross_entropy, z, y,
                        label=f"{label} (N = {len(z)}, C = {z.shape[1]})", n=len(z), extra_probes=extra)
    fb.passed("the loss and δ = (p − y)/N, on small and large logits")


def _bce_probes(fn: Callable, z: np.ndarray, y: np.ndarray) -> list[Probe]:
    import nnkit as nk  # noqa: PLC0415

    ref = nk.BCEWithLogitsLoss()
    ref.forward(z, y)
    dz = ref.backward()
    return [Probe(MEAN_OVER_ROWS, lambda: z.ndim > 1 and z.shape[0] != z.size
                  and close((_pair(fn, z, y) or (None, None))[1], dz * z.size / z.shape[0]),
                  "the mean runs over every entry of z, so the gradient is divided by z.size, not by len(z)")]


def _right_as_float(fn: Callable, z: np.ndarray, y: np.ndarray) -> bool:
    """The student's BCE is right when the integer targets y are handed over as floats."""
    import nnkit as nk  # noqa: PLC0415

    ref = nk.BCEWithLogitsLoss()
    loss = ref.forward(z, y.astype(float))
    r = _pair(fn, z, y.astype(float))
    return r is not None and close(r[0], loss) and close(r[1], ref.backward())


def _torch_bce(z, y):
    import torch  # noqa: PLC0415

    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y.detach().to(z.dtype))
    loss.backward()
    return loss.detach(), z.grad


def check_bce_with_logits(bce_with_logits: Callable, *, hidden: bool = False) -> None:
    """``bce_with_logits(z, y)`` → (mean of −[y log σ(z) + (1 − y) log(1 − σ(z))], (σ(z) − y)/N)."""
    __tracebackhide__ = True
    import nnkit as nk  # noqa: PLC0415

    fb = Feedback("bce_with_logits", hidden=hidden)
    rng = seeded(47)
    sizes = [(6,)] if not hidden else [(10,), (4, 3), (1,)]
    cases = [(rng.normal(0, 2, s), (rng.random(s) < 0.5).astype(float), "on small logits") for s in sizes]
    moderate = cases[0][:2]
    cases.append((rng.normal(0, 2, 5), rng.integers(0, 2, 5), "with integer targets 0/1"))
    big = np.array([800.0, -800.0, 40.0, -40.0, 2.0, -1000.0])
    cases.append((big, np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0]), "on logits of size 10³"))
    for z, y, label in cases:
        extra = [_unstable_probe(bce_with_logits, moderate, nk.BCEWithLogitsLoss())] if "10³" in label else []
        extra += _bce_probes(bce_with_logits, z, y)
        if np.issubdtype(y.dtype, np.integer):
            extra.append(Probe(INTEGER_INPUT, lambda z=z, y=y: _right_as_float(bce_with_logits, z, y),
                "right with the same targets as floats: an array made with zeros_like(y) or updated in place keeps "
                "y's integer dtype; compute the gradient from z (a float array)"))
        _loss_check(fb, "bce_with_logits", bce_with_logits, nk.BCEWithLogitsLoss(), _torch_bce, z, y,
                    label=f"{label} (shape {z.shape})", n=z.size, extra_probes=extra)
    fb.passed("the loss and (σ(z) − y)/N, on small and large logits")


# --------------------------------------------------------------------------------------------
# The saturation toy problem (seed 003): one sigmoid unit, MSE against cross entropy
# --------------------------------------------------------------------------------------------
def _toy_reference(w: float, b: float, x: float, y: float) -> np.ndarray:
    """[∂ℒ/∂z for L = ½(y − σ(z))², ∂ℒ/∂z for L = cross entropy], through nnkit's layers and losses."""
    import nnkit as nk  # noqa: PLC0415

    z = np.array([[w * x + b]])
    target = np.array([[y]])
    act = nk.Sigmoid()
    a = act.forward(z)
    mse = nk.MSELoss(reduction="sum")
    mse.forward(a, target)
    d_mse = act.backward(0.5 * mse.backward())  # ½(y − a)² = 0.5 · MSELoss(sum)
    bce = nk.BCEWithLogitsLoss(reduction="sum")
    bce.forward(z, target)
    return np.array([d_mse.item(), bce.backward().item()])


def _torch_toy(cases):
    import torch  # noqa: PLC0415

    w, b, x, y = (cases[:, i] for i in range(4))
    z = (w * x + b).detach().requires_grad_(True)
    (0.5 * (y - torch.sigmoid(z)) ** 2).sum().backward()
    d_mse = z.grad.clone()
    z.grad = None
    torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="sum").backward()
    return torch.stack([d_mse, z.grad], 1)


def check_toy_gradients(toy_gradients: Callable, *, hidden: bool = False) -> None:
    """``toy_gradients(w, b, x, y)`` → (∂ℒ/∂z for ½(y − σ(z))², ∂ℒ/∂z for cross entropy), z = w·x + b."""
    __tracebackhide__ = True
    fb = Feedback("toy_gradients", hidden=hidden)
    if hidden:
        rng = seeded(48)
        cases = np.column_stack([rng.uniform(-3, 3, 8), rng.uniform(-1, 1, 8), rng.uniform(-2, 2, 8),
                                 (rng.random(8) < 0.5).astype(float)])
    else:
        import nnkit as nk  # noqa: PLC0415

        X, Y = nk.data.toy_pm1()
        w0, b0 = nk.data.TOY_PM1_WEIGHT, nk.data.TOY_PM1_BIAS
        cases = np.array([[w0, b0, X[i, 0], Y[i, 0]] for i in range(len(X))])  # the notes' x = ±1

    def run(c):
        rows = []
        for w, b, x, y in np.asarray(c, dtype=float):
            out = toy_gradients(float(w), float(b), float(x), float(y))
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                fb.fail(WRONG_TYPE, f"toy_gradients must return a pair (∂ℒ/∂z for MSE, ∂ℒ/∂z for cross entropy), "
                                    f"got {type(out).__name__}")
            rows.append([float(np.asarray(v, dtype=float)) for v in out])
        return np.array(rows)

    expected = np.array([_toy_reference(*c) for c in cases])
    z = cases[:, 0] * cases[:, 2] + cases[:, 1]
    s = 1.0 / (1.0 + np.exp(-z))
    yv, xv = cases[:, 3], cases[:, 2]

    def like(target) -> Callable[[], bool]:
        return lambda: close(try_call(run, cases), target)

    probes = [
        Probe(MISSING_FPRIME, like(np.column_stack([s - yv, s - yv])),
              "for ½(y − σ(z))² the chain rule gives (σ(z) − y)·σ′(z): the σ′(z) factor is what saturates"),
        Probe(SIGN_FLIP, like(np.column_stack([(yv - s) * s * (1 - s), s - yv])),
              "the MSE gradient's sign: ∂/∂z ½(y − σ)² = −(y − σ)σ′ = (σ − y)σ′ (the notes' slide drops this minus)"),
        Probe(SIGN_FLIP, like(np.column_stack([(s - yv) * s * (1 - s), yv - s])),
              "the cross-entropy gradient is σ(z) − y, prediction minus target"),
        Probe(SIGN_FLIP, like(-expected), "both gradients have the wrong sign"),
        Probe(FACTOR_OF_2, like(np.column_stack([2 * expected[:, 0], expected[:, 1]])),
              "the squared-error gradient is twice the right one: ½(y − σ)² differentiates to (σ − y)σ′, "
              "the ½ cancels the 2"),
        Probe(FACTOR_OF_2, like(np.column_stack([expected[:, 0] / 2, expected[:, 1]])),
              "the squared-error gradient is half the right one: ½(y − σ)² differentiates to (σ − y)σ′"),
        Probe(D_WRT_W, like(expected * xv[:, None]),
              "multiply by x only for ∂ℒ/∂w; the question asks for ∂ℒ/∂z"),
    ]
    got = call(fb, run, cases, name="toy_gradients(w, b, x, y)")
    got = as_array(fb, "toy_gradients(w, b, x, y)", got)
    what = (f"the notes' toy problem x = ±1, w = {cases[0, 0]:g}, b = {cases[0, 1]:g}" if not hidden
            else f"{len(cases)} other (w, b, x, y)")
    check_array(fb, f"[∂ℒ_MSE/∂z, ∂ℒ_CE/∂z] for {what}", got, expected, probes=probes, relations=False,
                shape_hint="one pair per case")
    check_against_torch(fb, f"[∂ℒ_MSE/∂z, ∂ℒ_CE/∂z] for {what}", run, _torch_toy, [cases], probes=probes)
    h = 1e-6

    def losses(zz):  # [½(y − σ(z))², −y log σ(z) − (1 − y) log(1 − σ(z))] written with logaddexp (stable)
        sz = 1.0 / (1.0 + np.exp(-zz))
        return np.column_stack([0.5 * (yv - sz) ** 2, yv * np.logaddexp(0, -zz) + (1 - yv) * np.logaddexp(0, zz)])

    check_array(fb, f"[∂ℒ_MSE/∂z, ∂ℒ_CE/∂z] for {what} against central differences in z", got,
                (losses(z + h) - losses(z - h)) / (2 * h), rtol=NUM_RTOL, atol=NUM_ATOL, probes=probes,
                relations=False)
    # a confidently right and a confidently wrong unit, |z| = 10³: both gradients must stay finite
    large = np.array([[500.0, 0.0, 2.0, 1.0], [500.0, 0.0, -2.0, 1.0], [-4.0, 1000.0, 0.5, 0.0],
                      [3.0, -998.0, 1.0, 1.0]])
    unstable = [Probe(UNSTABLE, lambda: close(try_call(run, cases), expected),
                      "right for moderate z, wrong for |z| = 10³: e^{−z} overflows (math.exp raises, np.exp gives "
                      "inf); compute σ with a stable formula, e.g. e^{−|z|} only, or nk.functional.sigmoid")]
    got = call(fb, run, large, name="toy_gradients(w, b, x, y) for z = w·x + b of size 10³", probes=unstable)
    check_array(fb, "[∂ℒ_MSE/∂z, ∂ℒ_CE/∂z] for 4 cases with |z| = 10³", as_array(fb, "toy_gradients", got),
                np.array([_toy_reference(*c) for c in large]), probes=unstable, relations=False)
    fb.passed("both gradients on the saturation toy problem")
