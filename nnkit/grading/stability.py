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
available device. Stability is checked on logits of size 10³, where a formula that
exponentiates large numbers returns inf or nan; the message then says "numerically unstable".
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .core import (
    BATCH_FACTOR,
    MISSING_FPRIME,
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
]

DERIVATIVE_AT_ZERO = "wrong derivative at 0"
WRONG_SLOPE = "wrong slope"
FUNCTION_NOT_DERIVATIVE = "the function instead of its derivative"
WRONG_DERIVATIVE = "wrong derivative"
WRONG_AXIS = "wrong axis"
D_WRT_W = "∂ℒ/∂w instead of ∂ℒ/∂z"

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


def _derivative_inputs(hidden: bool, seed: int) -> list[np.ndarray]:
    """Small inputs with exact zeros (visible), or larger random ones with zeros and ±large (hidden)."""
    if not hidden:
        return [np.array([-2.0, -0.5, 0.0, 0.5, 3.0]),
                np.array([[-1.5, 0.0, 2.0], [0.25, -0.75, 0.0]])]
    rng = seeded(seed)
    z = rng.normal(0, 3, (16, 9))
    z[rng.random(z.shape) < 0.15] = 0.0
    z[0, :3] = [-50.0, 50.0, 0.0]
    return [z, rng.normal(0, 2, (3, 4, 5))]


def _check_derivative(fb: Feedback, name: str, student: Callable, reference: Callable, torch_fn: Callable,
                      inputs: list[np.ndarray], probes_for: Callable[[np.ndarray], list[Probe]],
                      function: Callable | None = None) -> None:
    """Reference, PyTorch and (for a smooth ``function``) central differences (f(z + ε) − f(z − ε))/2ε."""
    __tracebackhide__ = True
    for z in inputs:
        probes = probes_for(z)
        got = call(fb, student, z, name=f"{name}(z)")
        got = check_array(fb, f"{name}(z) for z of shape {z.shape}", got, reference(z), probes=probes,
                          shape_hint="the same shape as z: one derivative per entry")
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
                Probe(WRONG_SLOPE, lambda: close(try_call(student, z), np.where(z > 0, slope, 1.0)),
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
        s = 1.0 / (1.0 + np.exp(-z))
        return [
            Probe(WRONG_DERIVATIVE, lambda: close(try_call(tanh_prime, z), 1.0 - z * z),
                  "1 − z² applies the formula to z; it is 1 − tanh(z)²"),
            Probe(WRONG_DERIVATIVE, lambda: close(try_call(tanh_prime, z), 1.0 - t),
                  "the square is missing: 1 − tanh(z)²"),
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
    """(ordinary logits, large logits). Ordinary first, so axis bugs are named before stability."""
    rng = seeded(seed)
    if not hidden:
        ordinary = [rng.normal(0, 1, (3, 4)), np.array([0.5, -1.0, 2.0])]
        large = [np.array([[1000.0, 999.0, 0.0], [0.0, -1000.0, 1.0]])]
    else:
        ordinary = [rng.normal(0, 2, (7, 5)), rng.normal(0, 1, (2, 3, 4)), rng.normal(0, 1, (1, 6))]
        big = rng.normal(0, 1, (6, 5)) * 400.0
        big[0] = [800.0, 799.0, -800.0, 0.0, 1.0]
        big[1] = [-800.0, -801.0, -805.0, -1000.0, -790.0]  # every logit very negative: a global max fails
        large = [big]
    return ordinary, large


def _softmax_probes(fn: Callable, z: np.ndarray, log: bool) -> list[Probe]:
    from nnkit.functional import log_softmax, softmax  # noqa: PLC0415

    f = log_softmax if log else softmax
    probes = []
    if z.ndim >= 2:
        probes.append(Probe(WRONG_AXIS, lambda: close(try_call(fn, z), f(z, axis=0)),
                            "normalise each row (example) over its classes: the last axis, axis=-1 with "
                            "keepdims=True; your result is normalised along axis 0"))
    probes.append(Probe(WRONG_AXIS, lambda: close(try_call(fn, z), np.exp(z - z.max()) / np.exp(z - z.max()).sum())
                        if not log else False,
                        "you normalised over all entries; normalise along the last axis only"))
    if log:
        probes.append(Probe(FUNCTION_NOT_DERIVATIVE, lambda: close(try_call(fn, z), softmax(z)),
                            "that is the softmax; log-softmax is its logarithm, z − log Σ e^z"))
    return probes


def _check_softmax_like(question: str, fn: Callable, *, log: bool, hidden: bool) -> None:
    __tracebackhide__ = True
    from nnkit.functional import log_softmax, softmax  # noqa: PLC0415

    fb = Feedback(question, hidden=hidden)
    ref = log_softmax if log else softmax
    ordinary, large = _logit_cases(hidden, 44 if log else 45)

    def torch_fn(z):
        import torch  # noqa: PLC0415

        return (torch.log_softmax if log else torch.softmax)(z, dim=-1)

    refs = {"softmax": softmax} if log else {}
    with reference_bindings(fn, **refs):
        for z in ordinary:
            probes = _softmax_probes(fn, z, log)
            got = call(fb, fn, z, name=f"{question}(z)")
            check_array(fb, f"{question}(z) for z of shape {z.shape}", got, ref(z), probes=probes,
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
    result = call(fb, fn, z, y, name=f"{question}(z, y)")
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
    dz = check_array(fb, f"∂ℒ/∂z returned by {question}(z, y) {label}", dz, dz_ref, probes=grad_probes,
                     relations=False, shape_hint="one entry per logit: the shape of z")
    if z.size <= 256 and np.abs(z).max() < 100:  # the loss's own derivative, by central differences
        numeric = numerical_gradient(lambda zz: float(type(ref_loss)().forward(zz, y)), z.copy())
        check_array(fb, f"∂ℒ/∂z returned by {question}(z, y) {label} against central differences of the loss",
                    dz, numeric, rtol=NUM_RTOL, atol=NUM_ATOL, probes=grad_probes, relations=False)

    def student(zz, yy):
        return _split_pair(fb, f"{question}(z, y)", fn(zz, yy))

    check_against_torch(fb, f"[loss, ∂ℒ/∂z] of {question}(z, y) {label}", student, make_torch, [z, y],
                        requires_grad=True, probes=grad_probes)


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
            _loss_check(fb, "cross_entropy", cross_entropy, nk.CrossEntropyLoss(), _torch_cross_entropy, z, y,
                        label=f"{label} (N = {len(z)}, C = {z.shape[1]})", n=len(z), extra_probes=extra)
    fb.passed("the loss and δ = (p − y)/N, on small and large logits")


def _torch_bce(z, y):
    import torch  # noqa: PLC0415

    loss = torch.nn.functional.binary_cross_entropy_with_logits(z, y.detach())
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
    big = np.array([800.0, -800.0, 40.0, -40.0, 2.0, -1000.0])
    cases.append((big, np.array([0.0, 1.0, 1.0, 0.0, 1.0, 0.0]), "on logits of size 10³"))
    for z, y, label in cases:
        extra = [_unstable_probe(bce_with_logits, moderate, nk.BCEWithLogitsLoss())] if "10³" in label else []
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
    fb.passed("both gradients on the saturation toy problem")
