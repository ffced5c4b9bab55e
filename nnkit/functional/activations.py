"""Activation functions in their numerically stable forms.

``sigmoid`` never evaluates ``exp`` of a large positive number, and softmax/log-softmax subtract
the row maximum first (the log-sum-exp trick), so all of them stay finite at |z| = 1e4.
"""
from __future__ import annotations

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    """σ(z) = 1 / (1 + e^{−z}), computed as e^{z}/(1 + e^{z}) for z < 0 so nothing overflows.

    Float inputs keep their precision (float32 stays float32); integer inputs give float64."""
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    e = np.exp(-np.abs(z))  # in (0, 1]: never overflows
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e)).astype(z.dtype, copy=False)


def sigmoid_prime(z: np.ndarray) -> np.ndarray:
    """σ′(z) = σ(z)(1 − σ(z))."""
    s = sigmoid(z)
    return s * (1.0 - s)


def tanh(z: np.ndarray) -> np.ndarray:
    return np.tanh(z)


def relu(z: np.ndarray) -> np.ndarray:
    return np.maximum(z, 0)


def logsumexp(z: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """log Σ_j e^{z_j}, computed as m + log Σ_j e^{z_j − m} with m = max_j z_j."""
    m = np.max(z, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))
    return out if keepdims else np.squeeze(out, axis=axis)


def log_softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """log p_j = z_j − log Σ_k e^{z_k}, computed as (z_j − m) − log Σ_k e^{z_k − m}, m = max_k z_k.

    Subtracting m before anything else keeps every digit of the small differences z_j − m:
    z − logsumexp(z) would round m + log 2 to the spacing of floats near m (0.001 at 1e4 in float32).
    """
    m = np.max(z, axis=axis, keepdims=True)
    shifted = z - np.where(np.isfinite(m), m, 0)
    return shifted - np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True))


def softmax(z: np.ndarray, axis: int = -1) -> np.ndarray:
    """p_j = e^{z_j − m} / Σ_k e^{z_k − m}."""
    e = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)
