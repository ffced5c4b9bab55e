"""Checks for problem set 6, *convolutional networks*.

=========================== ============================================================ ===========================
question (grade_id)          what the student writes                                      reference
=========================== ============================================================ ===========================
``conv_forward_loops``       ``conv2d_forward_loops(x, W, b, stride, padding)``            ``nk.functional.conv2d_*``,
``conv_backward_loops``      ``conv2d_backward_loops(dout, x, W, stride, padding)``        ``torch.nn.functional.conv2d``
                             → (dx, dW, db)                                                and its autograd
``conv_forward_vectorised``  the forward pass without loops over positions (≥ 5× faster)
``maxpool_backward``         ``maxpool_backward(dout, x, kernel_size, stride)``            ``nk.functional.maxpool2d_*``,
                                                                                           ``F.max_pool2d``
``convnet``                  ``build_convnet(rng)``: a small convnet for the 8×8 digits    trained here, ≥ 90 % test
=========================== ============================================================ ===========================

Arrays are NCHW, weights (F, C, kh, kw) as in PyTorch; "convolution" is the cross-correlation
of the notes and of PyTorch (the kernel is not flipped). Max-pooling sends each output's
gradient to the *first* maximum of its window (row-major order), as PyTorch does, and
overlapping windows add their gradients.
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable

import numpy as np

from .core import (
    BATCH_FACTOR,
    NO_ACCUMULATION,
    WRONG_SHAPE,
    WRONG_TYPE,
    WRONG_VALUES,
    Feedback,
    Probe,
    as_array,
    call,
    check_against_torch,
    check_array,
    check_uses_generator,
    close,
    numerical_gradient,
    quiet,
    seeded,
    try_call,
)
from .remote import type_name

#: what an answer may call from nnkit (see nnkit.course.delegation): the convnet is built from
#: the shipped layers; the convolution and pooling questions use numpy only
MAY_USE = {"check_convnet": ("nnkit.module", "nnkit.layers", "nnkit.conv", "nnkit._random")}

__all__ = [
    "check_conv_forward_loops", "check_conv_backward_loops", "check_conv_forward_vectorised",
    "check_maxpool_backward", "check_convnet", "train_and_evaluate",
    "FLIPPED_KERNEL", "STRIDE_PADDING", "STRIDE_IGNORED", "PADDING_IGNORED", "PADDING_TWICE",
    "PADDING_NOT_CROPPED", "EMPTY_CROP", "CHANNELS_NOT_SUMMED", "KERNEL_TRANSPOSED", "OUTPUT_NHWC", "MISSING_BIAS",
    "BIAS_WRONG_AXIS", "INTEGER_INPUT", "DW_NOT_SUMMED", "NOT_VECTORISED", "POOL_EVERY_POSITION", "POOL_NOT_ARGMAX",
    "POOL_NO_OVERLAP", "NO_CONV", "NO_POOL", "NO_FLATTEN", "SIZES_DO_NOT_FIT", "SOFTMAX_OUTPUT", "BATCH_FLATTENED",
    "NO_GRADIENT", "TOO_BIG",
]

FLIPPED_KERNEL = "flipped kernel (convolution instead of correlation)"
STRIDE_PADDING = "output size off by one"
STRIDE_IGNORED = "stride ignored"
PADDING_IGNORED = "padding ignored"
PADDING_TWICE = "padding applied twice"
PADDING_NOT_CROPPED = "padding not cropped from dx"
EMPTY_CROP = "padding cropped with [p:-p], which is empty for padding 0"
CHANNELS_NOT_SUMMED = "input channels not summed"
KERNEL_TRANSPOSED = "kernel rows and columns exchanged"
OUTPUT_NHWC = "output axes in NHWC order"
MISSING_BIAS = "bias missing"
BIAS_WRONG_AXIS = "bias added along the wrong axis"
INTEGER_INPUT = "fails on an integer-valued input array"
DW_NOT_SUMMED = "dW or db not summed over the batch"
NOT_VECTORISED = "not vectorised"
POOL_EVERY_POSITION = "max-pool gradient to every position"
POOL_NOT_ARGMAX = "max-pool gradient not to the argmax"
POOL_NO_OVERLAP = "pooling assumes stride = kernel size"
NO_CONV = "no Conv2d layer"
NO_POOL = "no MaxPool2d layer"
NO_FLATTEN = "no Flatten before a Linear layer"
SIZES_DO_NOT_FIT = "layer sizes do not fit together"
SOFTMAX_OUTPUT = "softmax on the output (the loss takes logits)"
BATCH_FLATTENED = "batch axis flattened away"
NO_GRADIENT = "no gradient reaches the first layers"
TOO_BIG = "too many parameters"

#: central differences (ε = 1e-6, float64) are accurate to about 1e-9; compared with this tolerance
NUM_RTOL, NUM_ATOL = 1e-5, 1e-6

_FLIP_HINT = ("the kernel is flipped: deep-learning 'convolution' (the notes, PyTorch) is a cross-correlation, "
              "z[i′, j′] = Σ a[s·i′ + i, s·j′ + j] · W[i, j], with no flip of W")


# --------------------------------------------------------------------------------------------
# Cases and references
# --------------------------------------------------------------------------------------------
def _conv_cases(hidden: bool, seed: int, integers: bool = True) -> list[tuple]:
    """(x, W, b, stride, padding) cases: non-square kernels, C > 1, F > 1, stride and padding, batch size 1,
    zero padding, and last (with ``integers``) an image of integers (an integer array, as images are often
    stored)."""
    rng = seeded(seed)
    shapes = ([((2, 3, 6, 5), (4, 3, 3, 2), 1, 0), ((2, 2, 7, 7), (3, 2, 3, 3), 2, 1)] if not hidden else
              [((3, 2, 9, 8), (5, 2, 3, 3), 1, 1), ((2, 3, 8, 9), (2, 3, 2, 3), 2, 0), ((1, 1, 5, 5), (1, 1, 5, 5), 1, 0),
               ((4, 2, 10, 10), (3, 2, 4, 4), 3, 2), ((2, 4, 6, 6), (6, 4, 1, 1), 1, 0)])
    cases = [(rng.normal(size=xs), rng.normal(size=ws), rng.normal(size=ws[0]), s, p) for xs, ws, s, p in shapes]
    if not integers:
        return cases
    xs, ws, s, p = ((1, 2, 6, 7), (3, 2, 3, 3), 1, 1) if not hidden else ((2, 1, 7, 6), (2, 1, 2, 3), 2, 1)
    cases.append((rng.integers(0, 10, size=xs), rng.normal(size=ws), rng.normal(size=ws[0]), s, p))
    return cases


def _ref_forward(x, W, b, stride, padding) -> np.ndarray:
    from nnkit.functional.conv import conv2d_forward_naive  # noqa: PLC0415

    return conv2d_forward_naive(np.asarray(x, dtype=float), W, b, stride, padding)[0]


def _ref_backward(dout, x, W, stride, padding):
    from nnkit.functional.conv import conv2d_backward_naive, conv2d_forward_naive  # noqa: PLC0415

    _, cache = conv2d_forward_naive(np.asarray(x, dtype=float), W, np.zeros(W.shape[0]), stride, padding)
    return conv2d_backward_naive(dout, cache)


def _out_size(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def _torch_conv(stride, padding):
    def run(x, W, b):
        import torch  # noqa: PLC0415

        return torch.nn.functional.conv2d(x, W, b, stride=stride, padding=padding)

    return run


def _windows_at_unit_steps(x, W, b, stride, padding) -> np.ndarray:
    """The forward pass with the output size of ``stride`` but windows one position apart."""
    Ho, Wo = (_out_size(n, k, stride, padding) for n, k in zip(x.shape[2:], W.shape[2:]))
    return _ref_forward(x, W, b, 1, padding)[:, :, :Ho, :Wo]


def _one_channel(x, W, b, stride, padding) -> list[np.ndarray]:
    """The forward pass that reads only the first, or only the last, input channel."""
    return [_ref_forward(x[:, c], W[:, c], b, stride, padding) for c in (slice(0, 1), slice(-1, None))
            if x.shape[1] > 1]


def _crafted_probes(fn: Callable) -> list[Probe]:
    """Bugs that only some shapes show, confirmed on crafted inputs: a square kernel (rows and columns of the
    kernel exchanged), and as many filters as output columns (a bias added along the last axis)."""
    rng = seeded(115)
    x, W, b = rng.normal(size=(2, 2, 5, 6)), rng.normal(size=(3, 2, 3, 3)), rng.normal(size=3)
    xb = rng.normal(size=(2, 2, 4, 5))  # a 3×3 kernel leaves 2 × 3 outputs: W_out = F

    def kernel_transposed():
        return close(try_call(fn, x, W, b, 1, 0), _ref_forward(x, W.transpose(0, 1, 3, 2), b, 1, 0))

    def bias_on_last_axis():
        return close(try_call(fn, xb, W, b, 1, 0), _ref_forward(xb, W, None, 1, 0) + b)

    return [
        Probe(KERNEL_TRANSPOSED, kernel_transposed,
              "on a square kernel your output is the correlation with W[f′, f].T: W[f′, f, i, j] multiplies the "
              "input at row offset i and column offset j"),
        Probe(BIAS_WRONG_AXIS, bias_on_last_axis,
              "on an input with as many output columns as filters, b[f′] was added to output column f′: "
              "b has one entry per filter, broadcast it as b[None, :, None, None]"),
    ]


def _forward_probes(fn: Callable, x, W, b, stride, padding) -> list[Probe]:
    def got():
        return try_call(fn, x, W, b, stride, padding)

    def like(*variants):
        out = got()
        return any(close(out, v) for v in variants)

    def shape_is(shape):
        out = got()
        return out is not None and np.shape(out) == shape

    N, F = x.shape[0], W.shape[0]
    kh, kw = W.shape[2:]
    H, Wd = x.shape[2:]
    ref = _ref_forward(x, W, b, stride, padding)
    wrong_shapes = {(N, F, (H + 2 * padding - kh) // stride, (Wd + 2 * padding - kw) // stride),
                    (N, F, (H + 2 * padding - kh) // stride + 2, (Wd + 2 * padding - kw) // stride + 2),
                    (N, F, (H + 2 * padding - kh + 1) // stride, (Wd + 2 * padding - kw + 1) // stride),
                    (N, F, -(-(H + 2 * padding - kh) // stride) + 1, -(-(Wd + 2 * padding - kw) // stride) + 1),
                    (N, F, (H + padding - kh) // stride + 1, (Wd + padding - kw) // stride + 1)}
    wrong_shapes.discard(ref.shape)
    probes = [
        Probe(INTEGER_INPUT, lambda: x.dtype.kind in "iu" and close(try_call(fn, x.astype(float), W, b, stride,
                                                                             padding), ref),
              f"the same image as a float array gives the right result, the integer array ({x.dtype}) does not: "
              "an array made or cast with the input's dtype (np.zeros_like(x), dtype=x.dtype, .astype(x.dtype)) "
              "cannot hold the real-valued sums; give the output a float dtype"),
        Probe(FLIPPED_KERNEL, lambda: like(_ref_forward(x, W[:, :, ::-1, ::-1], b, stride, padding)), _FLIP_HINT),
        Probe(PADDING_IGNORED, lambda: padding > 0 and like(_ref_forward(x, W, b, stride, 0)),
              "your output is the unpadded input's: zero-pad the input by `padding` rows and columns on every "
              "side first"),
        Probe(PADDING_TWICE, lambda: padding > 0 and like(_ref_forward(x, W, b, stride, 2 * padding)),
              "your output is that of an input padded by 2·padding on each side: pad once, by `padding`"),
        Probe(STRIDE_IGNORED, lambda: stride > 1 and like(_ref_forward(x, W, b, 1, padding),
                                                          _windows_at_unit_steps(x, W, b, stride, padding)),
              "your windows start one position apart: output (i′, j′) reads the window starting at (s·i′, s·j′)"),
        Probe(STRIDE_IGNORED, lambda: stride > 1 and like(_ref_forward(x, W, b, (stride, 1), padding),
                                                          _ref_forward(x, W, b, (1, stride), padding)),
              "the stride is applied along one axis only: output (i′, j′) reads the window starting at "
              "(s·i′, s·j′), rows and columns alike"),
        Probe(STRIDE_PADDING, lambda: any(shape_is(s) for s in wrong_shapes),
              "your output has one row or column too many or too few: H_out = ⌊(H + 2·padding − kh) / stride⌋ + 1 "
              "(likewise W_out), the number of windows that fit"),
        Probe(OUTPUT_NHWC, lambda: like(ref.transpose(0, 2, 3, 1)),
              "your output holds the right numbers with its axes as (N, H_out, W_out, F); the layout is NCHW: "
              "(N, F, H_out, W_out)"),
        Probe(CHANNELS_NOT_SUMMED, lambda: like(*_one_channel(x, W, b, stride, padding)),
              "your output is the correlation of one input channel only: each output sums over every input "
              "channel f, as well as over the kernel rows and columns"),
        Probe(MISSING_BIAS, lambda: like(_ref_forward(x, W, None, stride, padding)),
              "your output is the right one without the bias: add b[f′] to every output of filter f′"),
    ]
    return probes + _crafted_probes(fn)


def _check_forward(fb: Feedback, question: str, fn: Callable, hidden: bool, seed: int, integers: bool) -> None:
    __tracebackhide__ = True
    for x, W, b, stride, padding in _conv_cases(hidden, seed, integers):
        probes = _forward_probes(fn, x, W, b, stride, padding)
        ints = f" of integers ({x.dtype})" if x.dtype.kind in "iu" else ""
        label = f"{fn.__name__}(x, W, b, stride={stride}, padding={padding}) for x {x.shape}{ints}, W {W.shape}"
        got = call(fb, fn, x, W, b, stride, padding, name=label, probes=probes)
        shape_hint = "(N, F, H_out, W_out) with H_out = ⌊(H + 2·padding − kh)/stride⌋ + 1"
        check_array(fb, label, got, _ref_forward(x, W, b, stride, padding), probes=probes, shape_hint=shape_hint,
                    relations=False)
        if not ints:
            check_against_torch(fb, label, lambda xx, WW, bb, s=stride, p=padding: fn(xx, WW, bb, s, p),
                                _torch_conv(stride, padding), [x, W, b], probes=probes)


def check_conv_forward_loops(conv2d_forward_loops: Callable, *, hidden: bool = False) -> None:
    """``conv2d_forward_loops(x, W, b, stride, padding)`` → z (N, F, H_out, W_out), a cross-correlation."""
    __tracebackhide__ = True
    fb = Feedback("conv_forward_loops", hidden=hidden)
    # the loops follow the formula on float arrays; the vectorised question adds an image of integers
    _check_forward(fb, "conv_forward_loops", conv2d_forward_loops, hidden, 101 if not hidden else 102, False)
    fb.passed("outputs, shapes, stride and padding against nnkit and torch.nn.functional.conv2d")


# --------------------------------------------------------------------------------------------
# Backward
# --------------------------------------------------------------------------------------------
def _torch_conv_backward(stride, padding):
    def run(dout, x, W):
        import torch  # noqa: PLC0415

        b = torch.zeros(W.shape[0], dtype=W.dtype, device=W.device, requires_grad=True)
        out = torch.nn.functional.conv2d(x, W, b, stride=stride, padding=padding)
        (out * dout.detach()).sum().backward()  # Σ δ ⊙ z: its gradient is the VJP with δ
        return x.grad, W.grad, b.grad

    return run


def _split_grads(fb: Feedback, label: str, result) -> tuple:
    __tracebackhide__ = True
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        fb.fail(WRONG_TYPE, f"{label} must return the triple (dx, dW, db), got {type(result).__name__}"
                + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else ""))
    return tuple(result)


def _unit_step_backward(dout, x, W, stride, padding):
    """(dx, dW, db) when every window is read one position apart (the stride forgotten in the backward)."""
    N, F, Ho, Wo = dout.shape
    Hp, Wp = x.shape[2] + 2 * padding, x.shape[3] + 2 * padding
    full = np.zeros((N, F, Hp - W.shape[2] + 1, Wp - W.shape[3] + 1))
    full[:, :, :Ho, :Wo] = dout
    dx, dW, _ = _ref_backward(full, x, W, 1, padding)
    return dx, dW, dout.sum(axis=(0, 2, 3))


def _backward_probes(fn: Callable, dout, x, W, stride, padding) -> tuple[list, list, list]:
    """Probes for dx, dW and db of one case."""
    N = x.shape[0]
    ref = _ref_backward(dout, x, W, stride, padding)

    def part(i, xx=x):
        r = try_call(fn, dout, xx, W, stride, padding)
        return r[i] if isinstance(r, (tuple, list)) and len(r) == 3 else None

    def like(i, *variants):
        got = part(i)
        return any(close(got, v) for v in variants)

    padded = (N, x.shape[1], x.shape[2] + 2 * padding, x.shape[3] + 2 * padding)
    common = [
        Probe(INTEGER_INPUT, lambda: x.dtype.kind in "iu" and all(close(part(i, x.astype(float)), ref[i])
                                                                  for i in range(3)),
              f"with the same image as a float array your gradients are right, with the integer array ({x.dtype}) "
              "they are not: an array made like the input (np.zeros_like(x_padded)) has its integer dtype; "
              "give the gradient arrays a float dtype"),
        Probe(STRIDE_IGNORED, lambda: stride > 1 and all(close(part(i), v) for i, v in enumerate(
            _unit_step_backward(dout, x, W, stride, padding))),
              "your gradients are those of windows one position apart: output (i′, j′) reads, and sends its "
              "gradient back to, the window starting at (s·i′, s·j′)"),
    ]
    dx_probes = common + [
        Probe(PADDING_NOT_CROPPED, lambda: padding > 0 and np.shape(part(0)) == padded,
              "dx has the shape of the *padded* input: cut the padding off, dx must have x's shape"),
        Probe(EMPTY_CROP, lambda: padding == 0 and np.shape(part(0)) == (N, x.shape[1], 0, 0),
              "with padding 0 your dx is empty: xp[:, :, p:-p] is xp[:, :, 0:0] when p = 0; cut with "
              "xp[:, :, p:p + H, p:p + W]"),
        Probe(FLIPPED_KERNEL, lambda: like(0, _ref_backward(dout, x, W[:, :, ::-1, ::-1], stride, padding)[0]),
              "dx: each output sends δ·W[f′, f, i, j] back to the input a[s·i′ + i, s·j′ + j] it was multiplied "
              "with — the same W index as in the forward pass, no flip"),
    ]
    dW_probes = common + [
        Probe(DW_NOT_SUMMED, lambda: like(1, _ref_backward(dout[-1:], x[-1:], W, stride, padding)[1]),
              "dW holds only the last example's contribution: the filters are shared by every example, so "
              "dW (and db) sum over the batch (+=, not =)"),
        Probe(BATCH_FACTOR, lambda: N > 1 and like(1, ref[1] / N),
              "dW is the right one divided by the batch size N: the upstream gradient already carries any 1/N, "
              "so sum over the batch"),
        Probe(FLIPPED_KERNEL, lambda: like(1, _ref_backward(dout, x, W[:, :, ::-1, ::-1], stride, padding)[1],
                                           ref[1][:, :, ::-1, ::-1]),
              "dW[f′, f, i, j] = Σ δ[n, f′, i′, j′] · a[n, f, s·i′ + i, s·j′ + j]: no flip"),
    ]
    db_probes = common + [
        Probe(DW_NOT_SUMMED, lambda: N > 1 and like(2, dout[-1:].sum(axis=(0, 2, 3))),
              "db holds only the last example's contribution: sum δ over the batch and all positions"),
        Probe(BATCH_FACTOR, lambda: N > 1 and like(2, ref[2] / N),
              "db is the right one divided by the batch size N: sum δ over the batch and all positions"),
    ]
    return dx_probes, dW_probes, db_probes


def check_conv_backward_loops(conv2d_backward_loops: Callable, *, hidden: bool = False) -> None:
    """``conv2d_backward_loops(dout, x, W, stride, padding)`` → (dx, dW, db) for δ = dout = ∂ℒ/∂z."""
    __tracebackhide__ = True
    fb = Feedback("conv_backward_loops", hidden=hidden)
    rng = seeded(103 if not hidden else 104)
    fn = conv2d_backward_loops
    for x, W, _b, stride, padding in _conv_cases(hidden, 105 if not hidden else 106):
        out_shape = (x.shape[0], W.shape[0], _out_size(x.shape[2], W.shape[2], stride, padding),
                     _out_size(x.shape[3], W.shape[3], stride, padding))
        dout = rng.normal(size=out_shape)
        ints = f" of integers ({x.dtype})" if x.dtype.kind in "iu" else ""
        label = (f"conv2d_backward_loops(dout, x, W, stride={stride}, padding={padding}) for x {x.shape}{ints}, "
                 f"W {W.shape}")
        probes = _backward_probes(fn, dout, x, W, stride, padding)
        result = _split_grads(fb, label, call(fb, fn, dout, x, W, stride, padding, name=label,
                                              probes=[p for ps in probes for p in ps]))
        names = ("dx", "dW", "db")
        hints = ("x's shape (N, C, H, W)", "W's shape (F, C, kh, kw)", "one entry per filter (F,)")
        for got, ref, ps, name, hint in zip(result, _ref_backward(dout, x, W, stride, padding), probes, names, hints):
            check_array(fb, f"{name} from {label}", got, ref, probes=ps, shape_hint=hint, relations=False)
        if x.size <= 200:  # dx and dW by central differences of Σ dout ⊙ conv(x, W)
            for i, (arg, ps) in enumerate(((x, probes[0]), (W, probes[1]))):
                def objective(a, i=i, dout=dout, x=x, W=W, s=stride, p=padding):
                    return float(np.sum(dout * _ref_forward(*((a, W) if i == 0 else (x, a)), None, s, p)))

                check_array(fb, f"{names[i]} from {label} against central differences of Σ dout ⊙ z",
                            result[i], numerical_gradient(objective, arg.astype(float)), rtol=NUM_RTOL, atol=NUM_ATOL,
                            probes=ps, relations=False)

        def student(dd, xx, WW, s=stride, p=padding):
            return _split_grads(fb, label, fn(dd, xx, WW, s, p))

        if not ints:
            check_against_torch(fb, f"(dx, dW, db) from {label}", student, _torch_conv_backward(stride, padding),
                                [dout, x, W], requires_grad=True, probes=[p for ps in probes for p in ps])
    fb.passed("dx, dW and db against nnkit and torch.autograd")


# --------------------------------------------------------------------------------------------
# Vectorised forward: same numbers, no loop over output positions
# --------------------------------------------------------------------------------------------
def _best_time(fn: Callable, *args, repeat: int = 3) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        with quiet():
            fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


def check_conv_forward_vectorised(conv2d_forward_vectorised: Callable, *, hidden: bool = False,
                                  min_speedup: float = 5.0) -> None:
    """The same outputs as the loops, and at least ``min_speedup`` times faster than the notes' loops.

    Speed is measured against nnkit's loop implementation on the same input, in the same process
    (a ratio, so a busy machine slows both alike; best of several runs). In a graded run each call of
    the answer also carries the round trip to the student's kernel, so an answer below the ratio is
    measured once more on a larger batch, where that fixed cost weighs less.
    """
    __tracebackhide__ = True
    from nnkit.functional.conv import conv2d_forward_naive  # noqa: PLC0415

    fb = Feedback("conv_forward_vectorised", hidden=hidden)
    fn = conv2d_forward_vectorised
    _check_forward(fb, "conv_forward_vectorised", fn, hidden, 107 if not hidden else 108, True)
    speedup = 0.0
    for shape in ((8, 3, 12, 12), (16, 3, 16, 16)):  # a second, larger batch only when the first is too slow
        rng = seeded(109)
        x, W, b = rng.normal(size=shape), rng.normal(size=(8, 3, 3, 3)), rng.normal(size=8)
        call(fb, fn, x, W, b, 1, 1, name=f"conv2d_forward_vectorised on a {shape} batch")
        speedup = _best_time(conv2d_forward_naive, x, W, b, 1, 1) / max(_best_time(fn, x, W, b, 1, 1), 1e-9)
        if speedup >= min_speedup:
            break
    if speedup < min_speedup:
        fb.fail(WRONG_VALUES, f"on a {shape} batch with 8 filters 3×3 your function is {speedup:.1f}× as fast "
                              f"as the loop version (best of 3 runs each), expected at least {min_speedup:g}×",
                likely=NOT_VECTORISED,
                hint="replace the loops over output positions by array operations: e.g. "
                     "np.lib.stride_tricks.sliding_window_view for the windows, then one np.einsum or tensordot")
    fb.passed(f"same outputs as the loops, {speedup:.0f}× faster")


# --------------------------------------------------------------------------------------------
# Max-pool backward
# --------------------------------------------------------------------------------------------
def _pool_cases(hidden: bool, seed: int) -> list[tuple]:
    """(x, kernel, stride, label): distinct values, ties, overlapping windows, and last an image of integers
    (an integer array, with ties)."""
    rng = seeded(seed)
    ties = rng.integers(0, 3, size=(2, 2, 6, 6)).astype(float)  # small integers: many tied maxima
    if not hidden:
        return [(rng.normal(size=(2, 3, 4, 6)), 2, 2, "distinct values"),
                (ties, 2, 2, "tied maxima in a window"),
                (rng.normal(size=(1, 2, 5, 5)), 3, 1, "overlapping windows (stride < kernel)"),
                (rng.integers(0, 4, size=(2, 1, 4, 6)), 2, 2, "an image of integers")]
    return [(rng.normal(size=(3, 2, 8, 8)), 2, 2, "distinct values"), (rng.normal(size=(2, 3, 9, 7)), 3, 2,
                                                                        "kernel 3, stride 2, rows and columns left over"),
            (ties, 3, 1, "ties and overlapping windows"), (np.ones((1, 1, 4, 4)), 2, 2, "a constant input"),
            (rng.normal(size=(2, 1, 6, 6)), 2, 1, "overlapping windows (stride < kernel)"),
            (rng.integers(0, 3, size=(1, 2, 7, 5)), 3, 2, "an image of integers")]


def _ref_pool_backward(dout, x, k, s) -> np.ndarray:
    from nnkit.functional.conv import maxpool2d_backward_naive, maxpool2d_forward_naive  # noqa: PLC0415

    return maxpool2d_backward_naive(dout, maxpool2d_forward_naive(np.asarray(x, dtype=float), k, s)[1])


def _pool_variant(dout, x, k, s, mode: str) -> np.ndarray:
    """Known wrong backward passes: to every position, to every tied maximum (whole or ``split``), to the
    last tied maximum, without accumulation, with the windows one position apart (``unit``)."""
    N, C, Ho, Wo = dout.shape
    x = np.asarray(x, dtype=float)
    dx = np.zeros_like(x)
    for i in range(Ho):
        for j in range(Wo):
            r0, c0 = (i, j) if mode == "unit" else (i * s, j * s)
            win = x[:, :, r0:r0 + k, c0:c0 + k]
            d = dout[:, :, i, j][:, :, None, None]
            if mode == "every":
                dx[:, :, r0:r0 + k, c0:c0 + k] += d
            elif mode == "average":
                dx[:, :, r0:r0 + k, c0:c0 + k] += d / (k * k)
            elif mode in ("ties", "split"):
                tied = win == win.max(axis=(2, 3), keepdims=True)
                share = tied.sum(axis=(2, 3), keepdims=True) if mode == "split" else 1
                dx[:, :, r0:r0 + k, c0:c0 + k] += d * tied / share
            else:
                flat = win.reshape(N, C, -1)
                idx = k * k - 1 - flat[:, :, ::-1].argmax(axis=2) if mode == "last_tie" else flat.argmax(axis=2)
                mask = np.zeros((N, C, k * k))
                np.put_along_axis(mask, idx[:, :, None], 1.0, axis=2)
                m = mask.reshape(N, C, k, k)
                view = dx[:, :, r0:r0 + k, c0:c0 + k]
                if mode == "overwrite":
                    view[m.astype(bool)] = np.broadcast_to(d, view.shape)[m.astype(bool)]
                else:
                    view += d * m
    return dx


def _pool_probes(fn: Callable, dout, x, k, s) -> list[Probe]:
    def got():
        return try_call(fn, dout, x, k, s)

    def like(mode):
        return lambda: close(got(), _pool_variant(dout, x, k, s, mode))

    def non_overlapping_right():
        d = seeded(116).normal(size=(x.shape[0], x.shape[1], (x.shape[2] - k) // k + 1, (x.shape[3] - k) // k + 1))
        return close(try_call(fn, d, x, k, k), _ref_pool_backward(d, x, k, k))

    ref = _ref_pool_backward(dout, x, k, s)
    return [
        Probe(INTEGER_INPUT, lambda: x.dtype.kind in "iu" and close(try_call(fn, dout, x.astype(float), k, s), ref),
              f"the same image as a float array gives the right dx, the integer array ({x.dtype}) does not: "
              "np.zeros_like(x) has the input's integer dtype and cannot hold the gradients; make dx a float array"),
        Probe(POOL_EVERY_POSITION, like("every"),
              "only the maximum of each window affected the output, so only it receives the gradient; "
              "the other positions get 0"),
        Probe(POOL_EVERY_POSITION, like("average"), "that is average pooling's gradient δ/k² to every position; "
                                                    "max-pooling sends δ to the arg-max only"),
        Probe(POOL_NOT_ARGMAX, like("ties"),
              "where several positions tie for the maximum the gradient went to all of them; send it to one: the "
              "first maximum in row-major order (np.argmax), as PyTorch does"),
        Probe(POOL_NOT_ARGMAX, like("split"),
              "where several positions tie for the maximum you split the gradient between them; send all of it "
              "to one: the first maximum in row-major order (np.argmax), as PyTorch does"),
        Probe(POOL_NOT_ARGMAX, like("last_tie"),
              "on ties the gradient went to the last maximum; PyTorch and nnkit use the first (np.argmax)"),
        Probe(NO_ACCUMULATION, like("overwrite"),
              "overlapping windows (stride < kernel) can share their maximum: add their gradients (+=) "
              "instead of overwriting"),
        Probe(STRIDE_IGNORED, lambda: s > 1 and close(got(), _pool_variant(dout, x, k, s, "unit")),
              "your windows start one position apart: output (i′, j′) pools the window starting at (s·i′, s·j′)"),
        Probe(POOL_NO_OVERLAP, lambda: s != k and non_overlapping_right(),
              "on the same input with stride = kernel size your dx is right, with stride < kernel it is not: "
              "somewhere the stride stands where the kernel size belongs (or the reverse) — windows start every "
              "`stride` positions and are `kernel_size` wide (an index inside a window unravels with the kernel "
              "width), and where windows overlap their gradients add up"),
        Probe(POOL_NOT_ARGMAX, lambda: np.shape(got()) == x.shape and 0 < np.count_nonzero(got()) <= dout.size
              and np.isclose(np.sum(got()), np.sum(dout)),
              "your dx adds up to the same total as dout, on no more positions than there are windows, but not "
              "on the arg-max positions: check how the index of the maximum inside the window maps back to "
              "(row, column) of x"),
    ]


def check_maxpool_backward(maxpool_backward: Callable, *, hidden: bool = False) -> None:
    """``maxpool_backward(dout, x, kernel_size, stride)`` → dx: each δ to the first arg-max of its window."""
    __tracebackhide__ = True
    fb = Feedback("maxpool_backward", hidden=hidden)
    rng = seeded(111 if not hidden else 112)
    for x, k, s, what in _pool_cases(hidden, 113 if not hidden else 114):
        N, C, H, W = x.shape
        dout = rng.normal(size=(N, C, (H - k) // s + 1, (W - k) // s + 1))
        label = f"maxpool_backward(dout, x, kernel_size={k}, stride={s}) for x {x.shape}, {what}"
        probes = _pool_probes(maxpool_backward, dout, x, k, s)
        result = call(fb, maxpool_backward, dout, x, k, s, name=label, probes=probes)
        check_array(fb, f"dx from {label}", result, _ref_pool_backward(dout, x, k, s), probes=probes,
                    shape_hint="x's shape", relations=False)
        if what == "distinct values":  # no ties: max-pooling is differentiable there
            from nnkit.functional.conv import maxpool2d_forward_fast  # noqa: PLC0415

            numeric = numerical_gradient(lambda a, dd=dout, kk=k, ss=s: float(np.sum(
                dd * maxpool2d_forward_fast(a, kk, ss)[0])), x.copy())
            check_array(fb, f"dx from {label} against central differences of Σ dout ⊙ maxpool(x)", result, numeric,
                        rtol=NUM_RTOL, atol=NUM_ATOL, probes=probes, relations=False)

        def torch_fn(dd, xx, kk=k, ss=s):
            import torch  # noqa: PLC0415

            (torch.nn.functional.max_pool2d(xx, kk, ss) * dd.detach()).sum().backward()
            return xx.grad

        if x.dtype.kind == "f":
            check_against_torch(fb, f"dx from {label}", lambda dd, xx, kk=k, ss=s: maxpool_backward(dd, xx, kk, ss),
                                torch_fn, [dout, x], requires_grad=True, probes=probes)
    fb.passed("gradients to the arg-max, ties, overlapping windows, an image of integers")


# --------------------------------------------------------------------------------------------
# A convnet on the digits
# --------------------------------------------------------------------------------------------
EPOCHS, BATCH, LR, MOMENTUM, MAX_PARAMETERS, MIN_ACCURACY = 8, 32, 0.05, 0.9, 20_000, 0.90


def train_and_evaluate(build_convnet: Callable, seed: int = 0, epochs: int = EPOCHS) -> tuple[object, float]:
    """Train ``build_convnet(rng=seed)`` on the digits as the grader does; return (model, test accuracy).

    The recipe: images (N, 1, 8, 8) in [0, 1], nnkit's stratified split with ``rng=0`` (70 % train,
    15 % validation unused, 15 % test), cross entropy, SGD with lr 0.05 and momentum 0.9, batches
    of 32, ``epochs`` epochs shuffled with ``seed``.
    """
    import nnkit as nk  # noqa: PLC0415

    X, y = nk.data.load_digits(images=True)
    (X_tr, y_tr), _, (X_te, y_te) = nk.data.train_val_test_split(X, y, rng=0)
    model = build_convnet(rng=seed)
    optimizer = nk.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    nk.train.fit(model, nk.CrossEntropyLoss(), optimizer, train=(X_tr, y_tr), epochs=epochs, batch_size=BATCH,
                 rng=seed, progress=False)
    return model, nk.train.accuracy(model, X_te, y_te)


def _layers(model) -> list:
    """The layers of a Sequential model in order ([] for a model of another kind)."""
    try:
        return list(model) if type(model).__name__ == "Sequential" else []
    except Exception:  # noqa: BLE001
        return []


def _first_misfit(model, x) -> tuple[int, object, tuple] | None:
    """(position, layer, input shape) of the first layer that raises on what the layers before it made."""
    a = x
    for i, layer in enumerate(_layers(model)):
        try:
            with quiet():
                a = layer.forward(a)
        except Exception:  # noqa: BLE001
            return i, layer, np.shape(a)
    return None


def _structure_probes(model, x) -> list[Probe]:
    """Why the model's forward pass raises, found by running its layers one at a time."""
    found = _first_misfit(model, x)
    if found is None:
        return []
    i, layer, shape = found
    kind = type(layer).__name__
    return [
        Probe(NO_FLATTEN, lambda: kind == "Linear" and len(shape) > 2,
              f"layer {i} (Linear) received an array of shape {shape}: a Linear layer multiplies the last axis "
              "only, so put nk.Flatten() before it to turn each image's feature maps into one row"),
        Probe(SIZES_DO_NOT_FIT, lambda: kind in ("Linear", "Conv2d"),
              f"layer {i} ({kind}) raised on its input of shape {shape}, the output of the layers before it: "
              "its number of inputs (in_features or in_channels) must match that shape"),
    ]


def _gradient_stop(model, x) -> str | None:
    """The layer whose backward pass returns exactly zero for a nonzero upstream gradient (e.g. a Step), when
    layers with parameters lie below it; None when the gradient reaches the first layer."""
    layers = _layers(model)
    try:
        with quiet():
            a = x
            for layer in layers:
                a = layer.forward(a)
            g = seeded(122).normal(size=np.shape(a))
            for i in reversed(range(len(layers))):
                below = any(any(True for _ in layer.parameters()) for layer in layers[:i])
                g_new = np.asarray(layers[i].backward(g))
                if np.any(g) and not np.any(g_new) and below:
                    return f"layer {i} ({type(layers[i]).__name__})"
                g = g_new
    except Exception:  # noqa: BLE001
        return None
    finally:
        with contextlib.suppress(Exception):
            model.zero_grad()
    return None


def _check_logits(fb: Feedback, out: np.ndarray) -> None:
    __tracebackhide__ = True
    if out.shape == (50,):
        fb.fail(WRONG_SHAPE, "for x of shape (5, 1, 8, 8) the model returns one array of 50 numbers, expected (5, 10): "
                             "the five images' logits are flattened into one axis", likely=BATCH_FLATTENED,
                hint="Flatten keeps the batch axis (start_dim=1, its default); flatten each image, not the batch")
    if out.shape != (5, 10):
        fb.fail(WRONG_SHAPE, f"for x of shape (5, 1, 8, 8) the model returns shape {out.shape}, expected (5, 10): "
                             "one row of 10 logits per image")
    if np.all(out >= 0) and np.allclose(out.sum(axis=1), 1.0):
        fb.fail(WRONG_VALUES, "every row of model(x) is ≥ 0 and sums to 1: the model returns probabilities",
                likely=SOFTMAX_OUTPUT, hint="nk.CrossEntropyLoss applies the (log-)softmax itself: end with the "
                                            "Linear layer and return its logits")


def check_convnet(build_convnet: Callable, *, hidden: bool = False) -> None:
    """``build_convnet(rng)`` → an nnkit model with Conv2d and MaxPool2d layers, (N, 1, 8, 8) → (N, 10) logits,
    at most 20 000 parameters, that reaches 90 % test accuracy with ``train_and_evaluate``."""
    __tracebackhide__ = True
    import nnkit as nk  # noqa: PLC0415

    fb = Feedback("convnet", hidden=hidden)
    model = call(fb, build_convnet, name="build_convnet(rng=0)", rng=0)
    if not isinstance(model, nk.Module):
        fb.fail(WRONG_TYPE, f"build_convnet must return an nnkit model (e.g. nk.Sequential(...)) made of "
                            f"nnkit's layers, got {type_name(model)}")
    kinds = [type(m).__name__ for m in model.modules()]
    if "Conv2d" not in kinds:
        fb.fail(WRONG_VALUES, f"the model has no convolutional layer (its layers: {', '.join(kinds[1:])})",
                likely=NO_CONV, hint="start with nk.Conv2d(1, channels, kernel_size, padding=...)")
    if "MaxPool2d" not in kinds:
        fb.fail(WRONG_VALUES, f"the model has no pooling layer (its layers: {', '.join(kinds[1:])})", likely=NO_POOL,
                hint="add nk.MaxPool2d(2) after a convolution and its activation")
    n_params = sum(p.data.size for p in model.parameters())
    if n_params > MAX_PARAMETERS:
        fb.fail(WRONG_VALUES, f"the model has {n_params} parameters, more than {MAX_PARAMETERS}", likely=TOO_BIG,
                hint="keep it small: a few channels and one small Linear layer suffice for 8×8 digits")
    x = seeded(121).random((5, 1, 8, 8))
    out = as_array(fb, "model(x)", call(fb, model.forward, x, name="model.forward on x of shape (5, 1, 8, 8)",
                                        probes=_structure_probes(model, x)))
    _check_logits(fb, out)
    # the same model in PyTorch gives the same logits (on every device)
    check_against_torch(fb, "model(x)", lambda xx: model.forward(np.asarray(xx, dtype=np.float64)),
                        lambda xt: nk.parity.to_torch(model, dtype=xt.dtype, device=str(xt.device)).eval()(xt), [x])
    stop = _gradient_stop(model, x)
    if stop is not None:
        fb.fail(WRONG_VALUES, f"for a batch of images and a random ∂ℒ/∂out, the gradient that {stop} passes down is "
                              "exactly 0, so the layers below it get no gradient and cannot learn", likely=NO_GRADIENT,
                hint="a layer whose derivative is 0 everywhere (such as Step) blocks the backward pass: use ReLU")

    # the initial weights come from the generator build_convnet is given, and from nothing else
    def initial_weights(seed):
        built = call(fb, build_convnet, name=f"build_convnet(rng={seed})", rng=seed)
        return [np.asarray(p.data, dtype=float) for p in built.parameters()]

    check_uses_generator(fb, "build_convnet(rng=seed)", initial_weights, (0, 1) if not hidden else (2, 3),
                         differ="the initial weights")
    seed = 0 if not hidden else 1
    start = time.perf_counter()
    trained, acc = call(fb, train_and_evaluate, build_convnet, seed, name=f"training build_convnet(rng={seed})")
    seconds = time.perf_counter() - start
    if not acc >= MIN_ACCURACY:
        fb.fail(WRONG_VALUES, f"after {EPOCHS} epochs of SGD (lr {LR}, momentum {MOMENTUM}, batches of {BATCH}; "
                              f"seed {seed}) the test accuracy is {acc:.1%}, below {MIN_ACCURACY:.0%}")
    fb.passed(f"{n_params} parameters, test accuracy {acc:.1%} after {EPOCHS} epochs ({seconds:.1f} s)")
