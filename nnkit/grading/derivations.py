"""Checks for problem set 7, *deriving backward passes*: pieces nnkit does not ship.

======================= ====================================================== ===============================
question (grade_id)     what the student writes                                reference
======================= ====================================================== ===============================
``batchnorm_forward``   batch norm on (N, D), training and evaluation mode,    numpy here, ``F.batch_norm``
                        running statistics with PyTorch's momentum
``batchnorm_backward``  (dx, dγ, dβ) of batch norm in training mode            central differences, autograd
``silu_prime``          SiLU′(z) for SiLU(z) = z·σ(z) (swish)                  central differences, ``F.silu``
``huber_loss``          mean Huber loss and its gradient ∂ℒ/∂z                 central differences,
                                                                               ``F.huber_loss``
``conv_input_grad``     ∂ℒ/∂x of conv2d as a full correlation of the dilated   ``nk.functional`` conv backward,
                        δ with the flipped kernel, any stride and padding      ``conv2d`` autograd
``predict_scales``      the RMS of z^ℓ and δ^ℓ through depth for weights of    a large random network
                        std gain/√fan_in (ReLU or linear)
``measure_scales``      the same, measured on given weights and inputs         numpy here, torch autograd
======================= ====================================================== ===============================

None of these pieces is in nnkit, so no reference can be called: every answer is numpy only
(``MAY_USE``). The references are written here, beside their checks, and every one of them is
itself compared with PyTorch in ``tests/test_grading_derivations.py``.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .core import (
    BATCH_FACTOR,
    MISSING_FPRIME,
    SIGN_FLIP,
    TRANSPOSED_W,
    UNSTABLE,
    WRONG_SHAPE,
    WRONG_TYPE,
    Feedback,
    Probe,
    call,
    check_against_torch,
    check_array,
    close,
    numerical_gradient,
    seeded,
    try_call,
)

__all__ = [
    "MAY_USE", "check_batchnorm_forward", "check_batchnorm_backward", "check_silu_prime", "check_huber_loss",
    "check_conv_input_grad", "check_predict_scales", "check_measure_scales",
    "batchnorm_reference", "batchnorm_backward_reference", "silu_prime_reference", "huber_reference",
    "predict_scales_reference", "measure_scales_reference",
]

#: What an answer may call from nnkit or PyTorch, per check (dotted prefixes): nothing, numpy only.
MAY_USE: dict[str, tuple[str, ...]] = {
    "check_batchnorm_forward": (),
    "check_batchnorm_backward": (),
    "check_silu_prime": (),
    "check_huber_loss": (),
    "check_conv_input_grad": (),
    "check_predict_scales": (),
    "check_measure_scales": (),
}

# --- bug classes (mutation tables match on these phrases) -------------------------------------
BIASED_RUNNING_VAR = "biased variance in the running estimate"
MOMENTUM_REVERSED = "momentum convention reversed"
BATCH_STATS_IN_EVAL = "batch statistics in evaluation mode"
RUNNING_UPDATED_IN_EVAL = "running statistics updated in evaluation mode"
UNBIASED_NORMALISATION = "unbiased variance in the normalisation"
STATS_AS_CONSTANTS = "batch mean and variance treated as constants"
VARIANCE_AS_CONSTANT = "batch variance treated as a constant"
DGAMMA_WITHOUT_XHAT = "dγ without the normalised input"
FUNCTION_NOT_DERIVATIVE = "the function instead of its derivative"
PRODUCT_RULE = "product rule: a term is missing"
QUADRATIC_EVERYWHERE = "quadratic branch used everywhere"
DELTA_IGNORED = "delta ignored in the linear branch"
KERNEL_NOT_FLIPPED = "kernel not flipped"
CHANNELS_NOT_SWAPPED = "filter and channel axes not swapped"
PADDING_NOT_CROPPED = "padding not cropped"
STRIDE_NOT_DILATED = "stride not handled (δ not dilated)"
RELU_HALF_MISSING = "ReLU's factor ½ missing"
FAN_IN_FOR_DELTA = "fan-in used for δ (the backward pass sums over fan-out)"
STD_NOT_RMS = "standard deviation instead of root mean square"
EPS_OUTSIDE_SQRT = "eps outside the square root"
EPS_MISSING = "eps missing"
STATS_OVER_FEATURES = "statistics over the features instead of the batch"
DX_WITHOUT_GAMMA = "dx without γ"
PARAM_GRADS_NOT_SUMMED = "dγ and dβ not summed over the batch"
SIGMOID_PRIME = "σ′ instead of SiLU′"
LINEAR_OFFSET = "wrong constant in the linear branch"
BRANCHES_SWAPPED = "branches swapped"
LINEAR_SIGN_MISSING = "sign of r missing in the linear branch"
MEAN_OVER_ROWS = "mean over the first axis only"
THRESHOLD_GAP = "|r| = delta in neither branch"
CROP_ONE_SIDE = "padding cut from one side only"
EMPTY_CROP = "padding cropped with [p:-p], which is empty for padding 0"
FULL_PAD_WRONG = "δ padded by k instead of k − 1"
UNCOVERED_ROWS = "dilated δ too short: uncovered rows left out"
SQRT_MISSING = "variances instead of RMS (square root missing)"
FAN_OUT_FOR_Z = "fan-out used for z (the forward pass sums over fan-in)"
FPRIME_WRONG_LAYER = "f′ of the wrong layer"
A_NOT_Z = "activations measured instead of z"

#: central differences (ε = 1e-6, float64) are accurate to about 1e-9; compared with this tolerance
NUM_RTOL, NUM_ATOL = 1e-5, 1e-7


def _parts(fb: Feedback, label: str, result, n: int, what: str) -> tuple:
    __tracebackhide__ = True
    if not isinstance(result, (tuple, list)) or len(result) != n:
        fb.fail(WRONG_TYPE, f"{label} must return {what}, got {type(result).__name__}"
                + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""))
    return tuple(result)


def _part(fn: Callable, args: tuple, i: int, n: int):
    """The i-th of the n results of fn(*args), or None (for probes)."""
    r = try_call(fn, *args)
    return r[i] if isinstance(r, (tuple, list)) and len(r) == n else None


# ============================================================================================
# Batch normalisation
# ============================================================================================
def batchnorm_reference(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5, *,
                        unbiased_running=True, reversed_momentum=False, unbiased_norm=False):
    """PyTorch's BatchNorm1d on (N, D): (out, new running mean, new running variance).

    Training: normalise with the batch mean and the *biased* batch variance; update
    r ← (1 − momentum)·r + momentum·(batch statistic), the variance estimate unbiased (N/(N − 1)).
    Evaluation: normalise with the running statistics, which stay as they are.
    The keyword flags build the classic wrong versions (for the probes).
    """
    x = np.asarray(x, dtype=float)
    if not training:
        return gamma * (x - running_mean) / np.sqrt(running_var + eps) + beta, running_mean, running_var
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    var_norm = var * n / (n - 1) if unbiased_norm else var
    out = gamma * (x - mu) / np.sqrt(var_norm + eps) + beta
    with np.errstate(divide="ignore", invalid="ignore"):  # N = 1: no unbiased estimate (PyTorch refuses it)
        var_run = var * n / (n - 1) if unbiased_running else var
    m = 1.0 - momentum if reversed_momentum else momentum
    return out, (1 - m) * running_mean + m * mu, (1 - m) * running_var + m * var_run


def _torch_batchnorm(training, momentum, eps):
    def run(x, gamma, beta, rm, rv):
        import torch  # noqa: PLC0415

        out = torch.nn.functional.batch_norm(x, rm, rv, gamma, beta, training=training, momentum=momentum, eps=eps)
        return out, rm, rv  # batch_norm updates rm and rv in place

    return run


def _bn_forward_cases(hidden: bool):
    rng = seeded(171 if not hidden else 172)
    shapes = [(8, 3), (5, 4)] if not hidden else [(16, 5), (2, 3), (32, 1), (7, 6)]
    cases = []
    for k, (n, d) in enumerate(shapes):
        x = rng.normal(1.5, 2.0, (n, d))
        gamma, beta = rng.normal(1, 0.5, d), rng.normal(0, 1, d)
        rm, rv = rng.normal(0, 1, d), rng.uniform(0.5, 2.0, d)
        momentum = (0.1, 0.3, 0.05, 0.5)[k % 4]
        eps = 1e-5 if k % 2 == 0 else 1e-3
        for training in (True, False):
            cases.append((x, gamma, beta, rm, rv, training, momentum, eps))
    return cases


def _bn_out_variant(x, gamma, beta, rm, rv, training, eps, how: str) -> np.ndarray:
    """The normalised output with a classic mistake: ``eps_outside`` √σ² + ε, ``no_eps``, ``features`` (the
    statistics of each example's row instead of each feature's column)."""
    x = np.asarray(x, dtype=float)
    mu, var = (rm, rv) if not training else (x.mean(axis=0), x.var(axis=0))
    if how == "features":
        mu, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
    if how == "eps_outside":
        return gamma * (x - mu) / (np.sqrt(var) + eps) + beta
    return gamma * (x - mu) / np.sqrt(var + (0.0 if how == "no_eps" else eps)) + beta


def _bn_out_probes(fn: Callable, args: tuple) -> list[Probe]:
    x, gamma, beta, rm, rv, training, momentum, eps = args

    def like(how):
        return lambda: close(_part(fn, args, 0, 3), _bn_out_variant(x, gamma, beta, rm, rv, training, eps, how))

    return [
        Probe(BATCH_STATS_IN_EVAL, lambda: not training and close(_part(fn, args, 0, 3), batchnorm_reference(
            x, gamma, beta, rm, rv, True, momentum, eps)[0]),
              "in evaluation mode normalise with the running mean and variance, not with the batch's own: "
              "at test time a prediction must not depend on the other examples of the batch"),
        Probe(UNBIASED_NORMALISATION, lambda: training and close(_part(fn, args, 0, 3), batchnorm_reference(
            x, gamma, beta, rm, rv, True, momentum, eps, unbiased_norm=True)[0]),
              "the normalisation uses the biased batch variance (divide by N), as PyTorch does; only the "
              "running estimate is unbiased"),
        Probe(EPS_OUTSIDE_SQRT, like("eps_outside"),
              "your output divides by √σ² + ε; the formula divides by √(σ² + ε): ε goes under the square root"),
        Probe(EPS_MISSING, like("no_eps"), "your output divides by √σ² without ε: x̂ = (x − μ)/√(σ² + ε)"),
        Probe(STATS_OVER_FEATURES, like("features"),
              "your output standardises each example (row) over its features; batch norm standardises each "
              "feature (column) over the examples of the batch: axis=0"),
    ]


_BN_ARGS = ("x", "gamma", "beta", "running_mean", "running_var", "training", "momentum", "eps")


def check_batchnorm_forward(batchnorm_forward: Callable, *, hidden: bool = False) -> None:
    """``batchnorm_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)``
    → (out, new_running_mean, new_running_var), PyTorch's BatchNorm1d semantics."""
    __tracebackhide__ = True
    fb = Feedback("batchnorm_forward", hidden=hidden)
    fn = batchnorm_forward
    for x, gamma, beta, rm, rv, training, momentum, eps in _bn_forward_cases(hidden):
        mode = "training" if training else "evaluation"
        label = (f"batchnorm_forward(x, ..., training={training}, momentum={momentum}, eps={eps:g}) for x {x.shape}"
                 if not hidden else f"batchnorm_forward(x, ..., training={training}, momentum, eps) for x {x.shape}")
        args = (x, gamma, beta, rm, rv, training, momentum, eps)
        result = _parts(fb, label, call(fb, fn, *args, name=label, arg_names=_BN_ARGS), 3,
                        "the triple (out, new running_mean, new running_var)")
        ref = batchnorm_reference(*args)

        def like(i, **flags):
            variant = batchnorm_reference(x, gamma, beta, rm, rv, True, momentum, eps, **flags)
            return lambda: close(_part(fn, args, i, 3), variant[i])

        probes_out = _bn_out_probes(fn, args)
        probes_run = [
            Probe(RUNNING_UPDATED_IN_EVAL, lambda: not training and _part(fn, args, 1, 3) is not None and (
                not close(_part(fn, args, 1, 3), rm) or not close(_part(fn, args, 2, 3), rv)),
                "in evaluation mode the running statistics are used, never updated: return them unchanged"),
            Probe(MOMENTUM_REVERSED, lambda: training and (like(1, reversed_momentum=True)()
                                                           or like(2, reversed_momentum=True)()),
                  "PyTorch's momentum is the weight of the *new* batch statistic: "
                  "running ← (1 − momentum)·running + momentum·batch"),
            Probe(BIASED_RUNNING_VAR, lambda: training and like(2, unbiased_running=False)(),
                  "the running variance is updated with the *unbiased* batch variance (divide by N − 1), as "
                  "PyTorch does, while the normalisation uses the biased one"),
        ]
        names = ("out", "the new running_mean", "the new running_var")
        hints = ("x's shape (N, D)", "one entry per feature (D,)", "one entry per feature (D,)")
        for i in range(3):
            check_array(fb, f"{names[i]} of {label} ({mode} mode)", result[i], ref[i],
                        probes=probes_out if i == 0 else probes_run, shape_hint=hints[i], relations=i == 0)

        def student(xx, g, b, m_, v_, training=training, momentum=momentum, eps=eps):
            return _parts(fb, label, fn(xx, g, b, m_, v_, training, momentum, eps), 3, "a triple")

        check_against_torch(fb, f"(out, running_mean, running_var) of {label}", student,
                            _torch_batchnorm(training, momentum, eps), [x, gamma, beta, rm, rv],
                            probes=probes_out + probes_run)
    fb.passed("training and evaluation mode, with PyTorch's running statistics")


def batchnorm_backward_reference(dout, x, gamma, eps=1e-5):
    """(dx, dγ, dβ) of out = γ·x̂ + β, x̂ = (x − μ)/√(σ² + ε), with μ and σ² the batch's own (training mode)."""
    n = x.shape[0]
    mu, var = x.mean(axis=0), x.var(axis=0)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv
    g = dout * gamma                                    # ∂ℒ/∂x̂
    dx = inv / n * (n * g - g.sum(axis=0) - xhat * (g * xhat).sum(axis=0))
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


def _bn_backward_unbiased(dout, x, gamma, eps):
    """dx of a batch norm that normalises by the unbiased variance (σ² · N/(N − 1))."""
    n = x.shape[0]
    c = n / (n - 1)
    inv = 1.0 / np.sqrt(c * x.var(axis=0) + eps)
    xhat = (x - x.mean(axis=0)) * inv
    g = dout * gamma
    return inv * (g - g.mean(axis=0) - c * xhat * (g * xhat).mean(axis=0))


def _torch_batchnorm_backward(eps):
    def run(dout, x, gamma, beta):
        import torch  # noqa: PLC0415

        out = torch.nn.functional.batch_norm(x, None, None, gamma, beta, training=True, eps=eps)
        (out * dout.detach()).sum().backward()
        return x.grad, gamma.grad, beta.grad

    return run


def check_batchnorm_backward(batchnorm_backward: Callable, *, hidden: bool = False) -> None:
    """``batchnorm_backward(dout, x, gamma, eps)`` → (dx, dgamma, dbeta), training mode."""
    __tracebackhide__ = True
    fb = Feedback("batchnorm_backward", hidden=hidden)
    fn = batchnorm_backward
    rng = seeded(173 if not hidden else 174)
    shapes = [(6, 3), (4, 2)] if not hidden else [(10, 4), (2, 3), (16, 1), (5, 7), (1, 3)]  # N = 1: dx = 0
    for k, (n, d) in enumerate(shapes):
        x = rng.normal(-1.0, 3.0, (n, d))
        gamma, beta = rng.normal(1, 0.5, d), rng.normal(0, 1, d)
        dout = rng.normal(0, 1, (n, d))
        eps = 1e-5 if k % 2 == 0 else 1e-2
        label = f"batchnorm_backward(dout, x, gamma, eps{'' if hidden else f'={eps:g}'}) for x {x.shape}"
        args = (dout, x, gamma, eps)
        result = _parts(fb, label, call(fb, fn, *args, name=label), 3, "the triple (dx, dgamma, dbeta)")
        dx, dgamma, dbeta = batchnorm_backward_reference(*args)
        inv = 1.0 / np.sqrt(x.var(axis=0) + eps)
        g = dout * gamma
        xhat = (x - x.mean(axis=0)) * inv
        dx_probes = [
            Probe(STATS_AS_CONSTANTS, lambda: close(_part(fn, args, 0, 3), g * inv),
                  "μ and σ² are computed from the batch, so every x_i also moves them: ∂ℒ/∂x_i has a direct term "
                  "and terms through μ and through σ² (differentiate x̂_j = (x_j − μ)/√(σ² + ε) with respect to x_i "
                  "for j = i and for j ≠ i)"),
            Probe(VARIANCE_AS_CONSTANT, lambda: close(_part(fn, args, 0, 3), inv * (g - g.mean(axis=0))),
                  "the path through μ is there, the path through σ² is missing: σ² depends on every x_i too"),
            Probe(DX_WITHOUT_GAMMA, lambda: close(_part(fn, args, 0, 3), batchnorm_backward_reference(
                dout, x, np.ones_like(gamma), eps)[0]),
                  "your dx is the right one for γ = 1: out = γ·x̂ + β, so ∂ℒ/∂x̂ = dout ⊙ γ before the paths "
                  "through μ and σ²"),
            Probe(UNBIASED_NORMALISATION, lambda: n > 1 and close(_part(fn, args, 0, 3), _bn_backward_unbiased(
                dout, x, gamma, eps)),
                  "your dx is that of a normalisation by the unbiased variance (N − 1); the layer divides by N"),
        ]
        not_summed = [
            Probe(PARAM_GRADS_NOT_SUMMED, lambda: n > 1 and (close(_part(fn, args, 1, 3), dout * xhat)
                                                            or close(_part(fn, args, 2, 3), dout)),
                  "γ and β are shared by every example: their gradients sum the per-example terms over the batch, "
                  "one entry per feature (axis=0)"),
        ]
        dgamma_probes = not_summed + [
            Probe(DGAMMA_WITHOUT_XHAT, lambda: close(_part(fn, args, 1, 3), dout.sum(axis=0)),
                  "out = γ·x̂ + β, so ∂out/∂γ is x̂, not 1: sum dout ⊙ x̂ over the batch"),
            Probe(DGAMMA_WITHOUT_XHAT, lambda: close(_part(fn, args, 1, 3), (dout * x).sum(axis=0)),
                  "γ multiplies the *normalised* input x̂, not x"),
        ]
        names, refs = ("dx", "dgamma", "dbeta"), (dx, dgamma, dbeta)
        hints = ("x's shape (N, D)", "γ's shape (D,): sum over the batch", "β's shape (D,): sum over the batch")
        for got, ref, probes, name, hint in zip(result, refs, (dx_probes, dgamma_probes, not_summed), names, hints):
            check_array(fb, f"{name} from {label}", got, ref, probes=probes, shape_hint=hint, batch_size=n)
        if x.size <= 40:  # by central differences of Σ dout ⊙ batchnorm(x)
            def objective_x(xx, dout=dout, gamma=gamma, beta=beta, eps=eps):
                return float(np.sum(dout * batchnorm_reference(xx, gamma, beta, 0.0, 1.0, True, 0.1, eps)[0]))

            def objective_g(gg, dout=dout, x=x, beta=beta, eps=eps):
                return float(np.sum(dout * batchnorm_reference(x, gg, beta, 0.0, 1.0, True, 0.1, eps)[0]))

            check_array(fb, f"dx from {label} against central differences of Σ dout ⊙ out", result[0],
                        numerical_gradient(objective_x, x.copy()), rtol=NUM_RTOL, atol=NUM_ATOL, probes=dx_probes)
            check_array(fb, f"dgamma from {label} against central differences of Σ dout ⊙ out", result[1],
                        numerical_gradient(objective_g, gamma.copy()), rtol=NUM_RTOL, atol=NUM_ATOL,
                        probes=dgamma_probes)

        def student(dd, xx, gg, bb, eps=eps):
            return _parts(fb, label, fn(dd, xx, gg, eps), 3, "a triple")

        if n == 1:  # PyTorch refuses a batch of one in training mode
            continue
        check_against_torch(fb, f"(dx, dgamma, dbeta) from {label}", student, _torch_batchnorm_backward(eps),
                            [dout, x, gamma, beta], requires_grad=True, probes=dx_probes + dgamma_probes,
                            tolerances={"cuda": (1e-3, 1e-4)})
    fb.passed("dx, dγ and dβ against central differences and torch.autograd")


# ============================================================================================
# A new activation: SiLU (swish)
# ============================================================================================
def _sigmoid(z):
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def silu_prime_reference(z):
    """d/dz [z·σ(z)] = σ(z) + z·σ(z)(1 − σ(z)), finite for every z."""
    s = _sigmoid(np.asarray(z, dtype=float))
    return s + z * s * (1.0 - s)


def _torch_silu_prime(z):
    import torch  # noqa: PLC0415

    torch.nn.functional.silu(z).sum().backward()
    return z.grad


def check_silu_prime(silu_prime: Callable, *, hidden: bool = False) -> None:
    """``silu_prime(z)``: the derivative of SiLU(z) = z·σ(z), elementwise, finite for |z| up to 10³."""
    __tracebackhide__ = True
    fb = Feedback("silu_prime", hidden=hidden)
    rng = seeded(175 if not hidden else 176)
    ordinary = ([np.array([-3.0, -1.0, 0.0, 0.5, 2.0]), rng.normal(0, 2, (3, 4))] if not hidden else
                [rng.normal(0, 3, (12, 7)), rng.normal(0, 1, (2, 3, 4)), np.linspace(-6, 6, 25)])
    large = [np.array([[-1000.0, -40.0, 0.0], [40.0, 1000.0, -750.0]])] if not hidden else \
        [np.concatenate([rng.normal(0, 1, 10) * 500.0, [-1000.0, 1000.0, -745.0, 710.0]])]

    def probes(z):
        s = _sigmoid(z)
        return [
            Probe(FUNCTION_NOT_DERIVATIVE, lambda: close(try_call(silu_prime, z), z * s),
                  "that is SiLU(z) = z·σ(z) itself, not its derivative"),
            Probe(PRODUCT_RULE, lambda: close(try_call(silu_prime, z), s) or close(try_call(silu_prime, z),
                                                                                   z * s * (1 - s)),
                  "z·σ(z) is a product: its derivative has two terms, (z)′·σ(z) + z·σ′(z)"),
            Probe(SIGMOID_PRIME, lambda: close(try_call(silu_prime, z), s * (1 - s)),
                  "that is σ′(z) = σ(z)(1 − σ(z)), the derivative of the sigmoid alone; SiLU is z·σ(z)"),
        ]

    def smooth(z):
        return z * _sigmoid(z)

    for z in ordinary:
        got = call(fb, silu_prime, z, name="silu_prime(z)")
        got = check_array(fb, f"silu_prime(z) for z of shape {z.shape}", got, silu_prime_reference(z),
                          probes=probes(z), shape_hint="the same shape as z: one derivative per entry")
        h = 1e-6
        check_array(fb, f"silu_prime(z) against central differences (f(z + ε) − f(z − ε))/2ε, ε = {h:g}", got,
                    (smooth(z + h) - smooth(z - h)) / (2 * h), rtol=NUM_RTOL, atol=NUM_ATOL, probes=probes(z))
        check_against_torch(fb, "silu_prime(z)", silu_prime, _torch_silu_prime, [z], requires_grad=True,
                            probes=probes(z))
    for z in large:
        unstable = [Probe(UNSTABLE, lambda: True,
                          "right on small inputs, wrong for |z| near 10³: e^{−z} overflows for z ≪ 0; compute σ(z) "
                          "in a stable way and write the derivative with σ(z) only")]
        got = call(fb, silu_prime, z, name="silu_prime(z) for |z| up to 10³")
        check_array(fb, f"silu_prime(z) on large inputs (shape {z.shape}, |z| up to {np.abs(z).max():.0f})", got,
                    silu_prime_reference(z), probes=probes(z) + unstable)
        check_against_torch(fb, "silu_prime(z) on large inputs", silu_prime, _torch_silu_prime, [z],
                            requires_grad=True, probes=probes(z) + unstable)
    fb.passed("SiLU′ against central differences and PyTorch, on small and large inputs")


# ============================================================================================
# A new loss: Huber
# ============================================================================================
def huber_reference(z, y, delta=1.0):
    """(mean Huber loss, ∂ℒ/∂z): ½r² for |r| ≤ δ, δ(|r| − ½δ) beyond, r = z − y, mean over every entry."""
    r = z - y
    small = np.abs(r) <= delta
    loss = np.where(small, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))
    return float(loss.mean()), np.where(small, r, delta * np.sign(r)) / r.size


def _torch_huber(delta):
    def run(z, y):
        import torch  # noqa: PLC0415

        loss = torch.nn.functional.huber_loss(z, y.detach(), delta=delta)
        loss.backward()
        return loss.detach(), z.grad

    return run


def _huber_cases(hidden: bool) -> list[tuple]:
    """(z, y, delta): random residuals, and residuals on a grid of quarters with some exactly at ±delta
    (where the two branches meet, and both must hold the threshold's value)."""
    rng = seeded(177 if not hidden else 178)
    shapes = [((6,), 1.0), ((3, 4), 0.5)] if not hidden else [((10,), 1.0), ((4, 5), 2.0), ((1,), 0.3), ((8, 3), 1.5)]
    cases = [(rng.normal(0, 2.5, shape), rng.normal(0, 1, shape), delta) for shape, delta in shapes]
    shape, delta = ((2, 5), 0.5) if not hidden else ((3, 4), 1.0)
    y = rng.integers(-8, 8, size=shape) / 4
    r = delta * rng.choice([-1.0, 1.0, -0.5, 0.25, 2.0, -3.0], size=shape)
    r.flat[:2] = (delta, -delta)
    cases.append((y + r, y, delta))  # exact: quarters and halves of small numbers
    return cases


def _huber_variant(z, y, delta, how: str) -> tuple[float, np.ndarray]:
    """(loss, ∂ℒ/∂z) of a classic wrong Huber loss."""
    r = z - y
    small, big = np.abs(r) <= delta, np.abs(r) > delta
    n = r.size
    if how == "swapped":
        loss, dz = np.where(small, delta * (np.abs(r) - 0.5 * delta), 0.5 * r * r), np.where(small, delta * np.sign(r), r)
    elif how == "gap":  # strict inequalities on both sides
        small = np.abs(r) < delta
        loss = 0.5 * r * r * small + delta * (np.abs(r) - 0.5 * delta) * big
        dz = r * small + delta * np.sign(r) * big
    elif how == "rows":
        loss, dz = huber_reference(z, y, delta)
        return loss * n / r.shape[0], dz * n / r.shape[0]
    else:
        raise ValueError(how)
    return float(loss.mean()), dz / n


def _huber_loss_probes(loss, z, y, delta) -> list[Probe]:
    """Probes for the loss value alone (it is checked first)."""
    r, n = z - y, z.size
    loss_ref = huber_reference(z, y, delta)[0]
    small = np.abs(r) <= delta

    def loss_is(*values):
        return lambda: any(close(loss, v) for v in values)

    offsets = [np.where(small, 0.5 * r * r, delta * np.abs(r) - c).mean() for c in (0.5, delta, 0.0)] + \
        [np.where(small, 0.5 * r * r, delta * (np.abs(r) - 0.5)).mean()]
    return [
        Probe(BATCH_FACTOR, loss_is(loss_ref * n), f"the loss is the *mean* over the {n} entries, not their sum"),
        Probe(MEAN_OVER_ROWS, lambda: r.ndim > 1 and close(loss, _huber_variant(z, y, delta, "rows")[0]),
              "your loss divides by the number of rows; the mean runs over every entry, r.size"),
        Probe(QUADRATIC_EVERYWHERE, loss_is(np.mean(0.5 * r * r)),
              "your loss is ½r² everywhere: beyond |r| > delta it is delta·(|r| − delta/2)"),
        Probe(BRANCHES_SWAPPED, loss_is(_huber_variant(z, y, delta, "swapped")[0]),
              "your loss is quadratic for large |r| and linear for small: ½r² belongs to |r| ≤ delta"),
        Probe(THRESHOLD_GAP, lambda: np.any(np.abs(r) == delta) and close(loss, _huber_variant(z, y, delta, "gap")[0]),
              "where |r| = delta exactly your loss is 0: one of the branches must include the threshold (≤)"),
        Probe(LINEAR_OFFSET, loss_is(*offsets),
              "the linear branch is delta·(|r| − delta/2) = delta·|r| − delta²/2, which meets ½r² at |r| = delta"),
    ]


def _huber_grad_probes(grad_is, z, y, delta) -> list[Probe]:
    r, n = z - y, z.size
    dz_ref = huber_reference(z, y, delta)[1]
    small = np.abs(r) <= delta
    return [
        Probe(QUADRATIC_EVERYWHERE, grad_is(r / n),
              "beyond |z − y| > delta the loss grows linearly, so its gradient is ±delta there, not z − y "
              "(that is the squared error's)"),
        Probe(DELTA_IGNORED, grad_is(np.where(small, r, np.sign(r)) / n),
              "in the linear branch the loss is delta·(|r| − delta/2): its slope is delta·sign(r), not sign(r)"),
        Probe(LINEAR_SIGN_MISSING, grad_is(np.where(small, r, delta) / n),
              "in the linear branch the slope of delta·|r| is delta·sign(r): negative for r < −delta"),
        Probe(BRANCHES_SWAPPED, grad_is(_huber_variant(z, y, delta, "swapped")[1]),
              "your gradient is delta·sign(r) for small |r| and r for large: r belongs to |r| ≤ delta"),
        Probe(THRESHOLD_GAP, lambda: np.any(np.abs(r) == delta) and grad_is(_huber_variant(z, y, delta, "gap")[1])(),
              "where |r| = delta exactly your gradient is 0: there both branches give ±delta/N, and one of them "
              "must include the threshold (≤)"),
        Probe(BATCH_FACTOR, grad_is(dz_ref * n), f"the loss is the mean over all {n} entries, so its gradient "
                                                 f"carries a factor 1/{n}"),
        Probe(MEAN_OVER_ROWS, lambda: r.ndim > 1 and grad_is(_huber_variant(z, y, delta, "rows")[1])(),
              "your gradient divides by the number of rows; the mean runs over every entry, r.size"),
        Probe(SIGN_FLIP, grad_is(-dz_ref), "differentiate with respect to z: r = z − y, so ∂r/∂z = +1"),
    ]


def check_huber_loss(huber_loss: Callable, *, hidden: bool = False) -> None:
    """``huber_loss(z, y, delta=1.0)`` → (mean Huber loss, ∂ℒ/∂z), PyTorch's ``huber_loss``."""
    __tracebackhide__ = True
    fb = Feedback("huber_loss", hidden=hidden)
    for z, y, delta in _huber_cases(hidden):
        at = ", some residuals exactly ±delta" if np.any(np.abs(z - y) == delta) else ""
        label = f"huber_loss(z, y, delta={delta:g}) for z of shape {z.shape}{at}"

        def student(zz, yy, delta=delta, label=label):
            out = huber_loss(zz, yy) if delta == 1.0 else huber_loss(zz, yy, delta=delta)
            return _parts(fb, label, out, 2, "the pair (loss, dz)")

        result = _parts(fb, label, call(fb, student, z, y, name=label), 2, "the pair (loss, dz)")
        loss_ref, dz_ref = huber_reference(z, y, delta)

        def grad_is(target, z=z, y=y, student=student):
            return lambda: close(_part(student, (z, y), 1, 2), target)

        probes = _huber_grad_probes(grad_is, z, y, delta)
        loss = result[0]
        if np.ndim(loss) != 0:
            fb.fail(WRONG_SHAPE, f"{label}: the loss must be one number (the mean), got shape {np.shape(loss)}")
        check_array(fb, f"the loss returned by {label}", float(np.asarray(loss, dtype=float)), loss_ref,
                    relations=False, probes=_huber_loss_probes(loss, z, y, delta))
        dz = check_array(fb, f"∂ℒ/∂z returned by {label}", result[1], dz_ref, probes=probes, relations=False,
                         shape_hint="the shape of z")
        numeric = numerical_gradient(lambda zz: huber_reference(zz, y, delta)[0], z.copy())
        if not at:  # central differences straddle the kink at |r| = delta
            check_array(fb, f"∂ℒ/∂z returned by {label} against central differences of the loss", dz, numeric,
                        rtol=NUM_RTOL, atol=NUM_ATOL, probes=probes, relations=False)
        check_against_torch(fb, f"[loss, ∂ℒ/∂z] of {label}", student, _torch_huber(delta), [z, y],
                            requires_grad=True, probes=probes)
    fb.passed("the Huber loss and its gradient, for several deltas, with residuals at the threshold")


# ============================================================================================
# The convolution's input gradient: a full correlation with the flipped kernel
# ============================================================================================
def _out_size(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def _ref_input_grad(dout, W, x_shape, stride, padding):
    from nnkit.functional.conv import conv2d_backward_naive, conv2d_forward_naive  # noqa: PLC0415

    x = np.zeros(x_shape)
    _, cache = conv2d_forward_naive(x, W, None, stride, padding)
    return conv2d_backward_naive(dout, cache)[0]


def _torch_input_grad(stride, padding):
    def run(dout, x, W):
        import torch  # noqa: PLC0415

        out = torch.nn.functional.conv2d(x, W.detach(), None, stride=stride, padding=padding)
        (out * dout.detach()).sum().backward()
        return x.grad

    return run


def _conv_cases(hidden: bool):
    rng = seeded(179 if not hidden else 180)
    # (x shape, W shape, stride, padding); one with F == C (axes-swap bug visible), ones where
    # (H + 2p − k) is not a multiple of the stride (the last rows get no gradient), zero padding, batch size 1
    shapes = ([((2, 3, 6, 5), (3, 3, 3, 2), 1, 0), ((1, 2, 7, 7), (3, 2, 3, 3), 2, 1), ((2, 2, 8, 7), (3, 2, 3, 3), 2, 0)]
              if not hidden else
              [((2, 2, 8, 8), (2, 2, 3, 3), 1, 1), ((3, 3, 9, 8), (4, 3, 2, 3), 2, 0), ((1, 2, 10, 9), (2, 2, 4, 3), 3, 2),
               ((2, 4, 6, 6), (4, 4, 1, 1), 1, 0), ((1, 1, 5, 5), (1, 1, 5, 5), 1, 2)])
    cases = []
    for xs, ws, s, p in shapes:
        W = rng.normal(size=ws)
        out = (xs[0], ws[0], _out_size(xs[2], ws[2], s, p), _out_size(xs[3], ws[3], s, p))
        cases.append((rng.normal(size=out), W, xs, s, p))
    return cases


def _full_correlation(d, K):
    windows = np.lib.stride_tricks.sliding_window_view(d, K.shape[2:], axis=(2, 3))
    return np.einsum("ncrsij,fcij->nfrs", windows, K)


def _input_grad_variant(dout, W, x_shape, s, p, *, dilate=True, grid="full", extra=0, crop="both", flip=True,
                        swap=True):
    """The notes' recipe with one step changed: ``dilate`` (δ spread s apart), ``grid`` ("full": the padded
    input's window grid; "tight": (H_out − 1)·s + 1 rows), ``extra`` (more full padding than k − 1),
    ``crop`` ("both", "start": [:H], "none"), ``flip`` (kernel rotated), ``swap`` (filter and channel axes)."""
    N, F, Ho, Wo = dout.shape
    kh, kw = W.shape[2:]
    Hp, Wp = x_shape[2] + 2 * p, x_shape[3] + 2 * p
    if not dilate:
        d = dout
    else:
        rows, cols = (Hp - kh + 1, Wp - kw + 1) if grid == "full" else ((Ho - 1) * s + 1, (Wo - 1) * s + 1)
        d = np.zeros((N, F, rows, cols))
        d[:, :, ::s, ::s][:, :, :Ho, :Wo] = dout
    d = np.pad(d, ((0, 0), (0, 0), (kh - 1 + extra, kh - 1 + extra), (kw - 1 + extra, kw - 1 + extra)))
    K = W[:, :, ::-1, ::-1] if flip else W
    dxp = _full_correlation(d, K.transpose(1, 0, 2, 3) if swap else K)
    if crop == "none":
        return dxp
    if crop == "start":
        return dxp[:, :, :x_shape[2], :x_shape[3]]
    return dxp[:, :, p:p + x_shape[2], p:p + x_shape[3]]


def _input_grad_probes(fn: Callable, dout, W, x_shape, s, p) -> list[Probe]:
    """Probes for one case; a variant is named only when it also reproduces the answer on a crafted case with
    padding 2 (where cutting one side only and padding δ by k give different results)."""
    args = (dout, W, x_shape, s, p)
    rng = seeded(185)
    crafted = (rng.normal(size=(1, 2, 8, 8)), rng.normal(size=(2, 2, 3, 2)), (1, 2, 6, 5), 1, 2)

    def got():
        return try_call(fn, *args)

    def like(**change):
        return lambda: all(close(try_call(fn, *case), _input_grad_variant(*case, **change)) for case in (args, crafted))

    return [
        Probe(PADDING_NOT_CROPPED, lambda: p > 0 and like(crop="none")(),
              "your dx is the gradient of the *padded* input; the padded border is not part of x, so cut p rows "
              "and columns off each side"),
        Probe(CROP_ONE_SIDE, lambda: p > 0 and like(crop="start")(),
              "your dx keeps the first H rows and W columns of the padded input's gradient: the padding is on both "
              "sides, so cut p from the start as well, [p:p + H]"),
        Probe(EMPTY_CROP, lambda: p == 0 and np.shape(got())[2:] == (0, 0),
              "with padding 0 your dx is empty: a[p:-p] is a[0:0] when p = 0; cut with [p:p + H]"),
        Probe(KERNEL_NOT_FLIPPED, like(flip=False),
              "input a[r, c] meets W[i, j] in the output whose window starts at (r − i, c − j): as a "
              "correlation over the output positions that is the kernel rotated by 180°, W[:, :, ::-1, ::-1]"),
        Probe(CHANNELS_NOT_SWAPPED, lambda: W.shape[0] == W.shape[1] and like(swap=False)(),
              "dx for input channel f sums over the filters f′: the kernel of the backward correlation maps F "
              "channels to C, W[f′, f] with f′ and f exchanged, W.transpose(1, 0, 2, 3)"),
        Probe(STRIDE_NOT_DILATED, lambda: s > 1 and like(dilate=False)(),
              "with stride s the outputs sit s input positions apart: put s − 1 zeros between the entries of δ "
              "(dilate it) before the full correlation"),
        Probe(UNCOVERED_ROWS, lambda: s > 1 and like(grid="tight")(),
              "your dilated δ has (H_out − 1)·s + 1 rows; when (H + 2p − kh) is not a multiple of s the last rows of "
              "the input are covered by no window: make δ's grid (H + 2p − kh + 1) rows long (zeros at the end) so "
              "that they get their gradient 0 and dx has x's shape"),
        Probe(FULL_PAD_WRONG, like(extra=1),
              "a full correlation pads δ by k − 1 on each side (the windows that overlap the input by one entry), "
              "not by k"),
    ]


def check_conv_input_grad(conv2d_input_grad: Callable, *, hidden: bool = False) -> None:
    """``conv2d_input_grad(dout, W, x_shape, stride, padding)`` → ∂ℒ/∂x of shape ``x_shape``."""
    __tracebackhide__ = True
    fb = Feedback("conv_input_grad", hidden=hidden)
    fn = conv2d_input_grad
    for dout, W, x_shape, s, p in _conv_cases(hidden):
        label = f"conv2d_input_grad(dout, W, x_shape={x_shape}, stride={s}, padding={p}) for W {W.shape}"
        probes = _input_grad_probes(fn, dout, W, x_shape, s, p)
        got = call(fb, fn, dout, W, x_shape, s, p, name=label, probes=probes)
        check_array(fb, f"dx from {label}", got, _ref_input_grad(dout, W, x_shape, s, p), probes=probes,
                    shape_hint="x_shape (N, C, H, W)", relations=False)

        def student(dd, xx, WW, s=s, p=p):
            return fn(dd, WW, tuple(xx.shape), s, p)

        check_against_torch(fb, f"dx from {label}", student, _torch_input_grad(s, p),
                            [dout, np.zeros(x_shape), W], requires_grad=True, probes=probes)
    fb.passed("dx for several strides and paddings, against nnkit and torch.autograd")


# ============================================================================================
# Initialisation: the scale of z and δ through depth
# ============================================================================================
def predict_scales_reference(widths, gain, activation, *, half=True, half_backward=None, fan_out=True,
                             fan_out_z=False, fprime_last=True, rms=True):
    """Predicted RMS of z^ℓ and δ^ℓ (ℓ = 1…L) for W^ℓ ~ N(0, gain²/d_{ℓ−1}), x ~ N(0, 1), ∂ℒ/∂a^L ~ N(0, 1).

    Forward: E[(z^ℓ)²] = gain² · E[f(z^{ℓ−1})²] (= gain² for ℓ = 1), E[f(z)²] = E[z²]/2 for ReLU.
    Backward: E[(δ^L)²] = E[f′²], E[(δ^ℓ)²] = d_{ℓ+1} · gain²/d_ℓ · E[(δ^{ℓ+1})²] · E[f′²],
    E[f′²] = ½ for ReLU. The flags build the classic wrong predictions: ``half`` (ReLU's ½, and in the
    backward pass too unless ``half_backward`` says otherwise), ``fan_out`` (the ratio d_{ℓ+1}/d_ℓ of δ),
    ``fan_out_z`` (a ratio d_ℓ/d_{ℓ−1} in the forward pass), ``fprime_last`` (f′ in δ^L), ``rms``
    (False: the variances, no square root).
    """
    relu = activation == "relu"
    f2 = 0.5 if relu and half else 1.0
    b2 = f2 if half_backward is None else (0.5 if relu and half_backward else 1.0)
    L = len(widths) - 1
    z2, q = [], 1.0
    for l in range(L):
        v = gain ** 2 * q * (widths[l + 1] / widths[l] if fan_out_z else 1.0)
        z2.append(v)
        q = v * f2
    d2 = [0.0] * L
    d2[L - 1] = b2 if fprime_last else 1.0
    for l in range(L - 2, -1, -1):             # python l is layer ℓ = l + 1; W^{ℓ+1} is (d_{ℓ+1}, d_ℓ)
        ratio = widths[l + 2] / widths[l + 1] if fan_out else 1.0
        d2[l] = ratio * gain ** 2 * d2[l + 1] * b2
    size = np.sqrt if rms else (lambda v: v)
    return [float(size(v)) for v in z2], [float(size(v)) for v in d2]


def _scales_as_array(fb: Feedback, label: str, result, L: int) -> np.ndarray:
    __tracebackhide__ = True
    z, d = _parts(fb, label, result, 2, "the pair (z_scales, delta_scales)")
    out = []
    for name, part in (("z_scales", z), ("delta_scales", d)):
        try:
            arr = np.asarray(part, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            fb.fail(WRONG_TYPE, f"{label}: {name} must be a list of numbers, got {type(part).__name__}")
        if arr.size != L:
            fb.fail(WRONG_SHAPE, f"{label}: {name} must hold one number per layer, {L} of them (ℓ = 1…{L}), "
                                 f"got {arr.size}")
        out.append(arr)
    return np.stack(out)


def check_predict_scales(predict_scales: Callable, *, hidden: bool = False) -> None:
    """``predict_scales(widths, gain, activation)`` → (RMS of z^ℓ, RMS of δ^ℓ), ℓ = 1…L, predicted."""
    __tracebackhide__ = True
    fb = Feedback("predict_scales", hidden=hidden)
    cases = ([([100, 100, 100, 100], np.sqrt(2.0), "relu"), ([50, 200, 100, 10], 1.0, "linear"),
              ([64, 128, 32, 256, 16], 1.0, "relu")] if not hidden else
             [([30, 60, 60, 120, 40, 5], np.sqrt(2.0), "relu"), ([20, 10, 40, 80], 1.3, "linear"),
              ([16] * 10, 1.0, "relu"), ([8, 300], 0.7, "relu"), ([100, 50, 25, 200], 0.9, "linear")])
    for k, (widths, gain, activation) in enumerate(cases):
        L = len(widths) - 1
        label = (f"predict_scales(widths={widths}, gain={gain:.4g}, activation={activation!r})" if not hidden else
                 f"predict_scales(widths={widths}, gain, activation={activation!r}) with the gain of hidden case {k + 1}")
        got = _scales_as_array(fb, label, call(fb, predict_scales, list(widths), gain, activation, name=label), L)
        ref = np.array(predict_scales_reference(widths, gain, activation))

        def like(**flags):
            variant = np.array(predict_scales_reference(widths, gain, activation, **flags))
            return lambda: close(_scales_as_array(Feedback("", hidden=True), "", try_call(
                predict_scales, list(widths), gain, activation), L), variant)

        probes = [
            Probe(RELU_HALF_MISSING, lambda like=like: like(half=False)() or like(half_backward=False)(),
                  "a ReLU keeps the positive half of a symmetric z: E[ReLU(z)²] = E[z²]/2, and f′(z)² is 1 on half "
                  "the inputs, so E[f′²] = ½ too"),
            Probe(FAN_IN_FOR_DELTA, like(fan_out=False),
                  "δ^ℓ = (δ^{ℓ+1} W^{ℓ+1}) ⊙ f′ sums over the d_{ℓ+1} units of the layer above, each weight of "
                  "variance gain²/d_ℓ: the ratio d_{ℓ+1}/d_ℓ appears"),
            Probe(FAN_OUT_FOR_Z, like(fan_out_z=True),
                  "z^ℓ_j sums d_{ℓ−1} terms, each of variance gain²/d_{ℓ−1} · E[f(z^{ℓ−1})²]: no ratio of widths in "
                  "the forward pass"),
            Probe(MISSING_FPRIME, like(fprime_last=False),
                  "δ^L = ∂ℒ/∂a^L ⊙ f′(z^L): the output layer's δ carries f′ too, so E[(δ^L)²] = E[f′²]"),
            Probe(SQRT_MISSING, like(rms=False),
                  "your numbers are the predicted *variances* E[z²] and E[δ²]; the scale asked for is their square "
                  "root, the RMS"),
        ]
        check_array(fb, f"[z_scales, delta_scales] of {label}", got, ref, probes=probes, relations=False,
                    shape_hint="two lists of L numbers")
    if hidden:  # the prediction against a large random network (a statistical check, seeded)
        widths, gain = [400, 400, 400, 400], np.sqrt(2.0)
        measured = np.array(measure_scales_reference(*_random_network(widths, gain, 2000, seeded(181)), "relu"))
        got = _scales_as_array(fb, "predict_scales", call(fb, predict_scales, widths, gain, "relu"), 3)
        if not np.allclose(got, measured, rtol=0.1):
            fb.fail("prediction far from measurement",
                    "for a ReLU network of width 400 with He initialisation, your prediction differs from what a "
                    "random network of that kind measures by more than 10 %")
    fb.passed("the predicted scales of z and δ through depth")


def _random_network(widths, gain, n, rng):
    X = rng.normal(0, 1, (n, widths[0]))
    Ws = [rng.normal(0, gain / np.sqrt(widths[l]), (widths[l + 1], widths[l])) for l in range(len(widths) - 1)]
    G = rng.normal(0, 1, (n, widths[-1]))
    return X, Ws, G


def measure_scales_reference(X, Ws, G, activation, *, fprime=True, fprime_last=True, shifted=False,
                             activations=False, rms=True, transposed=False):
    """Measured RMS of every z^ℓ (forward, no bias) and δ^ℓ (backward from ∂ℒ/∂a^L = G).

    The flags build the classic wrong measurements: ``fprime`` (f′ in the hidden δ's), ``fprime_last`` (f′ in
    δ^L), ``shifted`` (f′ of the layer above, z^{ℓ+1}), ``activations`` (the RMS of a^ℓ reported for z^ℓ),
    ``rms`` (False: the standard deviation), ``transposed`` (Wᵀ in the backward product)."""
    relu = activation == "relu"

    def f(z):
        return np.maximum(z, 0) if relu else z

    def fp(z):
        return (z > 0).astype(float) if relu else np.ones_like(z)

    Zs, A = [], X
    for W in Ws:
        Zs.append(A @ W.T)
        A = f(Zs[-1])
    deltas = [G * fp(Zs[-1]) if fprime_last else G]
    for l in range(len(Ws) - 2, -1, -1):
        back = deltas[0] @ (Ws[l + 1].T if transposed else Ws[l + 1])
        deltas.insert(0, back * fp(Zs[l + 1 if shifted else l]) if fprime else back)
    size = (lambda a: float(np.sqrt(np.mean(a * a)))) if rms else (lambda a: float(np.std(a)))
    return [size(f(z) if activations else z) for z in Zs], [size(d) for d in deltas]


def _torch_measure(activation, L):
    def run(X, G, *Ws):
        import torch  # noqa: PLC0415

        f = torch.relu if activation == "relu" else (lambda t: t)
        A, Zs = X.detach(), []
        for W in Ws:
            z = A @ W.T  # W requires grad, so z does: keep its gradient, δ^ℓ
            z.retain_grad()
            Zs.append(z)
            A = f(z)
        (A * G.detach()).sum().backward()
        rms = [torch.sqrt(torch.mean(t * t)) for t in Zs] + [torch.sqrt(torch.mean(t.grad * t.grad)) for t in Zs]
        return torch.stack(rms).reshape(2, L)

    return run


def check_measure_scales(measure_scales: Callable, *, hidden: bool = False) -> None:
    """``measure_scales(X, Ws, G, activation)`` → (RMS of each z^ℓ, RMS of each δ^ℓ), measured."""
    __tracebackhide__ = True
    fb = Feedback("measure_scales", hidden=hidden)
    rng = seeded(182 if not hidden else 183)
    cases = ([([5, 8, 6, 3], 1.4, "relu", 7), ([4, 6, 2], 1.0, "linear", 5)] if not hidden else
             [([6, 10, 10, 4, 9], 1.4, "relu", 11), ([3, 12, 5], 0.8, "linear", 1), ([20, 7], 1.0, "relu", 30),
              ([8, 16, 4, 12], 2.0, "relu", 6)])
    for widths, gain, activation, n in cases:
        X, Ws, G = _random_network(widths, gain, n, rng)
        L = len(Ws)
        label = f"measure_scales(X, Ws, G, {activation!r}) for widths {widths}, N = {n}"
        Xs, Wss, Gs = _random_network([6] * len(widths), gain, n, seeded(184))  # square: Wᵀ runs too

        def transposed(Xs=Xs, Wss=Wss, Gs=Gs, activation=activation, L=L):
            variant = np.array(measure_scales_reference(Xs, Wss, Gs, activation, transposed=True))
            return close(_scales_as_array(Feedback("", hidden=True), "", try_call(
                measure_scales, Xs, Wss, Gs, activation), L), variant)

        def shifted(Xs=Xs, Wss=Wss, Gs=Gs, activation=activation, L=L):
            variant = np.array(measure_scales_reference(Xs, Wss, Gs, activation, shifted=True))
            return activation == "relu" and close(_scales_as_array(Feedback("", hidden=True), "", try_call(
                measure_scales, Xs, Wss, Gs, activation), L), variant)

        w_probe = Probe(TRANSPOSED_W, transposed,
                        "δ^ℓ = (δ^{ℓ+1} W^{ℓ+1}) ⊙ f′(z^ℓ) with δ^{ℓ+1} of shape (N, d_{ℓ+1}) and W^{ℓ+1} of shape "
                        "(d_{ℓ+1}, d_ℓ): no transpose in the backward product (the forward one has it)")
        shift_probe = Probe(FPRIME_WRONG_LAYER, shifted,
                            "on a network of equal widths your δ^ℓ is multiplied by f′(z^{ℓ+1}) of the layer above; "
                            "δ^ℓ takes f′(z^ℓ) of its own layer")
        got = _scales_as_array(fb, label, call(fb, measure_scales, X, Ws, G, activation, name=label,
                                               probes=[w_probe, shift_probe], arg_names=("X", "Ws", "G", "activation")),
                               L)
        ref = np.array(measure_scales_reference(X, Ws, G, activation))

        def like(**flags):
            def test(X=X, Ws=Ws, G=G, activation=activation, L=L):
                variant = np.array(measure_scales_reference(X, Ws, G, activation, **flags))
                return close(_scales_as_array(Feedback("", hidden=True), "", try_call(
                    measure_scales, X, Ws, G, activation), L), variant)
            return test

        probes = [
            w_probe,
            Probe(MISSING_FPRIME, like(fprime=False),
                  "the δ of a hidden layer is multiplied by f′(z^ℓ) (problem set 3's recursion)"),
            Probe(MISSING_FPRIME, like(fprime_last=False),
                  "δ^L = ∂ℒ/∂a^L ⊙ f′(z^L): the output layer's δ is multiplied by f′ too"),
            shift_probe,
            Probe(A_NOT_Z, like(activations=True),
                  "your z_scales are the RMS of the activations a^ℓ = f(z^ℓ); the question asks for the "
                  "pre-activations z^ℓ = a^{ℓ−1} W^ℓᵀ"),
            Probe(STD_NOT_RMS, like(rms=False),
                  "the scale here is the root mean square √mean(a²), not the standard deviation (which subtracts "
                  "the mean first)"),
        ]
        check_array(fb, f"[z_scales, delta_scales] of {label}", got, ref, probes=probes, relations=False,
                    shape_hint="two lists of L numbers")

        def student(XX, GG, *WW, activation=activation, L=L):
            return _scales_as_array(fb, label, measure_scales(XX, list(WW), GG, activation), L)

        check_against_torch(fb, f"[z_scales, delta_scales] of {label}", student, _torch_measure(activation, L),
                            [X, G, *Ws], requires_grad=True, probes=probes)
    fb.passed("the measured scales of z and δ, against torch.autograd")
