"""Weight initialisation rules. Each fills a Parameter (or array) in place and returns it.

n_in / n_out are the fan-in and fan-out: for a Linear weight (out, in) they are in and out; for
a Conv2d weight (out, in, kh, kw) they are in·kh·kw and out·kh·kw (PyTorch's convention).
"""
from __future__ import annotations

import math

import numpy as np

from ._random import get_rng
from .module import Parameter


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"fan-in and fan-out need a weight with ≥ 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fill(p, values: np.ndarray):
    arr = p.data if isinstance(p, Parameter) else p
    arr[...] = values.astype(arr.dtype)
    return p


def _shape(p) -> tuple[int, ...]:
    return (p.data if isinstance(p, Parameter) else p).shape


def uniform_fan_in(p, rng=None):
    """The lecture notes' rule (and PyTorch's default): U[−1/√n_in, 1/√n_in]."""
    n_in, _ = fans(_shape(p))
    b = 1.0 / math.sqrt(n_in)
    return _fill(p, get_rng(rng).uniform(-b, b, _shape(p)))


def xavier_uniform(p, gain: float = 1.0, rng=None):
    """Glorot & Bengio: U[−a, a] with a = gain·√(6/(n_in + n_out)); keeps variance for tanh/sigmoid."""
    n_in, n_out = fans(_shape(p))
    a = gain * math.sqrt(6.0 / (n_in + n_out))
    return _fill(p, get_rng(rng).uniform(-a, a, _shape(p)))


def xavier_normal(p, gain: float = 1.0, rng=None):
    """Glorot & Bengio: N(0, σ²) with σ = gain·√(2/(n_in + n_out))."""
    n_in, n_out = fans(_shape(p))
    return _fill(p, get_rng(rng).normal(0.0, gain * math.sqrt(2.0 / (n_in + n_out)), _shape(p)))


def kaiming_uniform(p, rng=None):
    """He et al. for ReLU: U[−a, a] with a = √(6/n_in), i.e. variance 2/n_in."""
    n_in, _ = fans(_shape(p))
    a = math.sqrt(6.0 / n_in)
    return _fill(p, get_rng(rng).uniform(-a, a, _shape(p)))


def kaiming_normal(p, rng=None):
    """He et al. for ReLU: N(0, 2/n_in)."""
    n_in, _ = fans(_shape(p))
    return _fill(p, get_rng(rng).normal(0.0, math.sqrt(2.0 / n_in), _shape(p)))


def zeros(p):
    return _fill(p, np.zeros(_shape(p)))


he_uniform, he_normal, glorot_uniform, glorot_normal = kaiming_uniform, kaiming_normal, xavier_uniform, xavier_normal
