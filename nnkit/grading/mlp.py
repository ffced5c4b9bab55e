"""Checks for problem sets 1 (perceptron and gradient descent) and 3 (the δ recursion).

Each ``check_<id>`` is what the test cell ``test_<id>`` of the question ``<id>`` calls:
``check_<id>(student_function)`` for the visible checks, ``hidden=True`` for the graded ones.
References come from nnkit (``nk.Linear``, ``nk.Sigmoid``, ``nk.MSELoss``, ``nk.optim.SGD``),
central differences and PyTorch; the likely bug is recognised by re-running the student's
function on crafted inputs (``Probe``).

Conventions (the course notation): a batch is rows, ``Z = A_prev @ W.T + b``, ``W`` has shape (out, in),
δ^ℓ = ∂ℒ/∂z^ℓ, and the loss of both problem sets is the squared error summed over the outputs
and averaged over the N examples, L = (1/N) Σ_n ‖ŷ_n − y_n‖² (the ECE 498 loss for N = 1).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .core import (
    MISSING_FPRIME,
    SIGN_FLIP,
    TRANSPOSED_W,
    UNSTABLE,
    Feedback,
    Probe,
    as_array,
    call,
    check_against_torch,
    check_array,
    check_uses_generator,
    check_layers,
    close,
    diagnose,
    numerical_gradient,
    quiet,
    reference_bindings,
    relative_error,
    seeded,
    shape_of,
    try_call,
)
from .remote import Here

# bug classes particular to these problem sets (phrases the feedback uses)
Z_FOR_SIGMA = "used z where σ(z) belongs"
MISSING_ONE_MINUS = "missing the factor (1 − σ(z))"
OUTPUT_ACTIVATION = "σ applied to the output layer"
MISSING_HIDDEN_ACTIVATION = "missing σ on the hidden layer"
MISSING_BIAS = "missing bias"
MEAN_OVER_OUTPUTS = "averaged over the outputs"
MSE_SCALE_DROPPED = "the 2/N of the mean squared error left out"
LR_NOT_APPLIED = "learning rate not applied"
DB_NOT_SUMMED = "∂ℒ/∂b not summed over the batch"
WRONG_ACTIVATIONS = "wrong layer's activations"
ONE_SIDED = "one-sided difference"
INPUT_NOT_RESTORED = "input not restored"
NOT_EVERY_BATCH = "not every minibatch"
NOT_SHUFFLED = "examples not shuffled"
SIGMA_FOR_FPRIME = "σ(z) instead of σ′(z)"
INTEGER_RESULT = "result kept the integer dtype of the input"
TANH_DERIVATIVE = "1 − σ(z)², the derivative of tanh"
RETURN_ORDER = "Z1 and A1 returned in the wrong order"
SUMMED_OVER_BATCH = "gradient reduced over the examples"
LOSS_FOR_GRADIENT = "returned the loss, not its gradient"
DB_WRONG_AXIS = "∂ℒ/∂b summed over the wrong axis"
DB_KEEPDIMS = "∂ℒ/∂b kept the summed axis"
PARAMETER_SKIPPED = "a parameter left out of the update"
FPRIME_AT_A = "σ′ evaluated at the activation a instead of z"
MATMUL_FOR_HADAMARD = "matrix product where the element-wise product belongs"
LAYER_SKIPPED = "a layer left out of the backward loop"
WRONG_LAYER_W = "wrong layer's W"
ROWS_ONLY = "perturbs whole rows, not single entries"
IGNORES_EPS = "ignores the eps it is given"
LOSS_PER_BATCH = "a loss per minibatch, not per epoch"


# --- references (nnkit) ---------------------------------------------------------------------
def _nk():
    import nnkit as nk  # noqa: PLC0415 - the library, imported when a check runs

    return nk


def ref_sigmoid(z):
    return _nk().functional.sigmoid(np.asarray(z, dtype=float))


def ref_sigmoid_prime(z):
    return _nk().functional.sigmoid_prime(np.asarray(z, dtype=float))


def _linear(W, b):
    nk = _nk()
    layer = nk.Linear(W.shape[1], W.shape[0], rng=0)
    layer.weight.data, layer.bias.data = np.array(W, dtype=float), np.array(b, dtype=float)
    return layer


def ref_forward(X, W1, b1, W2, b2):
    """The ECE 498 network with nnkit: Linear → Sigmoid → Linear; returns (Z1, A1, Ŷ)."""
    nk = _nk()
    l1, act, l2 = _linear(W1, b1), nk.Sigmoid(), _linear(W2, b2)
    Z1 = l1(X)
    A1 = act(Z1)
    return Z1, A1, l2(A1)


def mse_loss(Y_hat, Y):
    """L = (1/N) Σ_n ‖ŷ_n − y_n‖²: the squared error summed over outputs, averaged over examples."""
    Y_hat, Y = np.asarray(Y_hat, dtype=float), np.asarray(Y, dtype=float)
    return float(np.sum((Y_hat - Y) ** 2) / Y_hat.shape[0])


def ref_mse_grad(Y_hat, Y):
    """∂ℒ/∂Ŷ from nnkit: MSELoss(reduction='sum') is Σ‖ŷ − y‖², so divide by N."""
    crit = _nk().MSELoss(reduction="sum")
    crit.forward(np.asarray(Y_hat, dtype=float), np.asarray(Y, dtype=float))
    return crit.backward() / Y_hat.shape[0]


def ref_output_layer_grads(A1, Y_hat, Y):
    layer = _linear(np.zeros((Y_hat.shape[1], A1.shape[1])), np.zeros(Y_hat.shape[1]))
    layer.forward(A1)
    layer.backward(ref_mse_grad(Y_hat, Y))
    return layer.weight.grad.copy(), layer.bias.grad.copy()


def ref_gradient_step(params, grads, lr):
    nk = _nk()
    ps = [nk.Parameter(np.array(p, dtype=float)) for p in params]
    for p, g in zip(ps, grads):
        p.grad = np.array(g, dtype=float)
    nk.optim.SGD(ps, lr=lr).step()
    return [p.data for p in ps]


def _any_close(got, candidates) -> bool:
    return got is not None and any(close(got, c) for c in candidates)


def _item(result, i: int):
    return result[i] if isinstance(result, (tuple, list)) and len(result) > i else None


def _network(rng, n=5, sizes=(3, 4, 2), scale=1.0):
    X = rng.normal(size=(n, sizes[0]))
    Ws = [rng.normal(scale=scale, size=(sizes[i + 1], sizes[i])) for i in range(len(sizes) - 1)]
    bs = [rng.normal(scale=scale, size=sizes[i + 1]) for i in range(len(sizes) - 1)]
    return X, Ws, bs


def _db_probes(db_of: Callable, upstream: Callable, symbol: str) -> list[Probe]:
    """Probes for the bias gradient, run on a crafted batch of 3 examples and 2 units (where a
    batch of one cannot tell "not summed" from "kept the summed axis").

    ``db_of(D, A)`` is the student's ∂ℒ/∂b for upstream rows D and inputs A; ``upstream(D)`` the
    rows whose column sums are the right ∂ℒ/∂b.
    """
    D = np.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]])
    A = np.array([[0.2, 0.4, 0.1], [0.7, 0.3, 0.9], [0.5, 0.6, 0.8]])
    rows = upstream(D)
    return [
        Probe(DB_NOT_SUMMED, lambda: close(db_of(D, A), rows),
              f"{symbol} has one entry per unit: sum the rows (the examples)"),
        Probe(DB_WRONG_AXIS, lambda: close(db_of(D, A), rows.sum(axis=1)),
              f"your {symbol} is the sum over the units of each example (axis 1); sum over the examples, axis 0"),
        Probe(DB_KEEPDIMS, lambda: close(db_of(D, A), rows.sum(axis=0, keepdims=True)),
              f"your {symbol} has shape (1, units): the sum over axis 0 kept that axis (keepdims); "
              "b has shape (units,)"),
    ]


# =============================================================================================
# Problem set 1: perceptron and gradient descent
# =============================================================================================
def _breaks_only_at_large(fn: Callable, ref: Callable) -> bool:
    """True when ``fn`` is right on moderate inputs and inf/nan at |z| = 1000 (the evidence of an
    overflowing formula)."""
    moderate = np.linspace(-8.0, 8.0, 17)
    if not close(try_call(fn, moderate), ref(moderate)):
        return False
    try:
        with quiet():
            extreme = np.asarray(fn(np.array([-1000.0, 1000.0])), dtype=float)
    except (OverflowError, FloatingPointError):
        return True  # math.exp(1000) raises where np.exp returns inf
    return not np.all(np.isfinite(extreme))


def check_sigmoid(sigmoid: Callable, *, hidden: bool = False) -> None:
    """σ(z) = 1/(1 + e^{−z}) element-wise; finite and right for |z| up to 1000."""
    fb = Feedback("sigmoid", hidden=hidden)
    z = np.array([-1000.0, -2.0, -0.5, 0.0, 0.5, 2.0, 1000.0])
    probes = [
        Probe(SIGN_FLIP, lambda: close(try_call(sigmoid, z), ref_sigmoid(-z)),
              "your function computes σ(−z) = 1/(1 + e^{z}); the exponent is −z"),
        Probe(UNSTABLE, lambda: _breaks_only_at_large(sigmoid, ref_sigmoid),
              "your σ is right for moderate z and breaks (inf, nan or an overflow error) for |z| = 1000: "
              "e^{z} or e^{−z} overflows there; "
              "use 1/(1 + e^{−z}) for z ≥ 0 and e^{z}/(1 + e^{z}) for z < 0"),
    ]
    check_array(fb, "sigmoid(z) for z from −1000 to 1000", call(fb, sigmoid, z, name="sigmoid(z)", probes=probes),
                ref_sigmoid(z), probes=probes, atol=1e-300, inputs=z)
    if hidden:
        rng = seeded(101)
        for shape in [(7,), (3, 4), (2, 3, 2)]:
            zz = rng.normal(scale=4.0, size=shape)
            check_array(fb, f"sigmoid(z) for z of shape {shape}", call(fb, sigmoid, zz, name="sigmoid(z)"),
                        ref_sigmoid(zz), probes=probes)
        big = np.array([-1000.0, -50.0, -1.0, 0.0, 1.0, 50.0, 1000.0])
        check_array(fb, "sigmoid(z) for |z| up to 1000", call(fb, sigmoid, big, name="sigmoid(z)"),
                    ref_sigmoid(big), probes=probes, atol=1e-300, inputs=big)
        ints = np.array([-3, -1, 0, 2, 5])  # e.g. sigmoid(np.arange(-3, 6)): integers a caller may pass
        integer_probe = [Probe(INTEGER_RESULT, lambda: close(try_call(sigmoid, ints), np.trunc(ref_sigmoid(ints))),
                               "for integer z your result is σ(z) cut to an integer: make the output array "
                               "float, e.g. z = np.asarray(z, dtype=float) first")]
        check_array(fb, f"sigmoid(z) for the integer array z = {ints.tolist()}",
                    call(fb, sigmoid, ints, name="sigmoid(z)"), ref_sigmoid(ints), probes=integer_probe)
        check_against_torch(fb, "sigmoid(z)", sigmoid, lambda t: t.sigmoid(), [rng.normal(scale=3, size=(4, 5))],
                            probes=probes)
    fb.passed("σ(z) matches nnkit on sample inputs")


def check_sigmoid_prime(sigmoid_prime: Callable, *, hidden: bool = False) -> None:
    """σ′(z) = σ(z)(1 − σ(z)), checked against nnkit, central differences and torch.autograd."""
    fb = Feedback("sigmoid_prime", hidden=hidden)
    z = np.array([-3.0, -1.0, 0.0, 0.5, 2.0])
    with reference_bindings(sigmoid_prime, sigmoid=ref_sigmoid):
        def run(zz):
            return try_call(sigmoid_prime, zz)

        probes = [
            Probe(Z_FOR_SIGMA, lambda: close(run(z), z * (1 - z)), "σ′(z) = σ(z)(1 − σ(z)): apply σ first"),
            Probe(MISSING_ONE_MINUS, lambda: close(run(z), ref_sigmoid(z)),
                  "you returned σ(z) itself; σ′(z) = σ(z)(1 − σ(z))"),
            Probe(SIGN_FLIP, lambda: close(run(z), -ref_sigmoid_prime(z)), "σ′ is positive everywhere"),
            Probe(TANH_DERIVATIVE, lambda: close(run(z), 1 - ref_sigmoid(z) ** 2),
                  "1 − σ² would be the derivative of tanh; σ′(z) = σ(z)(1 − σ(z))"),
        ]
        got = call(fb, sigmoid_prime, z, name="sigmoid_prime(z)")
        check_array(fb, "sigmoid_prime(z)", got, ref_sigmoid_prime(z), probes=probes)
        if hidden:
            rng = seeded(102)
            zz = rng.normal(scale=3.0, size=(4, 3))
            got = call(fb, sigmoid_prime, zz, name="sigmoid_prime(z)")
            numeric = np.vectorize(lambda v: numerical_gradient(lambda x: float(ref_sigmoid(x)), np.array(v)))(zz)
            check_array(fb, "sigmoid_prime(z) against central differences", got, numeric, rtol=1e-6, atol=1e-9,
                        probes=probes)

            def torch_sigmoid_prime(t):
                t.sigmoid().sum().backward()
                return t.grad

            check_against_torch(fb, "sigmoid_prime(z)", sigmoid_prime, torch_sigmoid_prime, [zz],
                                requires_grad=True, probes=probes)
            big = np.array([-800.0, -40.0, 40.0, 800.0])
            check_array(fb, "sigmoid_prime(z) for |z| up to 800", call(fb, sigmoid_prime, big, name="sigmoid_prime(z)"),
                        ref_sigmoid_prime(big), atol=1e-12, probes=probes, inputs=big)
    fb.passed("σ′(z) matches nnkit")


def check_forward(forward: Callable, *, hidden: bool = False) -> None:
    """forward(X, W1, b1, W2, b2) → (Z1, A1, Y_hat) of Linear → σ → Linear (linear output)."""
    fb = Feedback("forward", hidden=hidden)
    # the ECE 498 shapes, then a batch of several examples with several features
    cases = [_network(seeded(103), n=1, sizes=(1, 2, 2)), _network(seeded(108), n=3, sizes=(3, 4, 2))]
    if hidden:
        cases += [_network(seeded(104 + i), n=n, sizes=s) for i, (n, s) in enumerate([(5, (3, 4, 2)), (7, (2, 5, 3))])]
    with reference_bindings(forward, sigmoid=ref_sigmoid, sigmoid_prime=ref_sigmoid_prime):
        for X, (W1, W2), (b1, b2) in cases:
            Z1, A1, Y_hat = ref_forward(X, W1, b1, W2, b2)

            def out(*args, i=2):
                return _item(try_call(forward, *args), i)

            probes = [
                Probe(TRANSPOSED_W, lambda: close(out(X, W1.T, b1, W2.T, b2), Y_hat),
                      "with W of shape (out, in) and examples as rows, a layer computes A_prev @ W.T + b"),
                Probe(OUTPUT_ACTIVATION, lambda: close(out(X, W1, b1, W2, b2), ref_sigmoid(Y_hat)),
                      "this network's output layer is linear: ŷ = W² a¹ + b², no σ"),
                Probe(MISSING_HIDDEN_ACTIVATION, lambda: close(out(X, W1, b1, W2, b2), Z1 @ W2.T + b2),
                      "a¹ = σ(z¹) must feed the second layer, not z¹"),
                Probe(MISSING_BIAS, lambda: close(out(X, W1, 0 * b1, W2, b2), out(X, W1, b1, W2, b2))
                      or close(out(X, W1, b1, W2, 0 * b2), out(X, W1, b1, W2, b2)),
                      "your output does not change when a bias is set to zero: each layer adds its bias b"),
                Probe(RETURN_ORDER, lambda: close(out(X, W1, b1, W2, b2, i=0), A1)
                      and close(out(X, W1, b1, W2, b2, i=1), Z1), "return (Z1, A1, Y_hat) in this order"),
            ]
            result = call(fb, forward, X, W1, b1, W2, b2, name="forward(X, W1, b1, W2, b2)", probes=probes)
            if not isinstance(result, (tuple, list)) or len(result) != 3:
                fb.fail("wrong type", "forward must return the tuple (Z1, A1, Y_hat)")
            shapes = f"X {X.shape}, W1 {W1.shape}, W2 {W2.shape}"
            for name, got, ref in (("Y_hat", result[2], Y_hat), ("Z1", result[0], Z1), ("A1", result[1], A1)):
                check_array(fb, f"{name} (for {shapes})", got, ref, probes=probes,
                            shape_hint="one row per example")
        if hidden:
            X, (W1, W2), (b1, b2) = cases[1]

            def torch_forward(X, W1, b1, W2, b2):
                Z1 = X @ W1.T + b1
                A1 = Z1.sigmoid()
                return Z1, A1, A1 @ W2.T + b2

            check_against_torch(fb, "forward(X, W1, b1, W2, b2)", forward, torch_forward, [X, W1, b1, W2, b2])
    fb.passed("Z1, A1 and Y_hat match nnkit's Linear → Sigmoid → Linear")


def _scale_dropped_probe(run: Callable, unscaled: Callable) -> Probe:
    """The answer leaves out the 2/N of ∂ℒ/∂ŷ = (2/N)(ŷ − y): seen at N = 5, where 2/N is neither 1/2 nor 2."""
    def test() -> bool:
        rng = seeded(119)
        U, Y = rng.normal(size=(5, 3)), rng.uniform(size=(5, 3))
        return close(run(U, Y), unscaled(U, Y))

    return Probe(MSE_SCALE_DROPPED, test, "ℒ = (1/N) Σ_n ‖ŷ_n − y_n‖² gives ∂ℒ/∂ŷ = (2/N)(ŷ − y): your result "
                                          "leaves out both the 2 and the 1/N")


def check_mse_grad(mse_grad: Callable, *, hidden: bool = False) -> None:
    """∂ℒ/∂Ŷ = (2/N)(Ŷ − Y) for L = (1/N) Σ_n ‖ŷ_n − y_n‖²."""
    fb = Feedback("mse_grad", hidden=hidden)
    rng = seeded(110)
    sizes = [(4, 3)] + ([(5, 3), (1, 2), (6, 3)] if hidden else [])  # no N or d equal to 2: "factor of 2" is its own bug
    for n, d in sizes:
        Y_hat, Y = rng.normal(size=(n, d)), rng.normal(size=(n, d))
        ref = ref_mse_grad(Y_hat, Y)
        probes = [
            Probe(MEAN_OVER_OUTPUTS, lambda: d > 1 and close(try_call(mse_grad, Y_hat, Y), ref / d),
                  "this loss sums over the outputs and averages over the N examples only"),
            Probe(SUMMED_OVER_BATCH, lambda: n > 1 and _any_close(try_call(mse_grad, Y_hat, Y),
                                                                  [ref.sum(axis=0), ref.mean(axis=0)]),
                  "your result is the gradient summed or averaged over the examples; ∂ℒ/∂Ŷ has one row per "
                  "example, the shape of Y_hat"),
            _scale_dropped_probe(lambda Yh, Y_: try_call(mse_grad, Yh, Y_), lambda Yh, Y_: Yh - Y_),
            Probe(LOSS_FOR_GRADIENT, lambda: _any_close(try_call(mse_grad, Y_hat, Y), [
                (Y_hat - Y) ** 2, (Y_hat - Y) ** 2 / n, mse_loss(Y_hat, Y), np.mean((Y_hat - Y) ** 2)]),
                  "your result is the loss (or its terms (ŷ − y)²); the gradient is its derivative, (2/N)(Ŷ − Y)"),
        ]
        got = call(fb, mse_grad, Y_hat, Y, name="mse_grad(Y_hat, Y)", probes=probes)
        check_array(fb, f"mse_grad for N={n} examples of {d} outputs", got, ref, probes=probes, batch_size=n)
        if hidden and n > 1:
            numeric = numerical_gradient(lambda yh: mse_loss(yh, Y), Y_hat.copy())
            check_array(fb, "mse_grad against central differences of the loss", got, numeric, rtol=1e-6,
                        atol=1e-8, probes=probes, batch_size=n)
    if hidden:
        Y_hat, Y = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))

        def torch_grad(Y_hat, Y):
            ((Y_hat - Y) ** 2).sum(dim=1).mean().backward()
            return Y_hat.grad

        check_against_torch(fb, "mse_grad(Y_hat, Y)", lambda a, b: mse_grad(a, b), torch_grad, [Y_hat, Y],
                            requires_grad=True, batch_size=5)
    fb.passed("∂ℒ/∂Ŷ matches nnkit's MSELoss")


def check_output_layer_grads(output_layer_grads: Callable, *, hidden: bool = False) -> None:
    """(∂ℒ/∂W², ∂ℒ/∂b²) of the linear output layer: (∂ℒ/∂Ŷ)ᵀ A1 and the column sums of ∂ℒ/∂Ŷ."""
    fb = Feedback("output_layer_grads", hidden=hidden)
    rng = seeded(120)
    sizes = [(1, 2, 2), (3, 4, 3)] + ([(5, 4, 3), (3, 2, 5)] if hidden else [])
    with reference_bindings(output_layer_grads, mse_grad=ref_mse_grad, sigmoid=ref_sigmoid):
        for n, d1, d2 in sizes:
            A1, Y_hat, Y = rng.uniform(size=(n, d1)), rng.normal(size=(n, d2)), rng.normal(size=(n, d2))
            dW, db = ref_output_layer_grads(A1, Y_hat, Y)
            result = call(fb, output_layer_grads, A1, Y_hat, Y, name="output_layer_grads(A1, Y_hat, Y)")
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                fb.fail("wrong type", "output_layer_grads must return the tuple (dW2, db2)")
            probes_b = _db_probes(lambda D, A: _item(try_call(output_layer_grads, A, D, 0 * D), 1),
                                  lambda D: 2 * D / len(D), "∂ℒ/∂b²")
            check_array(fb, f"dW2 (A1 {A1.shape}, Y_hat {Y_hat.shape})", result[0], dW, batch_size=n,
                        shape_hint="dW2 has the shape of W², (outputs, hidden units)")
            check_array(fb, f"db2 (Y_hat {Y_hat.shape})", result[1], db, batch_size=n, probes=probes_b,
                        shape_hint="db2 has the shape of b², (outputs,)")
        if hidden:
            n, d1, d2 = 4, 3, 2
            A1, Y_hat, Y = rng.uniform(size=(n, d1)), rng.normal(size=(n, d2)), rng.normal(size=(n, d2))
            W2, b2 = rng.normal(size=(d2, d1)), rng.normal(size=d2)
            Y_hat = A1 @ W2.T + b2

            def torch_grads(A1, Y_hat, Y):
                import torch  # noqa: PLC0415

                W = torch.tensor(W2, dtype=A1.dtype, device=A1.device, requires_grad=True)
                b = torch.tensor(b2, dtype=A1.dtype, device=A1.device, requires_grad=True)
                (((A1 @ W.T + b) - Y) ** 2).sum(dim=1).mean().backward()
                return W.grad, b.grad

            check_against_torch(fb, "output_layer_grads(A1, Y_hat, Y)", output_layer_grads, torch_grads,
                                [A1, Y_hat, Y], batch_size=n)
    fb.passed("dW2 and db2 match nnkit's Linear.backward")


def _skipped(result, params, ref) -> bool:
    """True when some parameters came back unchanged (or were left out) and every other one is right."""
    if not isinstance(result, (list, tuple)) or not result:
        return False
    if len(result) < len(params):  # a shorter list: the loop stopped early or started late
        return any(all(close(g, w) for g, w in zip(result, ref[k:])) for k in (0, len(ref) - len(result)))
    same = [close(g, p) for g, p in zip(result, params)]
    return any(same) and all(s or close(g, w) for s, g, w in zip(same, result, ref))


def check_gradient_step(gradient_step: Callable, *, hidden: bool = False) -> None:
    """gradient_step(params, grads, lr) → [p − lr·g for each parameter]."""
    fb = Feedback("gradient_step", hidden=hidden)
    rng = seeded(130)
    shapes = [(2, 1), (2,)] + ([(3, 4), (3,), (4, 2)] if hidden else [])
    lrs = [0.1] + ([0.5, 0.01] if hidden else [])
    for lr in lrs:
        params = [rng.normal(size=s) for s in shapes]
        grads = [rng.normal(size=s) for s in shapes]
        ref = ref_gradient_step(params, grads, lr)

        def first(*args):
            out = try_call(gradient_step, *args)
            return _item(out, 0)

        probes = [
            Probe(SIGN_FLIP, lambda: close(first(params, grads, lr), params[0] + lr * grads[0]),
                  "gradient descent steps against the gradient: p − η ∂ℒ/∂p (you climbed it)"),
            Probe(LR_NOT_APPLIED, lambda: close(first(params, grads, lr), params[0] - grads[0]),
                  "the step is the learning rate times the gradient"),
            Probe(PARAMETER_SKIPPED, lambda: _skipped(try_call(gradient_step, params, grads, lr), params, ref),
                  "every parameter gets its step: check the range of your loop over the parameters"),
        ]
        result = call(fb, gradient_step, params, grads, lr, name="gradient_step(params, grads, lr)", probes=probes)
        if result is None:
            fb.fail("wrong type", "gradient_step returned None", hint="return the list of updated parameters")
        if not isinstance(result, (list, tuple)) or len(result) != len(params):
            probe = diagnose(probes)
            fb.fail("wrong type", f"gradient_step returned {shape_of(result)} where a list of {len(params)} arrays, "
                                  "one per parameter, was expected",
                    likely=probe.bug if probe else None, hint=probe.hint if probe else None)
        for i, (got, want) in enumerate(zip(result, ref)):
            check_array(fb, f"updated parameter {i} (lr={lr})", got, want, probes=probes)
    fb.passed("the update matches nnkit.optim.SGD")


# =============================================================================================
# Problem set 3: backpropagation, the δ recursion
# =============================================================================================
def ref_mlp_forward(X, Ws, bs):
    """Sigmoid MLP with nnkit; returns (Zs, As) with As[0] = X, Zs[ℓ−1] = z^ℓ, As[ℓ] = a^ℓ."""
    nk = _nk()
    Zs, As = [], [np.asarray(X, dtype=float)]
    for W, b in zip(Ws, bs):
        Z = _linear(W, b)(As[-1])
        Zs.append(Z)
        As.append(nk.Sigmoid()(Z))
    return Zs, As


def ref_mlp_backward(X, Y, Ws, bs):
    """nnkit's Sequential of Linear/Sigmoid with the (1/N)Σ‖·‖² loss: (deltas, dWs, dbs)."""
    nk = _nk()
    layers = []
    for W, b in zip(Ws, bs):
        layers += [_linear(W, b), nk.Sigmoid()]
    model = nk.Sequential(*layers)
    out = model(np.asarray(X, dtype=float))
    model.backward(ref_mse_grad(out, np.asarray(Y, dtype=float)))
    linears = [m for m in model if isinstance(m, nk.Linear)]
    deltas = [m.delta.copy() for m in linears]  # the upstream gradient of Linear ℓ is δ^ℓ = ∂ℒ/∂z^ℓ
    return deltas, [m.weight.grad.copy() for m in linears], [m.bias.grad.copy() for m in linears]


def ref_delta_output(A_L, Z_L, Y):
    return ref_mse_grad(A_L, Y) * ref_sigmoid_prime(Z_L)


def ref_delta_hidden(delta_next, W_next, Z):
    return (delta_next @ W_next) * ref_sigmoid_prime(Z)


def ref_param_grads(delta, A_prev):
    return delta.T @ A_prev, delta.sum(axis=0)


_PS3_REFS = dict(sigmoid=ref_sigmoid, sigmoid_prime=ref_sigmoid_prime, mse_grad=ref_mse_grad,
                 delta_output=ref_delta_output, delta_hidden=ref_delta_hidden, param_grads=ref_param_grads)


def check_delta_output(delta_output: Callable, *, hidden: bool = False) -> None:
    """δ^L = ∂ℒ/∂a^L ⊙ σ′(z^L) = (2/N)(a^L − y) ⊙ σ′(z^L)."""
    fb = Feedback("delta_output", hidden=hidden)
    rng = seeded(301)
    sizes = [(4, 3)] + ([(6, 2), (3, 5), (1, 3)] if hidden else [])
    with reference_bindings(delta_output, **_PS3_REFS):
        for n, d in sizes:
            Z = rng.normal(scale=2.0, size=(n, d))
            A, Y = ref_sigmoid(Z), rng.uniform(size=(n, d))
            ref = ref_delta_output(A, Z, Y)
            probes = [
                Probe(MISSING_FPRIME, lambda: close(try_call(delta_output, A, Z, Y), ref_mse_grad(A, Y)),
                      "δ^L = ∂ℒ/∂a^L ⊙ σ′(z^L): multiply by σ′(z^L)"),
                _scale_dropped_probe(lambda Z_, Y_: try_call(delta_output, ref_sigmoid(Z_), Z_, Y_),
                                     lambda Z_, Y_: (ref_sigmoid(Z_) - Y_) * ref_sigmoid_prime(Z_)),
                Probe(MEAN_OVER_OUTPUTS, lambda: close(try_call(delta_output, A, Z, Y), ref / d),
                      "the loss sums over the outputs and averages over the N examples only"),
                Probe(SIGMA_FOR_FPRIME, lambda: close(try_call(delta_output, A, Z, Y), ref_mse_grad(A, Y) * A),
                      "the factor is the derivative σ′(z^L) = σ(z^L)(1 − σ(z^L)), not σ(z^L)"),
                Probe(FPRIME_AT_A, lambda: close(try_call(delta_output, A, Z, Y),
                                                 ref_mse_grad(A, Y) * ref_sigmoid_prime(A)),
                      "σ′ takes the pre-activation: σ′(z^L), not σ′(a^L) (a^L = σ(z^L) is already applied)"),
                Probe(MATMUL_FOR_HADAMARD, lambda: _any_close(try_call(delta_output, A, Z, Y), [
                    ref_mse_grad(A, Y) @ ref_sigmoid_prime(Z).T, ref_mse_grad(A, Y).T @ ref_sigmoid_prime(Z)]),
                      "∂ℒ/∂a^L and σ′(z^L) are multiplied entry by entry (*), not as matrices (@)"),
            ]
            got = call(fb, delta_output, A, Z, Y, name="delta_output(A_L, Z_L, Y)", probes=probes)
            check_array(fb, f"δ^L for N={n}, {d} outputs", got, ref, probes=probes, batch_size=n,
                        shape_hint="one row per example, like z^L")
        if hidden:
            Z = rng.normal(size=(5, 3))
            Y = rng.uniform(size=(5, 3))

            def torch_delta(Z, Y):
                (((Z.sigmoid() - Y) ** 2).sum(dim=1).mean()).backward()
                return Z.grad

            check_against_torch(fb, "delta_output", lambda Z, Y: delta_output(ref_sigmoid(Z), Z, Y), torch_delta,
                                [Z, Y], requires_grad=True, batch_size=5)
    fb.passed("δ^L matches nnkit")


def check_delta_hidden(delta_hidden: Callable, *, hidden: bool = False) -> None:
    """δ^ℓ = (δ^{ℓ+1} W^{ℓ+1}) ⊙ σ′(z^ℓ) for a batch of rows."""
    fb = Feedback("delta_hidden", hidden=hidden)
    rng = seeded(302)
    sizes = [(4, 3, 2)] + ([(5, 4, 3), (2, 6, 6), (1, 3, 4)] if hidden else [])  # N, d_ℓ, d_{ℓ+1}
    with reference_bindings(delta_hidden, **_PS3_REFS):
        for n, d, d_next in sizes:
            delta_next = rng.normal(size=(n, d_next))
            W_next = rng.normal(size=(d_next, d))
            Z = rng.normal(size=(n, d))
            ref = ref_delta_hidden(delta_next, W_next, Z)
            run = lambda W=W_next: try_call(delta_hidden, delta_next, W, Z)  # noqa: E731
            probes = [
                Probe(TRANSPOSED_W, lambda: close(run(np.ascontiguousarray(W_next.T)), ref)
                      or (d == d_next and close(run(), (delta_next @ W_next.T) * ref_sigmoid_prime(Z))),
                      "with examples as rows, δ^ℓ = (δ^{ℓ+1} @ W^{ℓ+1}) ⊙ σ′(z^ℓ); W^{ℓ+1} has shape (d_{ℓ+1}, d_ℓ)"),
                Probe(MISSING_FPRIME, lambda: close(run(), delta_next @ W_next),
                      "multiply by σ′(z^ℓ) after carrying δ^{ℓ+1} back through W^{ℓ+1}"),
                Probe(SIGMA_FOR_FPRIME, lambda: close(run(), (delta_next @ W_next) * ref_sigmoid(Z)),
                      "the factor is the derivative σ′(z^ℓ) = σ(z^ℓ)(1 − σ(z^ℓ))"),
                Probe(MATMUL_FOR_HADAMARD, lambda: _any_close(run(), [(delta_next @ W_next) @ ref_sigmoid_prime(Z).T,
                                                                      (delta_next @ W_next).T @ ref_sigmoid_prime(Z)]),
                      "δ^{ℓ+1} W^{ℓ+1} and σ′(z^ℓ) are multiplied entry by entry (*), not as matrices (@)"),
            ]
            got = call(fb, delta_hidden, delta_next, W_next, Z, name="delta_hidden(delta_next, W_next, Z)",
                       probes=probes)
            check_array(fb, f"δ^ℓ (δ^ℓ⁺¹ {delta_next.shape}, W^ℓ⁺¹ {W_next.shape}, z^ℓ {Z.shape})", got, ref,
                        probes=probes, shape_hint="δ^ℓ has the shape of z^ℓ", batch_size=n)
    fb.passed("δ^ℓ matches nnkit")


def check_param_grads(param_grads: Callable, *, hidden: bool = False) -> None:
    """∂ℒ/∂W^ℓ = (δ^ℓ)ᵀ A^{ℓ−1} and ∂ℒ/∂b^ℓ = Σ_rows δ^ℓ for a batch (δ already carries the 1/N)."""
    fb = Feedback("param_grads", hidden=hidden)
    rng = seeded(303)
    sizes = [(4, 3, 2)] + ([(6, 5, 3), (3, 2, 4), (1, 4, 3)] if hidden else [])  # N, d_{ℓ−1}, d_ℓ
    with reference_bindings(param_grads, **_PS3_REFS):
        for n, d_prev, d in sizes:
            delta, A_prev = rng.normal(size=(n, d)), rng.uniform(size=(n, d_prev))
            dW, db = ref_param_grads(delta, A_prev)
            result = call(fb, param_grads, delta, A_prev, name="param_grads(delta, A_prev)")
            if not isinstance(result, (tuple, list)) or len(result) != 2:
                fb.fail("wrong type", "param_grads must return the tuple (dW, db)")
            probes_b = _db_probes(lambda D, A: _item(try_call(param_grads, D, A), 1), lambda D: D, "∂ℒ/∂b^ℓ")
            check_array(fb, f"dW (δ {delta.shape}, A_prev {A_prev.shape})", result[0], dW, batch_size=n,
                        shape_hint="dW has the shape of W, (d_ℓ, d_ℓ₋₁)")
            check_array(fb, f"db (δ {delta.shape})", result[1], db, batch_size=n, probes=probes_b,
                        shape_hint="db has the shape of b, (d_ℓ,)")
    fb.passed("dW and db match nnkit's Linear.backward")


def _mlp_case(seed: int, n: int, sizes: Sequence[int]):
    rng = seeded(seed)
    X, Ws, bs = _network(rng, n=n, sizes=tuple(sizes))
    Y = rng.uniform(size=(n, sizes[-1]))
    return X, Y, Ws, bs


def _buggy_backward(X, Y, Ws, bs, bug: str):
    """The (deltas, dWs) a known-wrong backward pass produces, to recognise it."""
    Zs, As = ref_mlp_forward(X, Ws, bs)
    L = len(Ws)
    deltas = [None] * L
    deltas[-1] = ref_delta_output(As[-1], Zs[-1], Y)
    for ell in range(L - 2, -1, -1):
        if bug == TRANSPOSED_W:
            deltas[ell] = (deltas[ell + 1] @ Ws[ell + 1].T) * ref_sigmoid_prime(Zs[ell])
        elif bug == MISSING_FPRIME:
            deltas[ell] = deltas[ell + 1] @ Ws[ell + 1]
        elif bug == FPRIME_AT_A:
            deltas[ell] = (deltas[ell + 1] @ Ws[ell + 1]) * ref_sigmoid_prime(As[ell + 1])
        elif bug == WRONG_LAYER_W:
            deltas[ell] = (deltas[ell + 1] @ Ws[ell]) * ref_sigmoid_prime(Zs[ell])
        else:
            deltas[ell] = ref_delta_hidden(deltas[ell + 1], Ws[ell + 1], Zs[ell])
    acts = As[1:] if bug == WRONG_ACTIVATIONS else As[:-1]
    return deltas, [d.T @ a for d, a in zip(deltas, acts)]


def _backward_probes(backward: Callable, seed: int) -> list[Probe]:
    """Probes on a network whose layers are all 3 wide, where the classic bugs run without error."""
    X, Y, Ws, bs = _mlp_case(seed, 4, (3, 3, 3, 3))

    def same(bug: str, part: int) -> bool:
        got = _item(try_call(backward, X, Y, Ws, bs), part)
        want = _buggy_backward(X, Y, Ws, bs, bug)[part]
        return got is not None and len(got) == len(want) and all(close(g, w) for g, w in zip(got, want))

    return [
        Probe(TRANSPOSED_W, lambda: same(TRANSPOSED_W, 0),
              "with examples as rows, δ^ℓ = (δ^{ℓ+1} @ W^{ℓ+1}) ⊙ σ′(z^ℓ); W^{ℓ+1} has shape (d_{ℓ+1}, d_ℓ)"),
        Probe(MISSING_FPRIME, lambda: same(MISSING_FPRIME, 0),
              "each hidden δ^ℓ needs the factor σ′(z^ℓ) after the product with W^{ℓ+1}"),
        Probe(WRONG_ACTIVATIONS, lambda: same(WRONG_ACTIVATIONS, 1),
              "∂ℒ/∂W^ℓ = (δ^ℓ)ᵀ a^{ℓ−1}: use the activations of the layer below, As[ℓ−1]"),
        Probe(FPRIME_AT_A, lambda: same(FPRIME_AT_A, 0),
              "σ′ takes the pre-activation of the layer: σ′(z^ℓ) = σ′(Zs[ℓ−1]), not σ′ of its activation"),
        Probe(WRONG_LAYER_W, lambda: same(WRONG_LAYER_W, 0),
              "δ^ℓ is carried back through the weights of the layer above: W^{ℓ+1} = Ws[ℓ] in Python's 0-based list"),
        Probe(LAYER_SKIPPED, lambda: _first_layer_skipped(_item(try_call(backward, X, Y, Ws, bs), 0),
                                                          ref_mlp_backward(X, Y, Ws, bs)[0]),
              "δ¹ was never computed while the layers above are right: the loop over the layers must run "
              "down to the first layer (range(L − 2, −1, −1) for 0-based lists)"),
    ]


def _first_layer_skipped(got, want) -> bool:
    """The first layer's δ missing (None or zeros) and every layer above it right."""
    if isinstance(got, (list, tuple)) and len(got) == len(want) - 1 >= 1:  # the list starts at δ²
        return all(close(g, w) for g, w in zip(got, want[1:]))
    if not isinstance(got, (list, tuple)) or len(got) != len(want) or len(want) < 2:
        return False
    first = got[0]
    return (first is None or (np.shape(first) == np.shape(want[0]) and not np.any(first))) and \
        all(close(g, w) for g, w in zip(got[1:], want[1:]))


def check_backward(backward: Callable, *, hidden: bool = False) -> None:
    """backward(X, Y, Ws, bs) → (deltas, dWs, dbs) of a sigmoid MLP, checked layer by layer."""
    fb = Feedback("backward", hidden=hidden)
    cases = [_mlp_case(310, 4, (3, 5, 4, 2))]
    if hidden:
        cases += [_mlp_case(311, 6, (4, 3, 3, 3, 2)), _mlp_case(312, 3, (2, 6, 1))]
    with reference_bindings(backward, **_PS3_REFS):
        probes = _backward_probes(backward, 313)
        for X, Y, Ws, bs in cases:
            deltas, dWs, dbs = ref_mlp_backward(X, Y, Ws, bs)
            n = X.shape[0]
            result = call(fb, backward, X, Y, Ws, bs, name="backward(X, Y, Ws, bs)", probes=probes)
            if not isinstance(result, (tuple, list)) or len(result) != 3:
                fb.fail("wrong type", "backward must return the tuple (deltas, dWs, dbs) of three lists")
            got_deltas, got_dWs, got_dbs = result
            check_layers(fb, "δ", got_deltas, deltas, probes=probes, batch_size=n)
            check_layers(fb, "∂ℒ/∂W", got_dWs, dWs, probes=probes, batch_size=n)
            check_layers(fb, "∂ℒ/∂b", got_dbs, dbs, probes=probes, batch_size=n)
        if hidden:
            X, Y, Ws, bs = cases[1]

            def loss_of(W0):
                _, As = ref_mlp_forward(X, [W0] + Ws[1:], bs)
                return mse_loss(As[-1], Y)

            got = call(fb, backward, X, Y, Ws, bs, name="backward(X, Y, Ws, bs)")[1][0]
            numeric = numerical_gradient(loss_of, Ws[0].copy())
            err = relative_error(got, numeric)
            if err > 1e-6:
                fb.fail("gradient check failed", "∂ℒ/∂W¹ differs from central differences by more than the "
                                                 "tolerance, 1e-6 relative (nk.gradcheck.relative_error)")

            def torch_backward(X, Y, *params):
                h, L = X, len(params) // 2
                for ell in range(L):
                    h = (h @ params[ell].T + params[L + ell]).sigmoid()
                ((h - Y) ** 2).sum(dim=1).mean().backward()
                return tuple(p.grad for p in params)

            def student_grads(X, Y, *params):
                L = len(params) // 2
                _, dW, db = backward(X, Y, list(params[:L]), list(params[L:]))
                return tuple(dW) + tuple(db)

            check_against_torch(fb, "backward: ∂ℒ/∂W and ∂ℒ/∂b", student_grads, torch_backward,
                                [X, Y, *Ws, *bs], requires_grad=True, batch_size=X.shape[0])
    fb.passed("every δ^ℓ, ∂ℒ/∂W^ℓ and ∂ℒ/∂b^ℓ matches nnkit")


def check_numerical_gradient(numerical_gradient_fn: Callable, *, hidden: bool = False) -> None:
    """numerical_gradient(f, x, eps) by central differences; x must be left as it was."""
    fb = Feedback("numerical_gradient", hidden=hidden)
    rng = seeded(320)
    A = rng.normal(size=(3, 3))

    def f(x):
        return float(np.sum(np.tanh(A @ x.reshape(3, -1))) + np.sum(x ** 3))

    shapes = [(3,)] + ([(3, 2), (6,)] if hidden else [])
    for shape in shapes:
        x = rng.normal(size=shape)
        x_before = x.copy()
        eps = 1e-5
        ref = numerical_gradient(f, x.copy(), eps)
        exact_x = x.copy()

        def forward_difference():
            out = np.zeros_like(exact_x)
            flat = exact_x.reshape(-1)
            f0 = f(exact_x)
            for i in range(flat.size):
                old = flat[i]
                flat[i] = old + eps
                out.reshape(-1)[i] = (f(exact_x) - f0) / eps
                flat[i] = old
            return out

        probes = [Probe(ONE_SIDED, lambda: close(try_call(numerical_gradient_fn, f, x.copy(), eps),
                                                 forward_difference(), rtol=1e-9, atol=1e-12),
                        "(f(x + ε) − f(x − ε)) / 2ε is accurate to O(ε²); (f(x + ε) − f(x)) / ε only to O(ε)"),
                  Probe(ROWS_ONLY, lambda: x.ndim > 1 and close(try_call(numerical_gradient_fn, f, x.copy(), eps),
                                                                _rows_perturbed(f, x.copy(), eps)),
                        "x[i] of a 2-D x is a whole row: loop over every entry, e.g. for i in np.ndindex(x.shape)")]
        # the question changes x in place and must put it back: checked below, with its own message
        got = call(fb, numerical_gradient_fn, f, x, eps, name="numerical_gradient(f, x, eps)", copy_inputs=False,
                   may_modify=["x"])
        if not np.array_equal(x, x_before):
            fb.fail(INPUT_NOT_RESTORED, f"numerical_gradient changed x (shape {shape}) and left it changed",
                    hint="put each x[i] back after evaluating f(x + ε e_i) and f(x − ε e_i)")
        check_array(fb, f"numerical_gradient for x of shape {shape}", got, ref, rtol=1e-6, atol=1e-9,
                    probes=probes, shape_hint="the gradient has the shape of x")
    if hidden:  # a large step, where the O(ε²) error of central differences shows: the answer must use eps
        x, big = rng.normal(size=(6,)), 0.1
        probes = [Probe(IGNORES_EPS, lambda: close(try_call(numerical_gradient_fn, f, x.copy(), big),
                                                   try_call(numerical_gradient_fn, f, x.copy(), 1e-5),
                                                   rtol=1e-12, atol=1e-14),
                        "your result is the same for eps = 0.1 and eps = 1e-5: use the eps argument as the step")]
        got = call(fb, numerical_gradient_fn, f, x.copy(), big, name="numerical_gradient(f, x, eps)",
                   may_modify=["x"])
        check_array(fb, "numerical_gradient with eps = 0.1 (central differences with that step)", got,
                    numerical_gradient(f, x.copy(), big), rtol=1e-6, atol=1e-9, probes=probes)
    fb.passed("central differences match nnkit's")


def _rows_perturbed(f: Callable, x: np.ndarray, eps: float) -> np.ndarray:
    """What a loop over ``range(len(x))`` computes for a 2-D x: each row moved as a whole."""
    grad = np.zeros_like(x)
    for i in range(len(x)):
        old = x[i].copy()
        x[i] = old + eps
        plus = f(x)
        x[i] = old - eps
        minus = f(x)
        x[i] = old
        grad[i] = (plus - minus) / (2 * eps)
    return grad


TRAIN_SETTINGS = dict(hidden_units=32, lr=2.0, batch_size=20, seed=330)
TRAIN_ACCURACY = 0.85


def check_train(train: Callable, *, hidden: bool = False) -> None:
    """train(X, Y, Ws, bs, lr, epochs, batch_size, rng) → (Ws, bs, losses) learns the digits.

    ``backward`` is bound to nnkit's reference while this runs, so only the loop is graded:
    each epoch visits every training example once, in minibatches, in a new random order; the
    parameters move against the gradient; ``losses`` holds the training loss after each epoch;
    and the trained network classifies held-out digits well.
    """
    fb = Feedback("train", hidden=hidden)
    X, y, X_test, y_test = digits_split()
    n_train, epochs = (1200, 4) if hidden else (600, 6)  # accuracy ≈ 94 % and 91 % for a correct loop
    X, y = X[:n_train], y[:n_train]
    Y = np.eye(10)[y]
    seen: list[np.ndarray] = []

    def counted_backward(Xb, Yb, Ws, bs):
        seen.append(np.array(Xb, copy=True))
        return ref_mlp_backward(Xb, Yb, Ws, bs)

    cfg = TRAIN_SETTINGS
    _, Ws, bs = _network(seeded(cfg["seed"]), n=1, sizes=(X.shape[1], cfg["hidden_units"], 10), scale=0.3)
    Ws0 = [W.copy() for W in Ws]
    batch_size, lr = cfg["batch_size"], cfg["lr"]
    with reference_bindings(train, backward=Here(counted_backward), forward_mlp=ref_mlp_forward, **_PS3_REFS):
        result = call(fb, train, X, Y, Ws, bs, lr, epochs, batch_size, seeded(cfg["seed"] + 1),
                      name="train(X, Y, Ws, bs, lr, epochs, batch_size, rng)")
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        fb.fail("wrong type", "train must return the tuple (Ws, bs, losses)")
    Ws_t, bs_t, losses = result
    per_epoch = -(-X.shape[0] // batch_size)
    if len(seen) != epochs * per_epoch:
        fb.fail(NOT_EVERY_BATCH, f"backward was called {len(seen)} times for {epochs} epochs of {X.shape[0]} "
                                 f"examples in minibatches of {batch_size}; expected {epochs * per_epoch}",
                hint="each epoch visits every minibatch exactly once")
    key = np.lexsort(X.T[::-1])
    for e in range(epochs):
        rows = np.concatenate(seen[e * per_epoch:(e + 1) * per_epoch])
        if rows.shape != X.shape or not np.array_equal(rows[np.lexsort(rows.T[::-1])], X[key]):
            fb.fail(NOT_EVERY_BATCH, f"in epoch {e + 1} the minibatches do not cover every training example "
                                     "exactly once", hint="split a permutation of range(N) into consecutive slices")
    first = np.concatenate(seen[:per_epoch])
    second = np.concatenate(seen[per_epoch:2 * per_epoch]) if epochs > 1 else first
    if np.array_equal(first, X) or np.array_equal(first, second):
        fb.fail(NOT_SHUFFLED, "the minibatches come in the same order every epoch",
                hint="draw a new order with rng.permutation(N) at the start of each epoch")
    losses = as_array(fb, "losses", losses)
    if losses.shape != (epochs,):
        per_batch = losses.shape == (epochs * per_epoch,)
        fb.fail("wrong shape", f"losses should hold one training loss per epoch, shape ({epochs},), "
                               f"got {tuple(losses.shape)}" + (f": {per_epoch} per epoch, one per minibatch"
                                                                if per_batch else ""),
                likely=LOSS_PER_BATCH if per_batch else None,
                hint="append the loss of the whole training set once, after each epoch's minibatches")
    if all(np.array_equal(np.asarray(a), b) for a, b in zip(Ws_t, Ws0)):
        fb.fail("parameters unchanged", "train returned the initial weights",
                hint="update every W and b after each minibatch and return them")
    _, As = ref_mlp_forward(X, list(Ws_t), list(bs_t))
    final = mse_loss(As[-1], Y)
    if not np.all(np.isfinite(losses)) or not losses[-1] < losses[0]:
        went_up = bool(np.all(np.isfinite(losses)) and losses[-1] > losses[0])
        fb.fail("training did not reduce the loss", f"the loss per epoch went from {losses[0]:.3g} to "
                                                    f"{losses[-1]:.3g}", likely=SIGN_FLIP if went_up else None,
                hint="update with p − lr·∂ℒ/∂p" if went_up else "check the update of every W and b")
    if not np.isclose(losses[-1], final, rtol=1e-6):
        fb.fail("wrong values", f"losses[-1] = {losses[-1]:.6g} is not the training loss of the returned "
                                f"parameters ({final:.6g})",
                hint="after each epoch append mse_loss(forward_mlp(X, Ws, bs)[1][-1], Y)")
    # the order comes from the generator train is given, and from nothing else
    X_small, Y_small = X[:60], Y[:60]

    def one_epoch(seed):
        with reference_bindings(train, backward=ref_mlp_backward, forward_mlp=ref_mlp_forward, **_PS3_REFS):
            out = call(fb, train, X_small, Y_small, Ws0, [b.copy() for b in bs], lr, 1, batch_size, seeded(seed),
                       name="train(X, Y, Ws, bs, lr, epochs, batch_size, rng)")
        return [list(out[0]), list(out[1])] if isinstance(out, (tuple, list)) and len(out) == 3 else out

    check_uses_generator(fb, "train(..., rng) for one epoch from the same start", one_epoch, (331, 332),
                         differ="the order of the examples, and so the trained weights,")
    _, As = ref_mlp_forward(X_test, list(Ws_t), list(bs_t))
    acc = float(np.mean(As[-1].argmax(axis=1) == y_test))
    if acc < TRAIN_ACCURACY:
        fb.fail("low accuracy", f"the trained network classifies {acc:.1%} of the held-out digits correctly; "
                                f"a correct loop reaches at least {TRAIN_ACCURACY:.0%} with these settings")
    fb.passed(f"held-out accuracy {acc:.1%} after {epochs} epochs")


def digits_split(seed: int = 332, n_train: int = 1200):
    """The shipped digits (pixels in [0, 1]) shuffled with a fixed seed: (X_train, y_train, X_test, y_test)."""
    X, y = _nk().data.load_digits()
    order = seeded(seed).permutation(len(X))
    X, y = X[order], y[order]
    return X[:n_train], y[:n_train], X[n_train:], y[n_train:]


__all__ = [
    "check_backward", "check_delta_hidden", "check_delta_output", "check_forward", "check_gradient_step",
    "check_mse_grad", "check_numerical_gradient", "check_output_layer_grads", "check_param_grads",
    "check_sigmoid", "check_sigmoid_prime", "check_train", "digits_split", "mse_loss", "ref_mlp_backward",
    "ref_mlp_forward",
]
