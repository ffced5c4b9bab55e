"""Convolutional layers: ``Conv2d`` and ``MaxPool2d`` on NCHW batches, PyTorch's semantics.

Each layer's forward and backward call one of two implementations in
``nnkit.functional.conv``: ``impl="fast"`` (default; matrix products on strided views)
or ``impl="naive"`` (the lecture equations as loops, for reading and checking). Both give
the same numbers; the tests check them against each other and against PyTorch.
"""
from __future__ import annotations

import math

import numpy as np

from ._random import get_rng
from .errors import ShapeError, describe
from .functional import conv as C
from .module import Module, Parameter

_IMPLS = {
    "fast": (C.conv2d_forward_fast, C.conv2d_backward_fast, C.maxpool2d_forward_fast, C.maxpool2d_backward_fast),
    "naive": (C.conv2d_forward_naive, C.conv2d_backward_naive, C.maxpool2d_forward_naive, C.maxpool2d_backward_naive),
}


def _impl(impl: str, who: str):
    if impl not in _IMPLS:
        raise ValueError(f"{who}: impl must be 'fast' or 'naive', got {impl!r}")
    return _IMPLS[impl]


def _hw(pair: tuple[int, int]) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair}"


class Conv2d(Module):
    """2-D convolution over a batch of images (N, C_in, H, W) → (N, C_out, H_out, W_out).

    With input a = a^{ℓ−1} zero-padded by p, stride s, filters W of shape
    (out_channels, in_channels, kh, kw) (PyTorch's layout) and bias b, layer ℓ computes

        z^ℓ[n, f′, i′, j′] = b[f′] + Σ_f Σ_i Σ_j a[n, f, s·i′ + i, s·j′ + j] · W[f′, f, i, j]

    — the notes' z_{i′,j′,f′} = b_{f′} + Σ_{i,j,f} a_{i′+i−1, j′+j−1, f} w_{i,j,f}^{f′}, counted
    from 0 and with a stride. Like the notes and PyTorch it is a cross-correlation (the kernel is
    not flipped). H_out = ⌊(H + 2p − kh)/s⌋ + 1, likewise W_out.

    Backward, with δ = ∂ℒ/∂z^ℓ (the upstream gradient), accumulating into ``.grad``:

        ∂ℒ/∂W[f′, f, i, j] = Σ_{n,i′,j′} δ[n, f′, i′, j′] · a[n, f, s·i′ + i, s·j′ + j]
        ∂ℒ/∂b[f′]          = Σ_{n,i′,j′} δ[n, f′, i′, j′]
        ∂ℒ/∂a[n, f, r, c]  = Σ_{f′} Σ_{i′,j′ : (r, c) = (s·i′ + i, s·j′ + j)} δ[n, f′, i′, j′] · W[f′, f, i, j]

    Parameters follow ``torch.nn.Conv2d``: ``kernel_size``, ``stride`` and ``padding`` are an
    int or a (rows, columns) pair; weight and bias start as U[−1/√n, 1/√n] with
    n = in_channels·kh·kw (PyTorch's default). ``impl`` chooses the fast or the naive code.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, *, impl: str = "fast", rng=None, dtype=np.float64):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Conv2d: {name} must be a positive int, got {value!r}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size = C._pair(kernel_size, "Conv2d: kernel_size", 1)
        self.stride = C._pair(stride, "Conv2d: stride", 1)
        self.padding = C._pair(padding, "Conv2d: padding", 0)
        self._forward_fn, self._backward_fn = _impl(impl, "Conv2d")[:2]
        self.impl = impl
        rng = get_rng(rng)
        kh, kw = self.kernel_size
        bound = 1.0 / math.sqrt(in_channels * kh * kw)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_channels, in_channels, kh, kw)).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_channels).astype(dtype)) if bias else None
        self._cache = None

    def extra_repr(self) -> str:
        kh, kw = self.kernel_size
        text = f"{self.in_channels}→{self.out_channels}, kernel_size={kh}×{kw}"
        if self.stride != (1, 1):
            text += f", stride={_hw(self.stride)}"
        if self.padding != (0, 0):
            text += f", padding={_hw(self.padding)}"
        if self.bias is None:
            text += ", bias=False"
        return text

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            hint = " For a single image use x[None] to add the batch axis." if x.ndim == 3 else ""
            raise ShapeError(
                f"{self.label()}: expected input of shape (N, {self.in_channels}, H, W) — a batch of images "
                f"with {self.in_channels} channel{'s' if self.in_channels > 1 else ''} — got {describe(x)}.{hint}"
            )
        C._output_hw(x.shape, self.kernel_size, self.stride, self.padding, self.label())
        bias = None if self.bias is None else self.bias.data
        out, self._cache = self._forward_fn(x, self.weight.data, bias, self.stride, self.padding)
        return out

    def backward(self, grad):
        dx, dw, db = self._backward_fn(grad, self._cache)
        self.weight.grad += dw                  # ∂ℒ/∂W = Σ δ · a  (accumulates, as in PyTorch)
        if self.bias is not None:
            self.bias.grad += db                # ∂ℒ/∂b = Σ δ
        return dx                               # ∂ℒ/∂a^{ℓ−1}


class MaxPool2d(Module):
    """Max-pooling: each output is the largest input in its kh×kw window.

        out[n, c, i′, j′] = max_{(r, q) ∈ Ω(i′, j′)} a[n, c, r, q],
        Ω(i′, j′) = {s·i′ + i, s·j′ + j : 0 ≤ i < kh, 0 ≤ j < kw}     (on the padded input)

    Backward sends each δ[n, c, i′, j′] to the arg-max of its window and nowhere else:

        ∂ℒ/∂a[n, c, r, q] = Σ_{i′,j′} δ[n, c, i′, j′] · 𝟙[(r, q) = argmax_{Ω(i′, j′)} a]

    Ties (the notes: "the derivative can be undefined when argmax is a set") go to the first
    maximum in row-major window order, as in PyTorch; where windows overlap (stride < kernel)
    the gradients of the windows add up. ``stride`` defaults to ``kernel_size``; ``padding``
    pads with −∞ and may be at most half the kernel (PyTorch's rules). No parameters.
    """

    def __init__(self, kernel_size, stride=None, padding=0, *, impl: str = "fast"):
        super().__init__()
        self.kernel_size = C._pair(kernel_size, "MaxPool2d: kernel_size", 1)
        self.stride = self.kernel_size if stride is None else C._pair(stride, "MaxPool2d: stride", 1)
        self.padding = C._pair(padding, "MaxPool2d: padding", 0)
        if self.padding[0] > self.kernel_size[0] // 2 or self.padding[1] > self.kernel_size[1] // 2:
            raise ValueError(
                f"MaxPool2d: padding {self.padding} must be at most half the kernel size {self.kernel_size} "
                "(as in PyTorch); otherwise a window could hold nothing but padding."
            )
        self._forward_fn, self._backward_fn = _impl(impl, "MaxPool2d")[2:]
        self.impl = impl
        self._cache = None

    def extra_repr(self) -> str:
        text = f"kernel_size={_hw(self.kernel_size)}"
        if self.stride != self.kernel_size:
            text += f", stride={_hw(self.stride)}"
        if self.padding != (0, 0):
            text += f", padding={_hw(self.padding)}"
        return text

    def forward(self, x):
        if x.ndim != 4:
            hint = " For a single image use x[None] to add the batch axis." if x.ndim == 3 else ""
            raise ShapeError(f"{self.label()}: expected input of shape (N, C, H, W), got {describe(x)}.{hint}")
        C._output_hw(x.shape, self.kernel_size, self.stride, self.padding, self.label())
        out, self._cache = self._forward_fn(x, self.kernel_size, self.stride, self.padding)
        return out

    def backward(self, grad):
        return self._backward_fn(grad, self._cache)
