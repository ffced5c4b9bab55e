"""Convolution and max-pooling, forward and backward, each written twice.

* ``*_naive``: the loops of the lecture equations, one output position at a time. Slow, but
  they read like the notes, and the tests use them as an oracle for the fast versions.
* ``*_fast``: the same numbers from whole-array numpy (forward: im2col + one matrix product per
  chunk of the batch; backward: one matrix product per kernel offset; strided views for
  pooling). These are what ``nk.Conv2d`` and ``nk.MaxPool2d`` use by default; they keep float32
  in float32.

Every function follows the CS231n convention: ``forward(...)`` returns ``(out, cache)``, and
``backward(dout, cache)`` takes the upstream gradient ∂ℒ/∂out and returns the gradient of every
input. Arrays are NCHW: N examples, C channels, H rows, W columns.

Notation (the notes' convolutional layer, indices from 0 and with stride s and padding p):
layer ℓ reads a = a^{ℓ−1}, zero-padded by p on each side, and computes

    z[n, f′, i′, j′] = b[f′] + Σ_f Σ_i Σ_j a[n, f, s·i′ + i, s·j′ + j] · W[f′, f, i, j]

(a cross-correlation, as in the notes and in PyTorch: the kernel is not flipped). With
δ = ∂ℒ/∂z the backward equations are

    ∂ℒ/∂W[f′, f, i, j]  = Σ_n Σ_{i′,j′} δ[n, f′, i′, j′] · a[n, f, s·i′ + i, s·j′ + j]
    ∂ℒ/∂b[f′]           = Σ_n Σ_{i′,j′} δ[n, f′, i′, j′]
    ∂ℒ/∂a[n, f, r, c]   = Σ_{f′} Σ_{(i′,j′): r = s·i′+i, c = s·j′+j} δ[n, f′, i′, j′] · W[f′, f, i, j]

(the notes write the last one as Σ δ_{i′j′f′} w_{i−i′+1, j−j′+1, f}: every output whose window
covers input position (r, c) sends back its δ times the weight that connected them).

Max-pooling over the window Ω(i′, j′) of each output:

    out[n, c, i′, j′] = max_{(r, q) ∈ Ω(i′, j′)} a[n, c, r, q]
    ∂ℒ/∂a[n, c, r, q] = Σ_{(i′,j′)} δ[n, c, i′, j′] · 𝟙[(r, q) = argmax over Ω(i′, j′)]

Where the maximum is not unique the notes say the derivative is undefined; nnkit picks, as
PyTorch does, the *first* maximum in row-major order of the window, and windows that overlap
(stride < kernel) add their gradients into the positions they share.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..errors import ShapeError, describe

__all__ = [
    "conv2d",
    "conv2d_backward_fast",
    "conv2d_backward_naive",
    "conv2d_forward_fast",
    "conv2d_forward_naive",
    "conv_output_size",
    "max_pool2d",
    "maxpool2d_backward_fast",
    "maxpool2d_backward_naive",
    "maxpool2d_forward_fast",
    "maxpool2d_forward_naive",
]


# --------------------------------------------------------------------------------------------
# geometry and argument checks shared by both implementations and by the layers
# --------------------------------------------------------------------------------------------
def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    """``3`` → ``(3, 3)``; ``(3, 2)`` stays; anything else is a clear error."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (isinstance(value, (tuple, list)) and len(value) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{name} must be an int or a pair of ints (rows, columns), got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{name} must be ≥ {minimum}, got {value!r}")
    return pair


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length along one axis: ⌊(size + 2·padding − kernel) / stride⌋ + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def _check_images(x: np.ndarray, who: str, what: str = "input") -> None:
    if x.ndim != 4:
        hint = " For a single image use x[None] to add the batch axis." if x.ndim == 3 else ""
        raise ShapeError(
            f"{who}: expected a batch of images of shape (N, C, H, W), got {what} of {describe(x)}.{hint}"
        )


def _output_hw(x_shape, kernel, stride, padding, who: str) -> tuple[int, int]:
    """(H_out, W_out), or a ShapeError when the kernel does not fit in the padded input."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    H, W = x_shape[2], x_shape[3]
    if H + 2 * ph < kh or W + 2 * pw < kw:
        raise ShapeError(
            f"{who}: the {kh}×{kw} kernel does not fit in the input: input of shape {tuple(x_shape)} has "
            f"spatial size {H}×{W}, {H + 2 * ph}×{W + 2 * pw} after padding {(ph, pw)}. The padded input must be "
            "at least as large as the kernel."
        )
    return conv_output_size(H, kh, sh, ph), conv_output_size(W, kw, sw, pw)


def _conv_args(x, w, b, stride, padding, who: str = "conv2d"):
    x, w = np.asarray(x), np.asarray(w)
    _check_images(x, who)
    if w.ndim != 4:
        raise ShapeError(f"{who}: weight must have shape (out_channels, in_channels, kh, kw), got {describe(w)}")
    if x.shape[1] != w.shape[1]:
        raise ShapeError(
            f"{who}: input has {x.shape[1]} channels (shape {x.shape}) but the weight of shape {w.shape} "
            f"expects {w.shape[1]} input channels."
        )
    if b is not None:
        b = np.asarray(b)
        if b.shape != (w.shape[0],):
            raise ShapeError(f"{who}: bias must have shape ({w.shape[0]},) to match the weight {w.shape}, got {describe(b)}")
    stride, padding = _pair(stride, "stride", 1), _pair(padding, "padding", 0)
    out_hw = _output_hw(x.shape, w.shape[2:], stride, padding, who)
    return x, w, b, stride, padding, out_hw


def _pool_args(x, kernel_size, stride, padding, who: str = "max_pool2d"):
    x = np.asarray(x)
    _check_images(x, who)
    kernel = _pair(kernel_size, "kernel_size", 1)
    stride = kernel if stride is None else _pair(stride, "stride", 1)
    padding = _pair(padding, "padding", 0)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(
            f"{who}: padding {padding} must be at most half the kernel size {kernel} (as in PyTorch), "
            "otherwise a window could hold nothing but padding."
        )
    out_hw = _output_hw(x.shape, kernel, stride, padding, who)
    return x, kernel, stride, padding, out_hw


def _pad(x: np.ndarray, padding: tuple[int, int], value: float = 0.0) -> np.ndarray:
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=value)


def _unpad(xp: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    ph, pw = padding
    return xp[:, :, ph:xp.shape[2] - ph, pw:xp.shape[3] - pw]


# --------------------------------------------------------------------------------------------
# convolution, naive: the notes' equations, one output position at a time
# --------------------------------------------------------------------------------------------
def conv2d_forward_naive(x, w, b=None, stride=1, padding=0):
    """z[n, f′, i′, j′] = b[f′] + Σ_f Σ_i Σ_j a[n, f, s·i′ + i, s·j′ + j] · W[f′, f, i, j].

    Inputs:
      x: (N, C, H, W) input a^{ℓ−1}
      w: (F, C, kh, kw) filters (PyTorch's layout: out, in, rows, columns)
      b: (F,) biases, or None
      stride, padding: int or (rows, columns); the input is zero-padded by ``padding``

    Returns ``(out, cache)``: out (N, F, H_out, W_out) with H_out = ⌊(H + 2p − kh)/s⌋ + 1,
    cache = what ``conv2d_backward_naive`` needs (padded input, weight, geometry).
    """
    x, w, b, stride, padding, (Ho, Wo) = _conv_args(x, w, b, stride, padding, "conv2d_forward_naive")
    (sh, sw), (kh, kw) = stride, w.shape[2:]
    N, F = x.shape[0], w.shape[0]
    xp = _pad(x, padding)
    out = np.zeros((N, F, Ho, Wo), dtype=np.result_type(x, w))
    for n in range(N):
        for f in range(F):                     # output channel f′
            for i in range(Ho):                # output row i′
                for j in range(Wo):            # output column j′
                    window = xp[n, :, i * sh:i * sh + kh, j * sw:j * sw + kw]  # a[n, :, s·i′ + i, s·j′ + j]
                    out[n, f, i, j] = np.sum(window * w[f])                  # Σ_f Σ_i Σ_j a · W[f′]
                    if b is not None:
                        out[n, f, i, j] += b[f]
    return out, (xp, w, b is not None, stride, padding)


def conv2d_backward_naive(dout, cache):
    """Gradients of the convolution, one output position at a time.

    Inputs:
      dout: (N, F, H_out, W_out) upstream gradient δ = ∂ℒ/∂z
      cache: from ``conv2d_forward_naive``

    Returns ``(dx, dw, db)``: dx (N, C, H, W) = ∂ℒ/∂a^{ℓ−1}, dw (F, C, kh, kw) = ∂ℒ/∂W,
    db (F,) = ∂ℒ/∂b (None when the forward had no bias).

    Each output z[n, f′, i′, j′] was a sum of (input in its window) × (weight), so it sends
    δ[n, f′, i′, j′] × input to the weight gradient, δ × weight back to each input in its
    window, and δ itself to b[f′]: the notes' three sums, accumulated output by output.
    """
    xp, w, has_bias, (sh, sw), padding = cache
    dout = np.asarray(dout)
    N, F, Ho, Wo = dout.shape
    kh, kw = w.shape[2:]
    dxp = np.zeros(xp.shape, dtype=np.result_type(xp, w, dout))
    dw = np.zeros(w.shape, dtype=dxp.dtype)
    db = np.zeros(F, dtype=dxp.dtype) if has_bias else None
    for n in range(N):
        for f in range(F):
            for i in range(Ho):
                for j in range(Wo):
                    delta = dout[n, f, i, j]                                  # δ[n, f′, i′, j′]
                    rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
                    dw[f] += delta * xp[n, :, rows, cols]                     # ∂ℒ/∂W += δ · a
                    dxp[n, :, rows, cols] += delta * w[f]                     # ∂ℒ/∂a += δ · W
                    if has_bias:
                        db[f] += delta                                        # ∂ℒ/∂b += δ
    return np.ascontiguousarray(_unpad(dxp, padding)), dw, db


# --------------------------------------------------------------------------------------------
# convolution, fast: im2col on a flattened padded image, one matrix product per chunk
# --------------------------------------------------------------------------------------------
# Layout. The batch is cut into chunks of m images. Each channel of a chunk is stored as flat,
# zero-padded rows: padded row r of every image of the chunk side by side (row length R ≥ W + 2p,
# a multiple of s_w), then row r + 1, and so on; the chunks follow one another. Output position
# (i′, j′) of image n of the chunk, with kernel offset (i, j), then reads flat index
#     (s_h·i′ + i)·m·R + n·R + s_w·j′ + j  =  (i·m·R + j) + s_w·q,   q = i′·s_h·m·R/s_w + n·R/s_w + j′
# (from the chunk's start), so for one offset (i, j) the inputs of *all* output positions of the
# chunk are one strided slice of the row (a contiguous one when s_w = 1). The forward copies these
# kh·kw slices into a column matrix (one `as_strided` view copied once) and does one matrix
# product; the backward needs no column matrix at all: per offset, ∂ℒ/∂W[:, :, i, j] is one
# product with the slice and ∂ℒ/∂a is one product added back onto it. That replaces millions of
# W_out-long pieces, which is what makes naive numpy im2col slow.
# The price: positions j′ ≥ W_out (and rows between output rows when s_h > 1) are computed too.
# They read neighbouring pixels and are thrown away; in the backward they get δ = 0, so they add
# nothing. Putting the images of a chunk side by side, rather than one after the other, keeps
# these extra positions to the kw − 1 columns per row, and the chunks keep the working arrays in
# the cache.

_CHUNK_BYTES = 4 << 20            # forward: column matrix of one chunk, about the L2/L3 cache
_BACKWARD_CHUNK_BYTES = 512 << 10  # backward: input, δ and ∂ℒ/∂a rows of one chunk, half an L2
_MIN_BLOCK = 1024                  # backward: fewest positions per product (else BLAS calls cost more)


def _chunk_size(n: int, budget: int, bytes_per_example: int) -> int:
    """Examples per chunk: as many as fit in ``budget`` (at least 1), split into equal chunks."""
    most = max(1, budget // max(1, bytes_per_example))
    return -(-n // -(-n // most)) if n else 1


class _FlatGeometry:
    """Sizes of the flat layout for one convolution, and the views into it."""

    def __init__(self, x_shape, w_shape, stride, padding, out_hw, itemsize):
        N, C, H, W = x_shape
        F, _, kh, kw = w_shape
        (sh, sw), (ph, pw), (Ho, Wo) = stride, padding, out_hw
        R = -(-(W + 2 * pw) // sw) * sw            # length of a padded row, a multiple of s_w
        rows = max(H + 2 * ph, sh * Ho + kh - 1)    # padded rows per image: room for every shift
        self.__dict__.update(N=N, C=C, H=H, W=W, F=F, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw,
                             Ho=Ho, Wo=Wo, R=R, rows=rows)
        self.K = C * kh * kw                        # rows of the column matrix
        self.P = Ho * sh * R // sw                  # positions per image (≥ H_out·W_out)
        self.total = N * rows * R + kw              # flat row length, with room for the last shift
        self.chunk = min(_chunk_size(N, _CHUNK_BYTES, self.K * self.P * itemsize),
                         _chunk_size(N, _BACKWARD_CHUNK_BYTES, (2 * C + F) * self.P * itemsize))
        self.chunks = [(n0, min(self.chunk, N - n0)) for n0 in range(0, N, self.chunk)]
        # backward: positions per product, so that large images are cut within the image too
        most = max(_MIN_BLOCK, _BACKWARD_CHUNK_BYTES // ((2 * C + F) * itemsize))
        self.block = _chunk_size(self.chunk * self.P, most, 1)

    def _images(self, flat: np.ndarray, n0: int, m: int) -> np.ndarray:
        """The (C, H, m, W) pixels of images n0 … n0+m−1 inside the flat rows (a view)."""
        block = flat[:, n0 * self.rows * self.R:(n0 + m) * self.rows * self.R]
        grid = block.reshape(flat.shape[0], self.rows, m, self.R)
        return grid[:, self.ph:self.ph + self.H, :, self.pw:self.pw + self.W]

    def flatten(self, x: np.ndarray, dtype) -> np.ndarray:
        """x (N, C, H, W) → zero-padded flat rows (C, total)."""
        flat = np.zeros((self.C, self.total), dtype=dtype)
        for n0, m in self.chunks:
            self._images(flat, n0, m)[...] = x[n0:n0 + m].transpose(1, 2, 0, 3)
        return flat

    def unflatten(self, flat: np.ndarray) -> np.ndarray:
        """Flat rows (C, total) → (N, C, H, W) (a copy)."""
        x = np.empty((self.N, self.C, self.H, self.W), dtype=flat.dtype)
        for n0, m in self.chunks:
            x[n0:n0 + m].transpose(1, 2, 0, 3)[...] = self._images(flat, n0, m)
        return x

    def outputs(self, z: np.ndarray, m: int) -> np.ndarray:
        """The (F, H_out, m, W_out) output positions among the m·P positions of a chunk (a view of z)."""
        return z.reshape(-1, self.Ho, self.sh, m, self.R // self.sw)[:, :, 0, :, :self.Wo]

    def columns(self, xf: np.ndarray, n0: int, m: int, out: np.ndarray) -> np.ndarray:
        """im2col of the chunk n0 … n0+m−1: cols[(f, i, j), q] = xf[f, start + i·m·R + j + s_w·q],
        q < m·P, as a (K, m·P) matrix written into the buffer ``out``."""
        e = xf.itemsize
        view = as_strided(xf[:, n0 * self.rows * self.R:], (self.C, self.kh, self.kw, m * self.P),
                          (xf.strides[0], m * self.R * e, e, self.sw * e), writeable=False)
        cols = out[:self.K * m * self.P].reshape(self.C, self.kh, self.kw, m * self.P)
        np.copyto(cols, view)
        return cols.reshape(self.K, m * self.P)

    def shifted(self, flat: np.ndarray, n0: int, m: int, i: int, j: int) -> np.ndarray:
        """The slice flat[:, start + i·m·R + j + s_w·q], q < m·P, of the chunk n0 … n0+m−1: what
        kernel offset (i, j) touches at every position (a view, (rows, m·P))."""
        start = n0 * self.rows * self.R + i * m * self.R + j
        return flat[:, start:start + self.sw * m * self.P:self.sw]


def conv2d_forward_fast(x, w, b=None, stride=1, padding=0):
    """The same convolution as ``conv2d_forward_naive``, as matrix products (im2col + GEMM).

    Inputs:
      x: (N, C, H, W); w: (F, C, kh, kw); b: (F,) or None; stride, padding: int or pair.

    Returns ``(out, cache)``: out (N, F, H_out, W_out) in the dtype of x and w (float32 stays
    float32); cache holds the padded, flattened input, the weight and the geometry.

    For each chunk of the batch the input windows are copied into the columns of a matrix
    ``cols`` of shape (C·kh·kw, positions), so that the layer is one product
    ``z = W_mat @ cols`` with W_mat = w.reshape(F, C·kh·kw).
    """
    x, w, b, stride, padding, out_hw = _conv_args(x, w, b, stride, padding, "conv2d_forward_fast")
    dtype = np.result_type(x, w)
    g = _FlatGeometry(x.shape, w.shape, stride, padding, out_hw, np.dtype(dtype).itemsize)
    xf = g.flatten(x, dtype)
    w_mat = w.reshape(g.F, g.K).astype(dtype, copy=False)
    bias = np.zeros((g.F, 1, 1, 1), dtype) if b is None else b.astype(dtype).reshape(g.F, 1, 1, 1)
    out = np.empty((g.N, g.F, g.Ho, g.Wo), dtype=dtype)
    cols_buffer = np.empty(g.K * g.chunk * g.P, dtype=dtype)
    z_buffer = np.empty(g.F * g.chunk * g.P, dtype=dtype)
    for n0, m in g.chunks:
        cols = g.columns(xf, n0, m, cols_buffer)                          # (K, m·P)
        z = np.matmul(w_mat, cols, out=z_buffer[:g.F * m * g.P].reshape(g.F, m * g.P))
        np.add(g.outputs(z, m), bias, out=out[n0:n0 + m].transpose(1, 2, 0, 3))  # z + b, as NCHW
    return out, (xf, w_mat, w.shape, b is not None, g)


def conv2d_backward_fast(dout, cache):
    """Gradients of ``conv2d_forward_fast`` (same returns as ``conv2d_backward_naive``).

    Inputs: dout (N, F, H_out, W_out) = δ; cache from the forward.
    Returns ``(dx, dw, db)`` with shapes (N, C, H, W), (F, C, kh, kw), (F,) or None.

    δ is laid out like the flat input (zero where no output sits), as a (F, positions) matrix.
    Kernel offset (i, j) connects every position to one shifted slice a_ij (C, positions) of
    the flat input (see the layout above), so the three backward equations become, per offset,

        ∂ℒ/∂W[:, :, i, j]ᵀ = a_ij δᵀ              (C × F: the sum over n, i′, j′ as one product)
        ∂ℒ/∂a_ij          += W[:, :, i, j]ᵀ δ      (C × positions, added onto the same slice)
        ∂ℒ/∂b              = Σ δ

    which is the col2im of the column method without building its kh·kw times larger matrices.
    """
    xf, w_mat, w_shape, has_bias, g = cache
    dout = np.asarray(dout)
    if dout.shape != (g.N, g.F, g.Ho, g.Wo):
        raise ShapeError(f"conv2d_backward_fast: dout must have shape {(g.N, g.F, g.Ho, g.Wo)}, got {describe(dout)}")
    dtype = np.result_type(xf, dout)
    xf = xf.astype(dtype, copy=False)
    w_t = w_mat.reshape(w_shape).transpose(2, 3, 1, 0).astype(dtype)   # W[:, :, i, j]ᵀ = w_t[i, j]
    dxf = np.zeros((g.C, g.total), dtype=dtype)
    dw_t = np.zeros((g.kh, g.kw, g.C, g.F), dtype=dtype)                # ∂ℒ/∂W[:, :, i, j]ᵀ
    delta = np.zeros((g.F, g.chunk * g.P), dtype=dtype)                 # δ, zero at the extra positions
    a_buffer = np.empty((g.C, g.block), dtype=dtype)                    # a_ij made contiguous (s_w > 1)
    da_buffer = np.empty((g.C, g.block), dtype=dtype)
    dw_ij = np.empty((g.C, g.F), dtype=dtype)
    for n0, m in g.chunks:
        d_chunk = delta[:, :m * g.P]
        if m < g.chunk:                                 # the last, shorter chunk: outputs elsewhere
            d_chunk[...] = 0
        g.outputs(d_chunk, m)[...] = dout[n0:n0 + m].transpose(1, 2, 0, 3)
        for q in range(0, m * g.P, g.block):           # positions q … q + block − 1 of the chunk
            d = d_chunk[:, q:q + g.block]
            da = da_buffer[:, :d.shape[1]]
            for i, j in np.ndindex(g.kh, g.kw):
                a_ij = g.shifted(xf, n0, m, i, j)[:, q:q + g.block]
                if g.sw > 1:                            # a strided slice: copy it so the product runs in BLAS
                    np.copyto(a_buffer[:, :d.shape[1]], a_ij)
                    a_ij = a_buffer[:, :d.shape[1]]
                dw_t[i, j] += np.matmul(a_ij, d.T, out=dw_ij)                  # a_ij δᵀ
                da_ij = g.shifted(dxf, n0, m, i, j)[:, q:q + g.block]         # a view into ∂ℒ/∂a
                da_ij += np.matmul(w_t[i, j], d, out=da)                       # += W_ijᵀ δ
    db = dout.sum(axis=(0, 2, 3)) if has_bias else None
    return g.unflatten(dxf), np.ascontiguousarray(dw_t.transpose(3, 2, 0, 1)), db


def conv2d(x, w, b=None, stride=1, padding=0):
    """``torch.nn.functional.conv2d`` for NCHW arrays: the output only (fast implementation)."""
    return conv2d_forward_fast(x, w, b, stride, padding)[0]


# --------------------------------------------------------------------------------------------
# max-pooling, naive: one window at a time
# --------------------------------------------------------------------------------------------
def maxpool2d_forward_naive(x, kernel_size, stride=None, padding=0):
    """out[n, c, i′, j′] = max over the window Ω(i′, j′) of a[n, c, ·, ·].

    Inputs:
      x: (N, C, H, W); kernel_size, stride (default: kernel_size), padding: int or pair.
      Padding adds −∞ (it never wins a max), at most half the kernel on each side.

    Returns ``(out, cache)``: out (N, C, H_out, W_out); cache holds, for every output, the
    position of its maximum (the first one in row-major window order, as PyTorch chooses).
    """
    x, kernel, (sh, sw), padding, (Ho, Wo) = _pool_args(x, kernel_size, stride, padding, "maxpool2d_forward_naive")
    kh, kw = kernel
    N, C = x.shape[:2]
    xp = _pad(x, padding, value=-np.inf)
    out = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    argmax = np.empty((N, C, Ho, Wo, 2), dtype=np.intp)        # (row, column) in the padded input
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    window = xp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    r, q = np.unravel_index(np.argmax(window), window.shape)  # first maximum
                    out[n, c, i, j] = window[r, q]
                    argmax[n, c, i, j] = (i * sh + r, j * sw + q)
    return out, (xp.shape, argmax, padding)


def maxpool2d_backward_naive(dout, cache):
    """∂ℒ/∂a[n, c, r, q] = Σ over windows whose arg-max is (r, q) of δ[n, c, i′, j′].

    Inputs: dout (N, C, H_out, W_out); cache from ``maxpool2d_forward_naive``.
    Returns dx (N, C, H, W): zero except at arg-max positions.
    """
    xp_shape, argmax, padding = cache
    dout = np.asarray(dout)
    N, C, Ho, Wo = dout.shape
    dxp = np.zeros(xp_shape, dtype=dout.dtype)
    for n in range(N):
        for c in range(C):
            for i in range(Ho):
                for j in range(Wo):
                    r, q = argmax[n, c, i, j]
                    dxp[n, c, r, q] += dout[n, c, i, j]   # overlapping windows accumulate
    return np.ascontiguousarray(_unpad(dxp, padding))


# --------------------------------------------------------------------------------------------
# max-pooling, fast: one pass per kernel offset over strided views of the whole batch
# --------------------------------------------------------------------------------------------
def _window_offset(xp: np.ndarray, r: int, q: int, stride, out_hw) -> np.ndarray:
    """The element at offset (r, q) of every window: a strided view of shape (N, C, H_out, W_out)."""
    (sh, sw), (Ho, Wo) = stride, out_hw
    return xp[:, :, r:r + sh * (Ho - 1) + 1:sh, q:q + sw * (Wo - 1) + 1:sw]


def maxpool2d_forward_fast(x, kernel_size, stride=None, padding=0):
    """The same pooling as ``maxpool2d_forward_naive`` (same inputs, out and tie rule).

    Instead of visiting windows one by one it visits the kh·kw *offsets* inside a window: the
    element at offset (r, q) of every window is one strided view of the input, and a running
    maximum over these views (strict ``>``, so the first maximum stays) gives both the output
    and, as an integer 0 … kh·kw−1 per output, which offset won. When the windows tile the
    input (stride = kernel, no padding) the input is simply reshaped to
    (N, C, H_out, kh, W_out, kw) and the offsets are its slices [:, :, :, r, :, q].
    A NaN in a window wins it (the output is NaN), as in PyTorch.
    """
    x, kernel, stride, padding, out_hw = _pool_args(x, kernel_size, stride, padding, "maxpool2d_forward_fast")
    (kh, kw), (Ho, Wo) = kernel, out_hw
    if stride == kernel and padding == (0, 0):
        tiles = x[:, :, :Ho * kh, :Wo * kw].reshape(x.shape[0], x.shape[1], Ho, kh, Wo, kw)
        offset = lambda r, q: tiles[:, :, :, r, :, q]
    else:
        xp = _pad(x, padding, value=-np.inf)
        offset = lambda r, q: _window_offset(xp, r, q, stride, out_hw)
    out = offset(0, 0).copy()
    which = np.zeros(out.shape, dtype=np.min_scalar_type(kh * kw - 1))
    nan_aware = x.size > 0 and np.isnan(x.max())           # max is NaN iff x holds a NaN
    wins = np.empty(out.shape, dtype=bool)
    for t in range(1, kh * kw):
        v = offset(*divmod(t, kw))
        np.greater(v, out, out=wins)                  # strictly greater: ties keep the earlier one
        if nan_aware:
            wins |= np.isnan(v) & ~np.isnan(out)      # the first NaN wins and stays
        np.maximum(out, v, out=out)                   # (np.maximum propagates NaN)
        which += wins * (t - which)                   # which = t where v won (cheaper than np.where)
    return out, (x.shape, which, kernel, stride, padding)


def maxpool2d_backward_fast(dout, cache):
    """Gradient of ``maxpool2d_forward_fast``: for each offset (r, q), the outputs whose maximum
    sat there add their δ to that position of their window. Returns dx (N, C, H, W)."""
    x_shape, which, (kh, kw), stride, padding = cache
    dout = np.asarray(dout)
    if dout.shape != which.shape:
        raise ShapeError(f"maxpool2d_backward_fast: dout must have shape {which.shape}, got {describe(dout)}")
    N, C, H, W = x_shape
    (ph, pw), out_hw = padding, which.shape[2:]
    overlap = stride[0] < kh or stride[1] < kw
    # windows that tile the input write every position exactly once: no zero-filling needed
    tiled = stride == (kh, kw) and padding == (0, 0) and H % kh == 0 and W % kw == 0
    dxp = (np.empty if tiled else np.zeros)((N, C, H + 2 * ph, W + 2 * pw), dtype=dout.dtype)
    finite = bool(np.isfinite(dout.sum()))            # a finite sum has finite terms: (which == t)·δ is exact
    for t in range(kh * kw):
        hit = which == t
        view = _window_offset(dxp, *divmod(t, kw), stride, out_hw)
        if not finite:                                # 0 · ∞ would be NaN: select instead
            routed = np.where(hit, dout, np.zeros((), dout.dtype))
            if overlap:
                view += routed                        # overlapping windows accumulate
            else:
                view[...] = routed
        elif overlap:
            view += hit * dout
        else:
            np.multiply(hit, dout, out=view)          # (which == t)·δ, written in place
    return np.ascontiguousarray(_unpad(dxp, padding)) if padding != (0, 0) else dxp


def max_pool2d(x, kernel_size, stride=None, padding=0):
    """``torch.nn.functional.max_pool2d`` for NCHW arrays: the output only (fast implementation)."""
    return maxpool2d_forward_fast(x, kernel_size, stride, padding)[0]
