"""Fully-connected layers and activations, each with its forward and backward side by side.

Notation (one convention everywhere): layer ℓ computes z^ℓ = W^ℓ a^{ℓ−1} + b^ℓ and
a^ℓ = f(z^ℓ). A batch is stored as rows, so in code ``Z = A_prev @ W.T + b``. Each backward
receives G = ∂ℒ/∂(output) and returns ∂ℒ/∂(input):

    Linear:      ∂ℒ/∂W = Gᵀ A_prev,  ∂ℒ/∂b = Σ_rows G,  ∂ℒ/∂A_prev = G W
    activation:  ∂ℒ/∂z = G ⊙ f′(z)

so chaining them gives the δ recursion δ^ℓ = ((W^{ℓ+1})ᵀ δ^{ℓ+1}) ⊙ f′(z^ℓ).
"""
from __future__ import annotations

import math

import numpy as np

from . import functional as F
from ._random import get_rng
from .errors import ShapeError, describe
from .module import Module, Parameter


class Linear(Module):
    """z = W a + b with ``weight`` of shape (out_features, in_features), as in PyTorch.

    Default initialisation: every weight and bias drawn from U[−1/√n, 1/√n] with n = in_features
    (the lecture notes' rule, which is also PyTorch's default for ``nn.Linear``).
    Input shape (..., in_features) → output (..., out_features).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *, rng=None, dtype=np.float64):
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"Linear: in_features and out_features must be ≥ 1, got {in_features}, {out_features}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        rng = get_rng(rng)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features).astype(dtype)) if bias else None

    def extra_repr(self) -> str:
        return f"{self.in_features}→{self.out_features}" + ("" if self.bias is not None else ", bias=False")

    def forward(self, x):
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ShapeError(
                f"{self.label()}: expected input of shape (batch, {self.in_features}), got {describe(x)}. "
                f"The last axis must hold the {self.in_features} input features."
            )
        self._a_prev = x
        z = x @ self.weight.data.T
        if self.bias is not None:
            z += self.bias.data  # in place: z is a fresh array
        return z

    def backward(self, grad, input_grad: bool = True):
        a_prev = self._a_prev.reshape(-1, self.in_features)
        g = grad.reshape(-1, self.out_features)
        self.weight.grad += g.T @ a_prev  # ∂ℒ/∂W = δ (a^{ℓ−1})ᵀ, summed over the batch
        if self.bias is not None:
            self.bias.grad += g.sum(axis=0)  # ∂ℒ/∂b = δ, summed over the batch
        if not input_grad:  # the input is data: no ∂ℒ/∂x wanted (see Module.backward)
            return None
        return grad @ self.weight.data  # ∂ℒ/∂a^{ℓ−1} = Wᵀ δ, one row per example


class _Activation(Module):
    """An element-wise f: forward stores z, backward multiplies by f′(z)."""

    def forward(self, z):
        self._z = z
        self._a = self.f(z)
        return self._a

    def backward(self, grad):
        return grad * self.f_prime(self._z, self._a)

    def f(self, z):  # pragma: no cover
        raise NotImplementedError

    def f_prime(self, z, a):  # pragma: no cover
        raise NotImplementedError


class Identity(_Activation):
    """f(z) = z, f′(z) = 1."""

    def f(self, z):
        return z

    def f_prime(self, z, a):
        return np.ones_like(z)


class Step(_Activation):
    """The perceptron's threshold: f(z) = 1 if z > 0 else 0; f′(z) = 0 wherever it exists.

    Its derivative is zero almost everywhere, so no gradient flows through it — the reason
    gradient descent needs smooth activations.
    """

    def f(self, z):
        return (z > 0).astype(z.dtype)

    def f_prime(self, z, a):
        return np.zeros_like(z)


class Sigmoid(_Activation):
    """σ(z) = 1/(1 + e^{−z}) (stable for large |z|), σ′(z) = σ(z)(1 − σ(z))."""

    def f(self, z):
        return F.sigmoid(z)

    def f_prime(self, z, a):
        return a * (1.0 - a)


class Tanh(_Activation):
    """tanh(z), tanh′(z) = 1 − tanh²(z)."""

    def f(self, z):
        return np.tanh(z)

    def f_prime(self, z, a):
        return 1.0 - a * a


class ReLU(_Activation):
    """max(0, z); ReLU′(z) = 1 if z > 0 else 0 (0 at z = 0, as PyTorch)."""

    def f(self, z):
        return np.maximum(z, 0).astype(z.dtype, copy=False)

    def f_prime(self, z, a):
        return (z > 0).astype(z.dtype)


class LeakyReLU(_Activation):
    """z if z > 0 else negative_slope·z; derivative 1 or negative_slope (slope at 0, as PyTorch)."""

    def __init__(self, negative_slope: float = 0.01):
        super().__init__()
        self.negative_slope = float(negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"

    def f(self, z):
        return np.where(z > 0, z, self.negative_slope * z)

    def f_prime(self, z, a):
        return np.where(z > 0, 1.0, self.negative_slope).astype(z.dtype)


def _check_dim(layer: Module, z: np.ndarray) -> None:
    if not -z.ndim <= layer.dim < z.ndim:
        raise ShapeError(
            f"{layer.label()}: dim={layer.dim} is out of range for an input of {describe(z)} "
            f"(valid: {-z.ndim}…{z.ndim - 1}); the classes lie along one axis of the scores"
        )


class Softmax(Module):
    """p_j = e^{z_j} / Σ_k e^{z_k} along ``dim``; backward: ∂ℒ/∂z = p ⊙ (g − Σ_k g_k p_k)."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    def forward(self, z):
        _check_dim(self, z)
        self._p = F.softmax(z, axis=self.dim)
        return self._p

    def backward(self, grad):
        p = self._p
        return p * (grad - np.sum(grad * p, axis=self.dim, keepdims=True))


class LogSoftmax(Module):
    """log p_j = z_j − log Σ_k e^{z_k} along ``dim``; backward: ∂ℒ/∂z = g − p Σ_k g_k."""

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    def forward(self, z):
        _check_dim(self, z)
        out = F.log_softmax(z, axis=self.dim)
        self._p = np.exp(out)
        return out

    def backward(self, grad):
        return grad - self._p * np.sum(grad, axis=self.dim, keepdims=True)


class Dropout(Module):
    """Inverted dropout with PyTorch's meaning of ``p``: the probability of *dropping* a unit.

    Training: each unit is kept with probability 1 − p and scaled by 1/(1 − p), so the expected
    output equals the input; backward reuses the same mask. Evaluation: the identity. This is
    the same network, in expectation, as the notes' recipe "train with dropout, halve the
    weights at test time" (p = ½), with the scaling moved from test time to training time.
    """

    def __init__(self, p: float = 0.5, *, rng=None):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p is the drop probability and must lie in [0, 1], got {p}")
        self.p = float(p)
        # None: draw from the default generator current at each forward, so nk.manual_seed(s)
        # called after building the model still makes the masks reproducible (as in PyTorch)
        self._rng = None if rng is None else get_rng(rng)
        self.mask: np.ndarray | None = None

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def forward(self, x):
        if not self.training or self.p == 0.0:
            self.mask = None
            return x
        if self.p == 1.0:
            self.mask = np.zeros_like(x)
        else:
            keep = get_rng(self._rng).random(x.shape) >= self.p
            self.mask = keep.astype(x.dtype) / (1.0 - self.p)
        return x * self.mask

    def backward(self, grad):
        return grad if self.mask is None else grad * self.mask


class Flatten(Module):
    """Flattens dimensions ``start_dim`` … ``end_dim`` into one (PyTorch's defaults: 1 … −1)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

    def forward(self, x):
        nd = x.ndim
        start = self.start_dim % nd if nd else 0
        end = self.end_dim % nd if nd else 0
        if start > end:
            raise ShapeError(f"{self.label()}: cannot flatten dims {self.start_dim}…{self.end_dim} of {describe(x)}")
        self._shape = x.shape
        new_shape = x.shape[:start] + (int(np.prod(x.shape[start:end + 1])),) + x.shape[end + 1:]
        return x.reshape(new_shape)

    def backward(self, grad):
        return grad.reshape(self._shape)
